//! Getting timestamps: the [`Timestamper`] edge, and [`TsaPool`], an RFC 3161 client over
//! one or more endpoints with failover, timeouts, retry with backoff, and verification of
//! every token before anyone stores it.
//!
//! The failover logic is pure over a [`Transport`] (one HTTP POST), so it is tested without
//! sockets; [`HttpTransport`] is the real one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hozon_tsa::client::{build_request, nonce_content, parse_response, random_nonce};
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::path::{validate_path, CrlSet, PathInput, Purpose, TrustAnchors};
use hozon_verifier::token::{verify_token, VerifiedToken};

/// A verified timestamp token.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// The token (ContentInfo), DER, exactly as an ArchiveTimeStamp will carry it.
    pub der: Vec<u8>,
    /// What it says.
    pub token: VerifiedToken,
    /// The TSA certificate's notAfter.
    pub tsa_not_after: SystemTime,
    /// Where it came from.
    pub source: String,
}

/// Why no timestamp was obtained.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// No endpoint is configured.
    #[error("no TSA endpoint is configured (give --tsa URL or [archive] tsa in the config)")]
    NoEndpoint,
    /// Every endpoint failed, every attempt; each failure is listed.
    #[error("no TSA gave a valid timestamp: {}", .0.join("; "))]
    AllFailed(Vec<String>),
    /// A token did not verify.
    #[error("the timestamp from {source_name} does not verify: {reason}")]
    Invalid {
        /// Endpoint.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Something that timestamps a hash.
pub trait Timestamper: Send + Sync {
    /// A verified token over `imprint` (a `digest` hash).
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Stamp, StampError>;
}

/// One HTTP POST of an RFC 3161 request.
pub trait Transport: Send + Sync {
    /// POST `body` to `url`; the reply body, or what went wrong.
    fn post(
        &self,
        url: &str,
        body: &[u8],
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String>;
}

/// The real transport (blocking HTTP, or HTTPS with `tls`).
#[derive(Default)]
pub struct HttpTransport {
    /// For `https` endpoints: the CAs trusted for the TSAs and the client certificate
    /// presented to a TSA that requires one (`None`: the system CA bundle, no certificate).
    pub tls: Option<Arc<hozon_tsa::tls::ClientConfig>>,
}

impl Transport for HttpTransport {
    fn post(
        &self,
        url: &str,
        body: &[u8],
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        hozon_tsa::client::post(url, body, bearer, self.tls.as_deref(), timeout)
            .map_err(|e| e.to_string())
    }
}

/// One TSA endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http(s)://…/tsa`.
    pub url: String,
    /// Bearer token, if the TSA wants one (read from the environment or a file, never argv).
    pub bearer: Option<String>,
}

/// How tokens are checked.
#[derive(Clone)]
pub struct TokenCheck {
    /// Trust anchors for TSA certificates.
    pub anchors: Arc<TrustAnchors>,
    /// Intermediate certificates.
    pub extra_certs: Arc<Vec<Vec<u8>>>,
    /// Largest accepted distance between a token's genTime and the local clock (`None`: not
    /// checked, for tests that stamp at fixed times).
    pub max_skew: Option<Duration>,
}

/// Verifies a token received for `imprint`: signature, ESS binding and TSA profile, the
/// imprint and nonce, the TSA's path at genTime, and the genTime against the local clock.
pub fn check_token(
    der: &[u8],
    digest: DigestAlgorithm,
    imprint: &[u8],
    nonce: Option<&[u8]>,
    check: &TokenCheck,
    source: &str,
) -> Result<Stamp, StampError> {
    let invalid = |reason: String| StampError::Invalid {
        source_name: source.to_owned(),
        reason,
    };
    let token = verify_token(der, Some((digest, imprint)), nonce, &check.extra_certs)
        .map_err(|e| invalid(e.to_string()))?;
    let mut intermediates = token.carried.clone();
    intermediates.extend(check.extra_certs.iter().cloned());
    let path = validate_path(
        &PathInput {
            end_entity: &token.certificate,
            intermediates: &intermediates,
            crls: CrlSet::empty(),
            time: token.gen_time,
            purpose: Purpose::TimeStamping,
            remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
        },
        &check.anchors,
    )
    .map_err(|e| invalid(format!("TSA certificate: {e}")))?;
    if let Some(max) = check.max_skew {
        let now = SystemTime::now();
        let skew = now
            .duration_since(token.gen_time)
            .or_else(|_| token.gen_time.duration_since(now))
            .unwrap_or_default();
        if skew > max {
            return Err(invalid(format!(
                "genTime {} is {}s away from the local clock",
                token.gen_time_text,
                skew.as_secs()
            )));
        }
    }
    let tsa_not_after = path
        .certificates
        .first()
        .map(|c| c.not_after)
        .unwrap_or(token.gen_time);
    Ok(Stamp {
        der: der.to_vec(),
        token,
        tsa_not_after,
        source: source.to_owned(),
    })
}

/// RFC 3161 over HTTP with failover: endpoints are tried in order, each attempt with a fresh
/// nonce; a round that fails everywhere is retried after an exponentially growing pause.
pub struct TsaPool {
    /// Endpoints, preferred first.
    pub endpoints: Vec<Endpoint>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Rounds over all endpoints.
    pub rounds: u32,
    /// Pause after the first failed round; doubled after each further one.
    pub backoff: Duration,
    /// Token checks.
    pub check: TokenCheck,
    /// The transport.
    pub transport: Box<dyn Transport>,
}

impl Timestamper for TsaPool {
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Stamp, StampError> {
        if self.endpoints.is_empty() {
            return Err(StampError::NoEndpoint);
        }
        let mut failures = Vec::new();
        let mut pause = self.backoff;
        for round in 0..self.rounds.max(1) {
            if round > 0 {
                std::thread::sleep(pause);
                pause = pause.saturating_mul(2);
            }
            for ep in &self.endpoints {
                let nonce = random_nonce();
                let attempt = || -> Result<Stamp, String> {
                    let req = build_request(digest, imprint, Some(&nonce), None, true)
                        .map_err(|e| e.to_string())?;
                    let reply =
                        self.transport
                            .post(&ep.url, &req, ep.bearer.as_deref(), self.timeout)?;
                    let der = parse_response(&reply).map_err(|e| e.to_string())?;
                    check_token(
                        &der,
                        digest,
                        imprint,
                        Some(&nonce_content(&nonce)),
                        &self.check,
                        &ep.url,
                    )
                    .map_err(|e| e.to_string())
                };
                match attempt() {
                    Ok(stamp) => return Ok(stamp),
                    Err(e) => {
                        tracing::warn!(url = %ep.url, round, error = %e, "TSA attempt failed");
                        failures.push(format!("{} (round {}): {e}", ep.url, round + 1));
                    }
                }
            }
        }
        Err(StampError::AllFailed(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A transport that answers from a script and records the URLs asked.
    struct Scripted {
        answers: Mutex<Vec<Result<Vec<u8>, String>>>,
        asked: Mutex<Vec<String>>,
    }

    impl Transport for Arc<Scripted> {
        fn post(
            &self,
            url: &str,
            _body: &[u8],
            _bearer: Option<&str>,
            _timeout: Duration,
        ) -> Result<Vec<u8>, String> {
            self.asked.lock().unwrap().push(url.to_owned());
            self.answers.lock().unwrap().remove(0)
        }
    }

    fn pool(answers: Vec<Result<Vec<u8>, String>>, rounds: u32) -> (TsaPool, Arc<Scripted>) {
        let scripted = Arc::new(Scripted {
            answers: Mutex::new(answers),
            asked: Mutex::new(Vec::new()),
        });
        // No anchors: nothing here gets as far as verifying a token.
        let pool = TsaPool {
            endpoints: vec![
                Endpoint {
                    url: "http://a/tsa".into(),
                    bearer: None,
                },
                Endpoint {
                    url: "http://b/tsa".into(),
                    bearer: None,
                },
            ],
            timeout: Duration::from_secs(1),
            rounds,
            backoff: Duration::from_millis(1),
            check: TokenCheck {
                anchors: Arc::new(TrustAnchors::default()),
                extra_certs: Arc::new(Vec::new()),
                max_skew: None,
            },
            transport: Box::new(scripted.clone()),
        };
        (pool, scripted)
    }

    #[test]
    fn every_endpoint_every_round_then_all_failures_named() {
        let refusal =
            hozon_tsa::protocol::rejection_response(&hozon_tsa::protocol::Rejection::new(
                hozon_tsa::protocol::FailureInfo::SystemFailure,
                "HSM offline",
            ));
        let (pool, scripted) = pool(
            vec![
                Err("connection refused".into()),
                Ok(refusal),
                Err("timeout".into()),
                Ok(b"garbage".to_vec()),
            ],
            2,
        );
        let err = pool
            .timestamp(DigestAlgorithm::Sha256, &[1; 32])
            .unwrap_err();
        assert_eq!(
            *scripted.asked.lock().unwrap(),
            vec![
                "http://a/tsa",
                "http://b/tsa",
                "http://a/tsa",
                "http://b/tsa"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.contains("systemFailure"), "{text}");
        assert!(text.contains("HSM offline"), "{text}");
        assert!(text.contains("not a TimeStampResp"), "{text}");
    }

    #[test]
    fn no_endpoint_is_an_error_not_a_hang() {
        let (mut pool, _) = pool(vec![], 3);
        pool.endpoints.clear();
        assert!(matches!(
            pool.timestamp(DigestAlgorithm::Sha256, &[1; 32]),
            Err(StampError::NoEndpoint)
        ));
    }
}
