//! One request, start to finish: check → time → serial → sign → audit → reply.
//!
//! Transport-free: the HTTP edge calls [`Issuer::begin`] on a blocking thread (it signs
//! through the key) and awaits the returned [`Pending`] on its own task while the audit
//! record is group-committed; [`Issuer::handle`] does both on the calling thread. Every
//! outcome is a DER `TimeStampResp`; a token is only released after its audit record is
//! durable.

use crate::audit::{AuditRecord, AuditTicket, AuditWriter};
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

/// A token that is signed but not yet released: its audit record is on its way to disk.
///
/// [`Pending::finish`] (blocking) or [`Pending::finished`] (async) waits for the record and
/// only then gives out the token; if the record cannot be written, the reply is a
/// systemFailure rejection and the token is dropped.
#[derive(Debug)]
#[must_use = "the token is only released by finishing"]
pub struct Pending {
    token: Vec<u8>,
    counter: u64,
    ticket: AuditTicket,
}

impl Pending {
    /// Waits on this thread for the audit record; the DER `TimeStampResp` and its outcome.
    pub fn finish(self) -> (Vec<u8>, Outcome) {
        let durable = self.ticket.wait();
        release(self.token, self.counter, durable)
    }

    /// Waits without a thread for the audit record; the DER `TimeStampResp` and its outcome.
    pub async fn finished(self) -> (Vec<u8>, Outcome) {
        let durable = self.ticket.durable().await;
        release(self.token, self.counter, durable)
    }
}

fn release(
    token: Vec<u8>,
    counter: u64,
    durable: Result<u64, crate::audit::AuditError>,
) -> (Vec<u8>, Outcome) {
    match durable {
        Ok(_) => (
            protocol::granted_response(&token),
            Outcome::Granted { counter },
        ),
        Err(e) => {
            tracing::error!(error = %e, "audit append failed; token withheld");
            refusal(system_failure("audit log unavailable"))
        }
    }
}

/// The DER `TimeStampResp` for a rejection, and its outcome.
pub fn refusal(rej: Rejection) -> (Vec<u8>, Outcome) {
    let outcome = Outcome::Rejected(rej.failure);
    (protocol::rejection_response(&rej), outcome)
}

impl Issuer {
    /// Handle one DER `TimeStampReq` from `client`; returns the DER `TimeStampResp`.
    /// Blocks for the signature and the audit record: call it from a plain or blocking thread,
    /// not from an async task (the HTTP edge uses [`Issuer::begin`] and [`Pending::finished`]).
    pub fn handle(&self, request: &[u8], client: &str) -> (Vec<u8>, Outcome) {
        match self.begin(request, client) {
            Ok(pending) => pending.finish(),
            Err(rej) => refusal(rej),
        }
    }

    /// Checks, dates, numbers and signs one request (blocking on the key), and hands its
    /// audit record to the writer; the token is released by finishing the [`Pending`].
    pub fn begin(&self, request: &[u8], client: &str) -> Result<Pending, Rejection> {
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
        // The record of this token is on its way: a group commit being gathered waits for it.
        let announced = self.audit.expect();
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
        // Withdrawn just before the record is sent: a writer that already holds the record
        // must not wait for it as if it were still coming.
        drop(announced);
        let ticket = self.audit.submit(AuditRecord {
            serial,
            gen_time,
            digest: req.digest,
            imprint: req.imprint.clone(),
            policy: req.policy.to_string(),
            client: client.to_string(),
        });
        Ok(Pending {
            token,
            counter,
            ticket,
        })
    }
}

fn system_failure(text: &str) -> Rejection {
    Rejection {
        failure: FailureInfo::SystemFailure,
        text: text.to_string(),
    }
}
