//! One request, start to finish: check → time → serial → sign → audit → reply.
//!
//! Synchronous and transport-free: the HTTP edge calls [`Issuer::handle`] on a blocking
//! thread. Every outcome is a DER `TimeStampResp`; a token is only released after its audit
//! record is durable.

use crate::audit::{AuditRecord, AuditWriter};
use crate::clock::{Clock, ClockError};
use crate::protocol::{self, FailureInfo, Rejection, TsaConfig};
use crate::serial::SerialAllocator;
use crate::signer::CertifiedSigner;
use std::time::Instant;

/// What happened to a request (for metrics and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A token was issued; its serial counter.
    Granted {
        /// Counter part of the serial.
        counter: u64,
    },
    /// Rejected with this failure bit.
    Rejected(FailureInfo),
}

impl Outcome {
    /// Label for metrics: "granted" or the failure name.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Granted { .. } => "granted",
            Outcome::Rejected(f) => f.as_str(),
        }
    }
}

/// Everything needed to issue tokens.
#[derive(Debug)]
pub struct Issuer {
    /// Protocol settings.
    pub config: TsaConfig,
    /// Key and certificate chain.
    pub key: CertifiedSigner,
    /// Serial numbers.
    pub serials: SerialAllocator,
    /// Disciplined time.
    pub clock: Clock,
    /// Audit log writer.
    pub audit: AuditWriter,
}

impl Issuer {
    /// Handle one DER `TimeStampReq` from `client`; returns the DER `TimeStampResp`.
    pub fn handle(&self, request: &[u8], client: &str) -> (Vec<u8>, Outcome) {
        match self.try_issue(request, client) {
            Ok((token, counter)) => (
                protocol::granted_response(&token),
                Outcome::Granted { counter },
            ),
            Err(rej) => {
                let outcome = Outcome::Rejected(rej.failure);
                (protocol::rejection_response(&rej), outcome)
            }
        }
    }

    fn try_issue(&self, request: &[u8], client: &str) -> Result<(Vec<u8>, u64), Rejection> {
        let req = protocol::check_request(request, &self.config)?;
        let gen_time = self.clock.issue_time().map_err(|e: ClockError| {
            tracing::warn!(error = %e, "refusing to issue: no trustworthy time");
            Rejection {
                failure: FailureInfo::TimeNotAvailable,
                text: format!("time not available: {e}"),
            }
        })?;
        let (serial, counter) = self.serials.next().map_err(|e| {
            tracing::error!(error = %e, "serial allocation failed");
            system_failure("serial number allocation failed")
        })?;
        let issuance = protocol::Issuance {
            serial: serial.clone(),
            gen_time,
        };
        let started = Instant::now();
        let token =
            protocol::issue_token(&req, &issuance, &self.config, &self.key).map_err(|e| {
                tracing::error!(error = %e, "token not issued");
                Rejection {
                    failure: e.failure_info(),
                    text: "the TSA could not issue a token".into(),
                }
            })?;
        metrics::histogram!("hozon_tsa_sign_seconds").record(started.elapsed().as_secs_f64());
        self.audit
            .append(AuditRecord {
                serial,
                gen_time,
                digest: req.digest,
                imprint: req.imprint.clone(),
                policy: req.policy.to_string(),
                client: client.to_string(),
            })
            .map_err(|e| {
                tracing::error!(error = %e, "audit append failed; token withheld");
                system_failure("audit log unavailable")
            })?;
        Ok((token, counter))
    }
}

fn system_failure(text: &str) -> Rejection {
    Rejection {
        failure: FailureInfo::SystemFailure,
        text: text.to_string(),
    }
}
