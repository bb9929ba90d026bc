//! The evidence-record reader (ERS DER, hash trees, embedded tokens): any bytes give steps or
//! an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hozon_verifier::evidence::check_evidence(data, b"document", &[]);
});
