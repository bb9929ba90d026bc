//! Typed keys and values.
//!
//! Keys are encoded so that byte order equals logical order (big-endian integers), which makes
//! range scans and "last record" look-ups meaningful.

/// A value that cannot be decoded from what is stored.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {what}: {reason}")]
pub struct CodecError {
    /// The type being decoded.
    pub what: &'static str,
    /// Why it failed.
    pub reason: String,
}

impl CodecError {
    /// A decoding failure for type `what`.
    pub fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}

/// Conversion of a key or value to and from its stored bytes.
pub trait Codec: Sized {
    /// The stored bytes.
    fn encode(&self) -> Vec<u8>;
    /// Parse stored bytes; must not panic on any input.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;
}

impl Codec for u64 {
    fn encode(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let arr: [u8; 8] = bytes
            .try_into()
            .map_err(|_| CodecError::new("u64", format!("{} bytes, want 8", bytes.len())))?;
        Ok(u64::from_be_bytes(arr))
    }
}

impl Codec for u32 {
    fn encode(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let arr: [u8; 4] = bytes
            .try_into()
            .map_err(|_| CodecError::new("u32", format!("{} bytes, want 4", bytes.len())))?;
        Ok(u32::from_be_bytes(arr))
    }
}

impl Codec for Vec<u8> {
    fn encode(&self) -> Vec<u8> {
        self.clone()
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl<const N: usize> Codec for [u8; N] {
    fn encode(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        bytes.try_into().map_err(|_| {
            CodecError::new(
                "fixed-size bytes",
                format!("{} bytes, want {N}", bytes.len()),
            )
        })
    }
}

/// A typed table: one column family with the key and value types stored in it.
///
/// Crates define their own tables (`impl Table for AuditLog { ... }`) over the column families
/// declared in [`crate::Cf`]; the store never hands out untyped keys.
pub trait Table {
    /// The column family holding the table.
    const CF: crate::Cf;
    /// Key type; its encoding orders the table.
    type Key: Codec;
    /// Value type.
    type Value: Codec;
}
