//! The dev hierarchy and corpus, checked with independent tools: `openssl x509/verify/crl`
//! for the certificates, and `check_corpus.py` (Python `cryptography`, `asn1crypto`,
//! `openssl cms -verify`, `openssl ts -verify`) for every document against its manifest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hozon_devkit::corpus::{
    read_manifest, write_corpus, Corpus, CorpusSpec, Format, SignatureFormat, Verdict,
};
use hozon_devkit::pki::{Role, TestPki};
use hozon_verifier::hpki::CertificateKind;

/// The seed of the shared hierarchy (any value works; this one is only fixed so that a
/// failure can be replayed with `hozon dev pki --seed 20261129`).
const PKI_SEED: u64 = 20261129;

struct Shared {
    pki: TestPki,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(PKI_SEED).unwrap();
        let dir = tmp.path().join("pki");
        pki.write(&dir).unwrap();
        Shared {
            pki,
            dir,
            _tmp: tmp,
        }
    })
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn hierarchy_round_trips_through_files() {
    let s = shared();
    let loaded = TestPki::load(&s.dir).unwrap();
    assert_eq!(loaded.seed, PKI_SEED);
    assert_eq!(loaded.entities.len(), s.pki.entities.len());
    for (a, b) in loaded.entities.iter().zip(&s.pki.entities) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.cert, b.cert, "{}", a.id);
        assert_eq!(a.key.pkcs8_der(), b.key.pkcs8_der(), "{}", a.id);
        assert_eq!(a.signer, b.signer, "{}", a.id);
    }
    assert_eq!(loaded.crls.len(), 5);
}

/// The same seed gives byte-identical certificates; another seed gives other keys.
#[test]
fn hierarchy_is_deterministic() {
    let s = shared();
    let again = TestPki::generate(PKI_SEED).unwrap();
    for (a, b) in again.entities.iter().zip(&s.pki.entities) {
        assert_eq!(a.cert, b.cert, "{}", a.id);
    }
    assert_eq!(again.crls[2].der, s.pki.crls[2].der);
}

#[test]
fn openssl_shows_and_verifies_every_certificate() {
    let s = shared();
    let roots = s.dir.join("roots.pem");
    let mut bundle = String::new();
    for root in ["root", "tsa-root"] {
        bundle += &std::fs::read_to_string(s.dir.join(format!("trust/{root}.pem"))).unwrap();
    }
    std::fs::write(&roots, bundle).unwrap();

    for e in &s.pki.entities {
        let cert = s.dir.join(format!("certs/{}.pem", e.id));
        let (ok, text) = openssl(&[
            "x509",
            "-in",
            p(&cert),
            "-noout",
            "-text",
            "-nameopt",
            "utf8",
        ]);
        assert!(ok, "{}: {text}", e.id);
        assert!(
            text.contains(&e.common_name),
            "{}: CN not shown:\n{text}",
            e.id
        );
        match e.role {
            Role::Signer => {
                assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
                assert!(text.contains("Non Repudiation"), "{text}");
                assert!(
                    text.contains("X509v3 Certificate Policies: critical"),
                    "{text}"
                );
                assert!(text.contains("1.2.392.100495.1.5.1.1"), "{text}");
                let remote = text.contains("1.3.6.1.4.1.32473.17090.2");
                let profile = e.signer.as_ref().unwrap();
                assert_eq!(remote, profile.kind == CertificateKind::Remote, "{}", e.id);
                // openssl 3.0 prints subjectDirectoryAttributes as a hex dump: the hcRole
                // OID 1.0.17090.0.1 is 28 81 85 42 00 01. Check the DER instead.
                assert!(
                    e.cert
                        .windows(8)
                        .any(|w| w == [0x06, 0x06, 0x28, 0x81, 0x85, 0x42, 0x00, 0x01]),
                    "{}: hcRole attribute missing",
                    e.id
                );
                assert!(
                    text.contains("RSA Public-Key: (2048 bit)")
                        || text.contains("Public-Key: (2048 bit)")
                );
            }
            Role::Tsa => {
                assert!(
                    text.contains("X509v3 Extended Key Usage: critical"),
                    "{text}"
                );
                assert!(text.contains("Time Stamping"), "{text}");
            }
            Role::Root | Role::IssuingCa => {
                assert!(text.contains("CA:TRUE"), "{text}");
            }
        }
        if e.id == "root" {
            assert!(text.contains("Public-Key: (4096 bit)"), "{text}");
            assert!(text.contains("Test HPKI Root CA V2"));
        }
        if e.id == "ca-sha1" || e.issuer == "ca-sha1" {
            assert!(text.contains("sha1WithRSAEncryption"), "{}: {text}", e.id);
        } else {
            assert!(text.contains("sha256WithRSAEncryption"), "{}: {text}", e.id);
        }

        // The chain verifies at a time inside the certificate's validity. SHA-1 signatures
        // need security level 0 in OpenSSL 3.
        let chain = s.pki.chain(&e.id).unwrap();
        let untrusted = s.dir.join(format!("{}-untrusted.pem", e.id));
        let mut text_chain = String::new();
        for der in chain.iter().skip(1) {
            text_chain += &pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
        }
        if text_chain.is_empty() {
            text_chain = std::fs::read_to_string(&roots).unwrap();
        }
        std::fs::write(&untrusted, text_chain).unwrap();
        let at = (e.not_before.timestamp() + 86_400).to_string();
        let (ok, text) = openssl(&[
            "verify",
            "-auth_level",
            "0",
            "-attime",
            &at,
            "-CAfile",
            p(&roots),
            "-untrusted",
            p(&untrusted),
            p(&cert),
        ]);
        assert!(ok && text.contains(": OK"), "{}: {text}", e.id);
    }
}

#[test]
fn crls_verify_and_revoke_exactly_the_revoked_signer() {
    let s = shared();
    for c in &s.pki.crls {
        let (ok, text) = openssl(&[
            "crl",
            "-in",
            p(&s.dir.join(format!("crl/{}.crl.pem", c.issuer))),
            "-noout",
            "-CAfile",
            p(&s.dir.join(format!("certs/{}.pem", c.issuer))),
        ]);
        assert!(ok && text.contains("verify OK"), "{}: {text}", c.issuer);
    }
    let roots = s.dir.join("trust/root.pem");
    let ca = s.dir.join("certs/ca-sha256.pem");
    let crl = s.dir.join("crl/ca-sha256.crl.pem");
    let at = "1793491200"; // 2026-11-01, after the CRL's thisUpdate
    for (id, revoked) in [("doctor-revoked", true), ("doctor-01", false)] {
        let (ok, text) = openssl(&[
            "verify",
            "-crl_check",
            "-attime",
            at,
            "-CAfile",
            p(&roots),
            "-untrusted",
            p(&ca),
            "-CRLfile",
            p(&crl),
            p(&s.dir.join(format!("certs/{id}.pem"))),
        ]);
        assert_eq!(ok, !revoked, "{id}: {text}");
        if revoked {
            assert!(text.contains("certificate revoked"), "{text}");
        }
    }
}

#[test]
fn corpus_matches_its_manifest_under_an_independent_check() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("corpus");
    let spec = CorpusSpec {
        count: 150,
        seed: 5,
        format: Format::Mixed,
    };
    let summary = write_corpus(&s.pki, spec, &out, |_| {}).unwrap();
    assert_eq!(summary.good, 150);
    assert_eq!(summary.bad, 14, "7 bad kinds in 2 formats");

    let manifest = read_manifest(&out).unwrap();
    assert_eq!(manifest.len(), 164);
    let good: Vec<_> = manifest
        .iter()
        .filter(|m| m.expect == Verdict::Valid)
        .collect();
    assert_eq!(good.len(), 150);
    // The mix the module documentation promises.
    let count =
        |f: &dyn Fn(&&&hozon_devkit::corpus::ManifestEntry) -> bool| good.iter().filter(f).count();
    assert!(count(&|m| m.algorithm == "sha1WithRSAEncryption") > 3);
    assert!(count(&|m| m.format == SignatureFormat::Jose) > 40);
    assert!(count(&|m| m.format == SignatureFormat::Cms) > 40);
    assert!(count(&|m| m.signer_kind == "remote") > 10);
    assert!(count(&|m| m.doc_type.as_deref() == Some("referral")) > 10);
    for m in &good {
        let year = m.signing_time.format("%Y").to_string();
        if m.algorithm == "sha1WithRSAEncryption" {
            assert!(("2015".."2020").contains(&year.as_str()), "{m:?}");
        } else {
            assert!(("2023".."2027").contains(&year.as_str()), "{m:?}");
        }
    }

    // The script is compiled into the test binary (see `interop/ers_tool.rs`).
    let output = Command::new("python3")
        .arg("-c")
        .arg(include_str!("check_corpus.py"))
        .arg(&s.dir)
        .arg(&out)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("checked 164 documents, 0 mismatches"),
        "{text}"
    );
}

#[test]
fn corpus_documents_are_deterministic_and_sized_like_real_ones() {
    let s = shared();
    let spec = CorpusSpec {
        count: 1000,
        seed: 99,
        format: Format::Mixed,
    };
    let a = Corpus::new(&s.pki, spec).unwrap();
    let b = Corpus::new(&s.pki, spec).unwrap();
    for i in [0, 1, 2, 3, 500, 999] {
        let x = a.good(i).unwrap();
        assert_eq!(x.bytes, b.good(i).unwrap().bytes, "document {i}");
        assert_eq!(x.side_token, b.good(i).unwrap().side_token);
        // The Bundle itself (the signed JCS bytes) is 3–8 KB, as real e-prescriptions and
        // referral letters are; the signature with its certificates and timestamp token
        // adds about 6 KB of base64.
        let bundle: serde_json::Value = serde_json::from_slice(&x.bytes).unwrap();
        let unsigned = hozon_devkit::fhir::signed_bytes(&bundle).len();
        assert!(
            (3_000..=8_000).contains(&unsigned),
            "document {i}: {unsigned} bytes"
        );
        assert!(
            x.bytes.len() < 16_000,
            "document {i}: {} bytes",
            x.bytes.len()
        );
    }
    let other = Corpus::new(&s.pki, CorpusSpec { seed: 100, ..spec }).unwrap();
    assert_ne!(a.good(0).unwrap().bytes, other.good(0).unwrap().bytes);
}

#[test]
fn single_format_corpora_use_only_that_format() {
    let s = shared();
    for (format, want) in [
        (Format::Jose, SignatureFormat::Jose),
        (Format::Cms, SignatureFormat::Cms),
    ] {
        let c = Corpus::new(
            &s.pki,
            CorpusSpec {
                count: 30,
                seed: 1,
                format,
            },
        )
        .unwrap();
        for i in 0..30 {
            let d = c.good(i).unwrap();
            // Legacy SHA-1 documents are CMS whatever the format: JOSE has no RSA-SHA1.
            if d.entry.algorithm != "sha1WithRSAEncryption" {
                assert_eq!(d.entry.format, want);
            }
        }
        assert!(c.bad().unwrap().iter().all(|d| d.entry.format == want));
    }
}

#[test]
fn corpus_refuses_a_non_empty_directory() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep"), b"x").unwrap();
    let err = write_corpus(
        &s.pki,
        CorpusSpec {
            count: 1,
            seed: 1,
            format: Format::Cms,
        },
        tmp.path(),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(std::fs::read(tmp.path().join("keep")).unwrap(), b"x");
}
