//! The TSA audit log: one record per issued token, hash-chained.
//!
//! Each stored entry is `prev_hash ‖ record`, where `prev_hash` is the chain hash of the entry
//! before it (32 zero bytes for the first), and an entry's chain hash is
//! `SHA-256("hozon-tsa-audit-v1" ‖ seq (u64 BE) ‖ prev_hash ‖ record)`. Removing or editing an
//! entry breaks the link from the entry after it, and a gap in sequence numbers is reported;
//! the head hash ([`ChainSummary::head`]) is logged by the server so that truncation of the
//! newest entries can be caught against an outside copy.
//!
//! Appends are group-committed: [`AuditWriter`] runs one thread that takes every record
//! waiting, links them, and writes them to the [`AuditSink`] in one durable batch, so that
//! concurrent requests share one fsync instead of queueing behind each other's. While tokens
//! are being signed ([`AuditWriter::expect`]), the writer waits up to a short linger for
//! their records before it syncs (PostgreSQL's `commit_delay` with `commit_siblings`): at
//! load each fsync then carries several records instead of about two, and a lone request
//! never waits.

use crate::signer::DigestAlgorithm;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DOMAIN: &[u8] = b"hozon-tsa-audit-v1";
const RECORD_VERSION: u8 = 1;

/// What is recorded for every issued token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Token serial number, unsigned big-endian.
    pub serial: Vec<u8>,
    /// genTime of the token.
    pub gen_time: SystemTime,
    /// Hash algorithm of the message imprint.
    pub digest: DigestAlgorithm,
    /// The message imprint.
    pub imprint: Vec<u8>,
    /// Policy OID of the token, dotted.
    pub policy: String,
    /// Client address as seen by the server.
    pub client: String,
}

/// A stored audit entry could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("audit entry malformed: {0}")]
pub struct AuditDecodeError(&'static str);

fn digest_code(d: DigestAlgorithm) -> u8 {
    match d {
        DigestAlgorithm::Sha1 => 1,
        DigestAlgorithm::Sha256 => 2,
        DigestAlgorithm::Sha384 => 3,
        DigestAlgorithm::Sha512 => 4,
        DigestAlgorithm::Sha3_256 => 5,
        DigestAlgorithm::Sha3_512 => 6,
    }
}

fn digest_from_code(c: u8) -> Option<DigestAlgorithm> {
    Some(match c {
        1 => DigestAlgorithm::Sha1,
        2 => DigestAlgorithm::Sha256,
        3 => DigestAlgorithm::Sha384,
        4 => DigestAlgorithm::Sha512,
        5 => DigestAlgorithm::Sha3_256,
        6 => DigestAlgorithm::Sha3_512,
        _ => return None,
    })
}

impl AuditRecord {
    /// Stable binary encoding: version, then length-prefixed fields.
    pub fn encode(&self) -> Vec<u8> {
        let since = self.gen_time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut out = Vec::with_capacity(64 + self.imprint.len() + self.client.len());
        out.push(RECORD_VERSION);
        put(&mut out, &self.serial);
        out.extend_from_slice(&since.as_secs().to_be_bytes());
        out.extend_from_slice(&since.subsec_nanos().to_be_bytes());
        out.push(digest_code(self.digest));
        put(&mut out, &self.imprint);
        put(&mut out, self.policy.as_bytes());
        put(&mut out, self.client.as_bytes());
        out
    }

    /// Inverse of [`AuditRecord::encode`]; never panics.
    pub fn decode(mut b: &[u8]) -> Result<Self, AuditDecodeError> {
        let v = take(&mut b, 1)?[0];
        if v != RECORD_VERSION {
            return Err(AuditDecodeError("unknown record version"));
        }
        let serial = get(&mut b)?.to_vec();
        let secs = u64::from_be_bytes(take(&mut b, 8)?.try_into().expect("8 bytes"));
        let nanos = u32::from_be_bytes(take(&mut b, 4)?.try_into().expect("4 bytes"));
        if nanos >= 1_000_000_000 {
            return Err(AuditDecodeError("nanoseconds out of range"));
        }
        let digest =
            digest_from_code(take(&mut b, 1)?[0]).ok_or(AuditDecodeError("unknown digest code"))?;
        let imprint = get(&mut b)?.to_vec();
        let policy = String::from_utf8(get(&mut b)?.to_vec())
            .map_err(|_| AuditDecodeError("policy not UTF-8"))?;
        let client = String::from_utf8(get(&mut b)?.to_vec())
            .map_err(|_| AuditDecodeError("client not UTF-8"))?;
        if !b.is_empty() {
            return Err(AuditDecodeError("trailing bytes"));
        }
        let gen_time = UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .ok_or(AuditDecodeError("time out of range"))?;
        Ok(AuditRecord {
            serial,
            gen_time,
            digest,
            imprint,
            policy,
            client,
        })
    }
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are short (serial ≤ 21, imprint ≤ 64, OID and address well under 64 KiB).
    let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&field[..usize::from(len)]);
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], AuditDecodeError> {
    if b.len() < n {
        return Err(AuditDecodeError("truncated"));
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Ok(h)
}

fn get<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], AuditDecodeError> {
    let len = u16::from_be_bytes(take(b, 2)?.try_into().expect("2 bytes"));
    take(b, usize::from(len))
}

/// Chain hash of the entry with sequence number `seq` whose stored bytes are `entry`
/// (`prev_hash ‖ record`).
pub fn chain_hash(seq: u64, entry: &[u8]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(&seq.to_be_bytes());
    ctx.update(entry);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Build the stored bytes of an entry.
pub fn encode_entry(prev_hash: &[u8; 32], record: &AuditRecord) -> Vec<u8> {
    let mut out = prev_hash.to_vec();
    out.extend_from_slice(&record.encode());
    out
}

/// Split stored bytes into `(prev_hash, record)`.
pub fn decode_entry(entry: &[u8]) -> Result<([u8; 32], AuditRecord), AuditDecodeError> {
    if entry.len() < 32 {
        return Err(AuditDecodeError("shorter than its chain link"));
    }
    let (prev, rec) = entry.split_at(32);
    Ok((
        prev.try_into().expect("32 bytes"),
        AuditRecord::decode(rec)?,
    ))
}

/// Result of checking a whole chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Number of entries.
    pub entries: u64,
    /// Chain hash of the newest entry (zeros for an empty log).
    pub head: [u8; 32],
    /// genTime of the first and last record.
    pub first_time: Option<SystemTime>,
    /// genTime of the newest record.
    pub last_time: Option<SystemTime>,
}

/// Why the chain does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditChainError {
    /// An entry is missing.
    #[error(
        "audit entry {expected} is missing (next present entry is {found}): a record was removed"
    )]
    Gap {
        /// The sequence number that should have come next.
        expected: u64,
        /// The sequence number found instead.
        found: u64,
    },
    /// An entry's link does not match the entry before it.
    #[error("audit entry {seq} does not link to entry {}: entry {} was edited or replaced", seq.saturating_sub(1), seq.saturating_sub(1))]
    BrokenLink {
        /// The entry whose link is wrong.
        seq: u64,
    },
    /// An entry does not decode.
    #[error("audit entry {seq}: {source}")]
    Malformed {
        /// The entry.
        seq: u64,
        /// What is wrong.
        #[source]
        source: AuditDecodeError,
    },
    /// The store could not be read.
    #[error("reading the audit log: {0}")]
    Read(String),
}

/// Check a chain given in sequence order, starting at sequence 0.
pub fn verify_chain<E: std::fmt::Display>(
    entries: impl IntoIterator<Item = Result<(u64, Vec<u8>), E>>,
) -> Result<ChainSummary, AuditChainError> {
    let mut expected = 0u64;
    let mut head = [0u8; 32];
    let mut first_time = None;
    let mut last_time = None;
    for item in entries {
        let (seq, entry) = item.map_err(|e| AuditChainError::Read(e.to_string()))?;
        if seq != expected {
            return Err(AuditChainError::Gap {
                expected,
                found: seq,
            });
        }
        let (prev, rec) =
            decode_entry(&entry).map_err(|source| AuditChainError::Malformed { seq, source })?;
        if prev != head {
            return Err(AuditChainError::BrokenLink { seq });
        }
        first_time.get_or_insert(rec.gen_time);
        last_time = Some(rec.gen_time);
        head = chain_hash(seq, &entry);
        expected += 1;
    }
    Ok(ChainSummary {
        entries: expected,
        head,
        first_time,
        last_time,
    })
}

/// Durable storage of audit entries (RocksDB in the binary; memory in tests).
pub trait AuditSink: Send + 'static {
    /// The newest entry, if any: `(seq, stored bytes)`.
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, String>;
    /// Append entries atomically and durably (all or none, fsynced before returning).
    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), String>;
}

/// Audit append failed: the token must not be released.
#[derive(Debug, thiserror::Error)]
#[error("audit log write failed: {0}")]
pub struct AuditError(pub String);

type Reply = tokio::sync::oneshot::Sender<Result<u64, AuditError>>;

/// A record handed to the writer: wait on it (blocking or async) to learn that the record is
/// durable, and under which sequence number. Dropping it does not withdraw the record.
#[derive(Debug)]
#[must_use = "a token may only be released once its audit record is durable"]
pub struct AuditTicket(tokio::sync::oneshot::Receiver<Result<u64, AuditError>>);

impl AuditTicket {
    /// Blocks until the record is durable (or the write failed). Not for async contexts.
    pub fn wait(self) -> Result<u64, AuditError> {
        self.0.blocking_recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// Waits, without a thread, until the record is durable (or the write failed).
    pub async fn durable(self) -> Result<u64, AuditError> {
        self.0.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> AuditError {
    AuditError("audit thread stopped".into())
}

/// Group-committing writer over an [`AuditSink`]; cheap to clone, shareable across threads.
///
/// When the last clone is dropped the writer thread drains what was queued, drops the sink
/// and is joined, so the sink (a RocksDB store in the binary) is closed before the process
/// exits rather than racing the C++ static destructors from a detached thread.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    // Field order matters: the sender must drop before the worker is joined.
    tx: mpsc::Sender<(AuditRecord, Reply)>,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Records announced by [`AuditWriter::expect`] and not yet submitted.
    expected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _worker: std::sync::Arc<Worker>,
}

/// Joins the writer thread once no sender is left.
#[derive(Debug)]
struct Worker(Option<std::thread::JoinHandle<()>>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            if h.join().is_err() {
                tracing::error!("audit writer thread panicked");
            }
        }
    }
}

/// Most records written in one batch.
const MAX_GROUP: usize = 1024;

/// The next group of a group commit: waits for one item, then takes every item already
/// waiting, up to `max` in all. `None` once every sender is gone and nothing is left.
///
/// The audit writer takes its records this way, and `hozon archive serve` its documents.
pub fn next_group<T>(rx: &mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let mut group = vec![rx.recv().ok()?];
    take_waiting(rx, &mut group, max);
    Some(group)
}

/// Adds to `group` every item already waiting, up to `max` in all.
fn take_waiting<T>(rx: &mpsc::Receiver<T>, group: &mut Vec<T>, max: usize) {
    while group.len() < max {
        match rx.try_recv() {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
}

/// How long the writer waits, after the first record of a group, for records of tokens
/// being signed at that moment. Measured with `cargo bench --bench tsa_load` (SoftHSM, 2
/// cores): without it, about 2 records shared each fsync and the sync path (the writer
/// thread and the block layer) took about a quarter of all CPU time at ECDSA P-256 rates.
/// A millisecond is small beside the 20 ms p99 the TSA is held to.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

/// Waits, after `group`'s first item, for more while `expected` says some are on their way,
/// until `linger` has passed or `max` are taken.
fn gather<T>(
    rx: &mpsc::Receiver<T>,
    group: &mut Vec<T>,
    max: usize,
    expected: &std::sync::atomic::AtomicUsize,
    linger: Duration,
) {
    let deadline = std::time::Instant::now() + linger;
    while group.len() < max && expected.load(std::sync::atomic::Ordering::Acquire) > 0 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok(item) => {
                group.push(item);
                take_waiting(rx, group, max);
            }
            Err(_) => break,
        }
    }
}

/// A record on its way to the writer (see [`AuditWriter::expect`]); dropping it, whether or
/// not the record was submitted, withdraws the announcement.
#[derive(Debug)]
#[must_use = "the announcement lasts as long as the guard"]
pub struct Expected(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Expected {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Release);
    }
}

impl AuditWriter {
    /// Start the writer thread with [`DEFAULT_LINGER`]. Fails if the sink's newest entry
    /// cannot be read.
    pub fn start(sink: Box<dyn AuditSink>) -> Result<AuditWriter, AuditError> {
        Self::start_with_linger(sink, DEFAULT_LINGER)
    }

    /// Start the writer thread; while records are [expected](AuditWriter::expect), a group
    /// waits up to `linger` for them before it is synced (zero: never).
    pub fn start_with_linger(
        mut sink: Box<dyn AuditSink>,
        linger: Duration,
    ) -> Result<AuditWriter, AuditError> {
        let (mut next, mut head) = match sink.last().map_err(AuditError)? {
            None => (0, [0u8; 32]),
            Some((seq, bytes)) => (seq + 1, chain_hash(seq, &bytes)),
        };
        let (tx, rx) = mpsc::channel::<(AuditRecord, Reply)>();
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let committed = commits.clone();
        let expected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let coming = expected.clone();
        let handle = std::thread::Builder::new()
            .name("tsa-audit".into())
            .spawn(move || {
                while let Some(mut group) = next_group(&rx, MAX_GROUP) {
                    if !linger.is_zero() {
                        gather(&rx, &mut group, MAX_GROUP, &coming, linger);
                    }
                    let mut entries = Vec::with_capacity(group.len());
                    let mut h = head;
                    for (i, (rec, _)) in group.iter().enumerate() {
                        let seq = next + i as u64;
                        let entry = encode_entry(&h, rec);
                        h = chain_hash(seq, &entry);
                        entries.push((seq, entry));
                    }
                    let result = sink.append(&entries);
                    committed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    metrics::counter!("hozon_tsa_audit_commits_total").increment(1);
                    metrics::histogram!("hozon_tsa_audit_group_size").record(entries.len() as f64);
                    match result {
                        Ok(()) => {
                            for (i, (_, reply)) in group.into_iter().enumerate() {
                                let _ = reply.send(Ok(next + i as u64));
                            }
                            next += entries.len() as u64;
                            head = h;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "audit log append failed; tokens withheld");
                            for (_, reply) in group {
                                let _ = reply.send(Err(AuditError(e.clone())));
                            }
                        }
                    }
                }
            })
            .map_err(|e| AuditError(format!("cannot start audit thread: {e}")))?;
        Ok(AuditWriter {
            tx,
            commits,
            expected,
            _worker: std::sync::Arc::new(Worker(Some(handle))),
        })
    }

    /// Announce a record that is about to be submitted (its token is being signed), so that
    /// the group being gathered waits for it; hold the guard until the record is submitted
    /// or given up.
    pub fn expect(&self) -> Expected {
        self.expected
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Expected(self.expected.clone())
    }

    /// Hand one issued token's record to the writer; the ticket says when it is durable.
    ///
    /// The writer wakes the ticket's waiter directly, so an async caller (the HTTP edge) does
    /// not hold a thread while the group commit it joined is being synced.
    pub fn submit(&self, record: AuditRecord) -> AuditTicket {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        // If the thread is gone the reply sender is dropped with the message, and the
        // ticket reports the writer stopped.
        let _ = self.tx.send((record, reply_tx));
        AuditTicket(reply_rx)
    }

    /// Durable writes (group commits) made so far, successful or not.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Record one issued token; returns its audit sequence number once it is durable.
    /// Blocks: not for async contexts (use [`AuditWriter::submit`] there).
    pub fn append(&self, record: AuditRecord) -> Result<u64, AuditError> {
        self.submit(record).wait()
    }
}

/// Stored entries: `(sequence number, prev_hash ‖ record)`.
pub type Entries = Vec<(u64, Vec<u8>)>;

/// An in-memory sink, for tests and for `--dev` runs without a store.
#[derive(Debug, Default, Clone)]
pub struct MemorySink(pub std::sync::Arc<std::sync::Mutex<Entries>>);

impl AuditSink for MemorySink {
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, String> {
        Ok(self.0.lock().map_err(|e| e.to_string())?.last().cloned())
    }
    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .extend_from_slice(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_group_takes_what_waits_up_to_max_then_ends_with_the_senders() {
        let (tx, rx) = mpsc::channel();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(next_group(&rx, 3), Some(vec![0, 1, 2]));
        assert_eq!(next_group(&rx, 3), Some(vec![3, 4]));
        tx.send(5).unwrap();
        drop(tx);
        assert_eq!(next_group(&rx, 3), Some(vec![5]));
        assert_eq!(next_group(&rx, 3), None);
    }

    #[test]
    fn a_group_waits_for_records_being_signed_and_a_lone_record_does_not_wait() {
        let sink = MemorySink::default();
        // A linger far longer than the test: any wait it caused would show.
        let w = AuditWriter::start_with_linger(Box::new(sink.clone()), Duration::from_secs(30))
            .unwrap();
        let t = std::time::Instant::now();
        assert_eq!(w.submit(rec(0)).wait().unwrap(), 0);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "nothing was expected"
        );

        let (first, second) = (w.expect(), w.expect());
        drop(first);
        let a = w.submit(rec(1));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            w.commits(),
            1,
            "the group waits while a record is being signed"
        );
        drop(second);
        let b = w.submit(rec(2));
        assert_eq!((a.wait().unwrap(), b.wait().unwrap()), (1, 2));
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(sink.0.lock().unwrap().len(), 3);
    }

    #[test]
    fn an_announced_record_given_up_delays_its_group_by_the_linger_at_most() {
        let w = AuditWriter::start_with_linger(
            Box::new(MemorySink::default()),
            Duration::from_millis(200),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let given_up = w.expect();
        let a = w.submit(rec(0));
        drop(given_up);
        assert_eq!(a.wait().unwrap(), 0);
        assert_eq!(w.commits(), 1);
        // 200 ms of linger; the bound is loose for a loaded test machine.
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    fn rec(i: u8) -> AuditRecord {
        AuditRecord {
            serial: vec![0x40, i],
            gen_time: UNIX_EPOCH + Duration::new(1_735_689_600 + u64::from(i), 123_000_000),
            digest: DigestAlgorithm::Sha256,
            imprint: vec![i; 32],
            policy: "1.3.6.1.4.1.57264.2.1".into(),
            client: format!("127.0.0.1:{}", 40000 + u32::from(i)),
        }
    }

    fn written(n: u8) -> Vec<(u64, Vec<u8>)> {
        let sink = MemorySink::default();
        let w = AuditWriter::start(Box::new(sink.clone())).unwrap();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let w = w.clone();
                std::thread::spawn(move || w.append(rec(i)).unwrap())
            })
            .collect();
        let mut seqs: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        seqs.sort();
        assert_eq!(seqs, (0..u64::from(n)).collect::<Vec<_>>());
        let v = sink.0.lock().unwrap().clone();
        v
    }

    fn check(v: &[(u64, Vec<u8>)]) -> Result<ChainSummary, AuditChainError> {
        verify_chain(v.iter().cloned().map(Ok::<_, String>))
    }

    #[test]
    fn record_round_trip_and_garbage() {
        let r = rec(7);
        assert_eq!(AuditRecord::decode(&r.encode()).unwrap(), r);
        let enc = r.encode();
        for cut in 0..enc.len() {
            assert!(AuditRecord::decode(&enc[..cut]).is_err());
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(AuditRecord::decode(&longer).is_err());
    }

    #[test]
    fn concurrent_appends_form_one_chain() {
        let v = written(50);
        let s = check(&v).unwrap();
        assert_eq!(s.entries, 50);
        assert_ne!(s.head, [0; 32]);
    }

    #[test]
    fn removed_entry_is_a_gap() {
        let mut v = written(10);
        v.remove(4);
        assert!(matches!(
            check(&v),
            Err(AuditChainError::Gap {
                expected: 4,
                found: 5
            })
        ));
    }

    #[test]
    fn edited_entry_breaks_the_next_link() {
        let mut v = written(10);
        // Change the client address of entry 3 (last byte of the record).
        let last = v[3].1.len() - 1;
        v[3].1[last] ^= 1;
        assert!(matches!(
            check(&v),
            Err(AuditChainError::BrokenLink { seq: 4 })
        ));
    }

    #[test]
    fn renumbered_entries_break_the_chain() {
        // Remove entry 4 and renumber the rest so there is no gap: links catch it.
        let mut v = written(10);
        v.remove(4);
        for (i, e) in v.iter_mut().enumerate() {
            e.0 = i as u64;
        }
        assert!(matches!(
            check(&v),
            Err(AuditChainError::BrokenLink { seq: 4 })
        ));
    }

    #[test]
    fn writer_resumes_the_chain_of_an_existing_log() {
        let sink = MemorySink::default();
        {
            let w = AuditWriter::start(Box::new(sink.clone())).unwrap();
            w.append(rec(1)).unwrap();
            w.append(rec(2)).unwrap();
        }
        let w = AuditWriter::start(Box::new(sink.clone())).unwrap();
        assert_eq!(w.append(rec(3)).unwrap(), 2);
        let v = sink.0.lock().unwrap().clone();
        assert_eq!(check(&v).unwrap().entries, 3);
    }

    #[derive(Debug)]
    struct FailingSink;
    impl AuditSink for FailingSink {
        fn last(&self) -> Result<Option<(u64, Vec<u8>)>, String> {
            Ok(None)
        }
        fn append(&mut self, _: &[(u64, Vec<u8>)]) -> Result<(), String> {
            Err("disk full".into())
        }
    }

    #[test]
    fn a_failed_write_is_reported_to_the_caller() {
        let w = AuditWriter::start(Box::new(FailingSink)).unwrap();
        let e = w.append(rec(1)).unwrap_err();
        assert!(e.to_string().contains("disk full"));
    }

    /// A sink that records when it is dropped (the binary's sink closes a RocksDB store).
    struct DropFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl AuditSink for DropFlag {
        fn last(&self) -> Result<Option<(u64, Vec<u8>)>, String> {
            Ok(None)
        }
        fn append(&mut self, _: &[(u64, Vec<u8>)]) -> Result<(), String> {
            Ok(())
        }
    }
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_the_last_writer_closes_the_sink_before_returning() {
        // A detached writer thread used to close the store during process exit, racing
        // RocksDB's static destructors ("pthread lock: Invalid argument", SIGABRT).
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w = AuditWriter::start(Box::new(DropFlag(dropped.clone()))).unwrap();
        let w2 = w.clone();
        w.append(rec(1)).unwrap();
        drop(w);
        assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst));
        w2.append(rec(2)).unwrap();
        drop(w2);
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
}
