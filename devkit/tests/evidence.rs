//! Evidence records built from the verifier's pure pieces (hash trees, ERS types) with tokens
//! from the dev hierarchy's TSAs, then checked with `check_evidence`: the initial timestamp,
//! a timestamp renewal, a hash-tree renewal to SHA-512, and tampering with each part.

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
    docs: Vec<Vec<u8>>,
    /// The record of document 2 after initial stamping, timestamp renewal and hash-tree
    /// renewal, DER.
    full: Vec<u8>,
    /// The record after the first stamp only.
    initial: Vec<u8>,
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

fn fixture() -> Fixture {
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
    Fixture {
        docs,
        full,
        initial,
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
