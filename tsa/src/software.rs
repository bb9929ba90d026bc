//! A [`Signer`] over a private key held in memory by aws-lc-rs.
//!
//! **For development, tests and `hozon demo` only.** A production TSA keeps its key in an HSM
//! (see `pkcs11`): a key in a file can be copied without trace, which defeats the point of a
//! time-stamping authority.
//!
//! Reads unencrypted PKCS#8 (`-----BEGIN PRIVATE KEY-----` or DER) RSA, ECDSA P-256 and P-384
//! keys, as `openssl genpkey` writes them, and also PKCS#1 `RSA PRIVATE KEY` and SEC 1
//! `EC PRIVATE KEY`. Generates RSA-2048/3072, P-256 and P-384 keys and writes them as PKCS#8
//! PEM, readable by the owner only (mode 0600).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

use crate::signer::{DigestAlgorithm, SignatureScheme, Signer, SignerError};

/// Why a software key could not be loaded, made or stored.
#[derive(Debug, thiserror::Error)]
pub enum SoftwareKeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM armour is broken or has an unexpected label.
    #[error("key is not a usable PEM private key: {0}")]
    Pem(String),
    /// The bytes are not an RSA, P-256 or P-384 private key aws-lc-rs accepts.
    #[error("not an unencrypted RSA, ECDSA P-256 or ECDSA P-384 private key ({0}); convert with `openssl pkcs8 -topk8 -nocrypt`")]
    Unsupported(String),
    /// The requested scheme does not fit the key type.
    #[error("scheme {scheme:?} cannot be used with a {key} key")]
    SchemeMismatch {
        /// The requested scheme.
        scheme: SignatureScheme,
        /// The key type.
        key: &'static str,
    },
    /// Key generation or serialisation failed inside aws-lc-rs.
    #[error("key generation failed")]
    Generate,
}

/// Key types [`SoftwareSigner::generate`] can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA with a 2048-bit modulus; signs with PKCS#1 v1.5 SHA-256 by default.
    Rsa2048,
    /// RSA with a 3072-bit modulus; signs with PKCS#1 v1.5 SHA-256 by default.
    Rsa3072,
    /// ECDSA on P-256 with SHA-256.
    EcP256,
    /// ECDSA on P-384 with SHA-384.
    EcP384,
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, Curve),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Key {
    fn kind(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "RSA",
            Key::Ec(_, Curve::P256) => "ECDSA P-256",
            Key::Ec(_, Curve::P384) => "ECDSA P-384",
        }
    }
}

/// A software private key and the scheme it signs with. See the module documentation: for
/// development and `hozon demo` only.
pub struct SoftwareSigner {
    key: Key,
    scheme: SignatureScheme,
    spki: Vec<u8>,
}

impl std::fmt::Debug for SoftwareSigner {
    /// Shows the key type, scheme and a fingerprint of the public key; never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fp = DigestAlgorithm::Sha256.digest(&self.spki);
        f.debug_struct("SoftwareSigner")
            .field("key", &self.key.kind())
            .field("scheme", &self.scheme)
            .field("spki_sha256", &hex::encode(fp))
            .finish()
    }
}

impl SoftwareSigner {
    /// Reads a private key from `path`: PEM (PKCS#8, PKCS#1 RSA or SEC 1 EC) or DER PKCS#8.
    /// The scheme is the key's default (see [`SoftwareSigner::from_bytes`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SoftwareKeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SoftwareKeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Parses a private key given as PEM or DER. Default schemes: RSA PKCS#1 v1.5 with
    /// SHA-256, ECDSA P-256 with SHA-256, ECDSA P-384 with SHA-384; change them with
    /// [`SoftwareSigner::with_scheme`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SoftwareKeyError> {
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"-----BEGIN") {
            let pem = pem::parse(trimmed).map_err(|e| SoftwareKeyError::Pem(e.to_string()))?;
            match pem.tag() {
                "PRIVATE KEY" => Self::from_pkcs8_der(pem.contents()),
                "RSA PRIVATE KEY" => {
                    let key = RsaKeyPair::from_der(pem.contents())
                        .map_err(|e| SoftwareKeyError::Unsupported(e.to_string()))?;
                    Self::from_key(Key::Rsa(key))
                }
                "EC PRIVATE KEY" => {
                    let der = pem.contents();
                    if let Ok(k) = EcdsaKeyPair::from_private_key_der(
                        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                        der,
                    ) {
                        return Self::from_key(Key::Ec(k, Curve::P256));
                    }
                    let k = EcdsaKeyPair::from_private_key_der(
                        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                        der,
                    )
                    .map_err(|e| SoftwareKeyError::Unsupported(e.to_string()))?;
                    Self::from_key(Key::Ec(k, Curve::P384))
                }
                "ENCRYPTED PRIVATE KEY" => Err(SoftwareKeyError::Pem(
                    "encrypted keys are not supported".into(),
                )),
                other => Err(SoftwareKeyError::Pem(format!(
                    "unexpected PEM label {other:?}"
                ))),
            }
        } else {
            Self::from_pkcs8_der(bytes)
        }
    }

    /// Parses an unencrypted DER PKCS#8 PrivateKeyInfo (RSA, P-256 or P-384).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SoftwareKeyError> {
        if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            return Self::from_key(Key::Rsa(k));
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            return Self::from_key(Key::Ec(k, Curve::P256));
        }
        match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der) {
            Ok(k) => Self::from_key(Key::Ec(k, Curve::P384)),
            Err(e) => Err(SoftwareKeyError::Unsupported(e.to_string())),
        }
    }

    fn from_key(key: Key) -> Result<Self, SoftwareKeyError> {
        let (spki, scheme) = match &key {
            Key::Rsa(k) => (
                k.public_key().as_der().map(|d| d.as_ref().to_vec()),
                SignatureScheme::RsaPkcs1Sha256,
            ),
            Key::Ec(k, Curve::P256) => (
                k.public_key().as_der().map(|d| d.as_ref().to_vec()),
                SignatureScheme::EcdsaP256Sha256,
            ),
            Key::Ec(k, Curve::P384) => (
                k.public_key().as_der().map(|d| d.as_ref().to_vec()),
                SignatureScheme::EcdsaP384Sha384,
            ),
        };
        let spki = spki.map_err(|_| SoftwareKeyError::Unsupported("no public key".into()))?;
        Ok(SoftwareSigner { key, scheme, spki })
    }

    /// The same key signing with `scheme` (e.g. [`SignatureScheme::RsaPssSha256`] for an RSA
    /// key). Errors if the scheme needs another key type or curve.
    pub fn with_scheme(mut self, scheme: SignatureScheme) -> Result<Self, SoftwareKeyError> {
        let fits = match (&self.key, scheme) {
            (Key::Rsa(_), s) => s.is_rsa(),
            (Key::Ec(_, Curve::P256), SignatureScheme::EcdsaP256Sha256) => true,
            (Key::Ec(_, Curve::P384), SignatureScheme::EcdsaP384Sha384) => true,
            _ => false,
        };
        if !fits {
            return Err(SoftwareKeyError::SchemeMismatch {
                scheme,
                key: self.key.kind(),
            });
        }
        self.scheme = scheme;
        Ok(self)
    }

    /// Generates a new key; returns the signer and the key as PKCS#8 PEM.
    pub fn generate(kind: KeyKind) -> Result<(Self, String), SoftwareKeyError> {
        let pkcs8: Vec<u8> = match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 => {
                let size = if kind == KeyKind::Rsa2048 {
                    KeySize::Rsa2048
                } else {
                    KeySize::Rsa3072
                };
                let key = RsaKeyPair::generate(size).map_err(|_| SoftwareKeyError::Generate)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    key.as_der().map_err(|_| SoftwareKeyError::Generate)?;
                der.as_ref().to_vec()
            }
            KeyKind::EcP256 | KeyKind::EcP384 => {
                let alg = if kind == KeyKind::EcP256 {
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                EcdsaKeyPair::generate(alg)
                    .and_then(|k| k.to_pkcs8v1())
                    .map_err(|_| SoftwareKeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
        };
        let signer = Self::from_pkcs8_der(&pkcs8)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8));
        Ok((signer, pem))
    }

    /// Generates a new key and writes it to `path` as PKCS#8 PEM with mode 0600. Refuses to
    /// overwrite an existing file.
    pub fn generate_to_file(
        kind: KeyKind,
        path: impl AsRef<Path>,
    ) -> Result<Self, SoftwareKeyError> {
        let path = path.as_ref();
        let (signer, pem) = Self::generate(kind)?;
        let io = |source| SoftwareKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        create_file_durably(path, pem.as_bytes(), 0o600).map_err(io)?;
        Ok(signer)
    }
}

/// Creates the file `path` holding `bytes` (with permission bits `mode` on Unix) so that a
/// crash at any moment leaves either no file or the whole file, never an empty or truncated
/// one that the next start would fail to read: the bytes are written and synced under a
/// temporary name in the same directory, linked to `path` (which, like `create_new`, fails
/// with `AlreadyExists` if `path` exists, so nothing is ever overwritten), and the directory
/// is synced. A temporary file left by a killed process of the same pid is replaced; the
/// temporary name is removed in every case.
pub fn create_file_durably(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
            // A file system without hard links: rename, after checking (the check and the
            // rename are not one step there, which only matters for two processes creating
            // the same file at once).
            Err(_) if !path.exists() => std::fs::rename(&tmp, path)?,
            Err(e) => return Err(e),
        }
        std::fs::File::open(dir)?.sync_all()
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

impl Signer for SoftwareSigner {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    fn public_key_spki(&self) -> Result<Vec<u8>, SignerError> {
        Ok(self.spki.clone())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let rng = SystemRandom::new();
        let failed = |_| SignerError::Backend("aws-lc-rs signing failed".into());
        match &self.key {
            Key::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match self.scheme {
                    SignatureScheme::RsaPkcs1Sha256 => &signature::RSA_PKCS1_SHA256,
                    SignatureScheme::RsaPkcs1Sha384 => &signature::RSA_PKCS1_SHA384,
                    SignatureScheme::RsaPkcs1Sha512 => &signature::RSA_PKCS1_SHA512,
                    SignatureScheme::RsaPssSha256 => &signature::RSA_PSS_SHA256,
                    SignatureScheme::RsaPssSha384 => &signature::RSA_PSS_SHA384,
                    SignatureScheme::RsaPssSha512 => &signature::RSA_PSS_SHA512,
                    other => return Err(SignerError::Unsupported(other)),
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, message, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            Key::Ec(k, _) => Ok(k.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_sign_verify() {
        for kind in [KeyKind::EcP256, KeyKind::EcP384, KeyKind::Rsa2048] {
            let (signer, pem) = SoftwareSigner::generate(kind).unwrap();
            let again = SoftwareSigner::from_bytes(pem.as_bytes()).unwrap();
            assert_eq!(
                signer.public_key_spki().unwrap(),
                again.public_key_spki().unwrap()
            );
            let debug = format!("{signer:?}");
            assert!(!debug.contains("PRIVATE"), "{debug}");
            let sig = signer.sign(b"hello").unwrap();
            let spki = signer.public_key_spki().unwrap();
            // The SPKI's BIT STRING content is the raw public key aws-lc-rs verifies with.
            let spki_parsed: rasn_pkix::SubjectPublicKeyInfo = rasn::der::decode(&spki).unwrap();
            let raw = spki_parsed.subject_public_key.as_raw_slice();
            let alg: &dyn signature::VerificationAlgorithm = match kind {
                KeyKind::EcP256 => &signature::ECDSA_P256_SHA256_ASN1,
                KeyKind::EcP384 => &signature::ECDSA_P384_SHA384_ASN1,
                _ => &signature::RSA_PKCS1_2048_8192_SHA256,
            };
            signature::UnparsedPublicKey::new(alg, raw)
                .verify(b"hello", &sig)
                .unwrap();
        }
    }

    #[test]
    fn files_are_created_whole_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tsa-dev-key.pem");
        // What a process with our pid, killed while writing, would have left behind.
        let leftover = dir
            .path()
            .join(format!(".tsa-dev-key.pem.tmp-{}", std::process::id()));
        std::fs::write(&leftover, b"-----BEGIN PRIV").unwrap();
        create_file_durably(&path, b"first", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = create_file_durably(&path, b"second", 0o600).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // Only the file itself remains: no temporary name, the stale one included.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tsa-dev-key.pem")]);
        // A key file is the whole PEM the signer was made from.
        let key = dir.path().join("key.pem");
        let signer = SoftwareSigner::generate_to_file(KeyKind::EcP256, &key).unwrap();
        let again = SoftwareSigner::load(&key).unwrap();
        assert_eq!(
            signer.public_key_spki().unwrap(),
            again.public_key_spki().unwrap()
        );
        assert!(SoftwareSigner::generate_to_file(KeyKind::EcP256, &key).is_err());
    }

    #[test]
    fn pss_and_mismatch() {
        let (rsa, _) = SoftwareSigner::generate(KeyKind::Rsa2048).unwrap();
        let rsa = rsa.with_scheme(SignatureScheme::RsaPssSha256).unwrap();
        assert_eq!(rsa.scheme(), SignatureScheme::RsaPssSha256);
        assert!(rsa.with_scheme(SignatureScheme::EcdsaP256Sha256).is_err());
        let (ec, _) = SoftwareSigner::generate(KeyKind::EcP256).unwrap();
        assert!(ec.with_scheme(SignatureScheme::EcdsaP384Sha384).is_err());
        assert!(SoftwareSigner::from_bytes(b"garbage").is_err());
    }

    #[test]
    fn written_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let s = SoftwareSigner::generate_to_file(KeyKind::EcP256, &path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = SoftwareSigner::load(&path).unwrap();
        assert_eq!(
            s.public_key_spki().unwrap(),
            loaded.public_key_spki().unwrap()
        );
        assert!(SoftwareSigner::generate_to_file(KeyKind::EcP256, &path).is_err());
    }
}
