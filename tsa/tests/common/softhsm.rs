//! Test helper: a throwaway SoftHSM2 token directory (real SoftHSM, no mocks), and signature
//! checks with aws-lc-rs and the openssl CLI.
//!
//! Include with `#[path = "common/softhsm.rs"] mod softhsm;`. All tests of one binary share the
//! process environment, so the directory and its tokens are made once per binary
//! ([`softhsm`]), before the library is first loaded: SoftHSM reads `SOFTHSM2_CONF` and scans
//! its token directory in `C_Initialize`. Tests that need a token to themselves (login state,
//! closing every session) each use their own label from [`TOKENS`].
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
/// The tokens made for each test binary.
pub const TOKENS: &[&str] = &[
    "hozon-a", "hozon-b", "hozon-c", "hozon-d", "hozon-e", "hozon-f",
];

/// A SoftHSM2 configuration in a directory of its own.
pub struct SoftHsm {
    /// The directory (configuration file and `tokens/`).
    pub dir: PathBuf,
    /// The PKCS#11 module to load.
    pub module: PathBuf,
}

/// The SoftHSM of this test binary: made on first use, with every token of [`TOKENS`]
/// initialised (SO PIN [`SO_PIN`], user PIN [`USER_PIN`]), and `SOFTHSM2_CONF` set for the
/// process.
pub fn softhsm() -> &'static SoftHsm {
    static ONCE: OnceLock<SoftHsm> = OnceLock::new();
    ONCE.get_or_init(init)
}

fn init() -> SoftHsm {
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} not found: install the softhsm2 package"
    );
    remove_stale_dirs(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let dir = tempfile::Builder::new()
        .prefix("softhsm-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory")
        .keep();
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // Before any PKCS#11 call in this process (see the module documentation).
    std::env::set_var("SOFTHSM2_CONF", &conf);
    for label in TOKENS {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
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
    SoftHsm {
        dir,
        module: PathBuf::from(MODULE),
    }
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
        if stale && entry.file_name().to_string_lossy().starts_with("softhsm-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
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
    use aws_lc_rs::signature as s;
    let alg = scheme.verification_algorithm();
    s::UnparsedPublicKey::new(alg, spki_key_bytes(spki))
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
