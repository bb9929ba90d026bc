//! An archive across simulated years, re-verified in bulk after two policy changes
//! (`hozon verify archive`), its migration plan carried out, and damage found and named.
//!
//! The years are simulated with the dev hierarchy's TSA keys stamping at chosen times
//! (`Stamper::stamp_with`), in process; every bulk run is the real binary on the real store.
//!
//! - 2020-01-15: batch A, a **SHA-1** tree by TSA 1, over every document signed before 2020
//!   (the SHA-1-era signatures of HPKI's closed CA among them);
//! - 2024-06-01: batch B, SHA-256, by **TSA 2** (its certificate ends 2027-06-30);
//! - 2026-11-01: batch C, SHA-256, by TSA 1.
//!
//! As of 2027-03-01, with a 150-day renewal window:
//! 1. policy "sha1-retired" (SHA-1 ends 2027-05-31): A needs a hash-tree renewal, B a timestamp
//!    renewal (its TSA certificate), C is valid; with `--signatures` the SHA-1 signatures are
//!    still valid (their signature timestamps covered them before the end), under ETSI (SHA-1
//!    ended 2012) they are not, and no renewal can change that;
//! 2. the plan is carried out (TSA 1, RSA-2048) and the next run is all valid;
//! 3. policy "rsa2048-retired" (RSA < 3000 bits ends 2027-06-30): every batch's last timestamp
//!    is RSA-2048, so all need a timestamp renewal; done with TSA 3 (RSA-3072), then all valid;
//! 4. one stored document and one stored tree node are changed: both are found and named.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeZone, Utc};
use hozon_archiver::bulk::{BulkReport, Outcome};
use hozon_archiver::client::{check_token, Stamp, StampError, Timestamper, TokenCheck};
use hozon_archiver::ingest::{prepare, sha256, Mode, Trust};
use hozon_archiver::model::{Arrivals, Objects, PageKey, Pages};
use hozon_archiver::renew::RenewalKind;
use hozon_archiver::seal::SealWhen;
use hozon_archiver::stored::Location;
use hozon_archiver::{Archive, Settings};
use hozon_devkit::corpus::{Corpus, CorpusSpec, Format, GeneratedDocument};
use hozon_devkit::pki::TestPki;
use hozon_devkit::sign::Stamper;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::document::UsagePolicy;
use hozon_verifier::path::TrustAnchors;
use hozon_verifier::policy::ETSI_TOML;

/// A TSA of the dev hierarchy stamping at a simulated time.
struct SimTsa {
    stamper: Stamper,
    check: TokenCheck,
    serial: AtomicU64,
    at: Mutex<DateTime<Utc>>,
}

impl SimTsa {
    fn new(pki: &TestPki, id: &str, anchors: &TrustAnchors) -> SimTsa {
        SimTsa {
            stamper: Stamper::new(pki.tsa(id).unwrap()),
            check: TokenCheck {
                anchors: Arc::new(anchors.clone()),
                extra_certs: Arc::new(Vec::new()),
                max_skew: None,
            },
            serial: AtomicU64::new(1),
            at: Mutex::new(Utc::now()),
        }
    }
    fn at(&self, t: DateTime<Utc>) -> &Self {
        *self.at.lock().unwrap() = t;
        self
    }
}

impl Timestamper for SimTsa {
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Stamp, StampError> {
        let serial = self.serial.fetch_add(1, Ordering::SeqCst).to_be_bytes();
        let at = *self.at.lock().unwrap();
        let der = self
            .stamper
            .stamp_with(digest, imprint, at, &serial)
            .map_err(|e| StampError::AllFailed(vec![e.to_string()]))?;
        check_token(&der, digest, imprint, None, &self.check, "simulated")
    }
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).unwrap()
}

fn sys(t: DateTime<Utc>) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64)
}

const AT: &str = "2027-03-01T00:00:00Z";

/// ETSI with a SHA-1 end date of `sha1` and RSA-PKCS#1 ≥ 1900 bits split at 3000.
fn policy_file(dir: &Path, name: &str, sha1: &str, rsa2048: &str) -> PathBuf {
    let text = ETSI_TOML
        .replace("name = \"ETSI TS 119 312 v1.5.1\"", &format!("name = \"{name}\""))
        .replace("renewal_window_days = 365", "renewal_window_days = 150")
        .replace(
            "algorithm = \"sha1\"\nuntil = \"2012-08-01\"",
            &format!("algorithm = \"sha1\"\nuntil = \"{sha1}\""),
        )
        .replace(
            "algorithm = \"rsa-pkcs1\"\nmin_bits = 1900\nuntil = \"2029-01-01\"",
            &format!(
                "algorithm = \"rsa-pkcs1\"\nmin_bits = 1900\nmax_bits = 2999\nuntil = \"{rsa2048}\"\n\
                 [[rule]]\nalgorithm = \"rsa-pkcs1\"\nmin_bits = 3000"
            ),
        );
    assert_ne!(text, ETSI_TOML);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

struct Setup {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    pki_dir: PathBuf,
    pki: TestPki,
    anchors: TrustAnchors,
    sha1_retired: PathBuf,
    rsa_retired: PathBuf,
    batches: [Vec<[u8; 32]>; 3],
    sha1_signed: usize,
}

fn hozon(s: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hozon"))
        .args(args)
        .args(["--data", s.data.to_str().unwrap()])
        .args(["--trust", s.pki_dir.join("trust").to_str().unwrap()])
        .args(["--crl", s.pki_dir.join("crl").to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hozon verify archive` as of [`AT`] under `policy`; the report it wrote.
fn bulk(s: &Setup, policy: &Path, extra: &[&str], want_exit: i32) -> BulkReport {
    let out = s.data.join("report.json");
    let mut args = vec![
        "verify",
        "archive",
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        AT,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = hozon(s, &args);
    assert_eq!(code, want_exit, "{stdout}\n{stderr}");
    let report: BulkReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(report.complete);
    report
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pki_dir = tmp.path().join("pki");
    // Seeds 31 (hierarchy) and 12 (documents) are arbitrary and fixed.
    let pki = TestPki::generate(31).unwrap();
    pki.write(&pki_dir).unwrap();
    let corpus = Corpus::new(
        &pki,
        CorpusSpec {
            count: 60,
            seed: 12,
            format: Format::Mixed,
        },
    )
    .unwrap();
    let good: Vec<GeneratedDocument> = (0..60).map(|i| corpus.good(i).unwrap()).collect();
    let roots: Vec<Vec<u8>> = pki.roots().iter().map(|r| r.to_vec()).collect();
    let anchors = TrustAnchors::new(&roots).unwrap();
    let trust = Trust {
        anchors: anchors.clone(),
        extra_certs: Vec::new(),
        crls: pki.crls.iter().map(|c| c.der.clone()).collect(),
        usage: UsagePolicy::default(),
    };
    let sha1_signed = good
        .iter()
        .filter(|d| d.entry.algorithm == "sha1WithRSAEncryption")
        .count();
    assert!(sha1_signed > 0, "the corpus must have SHA-1-era documents");

    std::fs::create_dir_all(&data).unwrap();
    let archive = Archive::open(data.join("archive")).unwrap();
    let tsa1 = SimTsa::new(&pki, "tsa-1", &anchors);
    let tsa2 = SimTsa::new(&pki, "tsa-2", &anchors);
    let plan: [(DateTime<Utc>, DateTime<Utc>, DigestAlgorithm, &SimTsa); 3] = [
        (
            day(2020, 1, 1),
            day(2020, 1, 15),
            DigestAlgorithm::Sha1,
            &tsa1,
        ),
        (
            day(2024, 6, 1),
            day(2024, 6, 1),
            DigestAlgorithm::Sha256,
            &tsa2,
        ),
        (
            day(2100, 1, 1),
            day(2026, 11, 1),
            DigestAlgorithm::Sha256,
            &tsa1,
        ),
    ];
    let mut batches: [Vec<[u8; 32]>; 3] = Default::default();
    let mut from = DateTime::<Utc>::MIN_UTC;
    for (k, (before, seal_at, digest, tsa)) in plan.iter().enumerate() {
        let docs: Vec<_> = good
            .iter()
            .filter(|d| d.entry.signing_time >= from && d.entry.signing_time < *before)
            .map(|d| {
                prepare(
                    d.bytes.clone(),
                    d.side_token.clone(),
                    Mode::default(),
                    &trust,
                    SystemTime::now(),
                )
                .unwrap_or_else(|r| panic!("{}: {}", d.entry.file, r.reason))
            })
            .collect();
        assert!(
            docs.len() >= 2,
            "batch {k} would have {} documents",
            docs.len()
        );
        batches[k] = docs.iter().map(|p| p.id).collect();
        archive.commit(docs).unwrap();
        let settings = Settings {
            digest: *digest,
            ..Settings::default()
        };
        let sealed = archive
            .seal(tsa.at(*seal_at), &settings, SealWhen::Force, sys(*seal_at))
            .unwrap();
        assert_eq!(sealed.len(), 1);
        from = *before;
    }
    assert!(batches[0].iter().any(|id| good
        .iter()
        .any(|d| sha256(&d.bytes) == *id && d.entry.algorithm == "sha1WithRSAEncryption")));
    drop(archive);
    let sha1_retired = policy_file(tmp.path(), "sha1-retired", "2027-05-31", "2029-01-01");
    let rsa_retired = policy_file(tmp.path(), "rsa2048-retired", "2027-05-31", "2027-06-30");
    Setup {
        data,
        pki_dir,
        pki,
        anchors,
        sha1_retired,
        rsa_retired,
        batches,
        sha1_signed,
        _tmp: tmp,
    }
}

/// Carries out the report's plan in process, stamping at `at` with `tsa`.
fn carry_out(s: &Setup, report: &BulkReport, tsa: &SimTsa, at: DateTime<Utc>) {
    let archive = Archive::open(s.data.join("archive")).unwrap();
    let (plan, skipped) = archive.plan_of(&report.plan).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let to = hozon_tsa::config::parse_digest(&report.plan.to).unwrap();
    archive
        .renew(&plan, tsa.at(at), to, &|_, _| {}, &AtomicBool::new(false))
        .unwrap();
    // The same plan again: every tree has moved on, so everything is skipped.
    let (again, skipped) = archive.plan_of(&report.plan).unwrap();
    assert!(again.due.is_empty());
    assert_eq!(skipped.len(), plan.due.len());
}

fn batch(report: &BulkReport, documents: usize) -> Vec<&hozon_archiver::bulk::BatchEntry> {
    report
        .batches
        .iter()
        .filter(|b| b.documents == documents as u64)
        .collect()
}

#[test]
fn policy_changes_are_found_planned_renewed_and_damage_is_named() {
    let s = setup();
    let [a, b, c] = [s.batches[0].len(), s.batches[1].len(), s.batches[2].len()];
    let total = (a + b + c) as u64;
    // Batch sizes tell the batches apart in the report.
    assert!(a != b && b != c && a != c, "{a} {b} {c}");

    // 1. SHA-1 retired within the window.
    let r = bulk(&s, &s.sha1_retired, &[], 0);
    assert_eq!(r.documents, total);
    assert_eq!(r.totals.valid, c as u64);
    assert_eq!(r.totals.renewal_due, (a + b) as u64);
    assert_eq!(r.totals.invalid, 0);
    assert_eq!(r.earliest_due.as_deref(), Some("2027-05-31"));
    let ba = batch(&r, a);
    assert!(
        matches!(
            &ba[0].outcome,
            Outcome::RenewalDue { action: RenewalKind::HashTree, before, reason }
                if before == "2027-05-31" && reason.contains("sha1")
        ),
        "{:?}",
        ba[0]
    );
    let bb = batch(&r, b);
    assert!(
        matches!(
            &bb[0].outcome,
            Outcome::RenewalDue { action: RenewalKind::Timestamp, before, reason }
                if before == "2027-06-30" && reason.contains("TSA certificate")
        ),
        "{:?}",
        bb[0]
    );
    assert!(batch(&r, c).is_empty(), "batch C is valid: {r:?}");
    assert_eq!(r.plan.hash_tree_renewal.len(), 1);
    assert_eq!(r.plan.timestamp_renewal.len(), 1);
    assert_eq!(r.plan.to, "sha512");

    // The SHA-1 signatures are still valid under this policy: their signature timestamps
    // covered them before SHA-1 ends.
    let r = bulk(&s, &s.sha1_retired, &["--signatures"], 0);
    assert_eq!(r.totals.invalid, 0, "{r:?}");
    assert_eq!(r.totals.renewal_due, (a + b) as u64);
    // Under ETSI (SHA-1 ended 2012) the SHA-1 tree of 2020 never protected anything: batch A
    // is lost, named as such, and no renewal is planned for it.
    let (code, stdout, _) = hozon(
        &s,
        &[
            "verify", "archive", "--policy", "etsi", "--at", AT, "--format", "json",
        ],
    );
    assert_eq!(code, 1);
    let etsi: BulkReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!(etsi.totals.invalid, a as u64, "{stdout}");
    assert_eq!(
        etsi.invalid_by_code.get("algorithm-expired").copied(),
        Some(a as u64)
    );
    assert_eq!(etsi.plan.lost_documents, a as u64);
    assert!(matches!(
        &batch(&etsi, a)[0].outcome,
        Outcome::Invalid { code, reason } if code == "algorithm-expired" && reason.contains("sha1")
    ));
    assert!(etsi.plan.hash_tree_renewal.is_empty());
    assert!(s.sha1_signed > 0);

    // The plan, read back by `archive renew --plan` (dry run: it names what it would renew).
    let report_path = s.data.join("report.json");
    let r = bulk(&s, &s.sha1_retired, &[], 0);
    let (code, stdout, stderr) = hozon(
        &s,
        &[
            "archive",
            "renew",
            "--dry-run",
            "--plan",
            report_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("hash-tree renewal") && stdout.contains("timestamp renewal"),
        "{stdout}"
    );

    // 2. Carry it out; then everything is valid.
    let tsa1 = SimTsa::new(&s.pki, "tsa-1", &s.anchors);
    carry_out(&s, &r, &tsa1, day(2027, 3, 1));
    let r = bulk(&s, &s.sha1_retired, &["--signatures"], 0);
    assert_eq!(r.totals.valid, total, "{r:?}");
    assert!(r.batches.is_empty());

    // 3. RSA-2048 retired: every last timestamp is RSA-2048 (TSA 1 and 2).
    let r = bulk(&s, &s.rsa_retired, &[], 0);
    assert_eq!(r.totals.renewal_due, total, "{r:?}");
    assert_eq!(r.plan.timestamp_renewal.len(), 3);
    assert!(r.plan.hash_tree_renewal.is_empty());
    assert!(r
        .plan
        .timestamp_renewal
        .iter()
        .all(|e| e.reason.contains("rsa-pkcs1 (2048 bits)") && e.before == "2027-06-30"));
    let tsa3 = SimTsa::new(&s.pki, "tsa-3", &s.anchors);
    carry_out(&s, &r, &tsa3, day(2027, 3, 2));
    let r = bulk(&s, &s.rsa_retired, &["--signatures"], 0);
    assert_eq!(r.totals.valid, total, "{r:?}");

    // A report of another archive is refused.
    let mut foreign = r.clone();
    foreign.archive = "00".repeat(16);
    let foreign_path = s.data.join("foreign.json");
    std::fs::write(&foreign_path, serde_json::to_vec(&foreign).unwrap()).unwrap();
    let (code, _, stderr) = hozon(
        &s,
        &[
            "archive",
            "renew",
            "--dry-run",
            "--plan",
            foreign_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("not this one"), "{stderr}");

    // 4. Damage: one document of batch C changed, one leaf node of batch B's tree changed.
    let changed_doc = s.batches[2][1];
    let victim = s.batches[1][2];
    {
        let archive = Archive::open(s.data.join("archive")).unwrap();
        let store = archive.store();
        let mut bytes = hozon_archiver::stored::read(store, &changed_doc)
            .unwrap()
            .unwrap();
        bytes[40] ^= 0x20;
        let mut batch = store.batch();
        match hozon_archiver::stored::location(store, &changed_doc).unwrap() {
            Location::Arrival(key) => batch.put::<Arrivals>(&key, &bytes),
            Location::Object(id) => batch.put::<Objects>(&id, &bytes),
        }
        // Batch B is tree 2 (sealed second); its leaf 2 is `victim`.
        let key = PageKey {
            tree: 2,
            level: 0,
            page: 0,
        };
        let mut page = store.get::<Pages>(&key).unwrap().unwrap();
        assert_eq!(&page[64..96], &victim);
        page[70] ^= 1;
        batch.put::<Pages>(&key, &page);
        store
            .commit(batch, hozon_storage::Durability::Durable)
            .unwrap();
    }
    // Every document of batch B sits in its one leaf page, so the changed node breaks every
    // stored path of that page: the victim's leaf is named as changed, the others as no longer
    // reaching the root; the documents are intact, so only the changed one is lost.
    assert!(b <= 256);
    let r = bulk(&s, &s.rsa_retired, &[], 1);
    assert_eq!(r.totals.invalid, 1 + b as u64, "{r:?}");
    assert_eq!(r.totals.valid, total - 1 - b as u64);
    let named: Vec<(&str, &str)> = r
        .invalid_documents
        .iter()
        .map(|d| (d.id.as_str(), d.code.as_str()))
        .collect();
    let (changed_hex, victim_hex) = (hex::encode(changed_doc), hex::encode(victim));
    assert!(
        named.contains(&(changed_hex.as_str(), "document-changed")),
        "{named:?}"
    );
    assert!(
        named.contains(&(victim_hex.as_str(), "tree-node-changed")),
        "{named:?}"
    );
    let victim_entry = r
        .invalid_documents
        .iter()
        .find(|d| d.id == victim_hex)
        .unwrap();
    assert!(
        victim_entry
            .reason
            .contains("leaf 2 of tree 2 is not the hash"),
        "{victim_entry:?}"
    );
    assert_eq!(
        r.invalid_by_code.get("tree-node-changed").copied(),
        Some(b as u64)
    );
    assert_eq!(r.plan.lost_documents, 1);
    assert_eq!(r.plan.damaged_trees, vec![2]);
    let damaged = r.batches.iter().find(|e| e.tree == 2).unwrap();
    assert_eq!(damaged.damage, vec!["level 0 page 0 (leaf 2)".to_owned()]);
    let (_, text, _) = hozon(
        &s,
        &[
            "verify",
            "archive",
            "--policy",
            s.rsa_retired.to_str().unwrap(),
            "--at",
            AT,
        ],
    );
    assert!(
        text.contains(&changed_hex) && text.contains(&victim_hex),
        "{text}"
    );

    // Interrupted after the first batch (Ctrl-C sets the same flag): the report says it is
    // partial and covers only what was checked.
    let archive = Archive::open(s.data.join("archive")).unwrap();
    let trust = Trust {
        anchors: s.anchors.clone(),
        extra_certs: Vec::new(),
        crls: s.pki.crls.iter().map(|c| c.der.clone()).collect(),
        usage: UsagePolicy::default(),
    };
    let policy = hozon_verifier::policy::Policy::etsi();
    let cancel = AtomicBool::new(false);
    let r = archive
        .verify_all(&hozon_archiver::bulk::Options {
            policy: &policy,
            now: sys(day(2027, 3, 1)),
            trust: &trust,
            signatures: false,
            renew_to: DigestAlgorithm::Sha512,
            max_listed: 10,
            cancel: &cancel,
            progress: &|_, _| cancel.store(true, Ordering::SeqCst),
        })
        .unwrap();
    assert!(!r.complete);
    assert!(r.documents > 0 && r.documents < total, "{}", r.documents);
}
