//! The HTTP edge of the TSA (RFC 3161 §3.4): `POST /tsa` and `POST /` with
//! `application/timestamp-query`, answering `application/timestamp-reply`.
//!
//! Transport errors are HTTP statuses (415 wrong content type, 413 body too large, 401 missing
//! or wrong bearer token); everything that reaches the protocol gets a `TimeStampResp`, even a
//! rejection. Signing runs on blocking threads so the async workers only move bytes.
//!
//! [`serve_with`] speaks plain HTTP or HTTPS (optionally requiring a client certificate,
//! [`crate::tls`]), serves at most [`Listening::max_connections`] connections at once and
//! finishes in-flight requests on shutdown; [`serve`] is plain HTTP with the defaults.

use crate::clock::SyncStatus;
use crate::issuer::{Issuer, Outcome};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Media type of a request (RFC 3161 §3.4).
pub const QUERY_TYPE: &str = "application/timestamp-query";
/// Media type of a reply (RFC 3161 §3.4).
pub const REPLY_TYPE: &str = "application/timestamp-reply";

/// Transport settings.
#[derive(Clone)]
pub struct HttpOptions {
    /// Largest accepted request body, bytes (default 16 KiB).
    pub body_limit: usize,
    /// If set, every timestamp request must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// The certificate chain served at `GET /certs`, PEM.
    pub chain_pem: String,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("body_limit", &self.body_limit)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            body_limit: 16 * 1024,
            bearer_token: None,
            chain_pem: String::new(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    issuer: Arc<Issuer>,
    opts: Arc<HttpOptions>,
    /// Requests being signed on blocking threads; the rest wait here without a thread.
    issuing: Arc<tokio::sync::Semaphore>,
}

/// Most requests signed at once, whatever the key says it can take: each holds a blocking
/// thread while it signs. Bounding them bounds threads and memory when the key stalls and
/// requests pile up (with one thread per waiting request, a one-second stall at 900
/// requests/s meant hundreds of threads and several hundred MiB of RSS in `tsa_load`).
const MAX_ISSUING: usize = 64;

/// Requests signed at once: as many as the key signs in parallel (its PKCS#11 sessions),
/// so that no thread waits for a session and none sits idle while a session is free.
fn issuing_permits(issuer: &Issuer) -> usize {
    issuer.key.signer().parallelism().clamp(1, MAX_ISSUING)
}

/// The TSA's routes.
pub fn router(issuer: Arc<Issuer>, opts: HttpOptions) -> Router {
    let limit = opts.body_limit;
    let state = AppState {
        opts: Arc::new(opts),
        issuing: Arc::new(tokio::sync::Semaphore::new(issuing_permits(&issuer))),
        issuer,
    };
    Router::new()
        .route("/tsa", post(timestamp))
        .route("/", post(timestamp))
        .route("/healthz", get(health))
        .route("/certs", get(certs))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn is_query_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(QUERY_TYPE))
}

/// The 401 reply to a request without the right bearer token.
pub fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "missing or wrong bearer token\n",
    )
        .into_response()
}

/// Whether `headers` carry `Authorization: Bearer <expected>` (compared in constant time).
pub fn authorised(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant-time comparison (length is not secret).
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn timestamp(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if let Some(token) = &st.opts.bearer_token {
        if !authorised(&headers, token) {
            metrics::counter!("hozon_tsa_http_refused_total", "reason" => "unauthorised")
                .increment(1);
            return unauthorised();
        }
    }
    if !is_query_type(&headers) {
        metrics::counter!("hozon_tsa_http_refused_total", "reason" => "content_type").increment(1);
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: {QUERY_TYPE}\n"),
        )
            .into_response();
    }
    let issuer = st.issuer.clone();
    let client = peer.to_string();
    // Only as many requests sign at once as the key can serve; the rest wait here without
    // a thread. The permit is returned as soon as the signature is made: waiting for the
    // audit record's group commit happens on this task, not on a blocking thread.
    let slot = st.issuing.clone().acquire_owned().await;
    let begun = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        issuer.begin(&body, &client)
    })
    .await;
    let (der, outcome) = match begun {
        Ok(Ok(pending)) => pending.finished().await,
        Ok(Err(rej)) => crate::issuer::refusal(rej),
        Err(e) => {
            tracing::error!(error = %e, "issuing task failed");
            crate::issuer::refusal(crate::protocol::Rejection {
                failure: crate::protocol::FailureInfo::SystemFailure,
                text: "internal error".into(),
            })
        }
    };
    metrics::counter!("hozon_tsa_requests_total", "outcome" => outcome.label()).increment(1);
    metrics::histogram!("hozon_tsa_request_seconds").record(started.elapsed().as_secs_f64());
    if let Outcome::Granted { counter } = outcome {
        metrics::gauge!("hozon_tsa_serial_counter").set(counter as f64);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(REPLY_TYPE))],
        der,
    )
        .into_response()
}

async fn health(State(st): State<AppState>) -> Response {
    let issuer = st.issuer.clone();
    let probe = tokio::task::spawn_blocking(move || issuer.clock.issue_time()).await;
    match probe {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("time not available: {e}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn certs(State(st): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pem-certificate-chain"),
        )],
        st.opts.chain_pem.clone(),
    )
        .into_response()
}

/// Publish the clock state and the days left on the TSA certificate as gauges.
pub fn record_gauges(issuer: &Issuer, cert_not_after: std::time::SystemTime) {
    match issuer.clock.status() {
        SyncStatus::Synchronised {
            max_error,
            offset_seconds,
        } => {
            metrics::gauge!("hozon_tsa_clock_synchronised").set(1.0);
            metrics::gauge!("hozon_tsa_clock_offset_seconds").set(offset_seconds);
            metrics::gauge!("hozon_tsa_clock_max_error_seconds").set(max_error.as_secs_f64());
        }
        _ => metrics::gauge!("hozon_tsa_clock_synchronised").set(0.0),
    }
    let days = match cert_not_after.duration_since(std::time::SystemTime::now()) {
        Ok(d) => d.as_secs_f64() / 86_400.0,
        Err(e) => -(e.duration().as_secs_f64() / 86_400.0),
    };
    metrics::gauge!("hozon_tsa_certificate_expiry_days").set(days);
}

/// How a listener takes connections.
#[derive(Clone, Debug)]
pub struct Listening {
    /// Serve HTTPS with this configuration (and client certificates, if it requires them;
    /// [`crate::tls::server_config`]); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most connections served at once. Beyond it no more are accepted: new ones wait in
    /// the kernel's accept backlog. An unbounded number would let a burst of clients exhaust
    /// the process's file descriptors, which the key store, the audit log and the archive
    /// need too (with SoftHSM's file store a sign then fails as "no private key").
    pub max_connections: usize,
}

/// Connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for Listening {
    fn default() -> Self {
        Listening {
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serve `app` over plain HTTP on `listener` until `shutdown` resolves, with the default
/// connection limit; in-flight requests are finished.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, Listening::default(), shutdown).await
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve `app` on `listener` as `how` says until `shutdown` resolves; in-flight requests are
/// finished. Over TLS, a connection that fails the handshake (no or an untrusted client
/// certificate when one is required, or not TLS at all) is closed and counted as refused with
/// reason `tls`; it never reaches the routes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    how: Listening,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioExecutor;

    let acceptor = how.tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(how.max_connections.max(1)));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then a connection: at the limit, clients wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: say so, back off, keep serving.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small request, small reply: do not wait to coalesce segments.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                return serve_connection(&builder, watcher, tcp, app, peer).await;
            };
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics::counter!("hozon_tsa_http_refused_total", "reason" => "tls")
                        .increment(1);
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    metrics::counter!("hozon_tsa_http_refused_total", "reason" => "tls")
                        .increment(1);
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            if let Some(subject) = crate::tls::peer_subject(stream.get_ref().1.peer_certificates())
            {
                tracing::debug!(%peer, client = %subject, "TLS client authenticated");
            }
            serve_connection(&builder, watcher, stream, app, peer).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// HTTP/1.1 or HTTP/2 on one accepted connection, with the peer's address where the
/// handlers find it (`ConnectInfo`), until the client closes it or shutdown ends it.
async fn serve_connection<I>(
    builder: &hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: Router,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let service =
        hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
    let conn = builder
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
