//! A throw-away SoftHSM2 token for tests and benches.
//!
//! SoftHSM reads its configuration from `SOFTHSM2_CONF` when the module is loaded, so the
//! variable is set once per process, before any PKCS#11 call; every token of the process lives
//! in the same temporary token directory. The token is made with
//! `softhsm2-util --init-token --free --label L --so-pin 1234 --pin 5678`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The SoftHSM2 module installed by Debian's `softhsm2` package.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// User PIN of every test token.
pub const PIN: &str = "5678";

static CONF_DIR: OnceLock<PathBuf> = OnceLock::new();

fn conf_dir() -> &'static PathBuf {
    CONF_DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hozon-softhsm-{}", std::process::id()));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        // Set before the module is first loaded in this process.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    })
}

/// A freshly initialised token.
pub struct Token {
    /// Token label.
    pub label: String,
    /// Path of the softhsm2.conf the token lives under (for child processes).
    pub conf: PathBuf,
}

impl Token {
    /// Initialise a new token labelled `label` (unique per process).
    pub fn new(label: &str) -> Token {
        let dir = conf_dir();
        let conf = dir.join("softhsm2.conf");
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", "1234", "--pin", PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util (install softhsm2: scripts/install-deps)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Token {
            label: label.to_string(),
            conf,
        }
    }

    /// A PKCS#11 configuration for key `key_label` in this token.
    pub fn config(
        &self,
        key_label: &str,
        scheme: hozon_tsa::signer::SignatureScheme,
        sessions: usize,
    ) -> hozon_tsa::pkcs11::Pkcs11Config {
        let mut c = hozon_tsa::pkcs11::Pkcs11Config::new(
            MODULE,
            self.label.clone(),
            key_label,
            hozon_tsa::pkcs11::Secret::new(PIN.as_bytes()),
            scheme,
        );
        c.sessions = sessions;
        c
    }

    /// Generate a key in the token and open a signer on it.
    pub fn keygen_and_open(
        &self,
        spec: hozon_tsa::pkcs11::KeySpec,
        scheme: hozon_tsa::signer::SignatureScheme,
        key_label: &str,
        sessions: usize,
    ) -> hozon_tsa::pkcs11::Pkcs11Signer {
        let cfg = self.config(key_label, scheme, sessions);
        hozon_tsa::pkcs11::keygen(&cfg, spec, key_label, None).expect("keygen in SoftHSM");
        hozon_tsa::pkcs11::Pkcs11Signer::open(&cfg).expect("open PKCS#11 signer")
    }
}
