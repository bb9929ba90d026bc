//! End to end over real processes: `hozon tsa serve` on a loopback port (development key, and
//! a SoftHSM2 key configured as in production), driven by `openssl ts`, `hozon tsa request`,
//! plain HTTP and Python's asn1crypto. Checks replies, rejections, HTTP errors, restarts
//! (serials stay unique, audit chain stays intact) and tamper detection in the audit log.

#[path = "support/process.rs"]
mod process;
#[path = "support/softhsm.rs"]
mod softhsm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const HOZON: &str = env!("CARGO_BIN_EXE_hozon");

type Server = process::Proc;

trait TsaServer {
    fn base(&self) -> String;
}

impl TsaServer for Server {
    fn base(&self) -> String {
        self.url.trim_end_matches("/tsa").to_string()
    }
}

fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut all = vec!["tsa", "serve"];
    all.extend_from_slice(args);
    Server::start(&all, envs, "hozon tsa listening on ")
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn post(url: &str, ctype: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    hozon_tsa::tls::ensure_provider();
    let resp = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", ctype)
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.bytes().unwrap().to_vec())
}

/// `openssl ts -query` → POST → `openssl ts -verify`; returns the reply.
fn openssl_round_trip(server: &Server, dir: &Path, ca: &Path, hash: &str, cert: bool) -> Vec<u8> {
    let data = dir.join(format!("data-{hash}"));
    std::fs::write(&data, format!("prescription bytes hashed with {hash}")).unwrap();
    let q = dir.join(format!("q-{hash}.tsq"));
    let mut cmd = Command::new("openssl");
    cmd.args(["ts", "-query", "-data"])
        .arg(&data)
        .arg(format!("-{hash}"))
        .arg("-out")
        .arg(&q);
    if cert {
        cmd.arg("-cert");
    }
    run(&mut cmd);
    let (status, ct, body) = post(
        &server.url,
        "application/timestamp-query",
        std::fs::read(&q).unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(ct, "application/timestamp-reply");
    let r = dir.join(format!("r-{hash}.tsr"));
    std::fs::write(&r, &body).unwrap();
    let mut v = Command::new("openssl");
    v.args(["ts", "-verify", "-in"])
        .arg(&r)
        .arg("-queryfile")
        .arg(&q)
        .arg("-CAfile")
        .arg(ca);
    if !cert {
        v.arg("-untrusted").arg(ca);
    }
    let out = run(&mut v);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verification: OK"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    body
}

fn asn1crypto_parses(reply: &Path) -> String {
    let script = r#"
import sys
from asn1crypto import tsp
r = tsp.TimeStampResp.load(open(sys.argv[1], 'rb').read())
n = r.native
assert n['status']['status'] == 'granted', n['status']
info = r['time_stamp_token']['content']['encap_content_info']['content'].parsed.native
print(info['serial_number'], info['gen_time'].isoformat(), info['policy'])
"#;
    let out = run(Command::new("python3").args(["-c", script]).arg(reply));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn development_tsa_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let dev_args = [
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "none",
        "--data",
        data_s,
    ];
    let server = start(&dev_args, &[]);
    let ca = data.join("tsa-dev-cert.pem");
    assert!(ca.exists(), "development certificate created on first run");

    // openssl as the client and verifier, for every accepted hash, with and without certReq.
    let mut serials = Vec::new();
    for (hash, cert) in [
        ("sha256", true),
        ("sha384", false),
        ("sha512", true),
        ("sha3-256", true),
    ] {
        let reply = openssl_round_trip(&server, tmp.path(), &ca, hash, cert);
        let p = tmp.path().join(format!("reply-{hash}.tsr"));
        std::fs::write(&p, reply).unwrap();
        let parsed = asn1crypto_parses(&p);
        serials.push(parsed.split_whitespace().next().unwrap().to_string());
    }

    // hozon's own client: hash, request, check (signature, ESSCertIDv2, imprint, nonce).
    let doc = tmp.path().join("prescription.json");
    std::fs::write(&doc, br#"{"resourceType":"Bundle","type":"document"}"#).unwrap();
    let tsr = tmp.path().join("prescription.tsr");
    run(Command::new(HOZON)
        .args(["tsa", "request"])
        .arg(&doc)
        .args(["--url", &server.url, "--cert-req", "--out"])
        .arg(&tsr));
    assert!(std::fs::metadata(&tsr).unwrap().len() > 500);

    // SHA-1 and MD5 imprints are refused with badAlg (bit 0).
    let q = tmp.path().join("sha1.tsq");
    run(Command::new("openssl")
        .args(["ts", "-query", "-data"])
        .arg(&doc)
        .args(["-sha1", "-out"])
        .arg(&q));
    let (status, ct, body) = post(
        &server.url,
        "application/timestamp-query",
        std::fs::read(&q).unwrap(),
    );
    assert_eq!((status, ct.as_str()), (200, "application/timestamp-reply"));
    let r = tmp.path().join("sha1.tsr");
    std::fs::write(&r, &body).unwrap();
    let out = run(Command::new("openssl")
        .args(["ts", "-reply", "-text", "-in"])
        .arg(&r));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Status: Rejected"), "{text}");
    assert!(
        text.contains("unrecognized or unsupported algorithm"),
        "{text}"
    );

    // Garbage gets a TimeStampResp with badDataFormat, not an HTTP error or a crash.
    let (status, _, body) = post(
        &server.url,
        "application/timestamp-query",
        b"\x30\x80garbage".to_vec(),
    );
    assert_eq!(status, 200);
    std::fs::write(&r, &body).unwrap();
    let out = run(Command::new("openssl")
        .args(["ts", "-reply", "-text", "-in"])
        .arg(&r));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the data submitted has the wrong format")
    );

    // Transport errors: wrong content type 415, oversized body 413, GET on /tsa 405.
    assert_eq!(post(&server.url, "application/json", b"{}".to_vec()).0, 415);
    assert_eq!(
        post(
            &server.url,
            "application/timestamp-query",
            vec![0u8; 17 * 1024]
        )
        .0,
        413
    );
    hozon_tsa::tls::ensure_provider();
    let get = reqwest::blocking::get(&server.url).unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let certs = reqwest::blocking::get(format!("{}/certs", server.base()))
        .unwrap()
        .text()
        .unwrap();
    assert!(certs.starts_with("-----BEGIN CERTIFICATE-----"));
    let health = reqwest::blocking::get(format!("{}/healthz", server.base())).unwrap();
    assert_eq!(health.status().as_u16(), 200);
    server.stop();

    // Restart on the same data: same key and certificate, serials continue unique.
    let cert_before = std::fs::read(&ca).unwrap();
    let server = start(&dev_args, &[]);
    assert_eq!(std::fs::read(&ca).unwrap(), cert_before);
    let reply = openssl_round_trip(&server, tmp.path(), &ca, "sha256", true);
    let p = tmp.path().join("after-restart.tsr");
    std::fs::write(&p, reply).unwrap();
    let serial = asn1crypto_parses(&p)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        !serials.contains(&serial),
        "serial {serial} reused after restart"
    );
    server.stop();

    // The audit log holds every issued token (4 openssl + 1 hozon client + 1 after restart)
    // and its chain verifies.
    let out = run(Command::new(HOZON).args(["tsa", "audit", "verify", "--data", data_s]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("audit log intact: 6 records"), "{text}");

    // Edit one record in the store: the chain check names it and fails.
    {
        use hozon_storage::{Cf, Durability, Store, Table};
        struct Audit;
        impl Table for Audit {
            const CF: Cf = Cf::TsaAudit;
            type Key = u64;
            type Value = Vec<u8>;
        }
        let store = Store::open(data.join("db")).unwrap();
        let mut entry = store.get::<Audit>(&2).unwrap().unwrap();
        let last = entry.len() - 1;
        entry[last] ^= 0x01;
        let mut b = store.batch();
        b.put::<Audit>(&2, &entry);
        store.commit(b, Durability::Durable).unwrap();
    }
    let out = Command::new(HOZON)
        .args(["tsa", "audit", "verify", "--data", data_s])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entry 3 does not link to entry 2"), "{err}");
}

#[test]
fn pkcs11_tsa_from_config() {
    let token = softhsm::Token::isolated("hozon-e2e");
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path: PathBuf = tmp.path().join("hozon.toml");
    let cert = tmp.path().join("tsa.pem");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
[tsa]
listen = "127.0.0.1:0"
data = "{data}"
chain = ["{cert}"]
precision = "millis"

[tsa.clock]
# This test machine's kernel clock is not NTP-disciplined.
require_sync = false

[tsa.key]
backend = "pkcs11"
module = "{module}"
token_label = "{label}"
key_label = "tsa-e2e"
pin_env = "HOZON_TEST_PIN"
scheme = "ecdsa-p256-sha256"
sessions = 2
"#,
            data = tmp.path().join("data").display(),
            cert = cert.display(),
            module = softhsm::MODULE,
            label = token.label,
        ),
    )
    .unwrap();
    let envs = [
        ("HOZON_TEST_PIN", softhsm::USER_PIN),
        ("SOFTHSM2_CONF", token.conf.to_str().unwrap()),
    ];
    let hozon = |args: &[&str]| {
        let mut c = Command::new(HOZON);
        c.args(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        c
    };
    let cfg = cfg_path.to_str().unwrap();
    run(&mut hozon(&[
        "tsa", "keygen", "--config", cfg, "--type", "p256",
    ]));
    // A second keygen with the same label is refused, not a silent second key.
    assert!(
        !hozon(&["tsa", "keygen", "--config", cfg, "--type", "p256"])
            .output()
            .unwrap()
            .status
            .success()
    );
    run(&mut hozon(&[
        "tsa",
        "cert",
        "--config",
        cfg,
        "--self-signed",
        "--cn",
        "e2e TSA",
        "--out",
        cert.to_str().unwrap(),
    ]));
    let csr = tmp.path().join("tsa.csr");
    run(&mut hozon(&[
        "tsa",
        "cert",
        "--config",
        cfg,
        "--csr",
        "--out",
        csr.to_str().unwrap(),
    ]));
    run(Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in"])
        .arg(&csr));

    let server = start(&["--config", cfg, "--metrics-listen", "none"], &envs);
    for hash in ["sha256", "sha512"] {
        openssl_round_trip(&server, tmp.path(), &cert, hash, true);
    }
    server.stop();

    // A wrong PIN stops the server at start with a clear error, before listening.
    let out = hozon(&["tsa", "serve", "--config", cfg])
        .env("HOZON_TEST_PIN", "0000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("pin"), "{err}");
}

/// A P-256 certificate made by `openssl req -x509` (30 days) with the extensions `ext`:
/// `<name>.pem`, `<name>.key` in `dir`; self-signed, or issued by CA `ca` (`-CA`).
fn openssl_cert(dir: &Path, name: &str, cn: &str, ca: Option<&str>, ext: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(["req", "-x509"]);
    if let Some(ca) = ca {
        cmd.args(["-CA", &format!("{ca}.pem"), "-CAkey", &format!("{ca}.key")]);
    }
    cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-nodes", "-days", "30", "-subj", &format!("/CN={cn}")])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    for e in ext {
        cmd.args(["-addext", e]);
    }
    run(&mut cmd);
}

/// A self-signed CA: `<name>.pem`, `<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    let ext = [
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    openssl_cert(dir, name, cn, None, &ext);
}

/// An end-entity certificate issued by CA `ca`, with `ext` besides basicConstraints.
fn issue(dir: &Path, ca: &str, name: &str, cn: &str, ext: &[&str]) {
    let mut all = vec!["basicConstraints=critical,CA:FALSE"];
    all.extend_from_slice(ext);
    openssl_cert(dir, name, cn, Some(ca), &all);
}

/// HTTPS with client certificates (mutual TLS, `[tsa.tls]`): hozon's client, curl and the
/// archiver's sealing, each with a certificate from the configured CA, get tokens (openssl
/// verifies curl's); a client without a certificate, with one from another CA, or speaking
/// plain HTTP gets no reply at all. Shutdown stays graceful. All certificates are made here
/// by openssl (P-256); one CA issues the TLS certificates and the TSA's, for brevity.
#[test]
fn mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let f = |name: &str| d.join(name).to_str().unwrap().to_string();
    make_ca(d, "ca", "Test mTLS CA");
    make_ca(d, "rogue", "Rogue CA");
    let server_ext = ["subjectAltName=IP:127.0.0.1", "extendedKeyUsage=serverAuth"];
    issue(d, "ca", "server", "hozon TSA", &server_ext);
    issue(
        d,
        "ca",
        "client",
        "main service",
        &["extendedKeyUsage=clientAuth"],
    );
    issue(
        d,
        "rogue",
        "intruder",
        "main service",
        &["extendedKeyUsage=clientAuth"],
    );
    let tsa_ext = [
        "extendedKeyUsage=critical,timeStamping",
        "keyUsage=critical,digitalSignature",
    ];
    issue(d, "ca", "tsa", "Test TSA over mTLS", &tsa_ext);

    let config = format!(
        r#"[tsa]
listen = "127.0.0.1:0"
data = "{data}"
chain = ["{tsa}", "{ca}"]

[tsa.clock]
require_sync = false

[tsa.key]
backend = "software"
software_key = "{tsa_key}"
scheme = "ecdsa-p256-sha256"

[tsa.tls]
cert = "{server}"
key = "{server_key}"
client_ca = "{ca}"
"#,
        data = f("tsa-data"),
        tsa = f("tsa.pem"),
        ca = f("ca.pem"),
        tsa_key = f("tsa.key"),
        server = f("server.pem"),
        server_key = f("server.key"),
    );
    std::fs::write(d.join("tsa.toml"), config).unwrap();
    let server = start(
        &["--config", &f("tsa.toml"), "--metrics-listen", "none"],
        &[],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let tsa_cert = d.join("ca.pem");

    // hozon's client: with the client certificate, a checked token; without, or with the
    // rogue CA's, nothing.
    let doc = d.join("prescription.json");
    std::fs::write(&doc, br#"{"resourceType":"Bundle","type":"document"}"#).unwrap();
    let request = |identity: &[&str], out: &str| {
        Command::new(HOZON)
            .args(["tsa", "request"])
            .arg(&doc)
            .args(["--url", &server.url, "--cacert", &f("ca.pem"), "--cert-req"])
            .args(identity)
            .args(["--out", &f(out)])
            .output()
            .unwrap()
    };
    let ok = request(
        &[
            "--client-cert",
            &f("client.pem"),
            "--client-key",
            &f("client.key"),
        ],
        "ok.tsr",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(d.join("ok.tsr").exists());
    for (identity, out) in [
        (vec![], "anonymous.tsr"),
        (
            vec![
                "--client-cert",
                &f("intruder.pem"),
                "--client-key",
                &f("intruder.key"),
            ],
            "intruder.tsr",
        ),
    ] {
        let refused = request(&identity, out);
        assert!(
            !refused.status.success(),
            "{out}: a token without a trusted client certificate"
        );
        assert!(!d.join(out).exists(), "{out}");
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("HTTP"), "{out}: {err}");
    }

    // curl as the client, openssl as the verifier.
    run(Command::new("openssl")
        .current_dir(d)
        .args([
            "ts",
            "-query",
            "-data",
            "prescription.json",
            "-sha256",
            "-cert",
        ])
        .args(["-out", "q.tsq"]));
    run(Command::new("curl")
        .current_dir(d)
        .args([
            "-sS",
            "--fail",
            "--cacert",
            "ca.pem",
            "--cert",
            "client.pem",
        ])
        .args([
            "--key",
            "client.key",
            "-H",
            "Content-Type: application/timestamp-query",
        ])
        .args(["--data-binary", "@q.tsq", "-o", "r.tsr", &server.url]));
    let out = run(Command::new("openssl")
        .current_dir(d)
        .args([
            "ts",
            "-verify",
            "-in",
            "r.tsr",
            "-queryfile",
            "q.tsq",
            "-CAfile",
        ])
        .arg(&tsa_cert));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verification: OK"));
    let anonymous = Command::new("curl")
        .current_dir(d)
        .args(["-sS", "--fail", "--cacert", "ca.pem"])
        .args(["-H", "Content-Type: application/timestamp-query"])
        .args([
            "--data-binary",
            "@q.tsq",
            "-o",
            "anonymous-curl.tsr",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
    assert!(!d.join("anonymous-curl.tsr").exists());

    // Plain HTTP to the HTTPS port is not served.
    let plain = server.url.replacen("https://", "http://", 1);
    hozon_tsa::tls::ensure_provider();
    let cleartext = reqwest::blocking::Client::new()
        .post(&plain)
        .header("content-type", "application/timestamp-query")
        .body(std::fs::read(d.join("q.tsq")).unwrap())
        .timeout(Duration::from_secs(10))
        .send();
    assert!(
        cleartext.map(|r| !r.status().is_success()).unwrap_or(true),
        "a cleartext request was answered"
    );

    // The archiver as a client: its TSA settings name the CA and its client certificate.
    let cfg = d.join("hozon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[archive]\ntsa_ca = {:?}\ntsa_client_cert = {:?}\ntsa_client_key = {:?}\n",
            f("ca.pem"),
            f("client.pem"),
            f("client.key")
        ),
    )
    .unwrap();
    let archive = |cmd: &str, extra: &[&str]| {
        run(Command::new(HOZON)
            .args(["archive", cmd, "--config", &f("hozon.toml")])
            .args(["--data", &f("archive"), "--trust"])
            .arg(&tsa_cert)
            .args(["--tsa", &server.url])
            .args(extra))
    };
    archive("ingest", &["--opaque", &f("prescription.json")]);
    let sealed = archive("seal", &[]);
    assert!(
        String::from_utf8_lossy(&sealed.stdout).contains("1 document"),
        "{}",
        String::from_utf8_lossy(&sealed.stdout)
    );

    server.stop();

    // The same from the command line: --client-ca without HTTPS is a start-up error, not a
    // silently open TSA.
    let out = Command::new(HOZON)
        .args(["tsa", "serve", "--dev", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "none", "--data", &f("dev-data")])
        .args(["--client-ca", &f("ca.pem")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--client-ca needs HTTPS"), "{err}");
}
