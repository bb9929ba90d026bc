//! The archive end to end over real processes: `hozon tsa serve` on loopback with its key in
//! SoftHSM2, `hozon archive serve` taking documents over HTTP, and the archive CLI. Then the
//! crash tests: SIGKILL during ingest, during sealing and during a hash-tree renewal, with no
//! acknowledged document lost and every export verifying afterwards.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/process.rs"]
mod process;
#[path = "support/softhsm.rs"]
mod softhsm;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::{s, text};
use process::Proc;

const HOZON: &str = env!("CARGO_BIN_EXE_hozon");
const API_TOKEN: &str = "e2e-archive-token";

struct World {
    tmp: tempfile::TempDir,
    pki: PathBuf,
    corpus: PathBuf,
    tsa_cert: PathBuf,
    tsa: Proc,
    envs: Vec<(String, String)>,
}

impl World {
    fn envs(&self) -> Vec<(&str, &str)> {
        self.envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// `hozon archive CMD --data D --trust … ARGS`.
    fn archive(&self, data: &Path, cmd: &str, tsa: &str, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(HOZON);
        c.args(["archive", cmd, "--data", s(data)])
            .args(["--trust", s(&self.pki.join("trust"))])
            .args(["--trust", s(&self.tsa_cert)])
            .args(["--crl", s(&self.pki.join("crl"))])
            .args(["--tsa", tsa])
            .args(args);
        for (k, v) in self.envs() {
            c.env(k, v);
        }
        c.output().expect("hozon archive runs")
    }
}

/// The dev hierarchy and a corpus (seeds 31 and 3, arbitrary), and a TSA whose P-256 key is
/// generated in a SoftHSM2 token, with a self-signed certificate.
fn world(label: &str) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let corpus = tmp.path().join("corpus");
    let ok = |o: std::process::Output| assert!(o.status.success(), "{}", text(&o));
    ok(cli::hozon(&[
        "dev",
        "pki",
        "--out",
        s(&pki),
        "--seed",
        "31",
    ]));
    ok(cli::hozon(&[
        "dev",
        "corpus",
        "--pki",
        s(&pki),
        "--count",
        "60",
        "--out",
        s(&corpus),
        "--seed",
        "3",
    ]));

    let token = softhsm::Token::isolated(label);
    let cfg = tmp.path().join("tsa.toml");
    let tsa_cert = tmp.path().join("tsa.pem");
    std::fs::write(
        &cfg,
        format!(
            "[tsa]\nlisten = \"127.0.0.1:0\"\ndata = \"{data}\"\nchain = [\"{cert}\"]\n\n\
             [tsa.clock]\nrequire_sync = false\n\n\
             [tsa.key]\nbackend = \"pkcs11\"\nmodule = \"{module}\"\ntoken_label = \"{label}\"\n\
             key_label = \"archive-e2e\"\npin_env = \"HOZON_TEST_PIN\"\n\
             scheme = \"ecdsa-p256-sha256\"\nsessions = 2\n",
            data = tmp.path().join("tsa-data").display(),
            cert = tsa_cert.display(),
            module = softhsm::MODULE,
            label = token.label,
        ),
    )
    .unwrap();
    let envs = vec![
        ("HOZON_TEST_PIN".to_string(), softhsm::USER_PIN.to_string()),
        (
            "SOFTHSM2_CONF".to_string(),
            token.conf.to_str().unwrap().to_string(),
        ),
        ("HOZON_ARCHIVE_TOKEN".to_string(), API_TOKEN.to_string()),
    ];
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let hozon = |args: &[&str]| {
        let mut c = Command::new(HOZON);
        c.args(args);
        for (k, v) in &env_refs {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    };
    hozon(&["tsa", "keygen", "--config", s(&cfg), "--type", "p256"]);
    // As in production: a CSR from the HSM key, certified by a CA (the dev TSA root here).
    let csr = tmp.path().join("tsa.csr");
    hozon(&[
        "tsa",
        "cert",
        "--config",
        s(&cfg),
        "--csr",
        "--out",
        s(&csr),
    ]);
    let ext = tmp.path().join("tsa-ext.cnf");
    std::fs::write(
        &ext,
        "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
         extendedKeyUsage = critical, timeStamping
",
    )
    .unwrap();
    let o = Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-days",
            "365",
            "-sha256",
            "-set_serial",
            "7",
        ])
        .args(["-CA", s(&pki.join("certs/tsa-root.pem"))])
        .args(["-CAkey", s(&pki.join("keys/tsa-root.key.pem"))])
        .args(["-extfile", s(&ext), "-out", s(&tsa_cert)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let tsa = Proc::start(
        &[
            "tsa",
            "serve",
            "--config",
            s(&cfg),
            "--metrics-listen",
            "none",
        ],
        &env_refs,
        "hozon tsa listening on ",
    );
    World {
        tmp,
        pki,
        corpus,
        tsa_cert,
        tsa,
        envs,
    }
}

fn manifest(corpus: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(corpus.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn client() -> reqwest::blocking::Client {
    hozon_tsa::tls::ensure_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs one corpus document (with its JWS side token) and returns (HTTP status, body).
fn post_doc(
    http: &reqwest::blocking::Client,
    base: &str,
    corpus: &Path,
    entry: &serde_json::Value,
) -> reqwest::Result<(u16, serde_json::Value)> {
    use base64::Engine;
    let file = entry["file"].as_str().unwrap();
    let bytes = std::fs::read(corpus.join(file)).unwrap();
    let mut rb = http
        .post(format!("{base}/documents"))
        .bearer_auth(API_TOKEN)
        .header("Content-Type", "application/fhir+json")
        .body(bytes);
    if let Some(t) = entry["timestamp"].as_str().filter(|t| *t != "embedded") {
        let tsr = std::fs::read(corpus.join(t)).unwrap();
        rb = rb.header(
            "Hozon-Signature-Timestamp",
            base64::engine::general_purpose::STANDARD.encode(tsr),
        );
    }
    let resp = rb.send()?;
    let status = resp.status().as_u16();
    let body = resp.bytes()?;
    Ok((
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
}

fn serve_config(dir: &Path) -> PathBuf {
    let cfg = dir.join("archive.toml");
    std::fs::write(
        &cfg,
        "[archive]\nlisten = \"127.0.0.1:0\"\nbatch_size = 16\nbatch_age_secs = 1\n\
         seal_check_secs = 1\ntsa_rounds = 2\ntsa_backoff_ms = 100\nblock_cache_mib = 96\n",
    )
    .unwrap();
    cfg
}

fn start_archive(w: &World, data: &Path, cfg: &Path) -> Proc {
    let envs = w.envs();
    Proc::start(
        &[
            "archive",
            "serve",
            "--data",
            s(data),
            "--config",
            s(cfg),
            "--tsa",
            &w.tsa.url,
            "--trust",
            s(&w.pki.join("trust")),
            "--trust",
            s(&w.tsa_cert),
            "--crl",
            s(&w.pki.join("crl")),
        ],
        &envs,
        "hozon archive: listening on ",
    )
}

/// Waits until nothing is pending and the number of sealed documents is in `want`.
fn wait_sealed(http: &reqwest::blocking::Client, base: &str, want: std::ops::RangeInclusive<u64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http
            .get(format!("{base}/status"))
            .bearer_auth(API_TOKEN)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if st["sealed"].as_u64().is_some_and(|n| want.contains(&n))
            && st["pending"].as_u64() == Some(0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "not sealed in time: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Exports `id` with the CLI and checks the export with `hozon verify document`.
fn export_verifies(w: &World, data: &Path, id: &str) {
    let out = w.tmp.path().join(format!("export-{id}"));
    let o = w.archive(data, "export", &w.tsa.url, &[id, "--out", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let doc = if out.join("document.json").exists() {
        out.join("document.json")
    } else {
        out.join("document.bin")
    };
    let o = cli::hozon(&[
        "verify",
        "document",
        s(&doc),
        "--evidence",
        s(&out.join("evidence.ers")),
        "--trust",
        s(&w.pki.join("trust")),
        "--trust",
        s(&w.tsa_cert),
        "--cert",
        s(&out.join("validation")),
        "--crl",
        s(&out.join("validation")),
    ]);
    let t = text(&o);
    // SHA-1-era signatures fail the ETSI policy by design; their evidence still verifies.
    assert!(
        o.status.success() || t.contains("algorithm-expired"),
        "export of {id} does not verify: {t}"
    );
    assert!(t.contains("Archive timestamp 1"), "{t}");
}

#[test]
fn http_ingest_sealing_and_sigkill_during_ingest() {
    let w = world("archive-e2e-http");
    let data = w.tmp.path().join("data");
    let cfg = serve_config(w.tmp.path());
    let server = start_archive(&w, &data, &cfg);
    let base = server.url.trim_end_matches("/documents").to_string();
    let http = client();

    // Authentication and content type come first.
    let r = http
        .post(format!("{base}/documents"))
        .header("Content-Type", "application/fhir+json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(format!("{base}/documents"))
        .bearer_auth(API_TOKEN)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    let entries = manifest(&w.corpus);
    let (good, bad): (Vec<_>, Vec<_>) = entries.iter().partition(|e| e["expect"] == "valid");
    // The first half, and each bad document: stored, or refused with the manifest's code.
    let mut acked: Vec<String> = Vec::new();
    for e in &good[..30] {
        let (st, body) = post_doc(&http, &base, &w.corpus, e).unwrap();
        assert_eq!(st, 201, "{body}");
        acked.push(body["id"].as_str().unwrap().to_owned());
    }
    let (st, body) = post_doc(&http, &base, &w.corpus, good[0]).unwrap();
    assert_eq!((st, body["status"].as_str()), (200, Some("duplicate")));
    for e in &bad {
        let (st, body) = post_doc(&http, &base, &w.corpus, e).unwrap();
        assert_eq!(st, 422, "{} {body}", e["file"]);
        assert_eq!(body["code"], e["error"], "{}", e["file"]);
    }
    // The same documents from many clients at once: concurrent requests share durable
    // writes, and each document is stored exactly once, whichever write it lands in.
    let racers: Vec<std::thread::JoinHandle<(String, u16, String)>> = good[30..34]
        .iter()
        .flat_map(|e| std::iter::repeat_n(*e, 8))
        .map(|e| {
            let (base, corpus, e) = (base.clone(), w.corpus.clone(), e.clone());
            std::thread::spawn(move || {
                let (st, body) = post_doc(&client(), &base, &corpus, &e).unwrap();
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                (e["file"].as_str().unwrap().to_owned(), st, id)
            })
        })
        .collect();
    let mut raced: std::collections::BTreeMap<String, Vec<(u16, String)>> = Default::default();
    for r in racers {
        let (file, st, id) = r.join().unwrap();
        raced.entry(file).or_default().push((st, id));
    }
    assert_eq!(raced.len(), 4);
    for (file, replies) in &raced {
        let created = replies.iter().filter(|(st, _)| *st == 201).count();
        let duplicates = replies.iter().filter(|(st, _)| *st == 200).count();
        assert_eq!((created, duplicates), (1, 7), "{file}: {replies:?}");
        assert!(replies.iter().all(|(_, id)| *id == replies[0].1), "{file}");
        acked.push(replies[0].1.clone());
    }
    wait_sealed(&http, &base, 34..=34);
    let r = http
        .get(format!("{base}/documents/{}/evidence", acked[3]))
        .bearer_auth(API_TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ers = r.bytes().unwrap();
    let doc = std::fs::read(w.corpus.join(good[3]["file"].as_str().unwrap())).unwrap();
    hozon_verifier::evidence::check_evidence(&ers, &doc, &[]).unwrap();

    // SIGKILL while documents stream in: every 201 answered before the kill survives.
    let poster = {
        let base = base.clone();
        let corpus = w.corpus.clone();
        let rest: Vec<serde_json::Value> = good[34..].iter().map(|e| (*e).clone()).collect();
        std::thread::spawn(move || {
            let http = client();
            let mut acked = Vec::new();
            for e in &rest {
                match post_doc(&http, &base, &corpus, e) {
                    Ok((201, body)) => acked.push(body["id"].as_str().unwrap().to_owned()),
                    _ => break,
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    server.kill9();
    acked.extend(poster.join().unwrap());
    assert!(
        acked.len() > 34,
        "nothing was acknowledged after the restart point"
    );

    let server = start_archive(&w, &data, &cfg);
    let base = server.url.trim_end_matches("/documents").to_string();
    // The poster sends one document at a time, so at most one was stored whose 201 the kill
    // cut off: every acknowledged document, and at most one more.
    let acked_n = acked.len() as u64;
    wait_sealed(&http, &base, acked_n..=acked_n + 1);
    for id in &acked {
        let r = http
            .get(format!("{base}/documents/{id}/evidence"))
            .bearer_auth(API_TOKEN)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "acknowledged {id} lost");
    }
    drop(server);
    export_verifies(&w, &data, &acked[0]);
    export_verifies(&w, &data, acked.last().unwrap());
}

/// A "TSA" that accepts connections and never answers: the archive waits on it until killed.
fn hanging_tsa() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/tsa", l.local_addr().unwrap());
    (l, url)
}

fn kill_when_waiting(mut child: Child, listener: &TcpListener) {
    // The archive is blocked in the TSA call once it has connected: everything before the
    // final write is done, nothing of it is written.
    let (_conn, _) = listener.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigkill_during_sealing_and_renewal_loses_nothing() {
    let w = world("archive-e2e-kill");
    let data = w.tmp.path().join("data");
    let o = w.archive(
        &data,
        "ingest",
        &w.tsa.url,
        &[s(&w.corpus), "--format", "json"],
    );
    // Bad documents are refused (exit status 1), the rest stored.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| l["status"] == "stored")
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 60);
    let refused = lines.iter().filter(|l| l["status"] == "refused").count();
    assert!(refused >= 14, "{refused}");

    // Sealing killed while it waits for the timestamp: nothing is sealed, all still pending.
    let (listener, hang) = hanging_tsa();
    let mut c = Command::new(HOZON);
    c.args(["archive", "seal", "--data", s(&data)])
        .args(["--trust", s(&w.pki.join("trust")), "--tsa", &hang])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    kill_when_waiting(c.spawn().unwrap(), &listener);
    let status = |data: &Path| -> serde_json::Value {
        let o = w.archive(data, "status", &w.tsa.url, &["--format", "json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let st = status(&data);
    assert_eq!(
        (st["sealed"].as_u64(), st["pending"].as_u64()),
        (Some(0), Some(60)),
        "{st}"
    );

    // Sealing with the real TSA: once, all of them.
    let o = w.archive(&data, "seal", &w.tsa.url, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let st = status(&data);
    assert_eq!(
        (st["sealed"].as_u64(), st["pending"].as_u64()),
        (Some(60), Some(0)),
        "{st}"
    );

    // A hash-tree renewal (a policy retiring SHA-256) killed while it waits for its
    // timestamp: the job stays recorded as running and the next run finishes it.
    let policy = w.tmp.path().join("retire-sha256.toml");
    std::fs::write(
        &policy,
        hozon_verifier::policy::ETSI_TOML.replace(
            "algorithm = \"sha256\"\n",
            "algorithm = \"sha256\"\nuntil = \"2027-03-01\"\n",
        ),
    )
    .unwrap();
    let mut c = Command::new(HOZON);
    c.args([
        "archive",
        "renew",
        "--data",
        s(&data),
        "--policy",
        s(&policy),
    ])
    .args(["--trust", s(&w.pki.join("trust")), "--tsa", &hang])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    kill_when_waiting(c.spawn().unwrap(), &listener);
    let st = status(&data);
    assert_eq!(st["open_jobs"].as_array().map(Vec::len), Some(1), "{st}");
    let o = w.archive(&data, "renew", &w.tsa.url, &["--policy", s(&policy)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("hash-tree renewal to sha512"),
        "{}",
        text(&o)
    );
    let st = status(&data);
    assert_eq!(st["open_jobs"].as_array().map(Vec::len), Some(0), "{st}");
    assert_eq!(st["superseded_trees"].as_u64(), Some(1), "{st}");
    assert_eq!(st["sealed"].as_u64(), Some(60), "{st}");
    for id in [&ids[0], &ids[29], &ids[59]] {
        export_verifies(&w, &data, id);
    }
}

/// `[archive] block_cache_mib`: a usable size opens the archive; 0 is refused with the key's
/// name before anything is created.
#[test]
fn block_cache_setting_is_read_and_zero_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let status = |mib: &str, data: &Path| {
        let cfg = tmp.path().join(format!("cache-{mib}.toml"));
        std::fs::write(&cfg, format!("[archive]\nblock_cache_mib = {mib}\n")).unwrap();
        cli::hozon(&["archive", "status", "--data", s(data), "--config", s(&cfg)])
    };
    let good = tmp.path().join("good");
    let out = status("8", &good);
    assert!(out.status.success(), "{}", text(&out));
    assert!(good.join("archive").is_dir());
    let zero = tmp.path().join("zero");
    let out = status("0", &zero);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("block_cache_mib must be at least 1"),
        "{}",
        text(&out)
    );
    assert!(!zero.exists(), "nothing is created for a bad configuration");
}
