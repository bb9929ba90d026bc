//! The archive of signed documents: ingest, Merkle-batched sealing under RFC 3161 timestamps,
//! RFC 4998 renewal, and export of evidence records.
//!
//! - [`ingest`]: verify a document with the verifier core, capture its validation data, and
//!   store both content-addressed in one durable batch (the acknowledgement comes after it).
//! - [`seal`]: pending documents become one hash tree, stored in [`pages`], and one
//!   timestamp over its root; the tree, the placements and the removal from the pending
//!   queue are one atomic write, so a crash leaves the batch either sealed or still pending.
//! - [`renew`]: what the algorithm policy and the TSA certificates make due, and the two
//!   renewals of RFC 4998 §5.2 (timestamp, hash tree), as resumable jobs.
//! - [`evidence`]: the evidence record of a document, assembled from the stored trees in
//!   O(log n) reads; [`export`] writes it with the document and its validation data.
//! - [`client`]: timestamps from one or more TSAs, with failover and verification.
//! - [`model`]: what is stored where.
//!
//! Everything here is synchronous; the HTTP server sits in the binary.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bulk;
pub mod client;
pub mod evidence;
pub mod export;
pub mod ingest;
pub mod model;
pub mod pages;
pub mod renew;
pub mod seal;
pub mod status;
pub mod stored;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hozon_storage::{MetaKey, StorageError, Store};
use hozon_tsa::signer::DigestAlgorithm;

use crate::model::{DocId, Pending};

/// Errors of the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No timestamp could be obtained.
    #[error(transparent)]
    Stamp(#[from] client::StampError),
    /// The document is not in the archive.
    #[error("no document {0} in the archive")]
    NotFound(String),
    /// The document is archived but not sealed yet.
    #[error("document {0} is waiting for the next batch; run `hozon archive seal` first")]
    NotSealed(String),
    /// Stored data does not add up (a damaged tree, a missing record).
    #[error("the archive is damaged: {0}")]
    Damaged(String),
    /// An evidence record could not be assembled.
    #[error("building the evidence record: {0}")]
    Evidence(String),
    /// The archive is configured in a way that cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// The job was interrupted (Ctrl-C); its progress is saved.
    #[error("interrupted; progress is saved and the next run resumes")]
    Interrupted,
    /// I/O outside the store (export).
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl From<hozon_verifier::hashtree::HashTreeError> for ArchiveError {
    fn from(e: hozon_verifier::hashtree::HashTreeError) -> Self {
        ArchiveError::Damaged(format!("hash tree: {e}"))
    }
}

impl From<hozon_storage::CodecError> for ArchiveError {
    fn from(e: hozon_storage::CodecError) -> Self {
        ArchiveError::Damaged(e.to_string())
    }
}

impl From<hozon_verifier::ers::ErsBuildError> for ArchiveError {
    fn from(e: hozon_verifier::ers::ErsBuildError) -> Self {
        ArchiveError::Evidence(e.to_string())
    }
}

/// How batches are made.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Hash algorithm of new document trees.
    pub digest: DigestAlgorithm,
    /// A batch is sealed when this many documents wait…
    pub batch_size: usize,
    /// …or when the oldest has waited this long.
    pub batch_age: Duration,
    /// Hash algorithm a hash-tree renewal moves to.
    pub renew_digest: DigestAlgorithm,
}

impl Default for Settings {
    /// A national service's defaults: 100,000 documents or 10 minutes, SHA-256 trees,
    /// hash-tree renewal to SHA-512.
    fn default() -> Self {
        Settings {
            digest: DigestAlgorithm::Sha256,
            batch_size: 100_000,
            batch_age: Duration::from_secs(600),
            renew_digest: DigestAlgorithm::Sha512,
        }
    }
}

/// An open archive.
pub struct Archive {
    store: Arc<Store>,
    next_seq: AtomicU64,
    in_flight: Mutex<HashSet<DocId>>,
    /// Shared validation data (certificates, CRLs: see [`ingest::Crls`]) this process has
    /// durably stored; objects are never deleted, so these need not be written again. At
    /// most [`ingest::STORED_OBJECTS_MAX`] ids: when full it starts again empty, and an
    /// object it forgot is merely written once more.
    stored_objects: Mutex<HashSet<DocId>>,
    jobs: Mutex<()>,
}

impl Archive {
    /// Opens (or creates) the archive store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Archive, ArchiveError> {
        let store = Arc::new(Store::open(path)?);
        Archive::with_store(store)
    }

    /// An archive over an open store.
    pub fn with_store(store: Arc<Store>) -> Result<Archive, ArchiveError> {
        let floor = store.meta_u64(MetaKey::ArchivePendingFloor)?.unwrap_or(0);
        let last = store.last::<Pending>()?.map(|(k, _)| k + 1).unwrap_or(0);
        Ok(Archive {
            store,
            next_seq: AtomicU64::new(floor.max(last)),
            in_flight: Mutex::new(HashSet::new()),
            stored_objects: Mutex::new(HashSet::new()),
            jobs: Mutex::new(()),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn reserve_seqs(&self, n: u64) -> u64 {
        self.next_seq.fetch_add(n, Ordering::SeqCst)
    }

    /// Holds the job lock: one sealing or renewal at a time in this process (the store's
    /// lock keeps other processes out).
    fn job_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
