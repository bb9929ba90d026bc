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
//! Every request's CPU work (verification) and its durable write run on the blocking pool;
//! concurrent writes share fsyncs through RocksDB's group commit.

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
use hozon_archiver::ingest::{prepare, Mode, Stored, Trust};
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
    token: Arc<String>,
    keep_unverified: bool,
    policy: Arc<Policy>,
}

#[derive(Deserialize)]
struct IngestQuery {
    #[serde(default)]
    opaque: bool,
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
    let work = tokio::task::spawn_blocking(move || {
        let prepared = prepare(body.to_vec(), side, mode, &st.trust, SystemTime::now());
        match prepared {
            Err(r) => Ok(Err(r)),
            Ok(p) => {
                let id = p.id;
                st.archive.commit(vec![p]).map(|s| Ok((id, s)))
            }
        }
    })
    .await;
    metrics::histogram!("hozon_archive_ingest_seconds").record(started.elapsed().as_secs_f64());
    match work {
        Ok(Ok(Ok((id, stored)))) => match stored.first() {
            Some(Stored::New(status)) => error(
                StatusCode::CREATED,
                json!({"id": hex_id(&id), "status": "stored", "verification": status.as_str()}),
            ),
            _ => error(
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
    let state = AppState {
        archive,
        trust,
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
    stop.store(true, Ordering::SeqCst);
    let _ = jobs.join();
    result
}
