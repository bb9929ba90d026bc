//! A throw-away SoftHSM2 (real SoftHSM, no mocks) for tests and benches, and signature checks
//! with aws-lc-rs and the openssl CLI. One module for every test binary and bench:
//! `#[path = "…/tests/support/softhsm.rs"] mod softhsm;`.
//!
//! SoftHSM reads `SOFTHSM2_CONF` and scans its token directory in `C_Initialize`, so the
//! directory is made and the variable set once per process ([`softhsm`]), before the library
//! is first loaded. Tokens are made with
//! `softhsm2-util --init-token --free --label L --so-pin 1234 --pin 5678`: the [`TOKENS`] up
//! front (tests that need a token to themselves each use one label), others by [`Token::new`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hozon_tsa::signer::SignatureScheme;

/// The SoftHSM2 PKCS#11 module (Debian package `softhsm2`).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Security officer PIN of every test token.
pub const SO_PIN: &str = "1234";
/// User PIN of every test token.
pub const USER_PIN: &str = "5678";
/// The tokens initialised for each process.
pub const TOKENS: &[&str] = &[
    "hozon-a", "hozon-b", "hozon-c", "hozon-d", "hozon-e", "hozon-f",
];

/// A SoftHSM2 configuration in a directory of its own.
pub struct SoftHsm {
    /// The directory (configuration file and `tokens/`).
    pub dir: PathBuf,
    /// The configuration file (for child processes' `SOFTHSM2_CONF`).
    pub conf: PathBuf,
    /// The PKCS#11 module to load.
    pub module: PathBuf,
}

/// Holds the process's SoftHSM for one test at a time. SoftHSM2's file object store races
/// when one session creates objects while another looks objects up on the same token
/// (`C_GenerateKeyPair` then fails with CKR_GENERAL_ERROR; SoftHSMv2 #573), which no real HSM
/// does; tests of one binary that share a token take this first. Concurrency *within* a test
/// (many threads through one signer's session pool) is still exercised.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that panicked while holding it leaves nothing half-done that matters here.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SoftHSM of this process: made on first use, with every token of [`TOKENS`]
/// initialised, and `SOFTHSM2_CONF` set for the process.
pub fn softhsm() -> &'static SoftHsm {
    static ONCE: OnceLock<SoftHsm> = OnceLock::new();
    ONCE.get_or_init(init)
}

fn init() -> SoftHsm {
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} not found: install the softhsm2 package (scripts/install-deps)"
    );
    let (dir, conf) = new_dir();
    // Before any PKCS#11 call in this process (see the module documentation).
    std::env::set_var("SOFTHSM2_CONF", &conf);
    for label in TOKENS {
        init_token(&conf, label);
    }
    SoftHsm {
        dir,
        conf,
        module: PathBuf::from(MODULE),
    }
}

/// A new SoftHSM directory with an empty `tokens/` and its configuration file.
fn new_dir() -> (PathBuf, PathBuf) {
    let parent = std::env::temp_dir();
    remove_stale_dirs(&parent);
    let dir = tempfile::Builder::new()
        .prefix("hozon-softhsm-")
        .tempdir_in(&parent)
        .expect("temporary directory")
        .keep();
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    (dir, conf)
}

fn init_token(conf: &Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(["--init-token", "--free", "--label", label])
        .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
        .output()
        .expect("run softhsm2-util (install the softhsm2 package)");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token {label}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The token directories outlive their process (a static is never dropped): remove those of
/// earlier runs, leaving any younger than an hour to runs that may still be going.
fn remove_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if stale
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with("hozon-softhsm-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A token of its own, made in this process' SoftHSM.
pub struct Token {
    /// Token label.
    pub label: String,
    /// Path of the softhsm2.conf the token lives under (for child processes).
    pub conf: PathBuf,
}

impl Token {
    /// Initialise a new token labelled `label` (unique per process).
    pub fn new(label: &str) -> Token {
        let hsm = softhsm();
        init_token(&hsm.conf, label);
        Token {
            label: label.to_string(),
            conf: hsm.conf.clone(),
        }
    }

    /// A token alone in a SoftHSM directory of its own, for a test that uses it only from
    /// child processes (give them `conf` as `SOFTHSM2_CONF`). Tokens of one directory share
    /// SoftHSM's file store, which races when one process creates objects while another
    /// lists tokens (SoftHSMv2 #573): `tsa cert` in one test failed with CKR_GENERAL_ERROR
    /// in `C_GetTokenInfo` while a parallel test generated its key.
    pub fn isolated(label: &str) -> Token {
        let (_, conf) = new_dir();
        init_token(&conf, label);
        Token {
            label: label.to_string(),
            conf,
        }
    }

    /// A PKCS#11 configuration for key `key_label` in this token.
    pub fn config(
        &self,
        key_label: &str,
        scheme: SignatureScheme,
        sessions: usize,
    ) -> hozon_tsa::pkcs11::Pkcs11Config {
        let mut c = hozon_tsa::pkcs11::Pkcs11Config::new(
            MODULE,
            self.label.clone(),
            key_label,
            hozon_tsa::pkcs11::Secret::new(USER_PIN.as_bytes()),
            scheme,
        );
        c.sessions = sessions;
        c
    }

    /// Generate a key in the token and open a signer on it.
    pub fn keygen_and_open(
        &self,
        spec: hozon_tsa::pkcs11::KeySpec,
        scheme: SignatureScheme,
        key_label: &str,
        sessions: usize,
    ) -> hozon_tsa::pkcs11::Pkcs11Signer {
        let cfg = self.config(key_label, scheme, sessions);
        hozon_tsa::pkcs11::keygen(&cfg, spec, key_label, None).expect("keygen in SoftHSM");
        hozon_tsa::pkcs11::Pkcs11Signer::open(&cfg).expect("open PKCS#11 signer")
    }
}

/// The subjectPublicKey bits of a DER SubjectPublicKeyInfo.
pub fn spki_key_bytes(spki: &[u8]) -> Vec<u8> {
    let spki: rasn_pkix::SubjectPublicKeyInfo = rasn::der::decode(spki).expect("SPKI decodes");
    spki.subject_public_key.as_raw_slice().to_vec()
}

/// Verify `signature` over `message` with aws-lc-rs.
pub fn verify(
    spki: &[u8],
    scheme: SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let alg = scheme.verification_algorithm();
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, spki_key_bytes(spki))
        .verify(message, signature)
        .map_err(|_| format!("{scheme:?} signature does not verify"))
}

/// PEM of a DER blob.
pub fn to_pem(tag: &str, der: &[u8]) -> String {
    hozon_tsa::certgen::to_pem(tag, der)
}

/// Run openssl with `args`; panic with its output unless it succeeds. Returns stdout.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "openssl {}: {}\n{}",
        args.join(" "),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
