//! The signing edge of the TSA, modelled on rustls' `crypto::signer`: a back end (PKCS#11 in
//! production, a software key for development) is one small implementation of [`Signer`];
//! [`CertifiedSigner`] keeps the certificate chain next to the key so that the protocol core
//! never needs to know where the key lives.

use std::sync::Arc;

/// Digest algorithms the TSA and its signers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1: only ever accepted for *imprints*, and only when configured; never for signing.
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Sha3_256,
    Sha3_512,
}

/// A signature scheme: key type, padding and the digest computed over the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (sha256WithRSAEncryption).
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, salt length 32.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, salt length 48.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, salt length 64.
    RsaPssSha512,
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384Sha384,
}

impl SignatureScheme {
    /// The digest the scheme computes over the message (and which the CMS SignerInfo names as
    /// its `digestAlgorithm`).
    pub fn digest(self) -> DigestAlgorithm {
        match self {
            Self::RsaPkcs1Sha256 | Self::RsaPssSha256 | Self::EcdsaP256Sha256 => {
                DigestAlgorithm::Sha256
            }
            Self::RsaPkcs1Sha384 | Self::RsaPssSha384 | Self::EcdsaP384Sha384 => {
                DigestAlgorithm::Sha384
            }
            Self::RsaPkcs1Sha512 | Self::RsaPssSha512 => DigestAlgorithm::Sha512,
        }
    }
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The back end (HSM, token, key file) failed; the string says what and where.
    #[error("signing back end failed: {0}")]
    Backend(String),
    /// The key cannot make signatures of the requested kind.
    #[error("key does not support {0:?}")]
    Unsupported(SignatureScheme),
}

/// A private key that signs messages with one fixed scheme.
///
/// `sign` receives the whole message (for CMS: the DER of the signed attributes) and does the
/// hashing itself, so that an HSM may hash inside the token. It returns the signature in the
/// encoding X.509 and CMS use: the RSA signature octets, or for ECDSA a DER `ECDSA-Sig-Value`
/// (PKCS#11 returns raw `r || s`; the back end converts).
///
/// Implementations are shared between request workers (`Send + Sync`) and must be safe to
/// call concurrently; a back end with per-session state keeps a pool internally.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The scheme every signature from this key uses.
    fn scheme(&self) -> SignatureScheme;
    /// DER SubjectPublicKeyInfo of the key, used to check that the certificate matches.
    fn public_key_spki(&self) -> Result<Vec<u8>, SignerError>;
    /// Sign `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
    /// How many signatures the key makes at once (a token's session pool); callers run at
    /// most this many [`Signer::sign`] calls concurrently. By default, one per CPU.
    fn parallelism(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// A signer and the certificate chain that belongs to it: the TSA certificate first (DER),
/// then its issuers, if known, towards the root.
///
/// Built by [`CertifiedSigner::new`] (which checks that the certificate fits the key and is a
/// TSA certificate) and immutable afterwards; the TSA certificate is decoded once, there, so
/// that issuing a token does not decode it again.
#[derive(Clone, Debug)]
pub struct CertifiedSigner {
    pub(crate) signer: Arc<dyn Signer>,
    pub(crate) chain: Arc<[Vec<u8>]>,
    pub(crate) decoded: Arc<rasn_pkix::Certificate>,
}

impl CertifiedSigner {
    /// The key.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// DER certificates, the TSA certificate first.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The TSA (end-entity) certificate, DER.
    pub fn certificate(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The TSA certificate, decoded.
    pub fn decoded_certificate(&self) -> &rasn_pkix::Certificate {
        &self.decoded
    }
}
