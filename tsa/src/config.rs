//! The `[tsa]` section of `hozon.toml`. Every field has a default where one is safe; the
//! key's PIN and the bearer token come from the environment or a file, never from the file
//! itself or the command line.
//!
//! ```toml
//! [tsa]
//! listen = "127.0.0.1:3180"
//! metrics_listen = "127.0.0.1:9180"
//! data = "/var/lib/hozon"
//! chain = ["/etc/hozon/tsa.pem", "/etc/hozon/tsa-ca.pem"]
//! policies = ["1.3.6.1.4.1.57264.2.1"]
//!
//! [tsa.key]
//! backend = "pkcs11"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "hozon-tsa"
//! key_label = "tsa-2026"
//! pin_env = "HOZON_PKCS11_PIN"
//! scheme = "rsa-pkcs1-sha256"
//!
//! # optional: HTTPS, and with client_ca, mutual TLS (clients must present a certificate)
//! [tsa.tls]
//! cert = "/etc/hozon/https.pem"     # chain, leaf first
//! key = "/etc/hozon/https.key"      # PEM private key, readable by hozon only
//! client_ca = "/etc/hozon/clients-ca.pem"
//! ```

use serde::Deserialize;
use std::path::PathBuf;

/// Top level of `hozon.toml` as far as the TSA is concerned.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The TSA section.
    #[serde(default)]
    pub tsa: TsaSection,
    /// Other sections belong to other parts of hozon.
    #[serde(default)]
    pub archive: Option<toml::Value>,
    /// Verifier settings.
    #[serde(default)]
    pub verify: Option<toml::Value>,
}

/// `[tsa]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaSection {
    /// HTTP listen address.
    pub listen: String,
    /// Prometheus listen address (separate listener).
    pub metrics_listen: Option<String>,
    /// Store directory (serials, audit log).
    pub data: PathBuf,
    /// Certificate chain, PEM files, TSA certificate first.
    pub chain: Vec<PathBuf>,
    /// Offered policy OIDs; the first is the default.
    pub policies: Vec<String>,
    /// Accepted imprint digests: sha256, sha384, sha512, sha3-256, sha3-512 (sha1 only if
    /// listed explicitly; never by default).
    pub digests: Vec<String>,
    /// Accuracy in milliseconds (0: omit the field).
    pub accuracy_ms: u32,
    /// genTime precision: "seconds", "millis" or "micros".
    pub precision: String,
    /// Set TSTInfo.ordering.
    pub ordering: bool,
    /// Put the TSA certificate's subject in TSTInfo.tsa.
    pub include_tsa_name: bool,
    /// Add the signingTime signed attribute (= genTime).
    pub signing_time: bool,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Environment variable holding the bearer token clients must send (optional).
    pub bearer_token_env: Option<String>,
    /// File holding the bearer token clients must send (optional).
    pub bearer_token_file: Option<PathBuf>,
    /// Serial numbers reserved per durable write.
    pub serial_block: u64,
    /// HTTPS on the listener (absent: plain HTTP, for a closed network).
    pub tls: Option<TlsSection>,
    /// Most client connections served at once; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Clock discipline.
    pub clock: ClockSection,
    /// The key.
    pub key: KeySection,
}

impl Default for TsaSection {
    fn default() -> Self {
        TsaSection {
            listen: "127.0.0.1:3180".into(),
            metrics_listen: Some("127.0.0.1:9180".into()),
            data: PathBuf::from("./hozon-data/tsa"),
            chain: Vec::new(),
            policies: vec![crate::protocol::TsaConfig::default()
                .default_policy
                .to_string()],
            digests: ["sha256", "sha384", "sha512", "sha3-256", "sha3-512"]
                .map(String::from)
                .to_vec(),
            accuracy_ms: 1000,
            precision: "seconds".into(),
            ordering: false,
            include_tsa_name: false,
            signing_time: true,
            body_limit: 16 * 1024,
            bearer_token_env: None,
            bearer_token_file: None,
            serial_block: 4096,
            tls: None,
            max_connections: crate::http::DEFAULT_MAX_CONNECTIONS,
            clock: ClockSection::default(),
            key: KeySection::default(),
        }
    }
}

/// `[tsa.tls]`: the listener's certificate and key, and the CAs of accepted client
/// certificates.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain of the HTTPS listener, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC 1).
    pub key: PathBuf,
    /// If set, every client must present a certificate issued under one of these CAs (PEM):
    /// mutual TLS. Connections without one fail the handshake.
    pub client_ca: Option<PathBuf>,
}

/// `[tsa.clock]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockSection {
    /// Refuse to issue unless the kernel reports the clock synchronised.
    pub require_sync: bool,
    /// Largest acceptable kernel error estimate, milliseconds.
    pub max_error_ms: u64,
}

impl Default for ClockSection {
    fn default() -> Self {
        ClockSection {
            require_sync: true,
            max_error_ms: 1000,
        }
    }
}

/// `[tsa.key]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySection {
    /// "pkcs11" (production) or "software" (development only).
    pub backend: String,
    /// PKCS#11 module path.
    pub module: PathBuf,
    /// Token label.
    pub token_label: String,
    /// Key label (CKA_LABEL).
    pub key_label: Option<String>,
    /// Key id (CKA_ID), hex.
    pub key_id: Option<String>,
    /// Environment variable holding the user PIN.
    pub pin_env: Option<String>,
    /// File holding the user PIN.
    pub pin_file: Option<PathBuf>,
    /// Signature scheme: rsa-pkcs1-sha256|384|512, rsa-pss-sha256|384|512,
    /// ecdsa-p256-sha256, ecdsa-p384-sha384.
    pub scheme: String,
    /// PKCS#11 sessions (one per concurrent signer); 0 = twice the number of CPUs.
    pub sessions: usize,
    /// Software back end: PKCS#8 key file.
    pub software_key: Option<PathBuf>,
}

impl Default for KeySection {
    fn default() -> Self {
        KeySection {
            backend: "pkcs11".into(),
            module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            token_label: "hozon-tsa".into(),
            key_label: Some("tsa".into()),
            key_id: None,
            pin_env: Some("HOZON_PKCS11_PIN".into()),
            pin_file: None,
            scheme: "rsa-pkcs1-sha256".into(),
            sessions: 0,
            software_key: None,
        }
    }
}

/// Parse a scheme name.
pub fn parse_scheme(s: &str) -> Option<crate::signer::SignatureScheme> {
    use crate::signer::SignatureScheme::*;
    Some(match s {
        "rsa-pkcs1-sha256" => RsaPkcs1Sha256,
        "rsa-pkcs1-sha384" => RsaPkcs1Sha384,
        "rsa-pkcs1-sha512" => RsaPkcs1Sha512,
        "rsa-pss-sha256" => RsaPssSha256,
        "rsa-pss-sha384" => RsaPssSha384,
        "rsa-pss-sha512" => RsaPssSha512,
        "ecdsa-p256-sha256" => EcdsaP256Sha256,
        "ecdsa-p384-sha384" => EcdsaP384Sha384,
        _ => return None,
    })
}

/// Parse a digest name.
pub fn parse_digest(s: &str) -> Option<crate::signer::DigestAlgorithm> {
    use crate::signer::DigestAlgorithm::*;
    Some(match s.to_ascii_lowercase().as_str() {
        "sha1" | "sha-1" => Sha1,
        "sha256" | "sha-256" => Sha256,
        "sha384" | "sha-384" => Sha384,
        "sha512" | "sha-512" => Sha512,
        "sha3-256" => Sha3_256,
        "sha3-512" => Sha3_512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_safe_defaults() {
        let c: FileConfig = toml::from_str("").unwrap();
        assert!(c.tsa.clock.require_sync);
        assert_eq!(c.tsa.body_limit, 16 * 1024);
        assert!(!c.tsa.digests.iter().any(|d| d == "sha1"));
        assert_eq!(c.tsa.key.backend, "pkcs11");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(toml::from_str::<FileConfig>("[tsa]\nlisten_addr = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("[tsa.key]\npin = \"1234\"").is_err());
    }

    #[test]
    fn names_parse() {
        for s in [
            "rsa-pkcs1-sha256",
            "rsa-pss-sha384",
            "ecdsa-p256-sha256",
            "ecdsa-p384-sha384",
        ] {
            assert!(parse_scheme(s).is_some(), "{s}");
        }
        assert!(parse_scheme("rsa-md5").is_none());
        assert_eq!(
            parse_digest("SHA3-256"),
            Some(crate::signer::DigestAlgorithm::Sha3_256)
        );
    }
}
