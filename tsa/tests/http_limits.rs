//! The listener's connection limit (`Listening::max_connections`): at the limit, a new client
//! is not served (it waits in the accept backlog) until a served connection closes. Real
//! sockets on loopback; a one-route router stands in for the TSA's.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hozon_tsa::http::{serve_with, Listening};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

/// Sends one keep-alive request on `conn` and reads until the reply's body ("ok") arrives.
async fn ask(conn: &mut TcpStream) -> String {
    conn.write_all(REQUEST).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.ends_with(b"ok") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed early");
        reply.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_the_limit_waits_for_a_free_slot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let how = Listening {
        tls: None,
        max_connections: 2,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(listener, app, how, async {
        let _ = stopped.await;
    }));

    // Two served connections, kept open: both slots are taken.
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(ask(&mut second).await.starts_with("HTTP/1.1 200"));

    // A third is connected by the kernel but not served while both are open.
    let mut third = TcpStream::connect(addr).await.unwrap();
    let waiting = tokio::spawn(async move { ask(&mut third).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served beyond the limit");

    // One closes: the third is served.
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    assert!(ask(&mut second).await.starts_with("HTTP/1.1 200"));
    drop(second);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown")
        .unwrap()
        .unwrap();
}
