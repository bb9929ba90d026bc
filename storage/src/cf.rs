//! Every column family hozon uses, declared once.
//!
//! A column family is RocksDB's unit of key space with its own options; each [`Cf`] below is
//! one logical table. Adding one is safe (it is created at the next open); renaming or removing
//! one is a format change and must bump [`crate::FORMAT_VERSION`].

/// The column families of a hozon store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Store-wide facts: format version, instance identity, counters (keys: [`crate::MetaKey`]).
    Meta,
    /// TSA audit log: one record per issued token, hash-chained, keyed by issue sequence.
    TsaAudit,
    /// Archived objects, content-addressed by their SHA-256: validation data (certificates,
    /// CRLs, signature timestamps) and, in stores of format 1, the documents themselves.
    Documents,
    /// Validation data captured at ingest (signer chain, CRLs/OCSP, signature timestamp).
    Validation,
    /// Documents waiting for the next sealed batch, keyed by arrival sequence.
    Pending,
    /// Sealed batches: Merkle root, timestamp token, hash algorithm, renewal history.
    Batches,
    /// Merkle tree nodes of sealed batches, so a reduced hash tree is O(log n) reads.
    Tree,
    /// Long-running jobs (sealing, renewal, bulk verification) and their resumable state.
    Jobs,
    /// Where each archived document sits: the hash trees (one per hash algorithm it has been
    /// protected under) and its leaf index in each, so its evidence record is O(log n) reads.
    Placement,
    /// Archived document bytes by arrival (arrival sequence, then SHA-256), inline in 64 KiB
    /// blocks. Sealed trees list their documents in arrival order, so re-hashing a tree reads
    /// them in one sequential scan; a document's record names its arrival (format 2; before
    /// it, documents were in [`Cf::Documents`] only).
    Arrivals,
    /// Each archived document's validation record and its signature timestamp (a JWS
    /// document's side token) under the document's key in [`Cf::Arrivals`], inline in 64 KiB
    /// blocks: re-checking the signatures of a tree's documents reads what each check needs
    /// in one scan beside the documents, instead of one random read in [`Cf::Validation`] and
    /// one in [`Cf::Documents`] per document (format 3; before it, side tokens were in
    /// [`Cf::Documents`] and records in [`Cf::Validation`] only).
    ArrivalValidation,
}

impl Cf {
    /// All column families, in declaration order.
    pub const ALL: [Cf; 11] = [
        Cf::Meta,
        Cf::TsaAudit,
        Cf::Documents,
        Cf::Validation,
        Cf::Pending,
        Cf::Batches,
        Cf::Tree,
        Cf::Jobs,
        Cf::Placement,
        Cf::Arrivals,
        Cf::ArrivalValidation,
    ];

    /// The name RocksDB knows the column family by. Never change a name: it is on disk.
    pub const fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::TsaAudit => "tsa_audit",
            Cf::Documents => "documents",
            Cf::Validation => "validation",
            Cf::Pending => "pending",
            Cf::Batches => "batches",
            Cf::Tree => "tree",
            Cf::Jobs => "jobs",
            Cf::Placement => "placement",
            Cf::Arrivals => "arrivals",
            Cf::ArrivalValidation => "arrival_validation",
        }
    }

    /// Whether values are large and worth block compression with zstd (all of them except the
    /// tiny bookkeeping families, where compression only costs CPU).
    pub(crate) const fn compressed(self) -> bool {
        !matches!(self, Cf::Meta | Cf::Pending)
    }
}
