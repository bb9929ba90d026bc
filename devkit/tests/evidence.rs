//! Evidence records built from the verifier's pure pieces (hash trees, ERS types) with tokens
//! from the dev hierarchy's TSAs, then checked with `check_evidence`: the initial timestamp,
//! a timestamp renewal, a hash-tree renewal to SHA-512, and tampering with each part.
//!
//! Interop with Bouncy Castle 1.72 ERS (Debian libbcpkix-java), both ways, through
//! `interop/ErsTool.java`: BC verifies hozon's records at every stage, and hozon verifies
//! records BC made (with timestamps from `openssl ts -reply` signing with the dev TSA key)
//! and then renewed, timestamp and hash tree.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use hozon_devkit::pki::TestPki;
use hozon_devkit::sign::Stamper;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::ers::{
    evidence_record, hash_tree_renewal_leaf, timestamp_renewal_hashes, ArchiveTimeStamp,
    ArchiveTimeStampSequence,
};
use hozon_verifier::evidence::{check_evidence, EvidenceError, StepKind};
use hozon_verifier::hashtree::HashTree;

struct Fixture {
    pki: TestPki,
    docs: Vec<Vec<u8>>,
    /// The record of document 2 after initial stamping, timestamp renewal and hash-tree
    /// renewal, DER.
    full: Vec<u8>,
    /// The record after the first stamp only.
    initial: Vec<u8>,
    /// The record after the timestamp renewal.
    renewed: Vec<u8>,
    /// The record of a batch of one document (no reduced hash tree).
    single: Vec<u8>,
}

fn stamp(
    stamper: &Stamper,
    digest: DigestAlgorithm,
    imprint: &[u8],
    year: i32,
    serial: u8,
) -> Vec<u8> {
    // The dev stamper takes SHA-256 imprints only; for other trees re-stamp via the TSA core.
    assert_eq!(digest.output_len(), imprint.len());
    let at = Utc.with_ymd_and_hms(year, 3, 1, 9, 0, 0).unwrap();
    stamper.stamp_with(digest, imprint, at, &[serial]).unwrap()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    // Seed 41 is arbitrary; the hierarchy is deterministic from it.
    let pki = TestPki::generate(41).unwrap();
    let tsa1 = Stamper::new(pki.tsa("tsa-1").unwrap());
    let tsa2 = Stamper::new(pki.tsa("tsa-2").unwrap());
    let docs: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("document {i}").into_bytes())
        .collect();

    // 1. Initial: one SHA-256 tree over the five documents, one token for its root.
    let d1 = DigestAlgorithm::Sha256;
    let leaves: Vec<Vec<u8>> = docs.iter().map(|d| d1.digest(d)).collect();
    let tree = HashTree::build(d1, &leaves).unwrap();
    let token = stamp(&tsa1, d1, tree.root(), 2016, 1);
    let ats0 = ArchiveTimeStamp::new(d1, tree.reduced(2).unwrap(), &token).unwrap();
    let initial = rasn::der::encode(&evidence_record(vec![vec![ats0.clone()]])).unwrap();

    // 2. Timestamp renewal by TSA 2: a tree over the hashes of every earlier timeStamp (one
    //    here, so no reduced tree: the token covers it directly).
    let chain = vec![ats0];
    let hashes = timestamp_renewal_hashes(d1, &chain).unwrap();
    let renewal_tree = HashTree::build(d1, &hashes).unwrap();
    let token = stamp(&tsa2, d1, renewal_tree.root(), 2025, 2);
    let ats1 = ArchiveTimeStamp::new(d1, renewal_tree.reduced(0).unwrap(), &token).unwrap();
    let sequence: ArchiveTimeStampSequence = vec![vec![chain[0].clone(), ats1]];
    let renewed = rasn::der::encode(&evidence_record(sequence.clone())).unwrap();

    // 3. Hash-tree renewal to SHA-512: every document's new leaf covers its SHA-512 hash and
    //    the sequence so far (the same sequence for all five: they share the chain).
    let d2 = DigestAlgorithm::Sha512;
    let leaves: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| hash_tree_renewal_leaf(d2, &d2.digest(d), &sequence).unwrap())
        .collect();
    let tree = HashTree::build(d2, &leaves).unwrap();
    let token = stamp(&tsa2, d2, tree.root(), 2026, 3);
    let ats2 = ArchiveTimeStamp::new(d2, tree.reduced(2).unwrap(), &token).unwrap();
    let mut full_seq = sequence;
    full_seq.push(vec![ats2]);
    let full = rasn::der::encode(&evidence_record(full_seq)).unwrap();

    // A batch of one: the token covers the document's hash directly.
    let h = d1.digest(&docs[4]);
    let token = stamp(&tsa1, d1, &h, 2024, 4);
    let one = ArchiveTimeStamp::new(d1, vec![], &token).unwrap();
    let single = rasn::der::encode(&evidence_record(vec![vec![one]])).unwrap();
    Fixture {
        pki,
        docs,
        full,
        initial,
        renewed,
        single,
    }
}

#[test]
fn evidence_through_both_renewals() {
    let f = fixture();
    let steps = check_evidence(&f.initial, &f.docs[2], &[]).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].kind, StepKind::Initial);
    assert_eq!(
        steps[0].tree_depth, 3,
        "five leaves: [leaf, sibling] and two more levels"
    );

    let steps = check_evidence(&f.full, &f.docs[2], &[]).unwrap();
    let kinds: Vec<StepKind> = steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::Initial,
            StepKind::TimestampRenewal,
            StepKind::HashTreeRenewal { sorted: false }
        ]
    );
    assert_eq!(steps[2].digest, DigestAlgorithm::Sha512);
    assert!(steps[0].token.tsa_subject.contains("Test TSA 1"));
    assert!(steps[1].token.tsa_subject.contains("Test TSA 2"));
    assert!(steps.iter().all(|s| s.leniency.is_empty()));

    // Another document of the batch is not covered by document 2's record.
    assert!(matches!(
        check_evidence(&f.full, &f.docs[1], &[]),
        Err(EvidenceError::Tree { .. } | EvidenceError::NotCovered { .. })
    ));
}

/// Changing any single byte of the data or of the record is caught: by the DER decoder, the
/// hash tree, the token's signature or the imprint comparison. Never accepted, never a panic.
#[test]
fn every_tampered_byte_is_caught() {
    let f = fixture();
    let mut data = f.docs[2].clone();
    data[0] ^= 1;
    assert!(check_evidence(&f.full, &data, &[]).is_err());
    // Every byte position of the record, flipped in one bit.
    for pos in 0..f.full.len() {
        let mut bad = f.full.clone();
        bad[pos] ^= 0x01;
        assert!(
            check_evidence(&bad, &f.docs[2], &[]).is_err(),
            "flipping byte {pos} of {} went unnoticed",
            f.full.len()
        );
    }
}

#[test]
fn a_batch_of_one_has_no_reduced_tree() {
    let f = fixture();
    let steps = check_evidence(&f.single, &f.docs[4], &[]).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].tree_depth, 0);
    assert!(check_evidence(&f.single, &f.docs[3], &[]).is_err());
}

// ---------------------------------------------------------------------------------------
// Bouncy Castle
// ---------------------------------------------------------------------------------------

#[path = "interop/ers_tool.rs"]
mod ers;
use ers::ers_tool;

struct Bc {
    dir: tempfile::TempDir,
    cnf: PathBuf,
}

/// Writes an `openssl ts -reply` configuration signing with the dev hierarchy's TSA 1.
fn bc() -> &'static Bc {
    static BC: OnceLock<Bc> = OnceLock::new();
    BC.get_or_init(|| {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        f.pki.write(&pki_dir).unwrap();
        std::fs::write(dir.path().join("serial"), "01\n").unwrap();
        let cnf = dir.path().join("tsa.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[ tsa ]\ndefault_tsa = hozon_dev\n\n[ hozon_dev ]\n\
                 serial = {serial}\ncrypto_device = builtin\n\
                 signer_cert = {cert}\nsigner_key = {key}\nsigner_digest = sha256\n\
                 default_policy = 1.3.6.1.4.1.32473.3161.1\n\
                 digests = sha256, sha384, sha512\naccuracy = secs:1\n\
                 ess_cert_id_alg = sha256\n",
                serial = dir.path().join("serial").display(),
                cert = pki_dir.join("certs/tsa-1.pem").display(),
                key = pki_dir.join("keys/tsa-1.key.pem").display(),
            ),
        )
        .unwrap();
        Bc { dir, cnf }
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn bouncy_castle_verifies_hozon_records() {
    let f = fixture();
    let dir = bc().dir.path();
    let data = write(dir, "doc2", &f.docs[2]);
    for (name, record) in [
        ("initial", &f.initial),
        ("timestamp-renewed", &f.renewed),
        ("hash-renewed", &f.full),
    ] {
        let path = write(dir, &format!("{name}.ers"), record);
        let (ok, text) = ers_tool(&["verify", &path, &data]);
        assert!(ok, "Bouncy Castle refused hozon's {name} record: {text}");
        // And it is not a yes-sayer: another document is refused.
        let other = write(dir, "doc1", &f.docs[1]);
        let (ok, text) = ers_tool(&["verify", &path, &other]);
        assert!(
            !ok,
            "Bouncy Castle accepted the wrong document for {name}: {text}"
        );
    }
    let single = write(dir, "single.ers", &f.single);
    let doc4 = write(dir, "doc4", &f.docs[4]);
    let (ok, text) = ers_tool(&["verify", &single, &doc4]);
    assert!(ok, "Bouncy Castle refused a batch of one: {text}");
}

#[test]
fn hozon_verifies_bouncy_castle_records() {
    let f = fixture();
    let b = bc();
    let out = b.dir.path().join("bc-made");
    std::fs::create_dir_all(&out).unwrap();
    let files: Vec<String> = (0..3)
        .map(|i| write(b.dir.path(), &format!("bc-doc{i}"), &f.docs[i]))
        .collect();
    let mut args = vec!["make", b.cnf.to_str().unwrap(), out.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let (ok, text) = ers_tool(&args);
    assert!(ok, "{text}");

    for (i, doc) in f.docs.iter().take(3).enumerate() {
        let record = std::fs::read(out.join(format!("{i}.ers"))).unwrap();
        let steps = check_evidence(&record, doc, &[])
            .unwrap_or_else(|e| panic!("hozon refused Bouncy Castle's record {i}: {e}"));
        assert_eq!(steps.len(), 1);
        assert!(check_evidence(&record, &f.docs[4], &[]).is_err());
    }

    // Bouncy Castle renews document 0's record: timestamp, then hash tree (SHA-512).
    let rec0 = out.join("0.ers");
    let ts = out.join("0-ts.ers");
    let (ok, text) = ers_tool(&[
        "renew-ts",
        b.cnf.to_str().unwrap(),
        rec0.to_str().unwrap(),
        ts.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let steps = check_evidence(&std::fs::read(&ts).unwrap(), &f.docs[0], &[])
        .unwrap_or_else(|e| panic!("hozon refused Bouncy Castle's timestamp renewal: {e}"));
    assert_eq!(steps[1].kind, StepKind::TimestampRenewal);

    let hr = out.join("0-hash.ers");
    let (ok, text) = ers_tool(&[
        "renew-hash",
        b.cnf.to_str().unwrap(),
        ts.to_str().unwrap(),
        &files[0],
        hr.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let steps = check_evidence(&std::fs::read(&hr).unwrap(), &f.docs[0], &[])
        .unwrap_or_else(|e| panic!("hozon refused Bouncy Castle's hash-tree renewal: {e}"));
    assert!(matches!(steps[2].kind, StepKind::HashTreeRenewal { .. }));
    assert_eq!(steps[2].digest, DigestAlgorithm::Sha512);
    println!(
        "Bouncy Castle's hash-tree renewal: {:?}, leniency {:?}",
        steps[2].kind,
        steps.iter().map(|s| &s.leniency).collect::<Vec<_>>()
    );
}
