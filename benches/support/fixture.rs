//! What the archive benchmarks share: opaque documents, a dev-hierarchy TSA that records its
//! calls, and an ingest loop that prepares on all cores while another thread commits.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hozon_archiver::client::{check_token, Stamp, StampError, Timestamper, TokenCheck};
use hozon_archiver::ingest::{Mode, Prepared, Stored, Trust};
use hozon_archiver::Archive;
use hozon_devkit::corpus::{Corpus, CorpusSpec, Format, GeneratedDocument};
use hozon_devkit::pki::TestPki;
use hozon_devkit::sign::Stamper;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::document::UsagePolicy;
use hozon_verifier::path::TrustAnchors;
use rayon::prelude::*;

/// Size of an opaque document.
pub const DOC_SIZE: usize = 5 * 1024;

/// How the sealing and renewal documents are taken in: opaque bytes, no signature check.
pub const OPAQUE: Mode = Mode {
    opaque: true,
    keep_unverified: false,
};
/// Documents per durable commit.
pub const CHUNK: usize = 512;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A TSA of the dev hierarchy, stamping now; every token goes through the archive's check.
/// Records when it was called, so that a job can be split at its TSA call.
pub struct DevTsa {
    stamper: Stamper,
    check: TokenCheck,
    serial: AtomicU64,
    calls: Mutex<Vec<(Instant, Duration)>>,
}

impl DevTsa {
    pub fn new(pki: &TestPki, anchors: &TrustAnchors) -> DevTsa {
        DevTsa {
            stamper: Stamper::new(pki.tsa("tsa-1").expect("TSA")),
            check: TokenCheck {
                anchors: Arc::new(anchors.clone()),
                extra_certs: Arc::new(Vec::new()),
                max_skew: Some(Duration::from_secs(60)),
            },
            serial: AtomicU64::new(1),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Calls so far: (start, duration).
    pub fn calls(&self) -> Vec<(Instant, Duration)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Timestamper for DevTsa {
    fn timestamp(&self, digest: DigestAlgorithm, imprint: &[u8]) -> Result<Stamp, StampError> {
        let t = Instant::now();
        let serial = self.serial.fetch_add(1, Ordering::SeqCst).to_be_bytes();
        let der = self
            .stamper
            .stamp_with(digest, imprint, chrono::Utc::now(), &serial)
            .map_err(|e| StampError::AllFailed(vec![e.to_string()]))?;
        let stamp = check_token(&der, digest, imprint, None, &self.check, "tsa-1");
        self.calls.lock().unwrap().push((t, t.elapsed()));
        stamp
    }
}

pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Opaque document `i`: 5 KiB of `pattern` with every word mixed with one of the document's
/// own (splitmix64 of `i` and the word's place), so documents are incompressible alone and
/// together. (A per-document word only every 64 bytes left neighbouring documents sharing
/// most of their bytes, which zstd found when documents came to share a block: reading
/// them became decompressing, which no opaque document would need.)
pub fn opaque_doc(pattern: &[u8], i: u64) -> Vec<u8> {
    let mut d = pattern.to_vec();
    for (k, word) in d.chunks_exact_mut(8).enumerate() {
        let w = splitmix(i.wrapping_mul(0x1_0000) ^ k as u64);
        let mixed = u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ w;
        word.copy_from_slice(&mixed.to_le_bytes());
    }
    d[8..16].copy_from_slice(&i.to_be_bytes());
    d
}

pub fn pattern() -> Vec<u8> {
    (0..DOC_SIZE as u64 / 8)
        .flat_map(|k| splitmix(0xA5A5_0000 ^ k).to_le_bytes())
        .collect()
}

/// What an ingest run did.
pub struct IngestRun {
    pub seconds: f64,
    pub new: usize,
    pub refused: usize,
    pub bytes: u64,
    /// Time the main thread spent preparing (verifying, hashing) on all cores.
    pub prepare: f64,
    /// Time the committing thread spent in durable commits.
    pub commit: f64,
}

/// Ingests `count` documents made by `make(i)` (already prepared, or refused), `CHUNK` per
/// durable commit: each chunk is prepared on all cores while a separate thread commits the
/// previous one, as an ingest server would.
pub fn ingest(
    archive: &Archive,
    count: usize,
    make: impl Fn(usize) -> Option<Prepared> + Sync,
) -> IngestRun {
    let t = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Vec<Prepared>>(1);
    let mut prepare_time = 0.0;
    let mut refused = 0;
    let mut bytes = 0u64;
    let (new, commit) = std::thread::scope(|s| {
        let committer = s.spawn(move || {
            let mut new = 0usize;
            let mut busy = 0.0;
            for chunk in rx {
                let t = Instant::now();
                let out = archive.commit(chunk).expect("commit");
                busy += t.elapsed().as_secs_f64();
                new += out.iter().filter(|o| matches!(o, Stored::New(_))).count();
            }
            (new, busy)
        });
        for start in (0..count).step_by(CHUNK) {
            let end = (start + CHUNK).min(count);
            let tp = Instant::now();
            let chunk: Vec<Option<Prepared>> = (start..end).into_par_iter().map(&make).collect();
            prepare_time += tp.elapsed().as_secs_f64();
            refused += chunk.iter().filter(|p| p.is_none()).count();
            let chunk: Vec<Prepared> = chunk.into_iter().flatten().collect();
            bytes += chunk.iter().map(|p| p.bytes.len() as u64).sum::<u64>();
            tx.send(chunk).expect("committer alive");
        }
        drop(tx);
        committer.join().expect("committer")
    });
    IngestRun {
        seconds: t.elapsed().as_secs_f64(),
        new,
        refused,
        bytes,
        prepare: prepare_time,
        commit,
    }
}

/// Reads every stored object (documents, and any validation data) once, in key order, on one
/// thread, with no hashing: how many, their bytes, and the seconds the scan took.
pub fn scan_objects(archive: &Archive) -> (u64, u64, f64) {
    let snap = archive.store().snapshot();
    let t = Instant::now();
    let (mut objects, mut bytes) = (0u64, 0u64);
    // Documents (by arrival), then the objects of their validation data.
    let documents = snap.iter::<hozon_archiver::model::Arrivals>();
    let validation = snap.iter::<hozon_archiver::model::Objects>();
    let values = documents
        .map(|r| r.map(|(_, v)| v))
        .chain(validation.map(|r| r.map(|(_, v)| v)));
    for value in values {
        objects += 1;
        bytes += value.expect("readable").len() as u64;
    }
    (objects, bytes, t.elapsed().as_secs_f64())
}

pub fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// CPU seconds this process has used so far, user and system, all threads (RocksDB's flush
/// and compaction threads included): `getrusage(RUSAGE_SELF)`.
pub fn cpu_seconds() -> f64 {
    // SAFETY: `usage` is a plain C struct that getrusage fills; it is read only on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A line of /proc/self/status (`VmHWM`, `VmRSS`), as printed there.
pub fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len() + 1..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

/// How a bench was started: as a benchmark (`cargo bench` passes `--bench`) or as the quick
/// smoke test `cargo test --all-targets` runs; its sizes, the cores, and a store directory
/// under /var/tmp (removed at the end).
pub struct BenchRun {
    pub bench: bool,
    /// `HOZON_BENCH_DOCS`: 1,000,000, or `smoke_docs` in test mode.
    pub n: usize,
    /// `HOZON_BENCH_SIGNED`: 3,000, or 20 in test mode.
    pub n_signed: usize,
    pub cores: usize,
    pub tmp: tempfile::TempDir,
    /// `HOZON_BENCH_CACHE_MIB`: the stores' block cache (the archive's `block_cache_mib`),
    /// storage's default unless set; applied by [`start`].
    pub cache_mib: usize,
}

pub fn start(prefix: &str, smoke_docs: usize) -> BenchRun {
    let bench = std::env::args().any(|a| a == "--bench");
    let cache_mib = env_usize(
        "HOZON_BENCH_CACHE_MIB",
        hozon_storage::DEFAULT_BLOCK_CACHE >> 20,
    )
    .max(1);
    hozon_storage::set_block_cache_capacity(cache_mib << 20);
    BenchRun {
        cache_mib,
        bench,
        n: env_usize(
            "HOZON_BENCH_DOCS",
            if bench { 1_000_000 } else { smoke_docs },
        )
        .max(1),
        n_signed: env_usize("HOZON_BENCH_SIGNED", if bench { 3_000 } else { 20 }).max(1),
        cores: rayon::current_num_threads(),
        tmp: tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/var/tmp")
            .expect("temporary directory under /var/tmp"),
    }
}

/// The dev hierarchy's roots and CRLs as an archive's trust.
pub fn dev_trust(pki: &TestPki) -> Trust {
    let roots: Vec<Vec<u8>> = pki.roots().iter().map(|r| r.to_vec()).collect();
    Trust {
        anchors: TrustAnchors::new(&roots).expect("anchors"),
        extra_certs: Vec::new(),
        crls: pki.crls.iter().map(|c| c.der.clone()).collect(),
        usage: UsagePolicy::default(),
    }
}

/// The dev corpus of `n` documents (seed 1, mixed JWS and CMS): its document `i` is
/// `corpus.good(i)`, made on demand.
pub fn signed_corpus(pki: &TestPki, n: usize) -> Corpus<'_> {
    Corpus::new(
        pki,
        CorpusSpec {
            count: n as u64,
            seed: 1,
            format: Format::Mixed,
        },
    )
    .expect("corpus")
}

/// The first `n` good documents of the dev corpus (seed 1, mixed JWS and CMS), generated on
/// all cores.
pub fn signed_docs(pki: &TestPki, n: usize) -> Vec<GeneratedDocument> {
    let corpus = signed_corpus(pki, n);
    (0..n as u64)
        .into_par_iter()
        .map(|i| corpus.good(i).expect("document"))
        .collect()
}
