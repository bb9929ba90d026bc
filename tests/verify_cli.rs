//! `hozon verify document` and `hozon verify token` through the binary, on a dev hierarchy
//! and corpus made by `hozon dev`, with an evidence record assembled from the verifier's
//! pieces and a dev TSA.

#[path = "support/cli.rs"]
mod cli;

use chrono::{TimeZone, Utc};
use cli::{hozon, s, text};
use hozon_devkit::pki::TestPki;
use hozon_devkit::sign::Stamper;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::ers::{evidence_record, ArchiveTimeStamp};
use hozon_verifier::hashtree::HashTree;

#[test]
fn documents_evidence_and_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    let corpus = tmp.path().join("corpus");
    assert!(hozon(&["dev", "pki", "--out", s(&pki_dir), "--seed", "5"])
        .status
        .success());
    let out = hozon(&[
        "dev",
        "corpus",
        "--pki",
        s(&pki_dir),
        "--count",
        "30",
        "--out",
        s(&corpus),
        "--seed",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let trust = pki_dir.join("trust");
    let crl = pki_dir.join("crl");
    let common = ["--trust", s(&trust), "--crl", s(&crl)];
    // `hozon verify document ARGS --trust … --crl …`
    let verify_doc = |args: &[&str]| {
        let mut all = vec!["verify", "document"];
        all.extend_from_slice(args);
        all.extend(common);
        hozon(&all)
    };

    // The manifest says which documents are current and which were signed with SHA-1.
    let manifest: Vec<serde_json::Value> = std::fs::read_to_string(corpus.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pick = |sha1: bool| {
        manifest
            .iter()
            .filter(|m| m["expect"] == "valid")
            .find(|m| (m["algorithm"] == "sha1WithRSAEncryption") == sha1)
            .map(|m| corpus.join(m["file"].as_str().unwrap()))
    };

    // A good document: valid, with the signer, the timestamp and the path in the report.
    let doc = pick(false).unwrap();
    let out = verify_doc(&[s(&doc)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.starts_with("VALID: unchanged since 20"), "{t}");
    assert!(t.contains("Signature timestamp"), "{t}");
    assert!(t.contains("Medical Doctor"), "{t}");

    // JSON and HTML.
    let out = verify_doc(&[s(&doc), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"]["result"], "valid");
    let out = verify_doc(&[s(&doc), "--format", "html"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("<!DOCTYPE html>"));

    // A bad document: exit 1, the code named.
    let bad = corpus.join("bad/revoked-cms.json");
    let out = verify_doc(&[s(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[certificate-revoked]"),
        "{}",
        text(&out)
    );

    // An evidence record over three documents, the first stamped in 2024 by TSA 1, built
    // with the verifier's pieces; and an arbitrary file under the same record.
    let pki = TestPki::load(&pki_dir).unwrap();
    let stamper = Stamper::new(pki.tsa("tsa-1").unwrap());
    let other = tmp.path().join("scan.pdf");
    std::fs::write(&other, b"%PDF-1.7 not really").unwrap();
    let files = [
        doc.clone(),
        pick(true).unwrap_or_else(|| doc.clone()),
        other.clone(),
    ];
    let d = DigestAlgorithm::Sha256;
    let leaves: Vec<Vec<u8>> = files
        .iter()
        .map(|f| d.digest(&std::fs::read(f).unwrap()))
        .collect();
    let tree = HashTree::build(d, &leaves).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let token = stamper.stamp(tree.root(), at, &[9]).unwrap();
    for (i, f) in files.iter().enumerate() {
        let ats = ArchiveTimeStamp::new(d, tree.reduced(i).unwrap(), &token).unwrap();
        let der = rasn::der::encode(&evidence_record(vec![vec![ats]])).unwrap();
        std::fs::write(f.with_extension("ers"), der).unwrap();
    }
    let ers = doc.with_extension("ers");
    let out = verify_doc(&[s(&doc), "--evidence", s(&ers)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("Archive timestamp 1 (first timestamp)"), "{t}");

    let ers_other = other.with_extension("ers");
    let out = verify_doc(&[s(&other), "--evidence", s(&ers_other)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("only the evidence record is checked"), "{t}");
    assert!(t.contains("unchanged since 2026-11-01T00:00:00Z"), "{t}");
    // The record of another file does not fit.
    let out = verify_doc(&[s(&other), "--evidence", s(&ers)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Verified as of mid-2028, RSA PKCS#1 v1.5 ends within the policy's year (2029-01-01).
    let out = verify_doc(&[
        s(&doc),
        "--evidence",
        s(&ers),
        "--at",
        "2028-06-01T00:00:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("RENEWAL DUE by 2029-01-01: rsa-pkcs1"), "{t}");
    // Under the BSI profile PKCS#1 v1.5 ended on 2025-12-31, before that same evidence step
    // was covered (now), so the record no longer protects the document.
    let out = verify_doc(&[s(&doc), "--evidence", s(&ers), "--policy", "bsi"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("[algorithm-expired]"), "{t}");

    // A document signed with SHA-1 in 2015–2019: SHA-1 had ended in 2012 under ETSI.
    if let Some(legacy) = pick(true) {
        let out = verify_doc(&[s(&legacy)]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(
            t.contains("[algorithm-expired]") && t.contains("sha1 ended on 2012-08-01"),
            "{t}"
        );
    }

    // A bare token.
    let tsr = tmp.path().join("scan.tsr");
    std::fs::write(&tsr, &token).unwrap();
    let root_hash = tmp.path().join("root");
    std::fs::write(&root_hash, b"not the root").unwrap();
    let out = hozon(&["verify", "token", s(&tsr), "--trust", s(&trust)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Test TSA 1"), "{}", text(&out));
    let out = hozon(&[
        "verify",
        "token",
        s(&tsr),
        "--data",
        s(&root_hash),
        "--trust",
        s(&trust),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Usage errors: no trust anchors given, or none found.
    assert_eq!(
        hozon(&["verify", "document", s(&doc)]).status.code(),
        Some(2)
    );
    let out = hozon(&[
        "verify",
        "document",
        s(&doc),
        "--trust",
        s(&corpus.join("bad")),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
