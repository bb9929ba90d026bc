//! Development fixtures for hozon, deterministic from a seed: a look-alike HPKI hierarchy
//! ([`pki`], `hozon dev pki`) and a corpus of signed FHIR documents ([`corpus`],
//! `hozon dev corpus`) with the signature formats of DESIGN §3 ([`sign`]).
//!
//! No real HPKI key or certificate is ever involved; every key here is generated from the seed
//! and written unencrypted, for tests and benchmarks only.
#![forbid(unsafe_code)]

pub mod corpus;
pub mod fhir;
pub mod pki;
pub mod sign;
pub mod x509;

use std::path::Path;

/// Why a fixture could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum DevkitError {
    /// Key generation, parsing or signing failed.
    #[error("key: {0}")]
    Key(String),
    /// DER or JSON encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
    /// Something the fixture needs is not in the hierarchy.
    #[error("not found: {0}")]
    Missing(String),
    /// A file on disk is not what `hozon dev` writes.
    #[error("bad fixture file: {0}")]
    Format(String),
    /// The test TSA refused to stamp.
    #[error("timestamp: {0}")]
    Timestamp(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl DevkitError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DevkitError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
