//! Ingest over HTTP, the way the main service archives each document once it is signed:
//! `POST /archive/v1/documents` to a real `hozon archive serve` process on loopback, one
//! document per request, from `conns` keep-alive connections of a load generator in this
//! process, on the same cores.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

#[path = "../../tests/support/process.rs"]
mod process;

/// The bearer token the bench's server expects.
const TOKEN: &str = "bench-archive-token";

/// What one HTTP ingest run did.
pub struct HttpRun {
    /// Wall time from the first request to the last reply.
    pub seconds: f64,
    /// Replies `201 Created` (stored).
    pub created: usize,
    /// Other replies: how many, and the first few (status and body).
    pub other: usize,
    pub other_examples: Vec<String>,
    /// CPU seconds (user + system) of the server process over the run.
    pub server_cpu: f64,
    /// CPU seconds of the load generator (this process) over the run.
    pub client_cpu: f64,
}

/// User + system CPU seconds of another process `pid` so far (`/proc/PID/stat`, fields 14
/// and 15); this process's own is [`crate::fixture::cpu_seconds`].
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    // After it: state (field 3), ppid (4) … utime (14) and stime (15), in clock ticks.
    let field = |n: usize| {
        rest.get(n - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(14) + field(15);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Starts `hozon archive serve` on a fresh data directory `dir` (trusting the dev hierarchy
/// written under `pki`, never sealing during the run), POSTs every document once from `conns`
/// connections, and stops the server.
pub fn run(dir: &Path, pki: &Path, docs: &[(Vec<u8>, Option<Vec<u8>>)], conns: usize) -> HttpRun {
    std::fs::create_dir_all(dir).expect("bench directory");
    let cfg = dir.join("archive.toml");
    // Batches far larger and older than the run: sealing (and so the TSA, which is not
    // there) stays out of the measurement.
    std::fs::write(
        &cfg,
        "[archive]\nlisten = \"127.0.0.1:0\"\nbatch_size = 100000000\nbatch_age_secs = 86400\n",
    )
    .expect("config");
    let s = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    let server = process::Proc::start(
        &[
            "archive",
            "serve",
            "--data",
            &s(&dir.join("data")),
            "--config",
            &s(&cfg),
            "--tsa",
            "http://127.0.0.1:9/tsa",
            "--trust",
            &s(&pki.join("trust")),
            "--crl",
            &s(&pki.join("crl")),
        ],
        &[("HOZON_ARCHIVE_TOKEN", TOKEN), ("RUST_LOG", "warn")],
        "hozon archive: listening on ",
    );
    let url = server.url.clone();
    let pid = server.pid();
    let bodies: Arc<Vec<(Vec<u8>, Option<String>)>> = Arc::new(
        docs.iter()
            .map(|(d, t)| {
                (
                    d.clone(),
                    t.as_ref()
                        .map(|t| base64::engine::general_purpose::STANDARD.encode(t)),
                )
            })
            .collect(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (server_cpu0, client_cpu0) = (proc_cpu(pid), crate::fixture::cpu_seconds());
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(Mutex::new((0usize, Vec::new())));
    rt.block_on(async {
        hozon_tsa::tls::ensure_provider();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(conns)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
                let (next, created, other) = (next.clone(), created.clone(), other.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((body, side)) = bodies.get(i) else {
                            break;
                        };
                        let mut rb = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("Content-Type", "application/fhir+json")
                            .body(body.clone());
                        if let Some(t) = side {
                            rb = rb.header("Hozon-Signature-Timestamp", t);
                        }
                        let outcome = match rb.send().await {
                            Ok(r) if r.status().as_u16() == 201 => {
                                let _ = r.bytes().await;
                                Ok(())
                            }
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let text = r.text().await.unwrap_or_default();
                                Err(format!("{status} {}", text.trim()))
                            }
                            Err(e) => Err(e.to_string()),
                        };
                        match outcome {
                            Ok(()) => {
                                created.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                let mut o = other.lock().unwrap();
                                o.0 += 1;
                                if o.1.len() < 3 {
                                    o.1.push(e);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("load task");
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let (server_cpu, client_cpu) = (
        proc_cpu(pid) - server_cpu0,
        crate::fixture::cpu_seconds() - client_cpu0,
    );
    server.stop();
    let (n_other, examples) = std::mem::take(&mut *other.lock().unwrap());
    HttpRun {
        seconds,
        created: created.load(Ordering::Relaxed),
        other: n_other,
        other_examples: examples,
        server_cpu,
        client_cpu,
    }
}
