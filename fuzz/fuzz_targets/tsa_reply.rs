//! The client's reply parser: any bytes give a token or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hozon_tsa::client::parse_response(data);
});
