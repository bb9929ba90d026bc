//! The archive's whole life on the dev hierarchy, in one process: ingest (good documents,
//! refused ones, duplicates), sealing into several batches, evidence records checked by the
//! verifier after every stage, two timestamp renewals, an interrupted and resumed SHA-256 →
//! SHA-512 hash-tree renewal, the renewal plan, and Bouncy Castle 1.72 verifying the exported
//! records after the renewals.
//!
//! Timestamps come from the dev hierarchy's TSA keys through the TSA core (`Stamper`) at the
//! current time, and every token goes through the archive's own token check.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use hozon_archiver::client::{check_token, Stamp, StampError, Timestamper, TokenCheck};
use hozon_archiver::ingest::{prepare, Mode, Prepared, Stored, Trust};
use hozon_archiver::model::{DocId, DocStatus, JobState, Jobs, Objects};
use hozon_archiver::renew::RenewalKind;
use hozon_archiver::seal::SealWhen;
use hozon_archiver::{Archive, ArchiveError, Settings};
use hozon_devkit::corpus::{Corpus, CorpusSpec, Format, GeneratedDocument};
use hozon_devkit::pki::TestPki;
use hozon_devkit::sign::Stamper;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::document::UsagePolicy;
use hozon_verifier::evidence::{check_evidence, StepKind};
use hozon_verifier::path::TrustAnchors;
use hozon_verifier::policy::Policy;
use hozon_verifier::report::{verify, Verdict, VerifyInput};

#[path = "../../devkit/tests/interop/ers_tool.rs"]
mod ers;

/// A TSA of the dev hierarchy, stamping now.
struct DevTsa {
    stamper: Stamper,
    check: TokenCheck,
    serial: AtomicU64,
    name: &'static str,
}

impl Timestamper for DevTsa {
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Stamp, StampError> {
        let serial = self.serial.fetch_add(1, Ordering::SeqCst).to_be_bytes();
        let der = self
            .stamper
            .stamp_with(digest, imprint, chrono::Utc::now(), &serial)
            .map_err(|e| StampError::AllFailed(vec![e.to_string()]))?;
        check_token(&der, digest, imprint, None, &self.check, self.name)
    }
}

struct Fixture {
    pki: TestPki,
    trust: Trust,
    roots: Vec<Vec<u8>>,
    good: Vec<GeneratedDocument>,
    bad: Vec<GeneratedDocument>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Seeds 23 (hierarchy) and 5 (documents) are arbitrary and fixed.
        let pki = TestPki::generate(23).unwrap();
        let corpus = Corpus::new(
            &pki,
            CorpusSpec {
                count: 40,
                seed: 5,
                format: Format::Mixed,
            },
        )
        .unwrap();
        let good = (0..40).map(|i| corpus.good(i).unwrap()).collect();
        let bad = corpus.bad().unwrap();
        let roots: Vec<Vec<u8>> = pki.roots().iter().map(|r| r.to_vec()).collect();
        let trust = Trust {
            anchors: TrustAnchors::new(&roots).unwrap(),
            extra_certs: Vec::new(),
            crls: pki.crls.iter().map(|c| c.der.clone()).collect(),
            usage: UsagePolicy::default(),
        };
        Fixture {
            pki,
            trust,
            roots,
            good,
            bad,
        }
    })
}

fn tsa(id: &'static str) -> DevTsa {
    let f = fixture();
    DevTsa {
        stamper: Stamper::new(f.pki.tsa(id).unwrap()),
        check: TokenCheck {
            anchors: Arc::new(f.trust.anchors.clone()),
            extra_certs: Arc::new(Vec::new()),
            max_skew: Some(Duration::from_secs(60)),
        },
        serial: AtomicU64::new(1),
        name: id,
    }
}

fn prepared(doc: &GeneratedDocument, mode: Mode) -> Result<Prepared, String> {
    prepare(
        doc.bytes.clone(),
        doc.side_token.clone(),
        mode,
        &fixture().trust,
        SystemTime::now(),
    )
    .map_err(|r| r.code)
}

/// A new archive in a temporary directory (removed when the directory is dropped).
fn fresh_archive() -> (tempfile::TempDir, Archive) {
    let tmp = tempfile::tempdir().unwrap();
    let archive = Archive::open(tmp.path().join("archive")).unwrap();
    (tmp, archive)
}

/// Every good document of the fixture, prepared for ingest as a verified document.
fn good_prepared() -> Vec<Prepared> {
    fixture()
        .good
        .iter()
        .map(|d| prepared(d, Mode::default()).unwrap())
        .collect()
}

/// Seals everything pending now, under TSA 1 and the default settings.
fn seal_now(archive: &Archive) {
    archive
        .seal(
            &tsa("tsa-1"),
            &Settings::default(),
            SealWhen::Force,
            SystemTime::now(),
        )
        .unwrap();
}

/// Every good document's evidence is checked structurally and by the full report; a changed
/// document is not covered.
fn check_all(archive: &Archive, kinds: &[StepKind]) -> Vec<Vec<u8>> {
    let f = fixture();
    let mut reader = hozon_archiver::evidence::Reader::new(archive.store());
    let mut records = Vec::new();
    for doc in &f.good {
        let id = hozon_archiver::ingest::sha256(&doc.bytes);
        let ers = reader.evidence_record(&id).unwrap();
        let steps = check_evidence(&ers, &doc.bytes, &[]).unwrap();
        let got: Vec<StepKind> = steps.iter().map(|s| s.kind).collect();
        assert_eq!(got, kinds);
        let mut changed = doc.bytes.clone();
        changed[10] ^= 1;
        assert!(check_evidence(&ers, &changed, &[]).is_err());
        let report = verify(
            &doc.bytes,
            &VerifyInput {
                evidence: Some(&ers),
                anchors: &f.trust.anchors,
                extra_certs: &[],
                crls: &f.trust.crls,
                side_token: doc.side_token.as_deref(),
                usage: &UsagePolicy::default(),
                remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
                now: SystemTime::now(),
                policy: &Policy::etsi(),
            },
        );
        // SHA-1-era signatures (HPKI's closed CAs) are kept but fail the ETSI policy: SHA-1
        // ended in 2012. Everything else is valid.
        match &report.verdict {
            Verdict::Valid { .. } => assert_ne!(doc.entry.algorithm, "sha1WithRSAEncryption"),
            Verdict::Invalid { step, code, .. } => {
                assert_eq!(
                    doc.entry.algorithm,
                    "sha1WithRSAEncryption",
                    "{}",
                    report.to_text()
                );
                assert_eq!(
                    (step.as_str(), code.as_str()),
                    ("Signature", "algorithm-expired")
                );
            }
        }
        records.push(ers);
    }
    records
}

#[test]
fn ingest_seal_renew_export_through_the_whole_life() {
    let f = fixture();
    let (tmp, archive) = fresh_archive();

    // Ingest: every good document verifies and is stored; a second ingest is a duplicate.
    let docs = good_prepared();
    let stored = archive.commit(docs.clone()).unwrap();
    assert!(stored
        .iter()
        .all(|s| *s == Stored::New(DocStatus::Verified)));
    assert!(archive
        .commit(docs[..3].to_vec())
        .unwrap()
        .iter()
        .all(|s| *s == Stored::Duplicate));

    // Bad documents are refused with the manifest's code, or kept as unverified on request.
    for doc in &f.bad {
        let code = prepared(doc, Mode::default()).unwrap_err();
        assert_eq!(Some(code.as_str()), doc.entry.error.as_deref());
    }
    let kept = prepared(
        &f.bad[0],
        Mode {
            keep_unverified: true,
            ..Mode::default()
        },
    )
    .unwrap();
    assert_eq!(kept.record.status, DocStatus::Unverified);

    // Sealing: batches of 16 documents, forced at the end; nothing sealed twice.
    let tsa2 = tsa("tsa-2");
    let settings = Settings {
        batch_size: 16,
        ..Settings::default()
    };
    let sealed = archive
        .seal(&tsa2, &settings, SealWhen::Due, SystemTime::now())
        .unwrap();
    assert_eq!(
        sealed.iter().map(|s| s.documents).collect::<Vec<_>>(),
        [16, 16]
    );
    let rest = archive
        .seal(&tsa2, &settings, SealWhen::Force, SystemTime::now())
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].documents, 8);
    assert!(archive
        .seal(&tsa2, &settings, SealWhen::Force, SystemTime::now())
        .unwrap()
        .is_empty());
    check_all(&archive, &[StepKind::Initial]);

    // The plan: TSA 2's certificate ends on 2027-06-30, inside the one-year window.
    let policy = Policy::etsi();
    let plan = archive.plan(&policy, SystemTime::now()).unwrap();
    assert_eq!(plan.due.len(), 3, "{plan:?}");
    assert!(plan.due.iter().all(|d| d.kind == RenewalKind::Timestamp));
    assert!(
        plan.due[0].reason.contains("2027-06-30"),
        "{}",
        plan.due[0].reason
    );

    // Two timestamp renewals by TSA 1: the second covers a group of two timestamps.
    let tsa1 = tsa("tsa-1");
    let never = AtomicBool::new(false);
    let done = archive
        .renew(&plan, &tsa1, DigestAlgorithm::Sha512, &|_, _| {}, &never)
        .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    check_all(&archive, &[StepKind::Initial, StepKind::TimestampRenewal]);
    let trees: Vec<u64> = plan.due.iter().map(|d| d.tree).collect();
    archive
        .renew_timestamps(&tsa1, DigestAlgorithm::Sha256, &trees)
        .unwrap();
    check_all(
        &archive,
        &[
            StepKind::Initial,
            StepKind::TimestampRenewal,
            StepKind::TimestampRenewal,
        ],
    );
    // TSA 1 lasts to 2036 and SHA-256 has no end: nothing is due any more.
    let plan = archive.plan(&policy, SystemTime::now()).unwrap();
    assert!(plan.due.is_empty(), "{plan:?}");
    assert!(plan.next.is_some());

    // A policy retiring SHA-256 makes every tree due for a hash-tree renewal.
    let retiring = Policy::from_toml(&hozon_verifier::policy::ETSI_TOML.replace(
        "algorithm = \"sha256\"\n",
        "algorithm = \"sha256\"\nuntil = \"2027-03-01\"\n",
    ))
    .unwrap();
    let plan = archive.plan(&retiring, SystemTime::now()).unwrap();
    assert_eq!(plan.due.len(), 3);
    assert!(plan.due.iter().all(|d| d.kind == RenewalKind::HashTree));

    // Renewing to the algorithm being retired is refused, and records nothing.
    let err = archive
        .renew(&plan, &tsa1, DigestAlgorithm::Sha256, &|_, _| {}, &never)
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Config(_)), "{err}");

    // Interrupted before its first page, then resumed: the job is recorded and finishes.
    let stop = AtomicBool::new(true);
    let err = archive
        .renew(&plan, &tsa1, DigestAlgorithm::Sha512, &|_, _| {}, &stop)
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Interrupted), "{err}");
    let running = archive
        .store()
        .snapshot()
        .iter::<Jobs>()
        .filter(|r| r.as_ref().unwrap().1 .0.state == JobState::Running)
        .count();
    assert_eq!(running, 1);
    let progress = AtomicU64::new(0);
    let msg = archive
        .resume_hash_tree_renewal(
            &tsa1,
            &|done, _| progress.store(done, Ordering::SeqCst),
            &never,
        )
        .unwrap()
        .expect("the interrupted job resumes");
    assert!(msg.contains("40 document"), "{msg}");
    assert_eq!(progress.load(Ordering::SeqCst), 40);
    let records = check_all(
        &archive,
        &[
            StepKind::Initial,
            StepKind::TimestampRenewal,
            StepKind::TimestampRenewal,
            StepKind::HashTreeRenewal { sorted: false },
        ],
    );
    // No tree needs a hash-tree renewal now; the new tree's token is still signed with
    // SHA-256 by the TSA, which the retiring policy names as due for timestamp renewal.
    let plan = archive.plan(&retiring, SystemTime::now()).unwrap();
    assert_eq!(plan.due.len(), 1, "{plan:?}");
    assert_eq!(plan.due[0].kind, RenewalKind::Timestamp);
    assert!(
        plan.due[0].reason.contains("timestamp hash sha256"),
        "{plan:?}"
    );

    // Status, then Bouncy Castle on an exported record.
    let status = archive.status(&policy, SystemTime::now()).unwrap();
    assert_eq!(status.sealed, 40);
    assert_eq!(status.superseded_trees, 3);
    assert_eq!(status.pending, 0);

    let out = tmp.path().join("export");
    let id = hozon_archiver::ingest::sha256(&f.good[7].bytes);
    let exported = archive.export(&id, &out, &f.roots).unwrap();
    assert_eq!(exported.timestamps, 4);
    let ers_path = out.join("evidence.ers");
    assert_eq!(std::fs::read(&ers_path).unwrap(), records[7]);
    let doc_path = out.join(&exported.document);
    let (ok, text) = ers::ers_tool(&[
        "verify",
        ers_path.to_str().unwrap(),
        doc_path.to_str().unwrap(),
    ]);
    assert!(ok, "Bouncy Castle refused the renewed record: {text}");
    let other = tmp.path().join("other.json");
    std::fs::write(&other, &f.good[8].bytes).unwrap();
    let (ok, _) = ers::ers_tool(&[
        "verify",
        ers_path.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert!(!ok, "Bouncy Castle accepted another document");
}

#[test]
fn a_batch_of_one_is_covered_directly_and_bouncy_castle_agrees() {
    let f = fixture();
    let (tmp, archive) = fresh_archive();
    let doc = prepared(&f.good[0], Mode::default()).unwrap();
    archive.commit(vec![doc]).unwrap();
    seal_now(&archive);
    let out = tmp.path().join("x");
    let id = hozon_archiver::ingest::sha256(&f.good[0].bytes);
    archive.export(&id, &out, &[]).unwrap();
    let ers = std::fs::read(out.join("evidence.ers")).unwrap();
    let steps = check_evidence(&ers, &f.good[0].bytes, &[]).unwrap();
    assert_eq!(steps[0].tree_depth, 0);
    let (ok, text) = ers::ers_tool(&[
        "verify",
        out.join("evidence.ers").to_str().unwrap(),
        out.join("document.json").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // An export never overwrites: the directory is not empty now.
    assert!(archive.export(&id, &out, &[]).is_err());
}

#[test]
fn opaque_files_are_archived_without_a_signature_check() {
    let (tmp, archive) = fresh_archive();
    let bytes = b"%PDF-1.7 not a FHIR document".to_vec();
    // As a document it is refused (not JSON); as an opaque object it is kept.
    assert!(prepare(
        bytes.clone(),
        None,
        Mode::default(),
        &fixture().trust,
        SystemTime::now()
    )
    .is_err());
    let doc = prepare(
        bytes.clone(),
        None,
        Mode {
            opaque: true,
            ..Mode::default()
        },
        &fixture().trust,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        archive.commit(vec![doc]).unwrap(),
        [Stored::New(DocStatus::Opaque)]
    );
    let id = hozon_archiver::ingest::sha256(&bytes);
    // Not sealed yet: export says so.
    assert!(matches!(
        archive.export(&id, &tmp.path().join("e"), &[]),
        Err(ArchiveError::NotSealed(_))
    ));
    seal_now(&archive);
    let mut reader = hozon_archiver::evidence::Reader::new(archive.store());
    let ers = reader.evidence_record(&id).unwrap();
    check_evidence(&ers, &bytes, &[]).unwrap();
}

/// A bulk signature check of every document of `archive` against `trust`: (valid or due,
/// invalid) and the invalid ones' codes.
/// Replaces the stored objects `ids` with `marker`, which stays only if the archive does not
/// write them again.
fn overwrite(archive: &Archive, ids: &[DocId], marker: &[u8]) {
    let mut b = archive.store().batch();
    for id in ids {
        b.put::<Objects>(id, &marker.to_vec());
    }
    archive
        .store()
        .commit(b, hozon_storage::Durability::Durable)
        .unwrap();
}

/// The invalid documents a bulk run lists, as (id, code), sorted.
fn listed(r: &hozon_archiver::bulk::BulkReport) -> Vec<(String, String)> {
    let mut listed: Vec<(String, String)> = r
        .invalid_documents
        .iter()
        .map(|d| (d.id.clone(), d.code.clone()))
        .collect();
    listed.sort();
    listed
}

/// A complete bulk run with `--signatures` under ETSI's policy.
fn bulk_run(archive: &Archive, trust: &Trust) -> hozon_archiver::bulk::BulkReport {
    let policy = Policy::etsi();
    let cancel = AtomicBool::new(false);
    let r = archive
        .verify_all(&hozon_archiver::bulk::Options {
            policy: &policy,
            now: SystemTime::now(),
            trust,
            signatures: true,
            renew_to: DigestAlgorithm::Sha512,
            max_listed: 10,
            cancel: &cancel,
            progress: &|_, _| {},
        })
        .unwrap();
    assert!(r.complete);
    r
}

fn bulk_signatures(archive: &Archive, trust: &Trust) -> (u64, u64, Vec<String>) {
    let r = bulk_run(archive, trust);
    (
        r.totals.valid + r.totals.renewal_due,
        r.totals.invalid,
        r.invalid_by_code.keys().cloned().collect(),
    )
}

#[test]
fn configured_crls_are_stored_once_per_process_and_found_again_by_the_bulk_check() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("archive");
    let docs: Vec<&GeneratedDocument> = f
        .good
        .iter()
        .filter(|d| d.entry.algorithm != "sha1WithRSAEncryption")
        .take(6)
        .collect();
    let crl_ids = f.trust.crls.ids().to_vec();
    assert!(!crl_ids.is_empty(), "the dev hierarchy publishes CRLs");
    let marker = b"not the CRL: left alone unless the archive writes the CRL again".to_vec();
    let crl_objects = |archive: &Archive| -> Vec<Vec<u8>> {
        crl_ids
            .iter()
            .map(|id| archive.store().get::<Objects>(id).unwrap().unwrap())
            .collect()
    };
    {
        let archive = Archive::open(&path).unwrap();
        let commit = |d: &GeneratedDocument| {
            let p = prepared(d, Mode::default()).unwrap();
            assert!(p.objects.iter().all(|(id, _)| !crl_ids.contains(id)));
            assert_eq!(
                archive.commit(vec![p]).unwrap(),
                [Stored::New(DocStatus::Verified)]
            );
        };
        // The first commit stores every configured CRL under its SHA-256 ...
        commit(docs[0]);
        assert_eq!(crl_objects(&archive), *f.trust.crls);
        // ... and later ones of this process do not write them again.
        overwrite(&archive, &crl_ids, &marker);
        commit(docs[1]);
        commit(docs[2]);
        assert!(crl_objects(&archive).iter().all(|o| *o == marker));
    }
    // A new process writes them once more, then not again.
    let archive = Archive::open(&path).unwrap();
    let p: Vec<Prepared> = docs[3..]
        .iter()
        .map(|d| prepared(d, Mode::default()).unwrap())
        .collect();
    archive.commit(p).unwrap();
    assert_eq!(crl_objects(&archive), *f.trust.crls);
    // Each record names every configured CRL.
    for d in &docs {
        let id = hozon_archiver::ingest::sha256(&d.bytes);
        let hozon_archiver::model::Json(record) = archive
            .store()
            .get::<hozon_archiver::model::Records>(&id)
            .unwrap()
            .unwrap();
        let named: Vec<String> = crl_ids
            .iter()
            .map(|k| hozon_archiver::model::hex_id(k))
            .collect();
        assert_eq!(record.crls, named);
    }
    seal_now(&archive);

    // The bulk check takes configured CRLs from its configuration, and captured ones it is
    // no longer configured with from the archive.
    let n = docs.len() as u64;
    let without_crls = Trust {
        crls: Vec::new().into(),
        ..f.trust.clone()
    };
    assert_eq!(bulk_signatures(&archive, &f.trust), (n, 0, vec![]));
    assert_eq!(bulk_signatures(&archive, &without_crls), (n, 0, vec![]));
    let mut b = archive.store().batch();
    for id in &crl_ids {
        b.delete::<Objects>(id);
    }
    archive
        .store()
        .commit(b, hozon_storage::Durability::Durable)
        .unwrap();
    assert_eq!(bulk_signatures(&archive, &f.trust), (n, 0, vec![]));
    assert_eq!(
        bulk_signatures(&archive, &without_crls),
        (0, n, vec!["validation-data-missing".to_owned()])
    );
}

/// The bulk check reads the validation records and side tokens of a group of documents by
/// one scan: a document whose record or side token is missing is named with its own code, and
/// the documents after it in the group still get their own.
#[test]
fn bulk_check_names_a_missing_record_and_a_missing_side_token_and_no_other_document() {
    let f = fixture();
    let (_tmp, archive) = fresh_archive();
    let docs: Vec<&GeneratedDocument> = f
        .good
        .iter()
        .filter(|d| d.entry.algorithm != "sha1WithRSAEncryption")
        .collect();
    let p: Vec<Prepared> = docs
        .iter()
        .map(|d| prepared(d, Mode::default()).unwrap())
        .collect();
    archive.commit(p).unwrap();
    seal_now(&archive);
    let n = docs.len() as u64;
    assert_eq!(bulk_signatures(&archive, &f.trust), (n, 0, vec![]));

    // A JWS document with JWS documents after it loses its side token; a CMS document its
    // validation record.
    let jws: Vec<usize> = (0..docs.len())
        .filter(|&i| docs[i].side_token.is_some())
        .collect();
    assert!(jws.len() >= 3, "the mixed corpus has JWS documents");
    let no_side = docs[jws[1]];
    let no_record = docs
        .iter()
        .find(|d| d.side_token.is_none())
        .expect("the mixed corpus has CMS documents");
    use hozon_archiver::model::{ArrivalKey, ArrivalRecords, Json, Records};
    let id = |d: &GeneratedDocument| hozon_archiver::ingest::sha256(&d.bytes);
    let store = archive.store();
    let arrival = |d: &GeneratedDocument| {
        let Json(r) = store.get::<Records>(&id(d)).unwrap().unwrap();
        ArrivalKey {
            seq: r.arrival.unwrap(),
            id: id(d),
        }
    };
    let mut b = store.batch();
    // The side token is kept with the record beside the document: the record stays.
    let mut kept = store
        .get::<ArrivalRecords>(&arrival(no_side))
        .unwrap()
        .unwrap();
    assert!(kept.side_token.take().is_some());
    b.put::<ArrivalRecords>(&arrival(no_side), &kept);
    // The record is kept twice, by id and by arrival: both go.
    b.delete::<ArrivalRecords>(&arrival(no_record));
    b.delete::<Records>(&id(no_record));
    store.commit(b, hozon_storage::Durability::Durable).unwrap();
    let r = bulk_run(&archive, &f.trust);
    assert_eq!(r.totals.valid + r.totals.renewal_due, n - 2);
    let listed = listed(&r);
    let mut want = vec![
        (
            hozon_archiver::model::hex_id(&id(no_side)),
            "validation-data-missing".to_owned(),
        ),
        (
            hozon_archiver::model::hex_id(&id(no_record)),
            "record-missing".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(listed, want);
    let side_reason = &r
        .invalid_documents
        .iter()
        .find(|d| d.code == "validation-data-missing")
        .unwrap()
        .reason;
    assert!(side_reason.contains("signature timestamp"), "{side_reason}");
}

#[test]
fn shared_certificates_are_written_once_per_process_and_side_tokens_beside_every_document() {
    use hozon_archiver::model::{Json, Records};
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("archive");
    // JWS documents: each has its own side token, and all share Test TSA 1's chain.
    let jws: Vec<&GeneratedDocument> = f.good.iter().filter(|d| d.side_token.is_some()).collect();
    assert!(jws.len() >= 3, "the mixed corpus has JWS documents");
    let side_id =
        |d: &GeneratedDocument| hozon_archiver::ingest::sha256(d.side_token.as_ref().unwrap());
    let certs = |p: &Prepared, side: DocId| -> Vec<DocId> {
        p.objects
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != side)
            .collect()
    };
    let marker = b"not a certificate: left alone unless the archive writes it again".to_vec();
    let get = |archive: &Archive, id: &DocId| archive.store().get::<Objects>(id).unwrap().unwrap();
    let first = prepared(jws[0], Mode::default()).unwrap();
    let first_certs = certs(&first, side_id(jws[0]));
    assert!(first_certs.len() >= 2, "a signer chain and a TSA chain");
    {
        let archive = Archive::open(&path).unwrap();
        archive.commit(vec![first.clone()]).unwrap();
        for id in &first_certs {
            let der = &first.objects.iter().find(|(o, _)| o == id).unwrap().1;
            assert_eq!(get(&archive, id), *der);
        }
        // The side token is the document's own: kept with its record, by arrival, not among
        // the shared objects.
        let side = |archive: &Archive, d: &GeneratedDocument| {
            let id = hozon_archiver::ingest::sha256(&d.bytes);
            let Json(record) = archive.store().get::<Records>(&id).unwrap().unwrap();
            hozon_archiver::stored::side_token(archive.store(), &id, &record).unwrap()
        };
        assert_eq!(side(&archive, jws[0]), jws[0].side_token);
        assert_eq!(
            archive.store().get::<Objects>(&side_id(jws[0])).unwrap(),
            None
        );
        overwrite(&archive, &first_certs, &marker);
        // A later document of this process: the certificates already written stay as they
        // are, its new ones and its own side token are written.
        let second = prepared(jws[1], Mode::default()).unwrap();
        let second_certs = certs(&second, side_id(jws[1]));
        let shared: Vec<&DocId> = second_certs
            .iter()
            .filter(|id| first_certs.contains(id))
            .collect();
        assert!(!shared.is_empty(), "both carry Test TSA 1's certificate");
        assert_eq!(
            archive.commit(vec![second.clone()]).unwrap(),
            [Stored::New(DocStatus::Verified)]
        );
        for id in &second_certs {
            let der = &second.objects.iter().find(|(o, _)| o == id).unwrap().1;
            let want = if shared.contains(&id) { &marker } else { der };
            assert_eq!(get(&archive, id), *want);
        }
        assert_eq!(side(&archive, jws[1]), jws[1].side_token);
    }
    // A new process writes them once more.
    let archive = Archive::open(&path).unwrap();
    let third = prepared(jws[2], Mode::default()).unwrap();
    archive.commit(vec![third.clone()]).unwrap();
    for id in certs(&third, side_id(jws[2])) {
        let der = &third.objects.iter().find(|(o, _)| *o == id).unwrap().1;
        assert_eq!(get(&archive, &id), *der);
    }
}

/// Moves document `id` as a store of format 1 kept it (content-addressed in `Objects`, its
/// side token too, no arrival in its record), or to arrival `seq` (its record and side token
/// with it), or (`None` and not legacy) deletes its bytes.
fn relocate(archive: &Archive, id: &DocId, to: Option<hozon_archiver::stored::Location>) {
    use hozon_archiver::model::{ArrivalRecord, ArrivalRecords, Arrivals, Json, Records};
    use hozon_archiver::stored::{location, read, side_token, Location};
    let store = archive.store();
    let bytes = read(store, id).unwrap().unwrap();
    let Json(mut record) = store.get::<Records>(id).unwrap().unwrap();
    let side = side_token(store, id, &record).unwrap();
    let mut b = store.batch();
    let from = location(store, id).unwrap();
    match from {
        Location::Arrival(key) => b.delete::<Arrivals>(&key),
        Location::Object(id) => b.delete::<Objects>(&id),
    }
    match to {
        Some(Location::Object(_)) => {
            record.arrival = None;
            b.put::<Objects>(id, &bytes);
            if let Location::Arrival(key) = from {
                b.delete::<ArrivalRecords>(&key);
            }
            if let (Some(t), Some(oid)) = (&side, &record.side_token) {
                b.put::<Objects>(&hozon_archiver::model::parse_id(oid).unwrap(), t);
            }
        }
        Some(Location::Arrival(key)) => {
            record.arrival = Some(key.seq);
            b.put::<Arrivals>(&key, &bytes);
            if let Location::Arrival(old) = from {
                b.delete::<ArrivalRecords>(&old);
            }
            b.put::<ArrivalRecords>(
                &key,
                &ArrivalRecord {
                    record: record.clone(),
                    side_token: side,
                },
            );
        }
        None => {}
    }
    b.put::<Records>(id, &Json(record));
    store.commit(b, hozon_storage::Durability::Durable).unwrap();
}

#[test]
fn documents_are_read_wherever_they_are_stored() {
    use hozon_archiver::model::ArrivalKey;
    use hozon_archiver::stored::{read, read_in_order, records_in_order, Location};
    let f = fixture();
    let (_tmp, archive) = fresh_archive();
    let docs = good_prepared();
    let ids: Vec<DocId> = docs.iter().map(|d| d.id).collect();
    let bytes: Vec<Vec<u8>> = docs.iter().map(|d| d.bytes.clone()).collect();
    let docs_len: std::collections::HashMap<DocId, u64> =
        docs.iter().map(|d| (d.id, d.bytes.len() as u64)).collect();
    // Documents 0 and 17 go where a store of format 1 kept them: among them a JWS document,
    // whose side token goes there too.
    assert!(
        [0, 17].iter().any(|&k| f.good[k].side_token.is_some()),
        "a JWS document among the moved ones"
    );
    archive.commit(docs).unwrap();
    // Two documents as a store of format 1 kept them, one stored far from its neighbours
    // (as an ingest running beside another may leave it), one whose bytes are gone.
    relocate(&archive, &ids[0], Some(Location::Object(ids[0])));
    relocate(&archive, &ids[17], Some(Location::Object(ids[17])));
    let far = ArrivalKey {
        seq: 1 << 40,
        id: ids[9],
    };
    relocate(&archive, &ids[9], Some(Location::Arrival(far)));
    relocate(&archive, &ids[25], None);
    seal_now(&archive);

    let snap = archive.store().snapshot();
    for order in [ids.clone(), ids.iter().rev().copied().collect::<Vec<_>>()] {
        let mut seen = Vec::new();
        read_in_order(&snap, &order, |i, b| {
            seen.push((order[i], b.unwrap().map(<[u8]>::to_vec)))
        });
        let want: Vec<(DocId, Option<Vec<u8>>)> = order
            .iter()
            .map(|id| {
                let k = ids.iter().position(|x| x == id).unwrap();
                (*id, (k != 25).then(|| bytes[k].clone()))
            })
            .collect();
        assert_eq!(
            seen, want,
            "every member, in the order asked, wherever it is"
        );
        // Their records and signature timestamps likewise: by arrival, or from the
        // validation and documents families where a store of format 1 kept them.
        let records: Vec<(DocId, Option<Vec<u8>>)> = records_in_order(&snap, &order)
            .into_iter()
            .zip(&order)
            .map(|(r, id)| {
                let r = r.unwrap().expect("every document has its record");
                assert_eq!(r.record.size, docs_len[id], "the record of this document");
                (*id, r.side_token)
            })
            .collect();
        let want: Vec<(DocId, Option<Vec<u8>>)> = order
            .iter()
            .map(|id| {
                let k = ids.iter().position(|x| x == id).unwrap();
                (*id, f.good[k].side_token.clone())
            })
            .collect();
        assert_eq!(records, want);
    }
    drop(snap);
    for k in [0, 9, 17] {
        assert_eq!(
            read(archive.store(), &ids[k]).unwrap().as_ref(),
            Some(&bytes[k])
        );
        let mut reader = hozon_archiver::evidence::Reader::new(archive.store());
        check_evidence(&reader.evidence_record(&ids[k]).unwrap(), &bytes[k], &[]).unwrap();
    }
    // Every document but the one whose bytes are gone is intact; the SHA-1-era ones fail
    // ETSI's policy, as everywhere in this corpus.
    let r = bulk_run(&archive, &f.trust);
    let listed = listed(&r);
    let mut want: Vec<(String, String)> = f
        .good
        .iter()
        .zip(&ids)
        .enumerate()
        .filter_map(|(k, (d, id))| {
            let hex = hozon_archiver::model::hex_id(id);
            if k == 25 {
                Some((hex, "document-missing".to_owned()))
            } else {
                (d.entry.algorithm == "sha1WithRSAEncryption")
                    .then(|| (hex, "algorithm-expired".to_owned()))
            }
        })
        .collect();
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        r.totals.valid + r.totals.renewal_due + r.totals.invalid,
        ids.len() as u64
    );
}
