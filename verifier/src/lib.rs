//! Verification of RFC 3161 timestamp tokens, signed FHIR documents and RFC 4998 evidence
//! records.
//!
//! Status: only the crate boundary exists. Token verification, path validation, evidence
//! records and bulk re-verification are the subject of later issues; nothing here pretends
//! to verify anything yet.
#![forbid(unsafe_code)]
