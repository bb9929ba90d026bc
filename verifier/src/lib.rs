//! Verification of RFC 3161 timestamp tokens, signed FHIR documents and RFC 4998 evidence
//! records.
//!
//! - [`token`]: one RFC 3161 time-stamp token (signature, ESS certificate binding, TSA
//!   certificate profile, imprint, nonce);
//! - [`path`]: certification path validation with CRLs; [`policy`]: the algorithm policy;
//! - [`document`]: a signed FHIR Bundle (JWS or CMS over its JCS form, written straight from
//!   the text by [`canonical`]; [`jcs`] writes it from a [`json`] tree, for signing), with its
//!   signature timestamp; [`hpki`]: the HPKI vocabulary shared with the dev fixtures;
//! - [`ers`], [`hashtree`], [`evidence`]: RFC 4998 evidence records;
//! - [`report`]: what an investigator reads, and the judgements bulk re-verification shares.
#![forbid(unsafe_code)]

pub mod canonical;
pub mod document;
pub mod ers;
pub mod evidence;
pub mod hashtree;
pub mod hpki;
pub mod jcs;
pub mod json;
pub mod path;
pub mod policy;
pub mod report;
pub mod token;
