//! A token leaves the TSA only once its audit record is durable: through the HTTP edge (which
//! signs on a blocking thread and awaits the audit group commit on its own task) and through
//! the blocking [`Issuer::handle`]. With an audit sink that fails, the reply is a
//! systemFailure rejection and no token; with one that works, every granted token has its
//! record, in one hash chain. Keys and certificates come from `openssl` (commands in
//! `protocol_support::Pki`), requests from `hozon_tsa::client::build_request`.

mod protocol_support;

use std::sync::Arc;

use hozon_tsa::audit::{verify_chain, AuditSink, AuditWriter, MemorySink};
use hozon_tsa::client::{build_request, parse_response, ClientError};
use hozon_tsa::clock::{Clock, ClockPolicy, KernelClock};
use hozon_tsa::issuer::{Issuer, Outcome};
use hozon_tsa::protocol::TsaConfig;
use hozon_tsa::serial::{MemoryCounter, SerialAllocator};
use hozon_tsa::signer::DigestAlgorithm;
use protocol_support::{KeyType, Pki};

/// A sink whose every write fails, as a full or read-only disk would.
#[derive(Debug)]
struct FullDisk;

impl AuditSink for FullDisk {
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, String> {
        Ok(None)
    }
    fn append(&mut self, _: &[(u64, Vec<u8>)]) -> Result<(), String> {
        Err("no space left on device".into())
    }
}

fn issuer(pki: &Pki, sink: Box<dyn AuditSink>) -> Arc<Issuer> {
    Arc::new(Issuer {
        config: TsaConfig::default(),
        key: pki.certified(),
        serials: SerialAllocator::new(&[7; 16], 64, Box::new(MemoryCounter::default())),
        clock: Clock::new(
            Box::new(KernelClock),
            ClockPolicy {
                require_sync: false,
                ..ClockPolicy::default()
            },
        ),
        audit: AuditWriter::start(sink).unwrap(),
    })
}

fn request(i: u32) -> Vec<u8> {
    let imprint = DigestAlgorithm::Sha256.digest(&i.to_be_bytes());
    build_request(DigestAlgorithm::Sha256, &imprint, None, None, true).unwrap()
}

/// Serves `issuer` on a loopback port and posts `requests` concurrently; the reply bodies.
fn post_all(issuer: Arc<Issuer>, requests: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/tsa", listener.local_addr().unwrap());
        let app = hozon_tsa::http::router(issuer, hozon_tsa::http::HttpOptions::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(hozon_tsa::http::serve(listener, app, async {
            let _ = stopped.await;
        }));
        hozon_tsa::tls::ensure_provider();
        let client = reqwest::Client::new();
        let sends = requests.into_iter().map(|body| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .header("content-type", "application/timestamp-query")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap().to_vec()
            })
        });
        let mut replies = Vec::new();
        for s in sends.collect::<Vec<_>>() {
            replies.push(s.await.unwrap());
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        replies
    })
}

/// PKIFailureInfo systemFailure is bit 25.
const SYSTEM_FAILURE: usize = 25;

fn assert_system_failure(reply: &[u8]) {
    match parse_response(reply) {
        Err(ClientError::Refused { status, bits, .. }) => {
            assert_eq!(status, 2, "rejection");
            assert_eq!(bits, vec![SYSTEM_FAILURE], "systemFailure and nothing else");
        }
        other => panic!("expected a systemFailure rejection, got {other:?}"),
    }
}

#[test]
fn no_token_leaves_without_its_audit_record() {
    let pki = Pki::new(KeyType::EcP256);
    let issuer = issuer(&pki, Box::new(FullDisk));
    let replies = post_all(issuer.clone(), (0..8).map(request).collect());
    assert_eq!(replies.len(), 8);
    for reply in &replies {
        assert_system_failure(reply);
    }
    let (der, outcome) = issuer.handle(&request(99), "127.0.0.1:1");
    assert_eq!(
        outcome,
        Outcome::Rejected(hozon_tsa::protocol::FailureInfo::SystemFailure)
    );
    assert_system_failure(&der);
}

#[test]
fn every_granted_token_has_its_record_in_one_chain() {
    let pki = Pki::new(KeyType::EcP256);
    let sink = MemorySink::default();
    let issuer = issuer(&pki, Box::new(sink.clone()));
    let replies = post_all(issuer.clone(), (0..40).map(request).collect());
    for reply in &replies {
        parse_response(reply).expect("granted");
    }
    let (der, outcome) = issuer.handle(&request(40), "127.0.0.1:1");
    assert!(matches!(outcome, Outcome::Granted { .. }), "{outcome:?}");
    parse_response(&der).expect("granted");
    drop(issuer);
    let entries = sink.0.lock().unwrap().clone();
    let summary = verify_chain(entries.into_iter().map(Ok::<_, String>)).unwrap();
    assert_eq!(summary.entries, 41);
}
