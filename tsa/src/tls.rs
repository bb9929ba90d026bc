//! TLS for the TSA's listener and its clients, with optional client-certificate
//! authentication (mutual TLS).
//!
//! The main service reaches the TSA over a closed network, so TLS is off by default; when it
//! is on, `client_ca` makes every connection present a certificate that chains to one of the
//! given CAs (RFC 8446 §4.3.2 CertificateRequest, verified by rustls' WebPKI verifier:
//! validity, chain, and the clientAuth extended key usage if the certificate lists any). A
//! client without one is refused in the handshake, before any HTTP is read.
//!
//! rustls runs on the aws-lc-rs provider, the crypto library the rest of hozon already uses.
//! Building the configurations is pure (PEM bytes in, configuration out); reading the files
//! is the caller's.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
pub use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

/// Where the Debian and Ubuntu system CA bundle lives (the `ca-certificates` package); the
/// roots a client trusts when no CA file is given.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS set-up failures, each naming the file's role.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input held no usable certificate or key.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input (server certificate, client CA, …).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (key does not match the certificate, unusable CA, …).
    #[error("{what}: {reason}")]
    Config {
        /// What was being set up.
        what: &'static str,
        /// rustls' reason.
        reason: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Makes aws-lc-rs the process's default rustls provider, once. An HTTP client built
/// without a configuration of ours (`reqwest::Client::new()`, even for a plain `http` URL)
/// needs one, and reqwest is built without a provider of its own so that aws-lc stays the
/// only crypto library; call this before building such a client.
pub fn ensure_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Every certificate in `pem`, in order; an error if there is none.
pub fn certificates(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn private_key(pem: &[u8], what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what,
        reason: format!("no usable PKCS#8, PKCS#1 or SEC 1 private key ({e})"),
    })
}

fn roots(pem: &[u8], what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(certificates(pem, what)?);
    if added == 0 {
        return Err(TlsError::Pem {
            what,
            reason: format!("none of its {ignored} certificate(s) can be a trust anchor"),
        });
    }
    Ok(store)
}

/// The listener's configuration: its chain (leaf first) and key, PEM; with `client_ca`, the
/// CAs whose client certificates are accepted (and a certificate is then required).
/// Offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(chain_pem, "TLS certificate")?;
    let key = private_key(key_pem, "TLS key")?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            what: "TLS versions",
            reason: e.to_string(),
        })?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(pem, "client CA")?),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Config {
                what: "client CA",
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config {
            what: "TLS certificate and key",
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client's configuration: the CAs it trusts for the server (PEM), and optionally its own
/// certificate chain and key for a TSA that requires one.
pub fn client_config(
    roots_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            what: "TLS versions",
            reason: e.to_string(),
        })?
        .with_root_certificates(roots(roots_pem, "server CA")?);
    match identity {
        Some((chain_pem, key_pem)) => builder
            .with_client_auth_cert(
                certificates(chain_pem, "client certificate")?,
                private_key(key_pem, "client key")?,
            )
            .map_err(|e| TlsError::Config {
                what: "client certificate and key",
                reason: e.to_string(),
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The subject of the client certificate a connection presented, for logs (RFC 4514).
pub fn peer_subject(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = certs?.first()?;
    let cert: rasn_pkix::Certificate = rasn::der::decode(leaf.as_ref()).ok()?;
    Some(crate::certcheck::name_to_string(
        &cert.tbs_certificate.subject,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_named_not_a_panic() {
        let err = server_config(b"not pem", b"", None).unwrap_err();
        assert_eq!(err.to_string(), "TLS certificate: no CERTIFICATE block");
        let err = client_config(b"", None).unwrap_err();
        assert_eq!(err.to_string(), "server CA: no CERTIFICATE block");
        // A certificate block that is not a certificate cannot be a trust anchor.
        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = client_config(junk, None).unwrap_err();
        assert!(
            err.to_string().starts_with("server CA: none of its 1"),
            "{err}"
        );
    }
}
