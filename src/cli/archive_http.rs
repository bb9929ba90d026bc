//! `hozon archive serve`: the ingest API over HTTP, and sealing and renewal on a timer.
//!
//! ```text
//! POST /archive/v1/documents              application/fhir+json (or ?opaque=true, any type)
//!      Authorization: Bearer …            Hozon-Signature-Timestamp: base64 (JWS side token)
//!   201 {"id","status":"stored","verification"}   after the durable write
//!   200 {"id","status":"duplicate"}               same bytes as before; nothing changed
//!   422 {"status":"refused","code","reason"}      the verifier's code and reason
//!   401 / 413 / 415                               token, size, content type
//! GET  /archive/v1/documents/{id}/evidence        the RFC 4998 record (DER); 409 if not sealed
//! GET  /archive/v1/status                         `hozon archive status --format json`
//! GET  /health                                    200 "ok"
//! ```
//!
//! Each request's verification runs on the blocking pool, at most one per core at a time
//! (the rest wait without a thread). Its durable write goes to one commit thread, which
//! writes every document waiting in one batch and one fsync ([`Committer`]) before it
//! answers their requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hozon_archiver::client::TsaPool;
use hozon_archiver::ingest::{prepare, Mode, Prepared, Stored, Trust};
use hozon_archiver::model::{hex_id, parse_id};
use hozon_archiver::seal::SealWhen;
use hozon_archiver::{Archive, ArchiveError, Settings};
use hozon_verifier::policy::Policy;
use serde::Deserialize;
use serde_json::json;

use super::archive::{open, policy, renew_due, tsa_pool, Setup};

#[derive(Clone)]
struct AppState {
    archive: Arc<Archive>,
    trust: Arc<Trust>,
    /// Verifications allowed at once: one per core.
    verifying: Arc<tokio::sync::Semaphore>,
    committer: Committer,
    token: Arc<String>,
    keep_unverified: bool,
    policy: Arc<Policy>,
}

#[derive(Deserialize)]
struct IngestQuery {
    #[serde(default)]
    opaque: bool,
}

/// Most documents one durable batch takes.
const GROUP_MAX: usize = 512;

type CommitReply = tokio::sync::oneshot::Sender<Result<Stored, String>>;

/// Group commit of documents verified by concurrent requests. One thread takes every document
/// waiting (up to [`GROUP_MAX`]), writes them in one durable batch ([`Archive::commit`]) and
/// answers each request; documents arriving meanwhile form the next group.
///
/// One request per write cost more than its verification: each batch rewrote the document's
/// certificate chain, and every request held a blocking thread for its fsync, so that 32
/// concurrent clients kept 80 threads switching on 2 cores.
#[derive(Clone)]
struct Committer {
    tx: std::sync::mpsc::Sender<(Prepared, CommitReply)>,
}

impl Committer {
    /// Starts the commit thread; it ends once every `Committer` clone is dropped.
    fn start(archive: Arc<Archive>) -> std::io::Result<(Committer, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel::<(Prepared, CommitReply)>();
        let thread = std::thread::Builder::new()
            .name("archive-commit".into())
            .spawn(move || {
                while let Some(group) = hozon_tsa::audit::next_group(&rx, GROUP_MAX) {
                    let (docs, replies): (Vec<Prepared>, Vec<CommitReply>) =
                        group.into_iter().unzip();
                    metrics::histogram!("hozon_archive_commit_documents").record(docs.len() as f64);
                    match archive.commit(docs) {
                        Ok(outcomes) => {
                            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "durable write failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            })?;
        Ok((Committer { tx }, thread))
    }

    /// Writes `doc` durably with whatever else is waiting; its outcome once on disk.
    async fn commit(&self, doc: Prepared) -> Result<Stored, String> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.tx
            .send((doc, reply))
            .map_err(|_| "the commit thread has stopped".to_owned())?;
        outcome
            .await
            .unwrap_or_else(|_| Err("the commit thread has stopped".to_owned()))
    }
}

fn error(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"status": "error", "reason": e.to_string()}),
    )
}

async fn ingest(
    State(st): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !hozon_tsa::http::authorised(&headers, &st.token) {
        return hozon_tsa::http::unauthorised();
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fhir = ctype.starts_with("application/fhir+json") || ctype.starts_with("application/json");
    if !fhir && !q.opaque {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/fhir+json (or ?opaque=true for other files)\n",
        )
            .into_response();
    }
    let side = match headers.get("hozon-signature-timestamp") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        }) {
            Some(t) => Some(t),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    json!({"status": "refused", "code": "bad-header",
                           "reason": "Hozon-Signature-Timestamp is not base64"}),
                )
            }
        },
    };
    let mode = Mode {
        opaque: q.opaque,
        keep_unverified: st.keep_unverified,
    };
    let started = Instant::now();
    let (trust, committer) = (st.trust.clone(), st.committer.clone());
    let prepared = {
        // Only as many verifications at once as there are cores; the rest wait here
        // without a thread. The permit is released before the durable write.
        let _permit = st.verifying.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            prepare(body.to_vec(), side, mode, &trust, SystemTime::now())
        })
        .await
    };
    let work = match prepared {
        Ok(Ok(p)) => {
            let id = p.id;
            Ok(committer.commit(p).await.map(|s| Ok((id, s))))
        }
        Ok(Err(refused)) => Ok(Ok(Err(refused))),
        Err(e) => Err(e),
    };
    metrics::histogram!("hozon_archive_ingest_seconds").record(started.elapsed().as_secs_f64());
    match work {
        Ok(Ok(Ok((id, stored)))) => match stored {
            Stored::New(status) => error(
                StatusCode::CREATED,
                json!({"id": hex_id(&id), "status": "stored", "verification": status.as_str()}),
            ),
            Stored::Duplicate => error(
                StatusCode::OK,
                json!({"id": hex_id(&id), "status": "duplicate"}),
            ),
        },
        Ok(Ok(Err(refused))) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": "refused", "code": refused.code, "reason": refused.reason}),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "ingest failed");
            internal(e)
        }
        Err(e) => internal(e),
    }
}

async fn evidence(
    State(st): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !hozon_tsa::http::authorised(&headers, &st.token) {
        return hozon_tsa::http::unauthorised();
    }
    let Some(id) = parse_id(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "reason": "not a document id"}),
        );
    };
    let r = tokio::task::spawn_blocking(move || {
        hozon_archiver::evidence::Reader::new(st.archive.store()).evidence_record(&id)
    })
    .await;
    match r {
        Ok(Ok(der)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            der,
        )
            .into_response(),
        Ok(Err(e @ ArchiveError::NotFound(_))) => {
            error(StatusCode::NOT_FOUND, json!({"reason": e.to_string()}))
        }
        Ok(Err(e @ ArchiveError::NotSealed(_))) => {
            error(StatusCode::CONFLICT, json!({"reason": e.to_string()}))
        }
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn status(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if !hozon_tsa::http::authorised(&headers, &st.token) {
        return hozon_tsa::http::unauthorised();
    }
    let r =
        tokio::task::spawn_blocking(move || st.archive.status(&st.policy, SystemTime::now())).await;
    match r {
        Ok(Ok(s)) => Json(s.to_json()).into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// Seals due batches every `seal_check`, renews what is due every `renew_check`, until
/// `stop`.
fn jobs_loop(
    archive: Arc<Archive>,
    setup: Arc<Setup>,
    pool: Arc<TsaPool>,
    policy: Arc<Policy>,
    stop: Arc<AtomicBool>,
) {
    let settings: Settings = setup.settings.clone();
    let seal_every = Duration::from_secs(setup.section.seal_check_secs.max(1));
    let renew_every = Duration::from_secs(setup.section.renew_check_secs.max(1));
    let mut last_renew: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        match archive.seal(pool.as_ref(), &settings, SealWhen::Due, SystemTime::now()) {
            Ok(sealed) => {
                for s in sealed {
                    tracing::info!(batch = s.tree, documents = s.documents, "sealed");
                }
            }
            Err(e) => tracing::error!(error = %e, "sealing failed; retrying at the next check"),
        }
        if last_renew.is_none_or(|t| t.elapsed() >= renew_every) {
            last_renew = Some(Instant::now());
            let renewed = archive
                .plan(&policy, SystemTime::now())
                .map_err(anyhow::Error::from)
                .and_then(|plan| {
                    renew_due(&archive, &pool, &plan, setup.settings.renew_digest, &stop)
                });
            match renewed {
                Ok(done) => {
                    for d in done {
                        tracing::info!("{d}");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "renewal failed; retrying later")
                }
            }
        }
        let until = Instant::now() + seal_every;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM; pending documents stay pending (sealed at the
/// next start), and the last job step finishes first.
pub fn serve(setup: Setup, listen: Option<String>, keep_unverified: bool) -> Result<()> {
    let section = setup.section.clone();
    let token = super::tsa::read_secret(
        &section.bearer_token_env,
        &section.bearer_token_file,
        "archive API bearer token",
    )?
    .filter(|t| !t.is_empty())
    .ok_or_else(|| {
        anyhow!(
            "the ingest API needs a bearer token: set HOZON_ARCHIVE_TOKEN, or \
             [archive] bearer_token_env / bearer_token_file"
        )
    })?;
    let archive = Arc::new(open(&section)?);
    tracing::info!(
        mib = archive.store().block_cache_capacity()? >> 20,
        "block cache ([archive] block_cache_mib)"
    );
    let pool = Arc::new(tsa_pool(&setup)?);
    let policy = Arc::new(policy(&section.policy, section.renewal_window_days)?);
    let stop = Arc::new(AtomicBool::new(false));
    let trust = setup.trust.clone();
    let setup = Arc::new(setup);
    let jobs = {
        let (a, s, p, pol, st) = (
            archive.clone(),
            setup.clone(),
            pool.clone(),
            policy.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || jobs_loop(a, s, p, pol, st))
    };
    let (committer, commit_thread) =
        Committer::start(archive.clone()).context("starting the commit thread")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let state = AppState {
        archive,
        trust,
        verifying: Arc::new(tokio::sync::Semaphore::new(cores)),
        committer,
        token: Arc::new(token),
        keep_unverified,
        policy,
    };
    let app = Router::new()
        .route("/archive/v1/documents", post(ingest))
        .route("/archive/v1/documents/{id}/evidence", get(evidence))
        .route("/archive/v1/status", get(status))
        .route("/health", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(section.body_limit))
        .with_state(state);
    let addr = listen.unwrap_or(section.listen.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        println!(
            "hozon archive: listening on http://{}/archive/v1/documents",
            listener.local_addr()?
        );
        let stop2 = stop.clone();
        let shutdown = async move {
            let term = async {
                #[cfg(unix)]
                if let Ok(mut s) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    s.recv().await;
                    return;
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            tracing::info!("shutting down");
            stop2.store(true, Ordering::SeqCst);
        };
        hozon_tsa::http::serve(listener, app, shutdown)
            .await
            .context("serving")
    });
    // Dropping the runtime drops the router and its committers: the commit thread finishes
    // what it holds and ends.
    drop(rt);
    let _ = commit_thread.join();
    stop.store(true, Ordering::SeqCst);
    let _ = jobs.join();
    result
}
