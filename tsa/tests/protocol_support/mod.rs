//! Shared helpers of the protocol and interop tests: a throw-away PKI made with the `openssl`
//! CLI, `openssl ts -query` requests, and a python3/asn1crypto parser. Every helper runs the
//! real tool; the exact commands are in the code below.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hozon_tsa::protocol::{check_request, issue_token, CheckedRequest, Issuance, TsaConfig};
use hozon_tsa::signer::CertifiedSigner;
use hozon_tsa::software::SoftwareSigner;

/// Runs `openssl args…` in `dir`; panics with its stderr unless it succeeds; returns stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI must be installed");
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `openssl args…` in `dir` and returns (success, stdout + stderr).
pub fn openssl_status(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI must be installed");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Key type of a test PKI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa2048,
    EcP256,
}

impl KeyType {
    /// `openssl genpkey` arguments for this key type.
    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyType::EcP256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        }
    }
}

/// The extensions of a proper TSA certificate (`openssl x509 -req -extfile`).
pub const TSA_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature,nonRepudiation\n\
extendedKeyUsage=critical,timeStamping\n\
subjectKeyIdentifier=hash\n\
authorityKeyIdentifier=keyid\n";

/// A root CA and a TSA certificate issued by it, in a temporary directory:
///
/// ```text
/// openssl genpkey <alg> -out root.key
/// openssl req -x509 -new -key root.key -subj "/C=JP/O=hozon test/CN=hozon test root" \
///     -days 3650 -addext basicConstraints=critical,CA:TRUE \
///     -addext keyUsage=critical,keyCertSign,cRLSign -out root.pem
/// openssl genpkey <alg> -out tsa.key
/// openssl req -new -key tsa.key -subj "/C=JP/O=hozon test/CN=hozon test TSA" -out tsa.csr
/// openssl x509 -req -in tsa.csr -CA root.pem -CAkey root.key -set_serial 0x… -days 365 \
///     -extfile tsa.ext -out tsa.pem          # tsa.ext = TSA_EXT
/// openssl x509 -in tsa.pem -outform DER -out tsa.der
/// ```
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub key_type: KeyType,
}

impl Pki {
    pub fn new(key_type: KeyType) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki { dir, key_type };
        let d = pki.path();
        let mut args = vec!["genpkey"];
        args.extend_from_slice(key_type.genpkey_args());
        openssl(d, &[&args[..], &["-out", "root.key"]].concat());
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "root.key",
                "-subj",
                "/C=JP/O=hozon test/CN=hozon test root",
                "-days",
                "3650",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                "root.pem",
            ],
        );
        openssl(d, &[&args[..], &["-out", "tsa.key"]].concat());
        pki.issue_cert(
            "tsa",
            "/C=JP/O=hozon test/CN=hozon test TSA",
            TSA_EXT,
            "0x7a5a00c0ffee01",
        );
        pki
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues `<name>.pem` / `<name>.der` for tsa.key with the extensions `ext`.
    pub fn issue_cert(&self, name: &str, subject: &str, ext: &str, serial: &str) -> Vec<u8> {
        let d = self.path();
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "tsa.key",
                "-subj",
                subject,
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-set_serial",
                serial,
                "-days",
                "365",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-in",
                &format!("{name}.pem"),
                "-outform",
                "DER",
                "-out",
                &format!("{name}.der"),
            ],
        );
        std::fs::read(d.join(format!("{name}.der"))).unwrap()
    }

    pub fn tsa_der(&self) -> Vec<u8> {
        std::fs::read(self.file("tsa.der")).unwrap()
    }

    pub fn root_der(&self) -> Vec<u8> {
        let d = self.path();
        openssl(
            d,
            &[
                "x509", "-in", "root.pem", "-outform", "DER", "-out", "root.der",
            ],
        );
        std::fs::read(self.file("root.der")).unwrap()
    }

    /// tsa.key loaded with [`SoftwareSigner`].
    pub fn software_signer(&self) -> SoftwareSigner {
        SoftwareSigner::load(self.file("tsa.key")).unwrap()
    }

    /// tsa.key + tsa.der (+ root) as a checked [`CertifiedSigner`].
    pub fn certified(&self) -> CertifiedSigner {
        CertifiedSigner::new(
            Arc::new(self.software_signer()),
            vec![self.tsa_der(), self.root_der()],
        )
        .unwrap()
    }

    /// `openssl ts -query -data <data> <args…> -out <out>`; returns the request DER.
    pub fn query(&self, data: &str, args: &[&str], out: &str) -> Vec<u8> {
        let mut all = vec!["ts", "-query", "-data", data];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-out", out]);
        openssl(self.path(), &all);
        std::fs::read(self.file(out)).unwrap()
    }

    /// Writes `bytes` to `name` in the PKI directory.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.file(name), bytes).unwrap();
    }
}

/// A fixed issuance time: 2026-01-02T03:04:05.120456789Z.
pub fn fixed_time() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_767_323_045, 120_456_789)
}

/// check_request + issue_token, panicking on failure.
pub fn issue(
    req_der: &[u8],
    cfg: &TsaConfig,
    key: &CertifiedSigner,
    serial: &[u8],
) -> (CheckedRequest, Vec<u8>) {
    let checked = check_request(req_der, cfg).expect("request accepted");
    let token = issue_token(
        &checked,
        &Issuance {
            serial: serial.to_vec(),
            gen_time: fixed_time(),
        },
        cfg,
        key,
    )
    .expect("token issued");
    (checked, token)
}

/// Parses the TimeStampResp in `path` with python3 + asn1crypto
/// (`asn1crypto.tsp.TimeStampResp.load(…)`), touching `.native` of the whole structure (which
/// decodes every nested value), checks that asn1crypto re-encodes it to the same bytes, and
/// prints some fields as `key=value` lines: status, failure info, and for granted responses
/// the TSTInfo fields.
pub fn asn1crypto_parse(path: &Path) -> String {
    const SCRIPT: &str = r#"
import sys
from asn1crypto import cms, core, tsp
data = open(sys.argv[1], 'rb').read()
# asn1crypto 1.5.1 declares TimeStampResp.timeStampToken as mandatory, so it cannot read a
# rejection (which has none); read those with the same fields, the token OPTIONAL as in RFC 3161.
class RejectionResp(core.Sequence):
    _fields = [('status', tsp.PKIStatusInfo),
               ('time_stamp_token', cms.ContentInfo, {'optional': True})]
outer = core.Sequence.load(data).contents
has_token = len(outer) > len(tsp.PKIStatusInfo.load(outer, strict=False).dump())
resp = (tsp.TimeStampResp if has_token else RejectionResp).load(data)
native = resp.native
assert resp.dump(force=True) == data, "asn1crypto re-encoding differs"
status = native['status']
print('status=%s' % status['status'])
print('fail_info=%s' % sorted(status['fail_info'] or []))
token = native['time_stamp_token']
if token is not None:
    sd = token['content']
    tst = sd['encap_content_info']['content']
    print('version=%s' % sd['version'])
    print('policy=%s' % tst['policy'])
    print('serial=%x' % tst['serial_number'])
    print('gen_time=%s' % tst['gen_time'].isoformat())
    print('nonce=%s' % (None if tst['nonce'] is None else '%x' % tst['nonce']))
    print('ordering=%s' % tst['ordering'])
    print('accuracy=%s' % tst['accuracy'])
    print('certs=%d' % len(sd['certificates'] or []))
    si = sd['signer_infos'][0]
    print('signed_attrs=%s' % ','.join(a['type'] for a in si['signed_attrs']))
    print('sig_alg=%s' % si['signature_algorithm']['algorithm'])
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "asn1crypto failed on {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small deterministic PRNG (xorshift64*) so that the robustness tests are reproducible
/// without a `rand` dependency.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
