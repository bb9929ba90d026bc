//! Verification of RFC 3161 timestamp tokens, signed FHIR documents and RFC 4998 evidence
//! records.
//!
//! Status: [`token`] verifies one RFC 3161 time-stamp token (signature, ESS certificate
//! binding, TSA certificate profile, imprint and nonce). Path validation, algorithm policy,
//! evidence records and bulk re-verification are the subject of later issues.
#![forbid(unsafe_code)]

pub mod token;
