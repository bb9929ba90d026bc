//! Verification of RFC 3161 timestamp tokens, signed FHIR documents and RFC 4998 evidence
//! records.
//!
//! Status: [`token`] verifies one RFC 3161 time-stamp token (signature, ESS certificate
//! binding, TSA certificate profile, imprint and nonce); [`ers`] holds the RFC 4998 types
//! and [`hashtree`] builds, reduces and re-computes RFC 4998 hash trees; [`hpki`] is the HPKI
//! vocabulary (policies, hcRole, document types) shared with the dev fixtures. Path
//! validation, algorithm policy, document and evidence-record verification and bulk
//! re-verification are still to come (issues 5 and 7).
#![forbid(unsafe_code)]

pub mod document;
pub mod ers;
pub mod evidence;
pub mod hashtree;
pub mod hpki;
pub mod path;
pub mod policy;
pub mod report;
pub mod token;
