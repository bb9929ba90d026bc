//! hozon's storage: the one place that talks to RocksDB.
//!
//! - column families are declared once in [`Cf`], each with its purpose;
//! - keys and values are typed through [`Table`] and [`Codec`];
//! - writes go through [`Batch`], atomic across column families, committed either
//!   [`Durability::Durable`] (WAL fsynced before `commit` returns: use it for anything
//!   acknowledged to a client) or [`Durability::Buffered`];
//! - bulk reads use [`Snapshot`], a consistent point-in-time view;
//! - [`Store::checkpoint`] makes an online, consistent copy (hard links where possible).
//!
//! A format version is stored in [`Cf::Meta`] and checked before the store is opened for
//! writing, so that an older binary never writes into a newer store. Opening never creates or
//! changes anything when it fails: the path is checked first (a file, an unwritable place,
//! something that is not a store), then the version is read without writing, and only then is
//! the store opened for writing, where a lock held by another process is reported as such.
//!
//! This crate knows nothing of cryptography; values are bytes to it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cf;
mod codec;

use std::path::{Path, PathBuf};

pub use cf::Cf;
pub use codec::{Codec, CodecError, Table};
use rocksdb::{
    checkpoint::Checkpoint, BlockBasedIndexType, ColumnFamilyDescriptor, DBCompressionType,
    Direction, IteratorMode, Options, ReadOptions, WriteOptions, DB,
};

/// On-disk format version written by this build. Bump it on any incompatible change to column
/// families or encodings, together with a migration.
///
/// - 1: the first format.
/// - 2: archived documents are written to [`Cf::Arrivals`] (by arrival) instead of
///   [`Cf::Documents`]. A store of format 1 is read as it is (its documents stay where they
///   are) and is marked 2 when this build opens it for writing, so that an older hozon, which
///   would not find the documents written since, refuses it instead.
/// - 3: a document's validation record is written to [`Cf::ArrivalValidation`] too, under its
///   arrival, with its signature timestamp, which is no longer written to [`Cf::Documents`].
///   A store of format 2 is read as it is and marked 3 the same way.
pub const FORMAT_VERSION: u32 = 3;

/// Keys of the [`Cf::Meta`] column family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The newest [`FORMAT_VERSION`] that has written to the store (u32, big-endian).
    FormatVersion,
    /// Random identity of this store, fixed at creation (bytes).
    InstanceId,
    /// The next TSA serial counter value not yet reserved (u64, big-endian).
    TsaSerialReserved,
    /// The archive's next hash-tree id (u64, big-endian).
    ArchiveNextTree,
    /// The lowest archive pending sequence number not yet sealed (u64, big-endian): pending
    /// entries are numbered from here on even when every earlier one has been removed.
    ArchivePendingFloor,
}

impl MetaKey {
    fn bytes(self) -> &'static [u8] {
        match self {
            MetaKey::FormatVersion => b"format_version",
            MetaKey::InstanceId => b"instance_id",
            MetaKey::TsaSerialReserved => b"tsa_serial_reserved",
            MetaKey::ArchiveNextTree => b"archive_next_tree",
            MetaKey::ArchivePendingFloor => b"archive_pending_floor",
        }
    }
}

/// Whether a file may be left in a store directory by a creation that was killed before
/// RocksDB wrote `CURRENT`.
///
/// RocksDB (like LevelDB) commits the creation of a database by writing `CURRENT`; before that
/// it has only taken the lock, started its info log and written `IDENTITY` and the first
/// `MANIFEST` (through a `.dbtmp` file renamed to `CURRENT`). None of these hold a record: no
/// write-ahead log, table or blob file exists yet, and our first write follows the open. A
/// directory holding nothing else is safe to create the store in; anything else (a `.sst`,
/// `.log` or `.blob` file, a directory, an unknown name) means data that is not ours to touch.
fn is_uncommitted_creation_file(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    matches!(name, "LOCK" | "LOG" | "IDENTITY")
        || name.starts_with("LOG.old.")
        || name.starts_with("MANIFEST-")
        || name.ends_with(".dbtmp")
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The path exists and is not a directory.
    #[error("store path {0} is a file, not a directory")]
    NotADirectory(PathBuf),
    /// The directory (or its parent, for a new store) cannot be written.
    #[error("store path {path} is not writable: {reason}")]
    NotWritable {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The directory holds files but no RocksDB store.
    #[error("{0} is not empty and is not a hozon store (no CURRENT file); refusing to touch it")]
    NotAStore(PathBuf),
    /// Another process (or another handle in this one) has the store open.
    #[error("store {0} is locked by another process (is a hozon server already running on it?)")]
    Locked(PathBuf),
    /// The store was written by a newer hozon.
    #[error("store {path} has format version {found}; this hozon reads up to {supported}; upgrade hozon")]
    NewerFormat {
        /// The path.
        path: PathBuf,
        /// Version on disk.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// RocksDB found damaged data, or the store's own metadata is unreadable.
    #[error("store {path} is corrupted: {reason}")]
    Corrupted {
        /// The path.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// A stored key or value does not decode as its table's type.
    #[error("in column family {cf}: {source}")]
    Codec {
        /// Column family name.
        cf: &'static str,
        /// The decoding error.
        #[source]
        source: CodecError,
    },
    /// Any other RocksDB or I/O failure.
    #[error("storage I/O at {path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// One record of table `T`: key and value.
pub type Row<T> = (<T as Table>::Key, <T as Table>::Value);

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The write-ahead log is fsynced before `commit` returns; the write survives power loss.
    /// Use it for everything acknowledged to a client.
    Durable,
    /// Written to the WAL (survives a process crash) but not fsynced; for rebuildable data.
    Buffered,
}

/// An open hozon store.
pub struct Store {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_paranoid_checks(true);
    // Bounded background work on a 2-core machine; RocksDB's default is 2 as well.
    opts.set_max_background_jobs(2);
    // Bounded memory: memtables of all column families together flush at 64 MiB (by default
    // each of the eight families may hold two 64 MiB memtables, which a long-running TSA
    // fills slowly with audit records and so looks like a leak).
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    // A write-ahead log file is kept until every family with data in it has flushed. By
    // default RocksDB lets the logs grow to four times all families' memtables (1.15 GiB
    // here) before it forces the idle families to flush: 0.5 to 1.3 GB of logs lay beside
    // 1.6 GB of documents after a 300,000-document ingest, all of it replayed at the next
    // start after a crash. Bounded at four times the memtable budget instead.
    opts.set_max_total_wal_size(4 * MEMTABLE_BUDGET as u64);
    opts
}

/// Data block size of [`Cf::Arrivals`].
const ARRIVAL_BLOCK: usize = 64 << 10;
/// Memtable memory of all column families together.
const MEMTABLE_BUDGET: usize = 64 << 20;
/// Memtable size of one column family before it is flushed.
const MEMTABLE_SIZE: usize = 16 << 20;
/// Default capacity of the block cache that every store of a process shares (all column
/// families, index and filter blocks included): small enough for a development machine or a
/// TSA, whose store is an audit log. An archive server sets its own with
/// [`set_block_cache_capacity`].
pub const DEFAULT_BLOCK_CACHE: usize = 64 << 20;

fn block_cache() -> rocksdb::Cache {
    static CACHE: std::sync::OnceLock<rocksdb::Cache> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| rocksdb::Cache::new_lru_cache(DEFAULT_BLOCK_CACHE))
        .clone()
}

/// Sets the capacity, in bytes, of the block cache that every store opened by this process
/// shares (uncompressed data, index and filter blocks of all column families); it takes
/// effect at once, for stores already open too. The default is [`DEFAULT_BLOCK_CACHE`].
///
/// Memory stays bounded by this figure however large the archive grows, because index and
/// filter blocks are partitioned and cached like data. What a larger cache buys is fewer
/// reads and decompressions of blocks touched at random, as renewing or re-verifying an
/// archive of millions of documents does: their placements and blob references no longer
/// fit 64 MiB at 1,000,000 documents.
pub fn set_block_cache_capacity(bytes: usize) {
    block_cache().set_capacity(bytes);
}

fn cf_options(cf: Cf) -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(MEMTABLE_SIZE);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&block_cache());
    // Index and filter blocks live in the block cache too: kept outside it (RocksDB's
    // default), they grow with every SST file, so an ever-growing audit log grows memory.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Ingest asks for every new document whether it is already stored: without a filter each
    // such miss searches every level's index and data blocks, which grows with the archive.
    // Ten bits per key (about 1% false positives), cached and evicted like the index.
    table.set_bloom_filter(10.0, false);
    // Index and filter partitioned into 4 KiB blocks under a small top level that stays
    // pinned. A whole-file filter is about 1.2 MiB per million keys, more than one shard of
    // the block cache (64 shards of 1 MiB), so it was never kept: every lookup read the
    // whole filter again and checksummed it. Renewing 1,000,000 documents spent an eighth of
    // its CPU there (rereading filters of the documents and placements families), and the
    // cost grows with the archive; a partition is read once and cached like a data block.
    // At 1,000,000 documents: renewal 57.1 -> 43.6 s, `verify archive` evidence-only 0.17 ->
    // 0.23 of sha256 on 2 cores. Where everything fits the cache (300,000) the extra index
    // level costs a few percent, within this machine's run-to-run noise.
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_pin_top_level_index_and_filter(true);
    if matches!(cf, Cf::Arrivals | Cf::ArrivalValidation) {
        // Documents arrive with ascending keys and are read back a tree at a time, in key
        // order: large blocks make that scan a few large reads and decompressions instead of
        // one per document (a kilobytes-long document fills a 4 KiB block alone). A point
        // read costs one such block: a document is read alone only for an evidence record
        // or an export. The same holds for their records and signature timestamps.
        table.set_block_size(ARRIVAL_BLOCK);
    }
    opts.set_block_based_table_factory(&table);
    if cf.compressed() {
        opts.set_compression_type(DBCompressionType::Zstd);
        opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    } else {
        opts.set_compression_type(DBCompressionType::None);
    }
    if cf == Cf::Documents {
        // Documents are written once, kilobytes each, and never changed: kept in blob files
        // (compressed once, when written), compaction moves only their keys and blob
        // references instead of rewriting every document at every level. Without this, bulk
        // ingest stalled on level-0 compaction as the store grew (39,000 opaque documents/s at
        // 20,000 documents, 5,400/s at 1,000,000).
        opts.set_enable_blob_files(true);
        opts.set_min_blob_size(BLOB_MIN);
        opts.set_blob_compression_type(DBCompressionType::Zstd);
        // RocksDB compresses blobs at zstd's default level 3 ("doubleFast"), which has no
        // setter in its C API: level 1 ("fast") compresses a 12 KB signed FHIR document 1.7
        // times as fast for 2% more bytes (`zstd -b1`/`-b3 -B12288` over the dev corpus:
        // 255 against 152 MB/s, ratio 1.92 against 1.96), and ingest spends a fifth of its
        // CPU here. The block cache kept alive by `opts` is a process-wide static, so the
        // copy made here may drop its handle.
        match opts
            .get_options_from_string(format!("blob_compression_opts={{level={BLOB_ZSTD_LEVEL}}}"))
        {
            Ok(with_level) => opts = with_level,
            // A constant string: only a RocksDB without the option refuses it, and level 3
            // is still correct, only slower (the storage test checks the OPTIONS file).
            Err(e) => debug_assert!(false, "blob_compression_opts: {e}"),
        }
    }
    opts
}

/// zstd level of the documents' blob files. The tables stay at RocksDB's default (3): level 1
/// there saved 3% of an ingest's CPU, but sealing 1,000,000 documents, which writes their
/// placements and tree pages, took 4.92 s against 4.48 s at level 3 (target 5 s).
const BLOB_ZSTD_LEVEL: i32 = 1;

/// Values of the documents family from this size on go to blob files (certificates and CRLs
/// of a few hundred bytes stay in the tree).
const BLOB_MIN: u64 = 2048;

impl Store {
    /// Open the store at `path`, creating it (and only its last path component) if it does
    /// not exist. See the crate documentation for what is checked before anything is written.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StorageError> {
        let path = path.as_ref().to_path_buf();
        let existed = Self::check_path(&path)?;
        if existed {
            Self::check_version_read_only(&path)?;
        } else if !path.exists() {
            std::fs::create_dir(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    StorageError::NotWritable {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                }
                _ => StorageError::Io {
                    path: path.clone(),
                    reason: format!("cannot create directory: {e}"),
                },
            })?;
        }
        let descriptors = Cf::ALL
            .iter()
            .map(|&cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf)));
        let db = DB::open_cf_descriptors(&db_options(), &path, descriptors)
            .map_err(|e| classify(&path, e))?;
        let store = Store { db, path };
        match store.meta_u32(MetaKey::FormatVersion)? {
            None => {
                let mut batch = store.batch();
                batch.put_meta(MetaKey::FormatVersion, &FORMAT_VERSION.encode());
                let id: [u8; 16] = random_bytes()?;
                batch.put_meta(MetaKey::InstanceId, &id);
                store.commit(batch, Durability::Durable)?;
            }
            Some(v) if v > FORMAT_VERSION => {
                return Err(StorageError::NewerFormat {
                    path: store.path.clone(),
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Some(v) if v < FORMAT_VERSION => {
                // Every older format is read as it is; what this build writes from now on an
                // older build would not read, so it must refuse the store.
                let mut batch = store.batch();
                batch.put_meta(MetaKey::FormatVersion, &FORMAT_VERSION.encode());
                store.commit(batch, Durability::Durable)?;
            }
            Some(_) => {}
        }
        Ok(store)
    }

    /// Validate the path before touching it; returns whether a store already exists there.
    fn check_path(path: &Path) -> Result<bool, StorageError> {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_dir() => Err(StorageError::NotADirectory(path.to_path_buf())),
            Ok(_) => {
                if path.join("CURRENT").exists() {
                    writable(path)?;
                    Ok(true)
                } else {
                    let io = |e: std::io::Error| StorageError::Io {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    };
                    // An empty directory (made by an operator or a test) gets the store
                    // inside it; so does one left by a creation that was killed before
                    // RocksDB committed it by writing CURRENT.
                    for entry in std::fs::read_dir(path).map_err(io)? {
                        let entry = entry.map_err(io)?;
                        if !entry.file_type().map_err(io)?.is_file()
                            || !is_uncommitted_creation_file(&entry.file_name())
                        {
                            return Err(StorageError::NotAStore(path.to_path_buf()));
                        }
                    }
                    writable(path)?;
                    Ok(false)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// Read the format version without writing anything (read-only open takes no lock and
    /// replays no log into the store).
    ///
    /// A store without a format version is either an interrupted creation (killed between
    /// RocksDB creating its files and our first durable write) or damaged. The first holds no
    /// record at all and is finished by the normal open; the second is reported as corrupted.
    fn check_version_read_only(path: &Path) -> Result<(), StorageError> {
        let opts = Options::default();
        let existing = DB::list_cf(&opts, path).map_err(|e| classify(path, e))?;
        let db = DB::open_cf_for_read_only(&opts, path, &existing, false)
            .map_err(|e| classify(path, e))?;
        let version = match db.cf_handle(Cf::Meta.name()) {
            None => None,
            Some(meta) => db
                .get_cf(meta, MetaKey::FormatVersion.bytes())
                .map_err(|e| classify(path, e))?,
        };
        match version {
            None => {
                for name in &existing {
                    let Some(cf) = db.cf_handle(name) else {
                        continue;
                    };
                    if db.iterator_cf(cf, IteratorMode::Start).next().is_some() {
                        return Err(StorageError::Corrupted {
                            path: path.to_path_buf(),
                            reason: format!(
                                "no format version recorded, but column family {name} holds data"
                            ),
                        });
                    }
                }
                Ok(())
            }
            Some(bytes) => {
                let found = u32::decode(&bytes).map_err(|e| StorageError::Corrupted {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                if found > FORMAT_VERSION {
                    Err(StorageError::NewerFormat {
                        path: path.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The random 16-byte identity fixed when the store was created.
    pub fn instance_id(&self) -> Result<[u8; 16], StorageError> {
        let raw = self
            .meta_get(MetaKey::InstanceId)?
            .ok_or_else(|| StorageError::Corrupted {
                path: self.path.clone(),
                reason: "no instance id".into(),
            })?;
        <[u8; 16]>::decode(&raw).map_err(|source| StorageError::Codec {
            cf: Cf::Meta.name(),
            source,
        })
    }

    /// Read a raw meta value.
    pub fn meta_get(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(self.cf(Cf::Meta), key.bytes())
            .map_err(|e| classify(&self.path, e))
    }

    fn meta_u32(&self, key: MetaKey) -> Result<Option<u32>, StorageError> {
        self.meta_get(key)?
            .map(|b| {
                u32::decode(&b).map_err(|source| StorageError::Codec {
                    cf: Cf::Meta.name(),
                    source,
                })
            })
            .transpose()
    }

    /// Read a meta value as a big-endian u64.
    pub fn meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StorageError> {
        self.meta_get(key)?
            .map(|b| {
                u64::decode(&b).map_err(|source| StorageError::Codec {
                    cf: Cf::Meta.name(),
                    source,
                })
            })
            .transpose()
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        // Every Cf is created at open, so the handle always exists.
        self.db
            .cf_handle(cf.name())
            .unwrap_or_else(|| unreachable!("column family {} opened with the store", cf.name()))
    }

    /// Read one record.
    pub fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StorageError> {
        let raw = self
            .db
            .get_pinned_cf(self.cf(T::CF), key.encode())
            .map_err(|e| classify(&self.path, e))?;
        raw.map(|b| decode::<T::Value>(T::CF, &b)).transpose()
    }

    /// Whether a record exists.
    pub fn contains<T: Table>(&self, key: &T::Key) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(T::CF), key.encode())
            .map_err(|e| classify(&self.path, e))?
            .is_some())
    }

    /// The record with the greatest key, if any.
    pub fn last<T: Table>(&self) -> Result<Option<Row<T>>, StorageError> {
        let mut it = self.db.iterator_cf(self.cf(T::CF), IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r.map_err(|e| classify(&self.path, e))?;
                Ok(Some((
                    decode::<T::Key>(T::CF, &k)?,
                    decode::<T::Value>(T::CF, &v)?,
                )))
            }
        }
    }

    /// Start an atomic write batch.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            inner: rocksdb::WriteBatch::default(),
        }
    }

    /// Apply a batch atomically: after a crash either all of it is there or none of it.
    pub fn commit(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(durability == Durability::Durable);
        self.db
            .write_opt(batch.inner, &wo)
            .map_err(|e| classify(&self.path, e))
    }

    /// A consistent point-in-time view for bulk reads.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            store: self,
            snap: self.db.snapshot(),
        }
    }

    /// Write a consistent copy of the store to `dest` (which must not exist), while the store
    /// stays open. Files are hard-linked when `dest` is on the same file system.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<(), StorageError> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(StorageError::Io {
                path: dest.to_path_buf(),
                reason: "checkpoint destination already exists".into(),
            });
        }
        self.db
            .flush_wal(true)
            .map_err(|e| classify(&self.path, e))?;
        let cp = Checkpoint::new(&self.db).map_err(|e| classify(&self.path, e))?;
        cp.create_checkpoint(dest).map_err(|e| classify(dest, e))
    }

    /// Capacity of the block cache this store's column families use (shared by the
    /// process), as RocksDB reports it.
    pub fn block_cache_capacity(&self) -> Result<usize, StorageError> {
        // Asked of one of ours: RocksDB's own "default" family, which holds nothing, has a
        // cache of its own.
        let v = self
            .db
            .property_int_value_cf(self.cf(Cf::Documents), "rocksdb.block-cache-capacity")
            .map_err(|e| classify(&self.path, e))?;
        Ok(v.unwrap_or(0) as usize)
    }

    /// Flush memtables to disk (for orderly shutdown and before measurements).
    pub fn flush(&self) -> Result<(), StorageError> {
        for cf in Cf::ALL {
            self.db
                .flush_cf(self.cf(cf))
                .map_err(|e| classify(&self.path, e))?;
        }
        Ok(())
    }

    /// Flushes, then waits until no compaction is pending or running (benchmarks measure a
    /// settled store, not one still compacting what was just written).
    pub fn settle(&self) -> Result<(), StorageError> {
        self.flush()?;
        self.db
            .wait_for_compact(&rocksdb::WaitForCompactOptions::default())
            .map_err(|e| classify(&self.path, e))
    }
}

/// An atomic set of writes across column families; apply with [`Store::commit`].
pub struct Batch<'s> {
    store: &'s Store,
    inner: rocksdb::WriteBatch,
}

impl Batch<'_> {
    /// Insert or replace a record.
    pub fn put<T: Table>(&mut self, key: &T::Key, value: &T::Value) {
        self.inner
            .put_cf(self.store.cf(T::CF), key.encode(), value.encode());
    }

    /// Delete a record (no error if absent).
    pub fn delete<T: Table>(&mut self, key: &T::Key) {
        self.inner.delete_cf(self.store.cf(T::CF), key.encode());
    }

    /// Delete every record of `T` with a key in `from..to` (RocksDB range tombstone: one
    /// write however many records the range holds).
    pub fn delete_range<T: Table>(&mut self, from: &T::Key, to: &T::Key) {
        self.inner
            .delete_range_cf(self.store.cf(T::CF), from.encode(), to.encode());
    }

    /// Set a meta value.
    pub fn put_meta(&mut self, key: MetaKey, value: &[u8]) {
        self.inner
            .put_cf(self.store.cf(Cf::Meta), key.bytes(), value);
    }

    /// Remove a meta value (for repair tools and tests).
    pub fn delete_meta(&mut self, key: MetaKey) {
        self.inner.delete_cf(self.store.cf(Cf::Meta), key.bytes());
    }

    /// Number of writes in the batch.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Point reads, from the live store or from a [`Snapshot`]: what readers that work either
/// way (evidence assembly, bulk re-verification) are generic over.
pub trait View: Sync {
    /// Read one record.
    fn read<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StorageError>;
    /// Whether a record exists.
    fn has<T: Table>(&self, key: &T::Key) -> Result<bool, StorageError> {
        Ok(self.read::<T>(key)?.is_some())
    }
}

impl View for Store {
    fn read<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StorageError> {
        self.get::<T>(key)
    }
    fn has<T: Table>(&self, key: &T::Key) -> Result<bool, StorageError> {
        self.contains::<T>(key)
    }
}

impl<V: View + Send> View for std::sync::Arc<V> {
    fn read<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StorageError> {
        self.as_ref().read::<T>(key)
    }
    fn has<T: Table>(&self, key: &T::Key) -> Result<bool, StorageError> {
        self.as_ref().has::<T>(key)
    }
}

impl View for Snapshot<'_> {
    fn read<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StorageError> {
        self.get::<T>(key)
    }
}

/// A consistent point-in-time view of the store.
pub struct Snapshot<'s> {
    store: &'s Store,
    snap: rocksdb::SnapshotWithThreadMode<'s, DB>,
}

impl<'s> Snapshot<'s> {
    /// Read one record as of the snapshot.
    pub fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StorageError> {
        // Pinned: the value is decoded straight from RocksDB's buffer, not copied first.
        let raw = self
            .snap
            .get_pinned_cf(self.store.cf(T::CF), key.encode())
            .map_err(|e| classify(&self.store.path, e))?;
        raw.map(|b| decode::<T::Value>(T::CF, &b)).transpose()
    }

    /// Read many records of one table at once, as of the snapshot, in the order of `keys`
    /// (RocksDB's batched MultiGet groups the index lookups and blob reads).
    pub fn multi_get<T: Table>(
        &self,
        keys: &[T::Key],
    ) -> Vec<Result<Option<T::Value>, StorageError>> {
        let encoded: Vec<Vec<u8>> = keys.iter().map(|k| k.encode()).collect();
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snap);
        self.store
            .db
            .batched_multi_get_cf_opt(self.store.cf(T::CF), encoded.iter(), false, &ro)
            .into_iter()
            .map(|r| {
                let raw = r.map_err(|e| classify(&self.store.path, e))?;
                raw.map(|b| decode::<T::Value>(T::CF, &b)).transpose()
            })
            .collect()
    }

    /// Iterate a whole table in key order.
    pub fn iter<T: Table>(&self) -> impl Iterator<Item = Result<Row<T>, StorageError>> + '_ {
        self.iter_mode::<T>(IteratorMode::Start)
    }

    /// Iterate a table in key order from `start` (inclusive).
    pub fn iter_from<T: Table>(
        &self,
        start: &T::Key,
    ) -> impl Iterator<Item = Result<Row<T>, StorageError>> + '_ {
        let start = start.encode();
        self.iter_mode::<T>(IteratorMode::From(&start, Direction::Forward))
    }

    /// A cursor over a table as of the snapshot, for a bulk scan that seeks and steps
    /// itself: values are lent from RocksDB's buffers, not copied, and one cursor seeks
    /// again instead of a new iterator being made (each costs a search of every level).
    /// Like [`Snapshot::iter`], it leaves the block cache alone.
    pub fn cursor<T: Table>(&self) -> Cursor<'_, T> {
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_verify_checksums(true);
        Cursor {
            raw: self.snap.raw_iterator_cf_opt(self.store.cf(T::CF), ro),
            path: &self.store.path,
            table: std::marker::PhantomData,
        }
    }

    fn iter_mode<T: Table>(
        &self,
        mode: IteratorMode<'_>,
    ) -> impl Iterator<Item = Result<Row<T>, StorageError>> + '_ {
        let mut ro = ReadOptions::default();
        // A bulk scan should not evict the hot working set from the block cache.
        ro.fill_cache(false);
        ro.set_verify_checksums(true);
        let path = &self.store.path;
        self.snap
            .iterator_cf_opt(self.store.cf(T::CF), ro, mode)
            .map(move |r| {
                let (k, v) = r.map_err(|e| classify(path, e))?;
                Ok((decode::<T::Key>(T::CF, &k)?, decode::<T::Value>(T::CF, &v)?))
            })
    }
}

/// A row of a [`Cursor`]: the key, decoded, and the value's stored bytes.
pub type RawRow<'c, T> = (<T as Table>::Key, &'c [u8]);

/// A cursor over one table of a [`Snapshot`] ([`Snapshot::cursor`]): positioned by
/// [`Cursor::seek`], stepped by [`Cursor::next`], its row read in place.
pub struct Cursor<'s, T: Table> {
    raw: rocksdb::DBRawIteratorWithThreadMode<'s, DB>,
    path: &'s Path,
    table: std::marker::PhantomData<T>,
}

impl<T: Table> Cursor<'_, T> {
    /// Moves to the first row at or after `key`.
    pub fn seek(&mut self, key: &T::Key) {
        self.raw.seek(key.encode());
    }

    /// Moves to the next row (nothing once past the last).
    pub fn next(&mut self) {
        if self.raw.valid() {
            self.raw.next();
        }
    }

    /// The current row: its key, decoded, and its value's stored bytes, lent until the
    /// cursor moves; `None` past the last row. A read error (a damaged block) is reported
    /// here, as is a key that does not decode.
    pub fn row(&self) -> Result<Option<RawRow<'_, T>>, StorageError> {
        match (self.raw.key(), self.raw.value()) {
            (Some(k), Some(v)) => Ok(Some((decode::<T::Key>(T::CF, k)?, v))),
            _ => self
                .raw
                .status()
                .map(|()| None)
                .map_err(|e| classify(self.path, e)),
        }
    }
}

fn decode<C: Codec>(cf: Cf, bytes: &[u8]) -> Result<C, StorageError> {
    C::decode(bytes).map_err(|source| StorageError::Codec {
        cf: cf.name(),
        source,
    })
}

fn classify(path: &Path, e: rocksdb::Error) -> StorageError {
    let msg = e.to_string();
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StorageError::Corrupted {
            path: path.to_path_buf(),
            reason: msg,
        },
        rocksdb::ErrorKind::IOError if msg.contains("lock") => {
            StorageError::Locked(path.to_path_buf())
        }
        rocksdb::ErrorKind::IOError
            if msg.contains("Permission denied") || msg.contains("Read-only file system") =>
        {
            StorageError::NotWritable {
                path: path.to_path_buf(),
                reason: msg,
            }
        }
        _ => StorageError::Io {
            path: path.to_path_buf(),
            reason: msg,
        },
    }
}

/// Check that the process may create files in `dir` without creating any.
fn writable(dir: &Path) -> Result<(), StorageError> {
    let md = std::fs::metadata(dir).map_err(|e| StorageError::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if md.permissions().readonly() {
        return Err(StorageError::NotWritable {
            path: dir.to_path_buf(),
            reason: "directory is read-only".into(),
        });
    }
    // Mode bits do not tell the whole story (root, ACLs, read-only mounts); ask the kernel.
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).map_err(|e| StorageError::NotWritable {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StorageError> {
    use std::io::Read;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| StorageError::Io {
            path: PathBuf::from("/dev/urandom"),
            reason: e.to_string(),
        })?;
    Ok(buf)
}
