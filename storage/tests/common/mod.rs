//! Tables shared by the storage tests.
#![allow(dead_code)]

use hozon_storage::{Cf, Table};

/// Test documents keyed by sequence number, in [`Cf::Documents`].
pub struct Docs;
impl Table for Docs {
    const CF: Cf = Cf::Documents;
    type Key = u64;
    type Value = Vec<u8>;
}

/// Test pending entries (same keys) in [`Cf::Pending`]; written in the same batch as `Docs`
/// to check cross-family atomicity.
pub struct Pend;
impl Table for Pend {
    const CF: Cf = Cf::Pending;
    type Key = u64;
    type Value = [u8; 32];
}

/// A deterministic, mildly compressible 4 KiB-ish value for key `seq` (JSON-like text with a
/// per-key varying part), so that a damaged or swapped value is detected by recomputing it.
pub fn value_for(seq: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "{{\"resourceType\":\"MedicationRequest\",\"id\":\"{seq}\",\"dose\":{}}}\n",
            x % 1000
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of a value.
pub fn digest(v: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(v).into()
}
