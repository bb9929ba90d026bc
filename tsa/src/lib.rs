//! RFC 3161 Time-Stamp Authority.
//!
//! The protocol core (`asn1`, `protocol`, `certcheck`) is pure: bytes in, bytes out, no I/O.
//! Keys sit behind [`signer::Signer`] with two back ends (`pkcs11`, `software`); certificates
//! for a key are made by `certgen`.
#![deny(unsafe_code)]

pub mod asn1;
pub mod audit;
pub mod certcheck;
pub mod certgen;
pub mod client;
pub mod clock;
pub mod config;
pub mod http;
pub mod issuer;
pub mod pkcs11;
pub mod protocol;
pub mod serial;
pub mod signer;
pub mod software;
pub mod tls;
