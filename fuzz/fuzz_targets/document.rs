//! The signed-document reader (FHIR JSON, JWS, CMS, signature timestamps): any bytes give a
//! verdict or an error, never a panic. The input is used as the document, and its first half
//! also as a JWS side token, so both token and document parsers see fuzzed bytes.
#![no_main]

use std::time::SystemTime;

use hozon_verifier::document::{verify_document, DocumentContext, UsagePolicy};
use hozon_verifier::path::{CrlSet, TrustAnchors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let anchors = TrustAnchors::default();
    let usage = UsagePolicy::default();
    let ctx = DocumentContext {
        anchors: &anchors,
        crls: CrlSet::empty(),
        extra_certs: &[],
        usage: &usage,
        remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
        side_token: Some(&data[..data.len() / 2]),
        now: SystemTime::UNIX_EPOCH,
    };
    let _ = verify_document(data, &ctx);
});
