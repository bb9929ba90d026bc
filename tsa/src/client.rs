//! RFC 3161 client: build a request, send it over HTTP, read the reply.
//!
//! Building and parsing are pure; [`post`] is the only I/O. Checking the token itself
//! (signature, ESSCertIDv2, imprint, nonce) is the verifier's job (`hozon_verifier::token`).

use crate::asn1::integer_content;
use crate::signer::DigestAlgorithm;
use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_cms::tsp::{MessageImprint, PkiStatus, TimeStampReq, TimeStampResp};
use std::time::Duration;

/// Client-side failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be encoded.
    #[error("encoding the request: {0}")]
    Encode(String),
    /// Transport failure or a non-200 HTTP status.
    #[error("HTTP: {0}")]
    Http(String),
    /// The reply is not a DER TimeStampResp.
    #[error("reply is not a TimeStampResp: {0}")]
    Malformed(String),
    /// The TSA refused, with its failure bits and text.
    #[error("TSA refused the request ({}, status {status}): {text}", failure_names(.bits))]
    Refused {
        /// PKIStatus value.
        status: u8,
        /// Set PKIFailureInfo bits.
        bits: Vec<usize>,
        /// statusString, joined.
        text: String,
    },
}

fn failure_names(bits: &[usize]) -> String {
    if bits.is_empty() {
        return "no failure info".into();
    }
    bits.iter()
        .map(|b| {
            crate::protocol::FailureInfo::from_bit(*b)
                .map_or_else(|| format!("bit {b}"), |f| f.as_str().to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Build a DER `TimeStampReq` for `imprint`, hashed with `digest`.
pub fn build_request(
    digest: DigestAlgorithm,
    imprint: &[u8],
    nonce: Option<&[u8]>,
    policy: Option<ObjectIdentifier>,
    cert_req: bool,
) -> Result<Vec<u8>, ClientError> {
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: digest.algorithm_identifier(),
            hashed_message: OctetString::from(imprint.to_vec()),
        },
        req_policy: policy,
        nonce: nonce.map(|n| Integer::from(num_bigint_from_be(n))),
        cert_req,
        extensions: None,
    };
    rasn::der::encode(&req).map_err(|e| ClientError::Encode(e.to_string()))
}

fn num_bigint_from_be(bytes: &[u8]) -> i128 {
    // Nonces we make are at most 15 bytes with the top bit clear, so they fit an i128.
    bytes
        .iter()
        .fold(0i128, |acc, b| (acc << 8) | i128::from(*b))
}

/// A fresh random nonce: 8 random bytes, top bit clear (a positive INTEGER of ≤ 64 bits, as
/// `openssl ts -query` makes them).
pub fn random_nonce() -> Vec<u8> {
    let mut n = [0u8; 8];
    // aws-lc-rs' system RNG; failure here means the OS has no randomness at all.
    aws_lc_rs::rand::fill(&mut n).expect("system RNG");
    n[0] &= 0x7f;
    n[0] |= 0x01;
    n.to_vec()
}

/// The nonce as the DER INTEGER content octets a token will echo.
pub fn nonce_content(nonce: &[u8]) -> Vec<u8> {
    integer_content(&Integer::from(num_bigint_from_be(nonce)))
}

/// Parse a reply: the DER `TimeStampToken` (ContentInfo) if granted, else the refusal.
pub fn parse_response(der: &[u8]) -> Result<Vec<u8>, ClientError> {
    let resp: TimeStampResp =
        rasn::der::decode(der).map_err(|e| ClientError::Malformed(e.to_string()))?;
    match (resp.status.status, resp.time_stamp_token) {
        (PkiStatus::Granted | PkiStatus::GrantedWithMods, Some(token)) => {
            rasn::der::encode(&token).map_err(|e| ClientError::Malformed(e.to_string()))
        }
        (status, _) => Err(ClientError::Refused {
            status: status as u8,
            bits: resp
                .status
                .fail_info
                .as_ref()
                .map(crate::asn1::failure_info_set_bits)
                .unwrap_or_default(),
            text: resp
                .status
                .status_string
                .map(|t| {
                    t.iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default(),
        }),
    }
}

/// The client configuration trusting the system CA bundle, read and parsed once per process
/// (a failure is not remembered: the bundle may be installed later).
fn system_roots_config(url: &str) -> Result<rustls::ClientConfig, ClientError> {
    static SYSTEM: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    if let Some(c) = SYSTEM.get() {
        return Ok(c.clone());
    }
    let roots = std::fs::read(crate::tls::SYSTEM_ROOTS).map_err(|e| {
        ClientError::Http(format!(
            "{url}: no CA file given and the system's ({}) cannot be read: {e}",
            crate::tls::SYSTEM_ROOTS
        ))
    })?;
    let config =
        crate::tls::client_config(&roots, None).map_err(|e| ClientError::Http(e.to_string()))?;
    Ok(SYSTEM.get_or_init(|| config).clone())
}

/// POST a DER request to `url` (RFC 3161 §3.4) and return the reply body. An `https` URL
/// uses `tls` (the server CAs to trust and, for a TSA that requires one, the client
/// certificate: [`crate::tls::client_config`]); without it, the system CA bundle.
pub fn post(
    url: &str,
    request: &[u8],
    bearer: Option<&str>,
    tls: Option<&rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    crate::tls::ensure_provider();
    let mut builder = reqwest::blocking::Client::builder().timeout(timeout);
    if url.starts_with("https:") {
        let config = match tls {
            Some(c) => c.clone(),
            None => system_roots_config(url)?,
        };
        builder = builder.use_preconfigured_tls(config);
    }
    let client = builder
        .build()
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let mut rb = client
        .post(url)
        .header("Content-Type", crate::http::QUERY_TYPE)
        .body(request.to_vec());
    if let Some(t) = bearer {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().map_err(|e| ClientError::Http(e.to_string()))?;
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.bytes().map_err(|e| ClientError::Http(e.to_string()))?;
    if !status.is_success() {
        return Err(ClientError::Http(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    if !ctype.starts_with(crate::http::REPLY_TYPE) {
        return Err(ClientError::Http(format!(
            "reply Content-Type is {ctype:?}, not {}",
            crate::http::REPLY_TYPE
        )));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{check_request, TsaConfig};

    #[test]
    fn our_requests_pass_our_checks() {
        let nonce = random_nonce();
        let der =
            build_request(DigestAlgorithm::Sha256, &[7; 32], Some(&nonce), None, true).unwrap();
        let checked = check_request(&der, &TsaConfig::default()).unwrap();
        assert_eq!(checked.imprint, vec![7; 32]);
        assert!(checked.cert_req);
        assert_eq!(checked.nonce, Some(nonce_content(&nonce)));
    }

    #[test]
    fn garbage_reply_is_malformed_not_a_panic() {
        assert!(matches!(
            parse_response(b"\x30\x03\x02\x01"),
            Err(ClientError::Malformed(_))
        ));
        let rej = crate::protocol::rejection_response(&crate::protocol::Rejection::new(
            crate::protocol::FailureInfo::BadAlg,
            "no",
        ));
        match parse_response(&rej) {
            Err(ClientError::Refused {
                status: 2, bits, ..
            }) => assert_eq!(bits, vec![0]),
            other => panic!("{other:?}"),
        }
    }
}
