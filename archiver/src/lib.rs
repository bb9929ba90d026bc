//! Archive of signed documents: ingest, Merkle-batched sealing under RFC 3161 timestamps and
//! RFC 4998 renewal.
//!
//! Status: only the crate boundary exists; ingest, sealing and renewal are the subject of a
//! later issue.
#![forbid(unsafe_code)]
