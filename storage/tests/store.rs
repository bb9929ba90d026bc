//! Behaviour of an open store: typed round trips, atomic batches, snapshots, checkpoints,
//! and the errors for bad store paths (nothing created or changed when opening fails).

mod common;

use common::{digest, value_for, Docs, Pend};
use hozon_storage::{Cf, Durability, StorageError, Store, FORMAT_VERSION};
use std::path::Path;

#[test]
fn typed_round_trip_and_last() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    assert_eq!(store.get::<Docs>(&1).unwrap(), None);
    let mut b = store.batch();
    for seq in [3u64, 1, 2] {
        b.put::<Docs>(&seq, &value_for(seq, 4096));
        b.put::<Pend>(&seq, &digest(&value_for(seq, 4096)));
    }
    assert_eq!(b.len(), 6);
    store.commit(b, Durability::Durable).unwrap();
    assert_eq!(store.get::<Docs>(&2).unwrap().unwrap(), value_for(2, 4096));
    assert!(store.contains::<Pend>(&3).unwrap());
    // Keys are big-endian, so the last key is the numerically greatest.
    let (k, _) = store.last::<Docs>().unwrap().unwrap();
    assert_eq!(k, 3);
    let mut b = store.batch();
    b.delete::<Docs>(&3);
    store.commit(b, Durability::Buffered).unwrap();
    assert_eq!(store.last::<Docs>().unwrap().unwrap().0, 2);
}

#[test]
fn reopen_keeps_data_and_identity() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    let id = {
        let store = Store::open(&p).unwrap();
        let mut b = store.batch();
        b.put::<Docs>(&7, &b"seven".to_vec());
        store.commit(b, Durability::Durable).unwrap();
        store.instance_id().unwrap()
    };
    let store = Store::open(&p).unwrap();
    assert_eq!(store.instance_id().unwrap(), id);
    assert_eq!(store.get::<Docs>(&7).unwrap().unwrap(), b"seven");
}

#[test]
fn snapshot_is_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    let mut b = store.batch();
    for seq in 0..100u64 {
        b.put::<Docs>(&seq, &value_for(seq, 512));
    }
    store.commit(b, Durability::Buffered).unwrap();
    let snap = store.snapshot();
    let mut b = store.batch();
    for seq in 100..200u64 {
        b.put::<Docs>(&seq, &value_for(seq, 512));
    }
    b.delete::<Docs>(&0);
    store.commit(b, Durability::Buffered).unwrap();
    let seen: Vec<u64> = snap.iter::<Docs>().map(|r| r.unwrap().0).collect();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert!(snap.get::<Docs>(&0).unwrap().is_some());
    let from: Vec<u64> = snap.iter_from::<Docs>(&90).map(|r| r.unwrap().0).collect();
    assert_eq!(from, (90..100).collect::<Vec<_>>());
    // A fresh snapshot sees the later batch.
    assert_eq!(store.snapshot().iter::<Docs>().count(), 199);
}

#[test]
fn checkpoint_is_an_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    let mut b = store.batch();
    b.put::<Docs>(&1, &value_for(1, 4096));
    store.commit(b, Durability::Durable).unwrap();
    let cp = dir.path().join("backup");
    store.checkpoint(&cp).unwrap();
    // Writes after the checkpoint do not reach it.
    let mut b = store.batch();
    b.put::<Docs>(&2, &value_for(2, 4096));
    store.commit(b, Durability::Durable).unwrap();
    assert!(matches!(
        store.checkpoint(&cp),
        Err(StorageError::Io { .. })
    ));
    drop(store);
    let copy = Store::open(&cp).unwrap();
    assert_eq!(copy.get::<Docs>(&1).unwrap().unwrap(), value_for(1, 4096));
    assert_eq!(copy.get::<Docs>(&2).unwrap(), None);
}

#[test]
fn wrong_value_type_is_a_codec_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    let mut b = store.batch();
    b.put::<Docs>(&1, &vec![1, 2, 3]);
    store.commit(b, Durability::Buffered).unwrap();
    // Pend shares nothing with Docs, but reading Docs' bytes as a [u8; 32] must fail cleanly.
    struct Wrong;
    impl hozon_storage::Table for Wrong {
        const CF: hozon_storage::Cf = hozon_storage::Cf::Documents;
        type Key = u64;
        type Value = [u8; 32];
    }
    let err = store.get::<Wrong>(&1).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Codec {
                cf: "documents",
                ..
            }
        ),
        "{err}"
    );
}

/// Names, sizes and contents of every file below `dir`, to prove a failed open changed nothing.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if dir.is_file() {
        return vec![(dir.display().to_string(), std::fs::read(dir).unwrap())];
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_file_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file");
    std::fs::write(&f, b"not a store").unwrap();
    let err = Store::open(&f).unwrap_err();
    assert!(matches!(err, StorageError::NotADirectory(_)), "{err}");
    assert_eq!(std::fs::read(&f).unwrap(), b"not a store");
    assert!(err.to_string().contains("is a file"));
}

#[test]
fn a_foreign_directory_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"operator notes").unwrap();
    let before = tree(dir.path());
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::NotAStore(_)), "{err}");
    assert_eq!(tree(dir.path()), before);
}

/// The file sets RocksDB 11 (librocksdb-sys of the `rocksdb` 0.25 crate) left when a creation
/// was killed before it wrote CURRENT: SIGKILL sent to `crash.rs`'s child writer 0–99 ms after
/// spawn, 400 times (most often just `LOG`, then `000000.dbtmp LOCK LOG`). They are the info
/// log, the lock, the identity (written through `000000.dbtmp`), the first manifest and the
/// temporary file that would have become CURRENT.
/// The contents here are made up (a fixed UUID, arbitrary bytes); RocksDB rewrites them.
const UNCOMMITTED_CREATIONS: &[&[&str]] = &[
    &["LOG"],
    &["LOCK", "LOG"],
    &["000000.dbtmp", "LOCK", "LOG"],
    &["IDENTITY", "LOCK", "LOG"],
    &["IDENTITY", "LOCK", "LOG", "MANIFEST-000001"],
    &["000001.dbtmp", "IDENTITY", "LOCK", "LOG", "MANIFEST-000001"],
];

fn uncommitted_creation(dir: &Path, files: &[&str]) {
    std::fs::create_dir(dir).unwrap();
    for &f in files {
        let contents: &[u8] = match f {
            "LOCK" => b"",
            "LOG" => b"RocksDB version: 11\n",
            "IDENTITY" | "000000.dbtmp" => b"8a2b3b4c-0d1e-4f50-8a6b-7c8d9e0f1a2b",
            "000001.dbtmp" => b"MANIFEST-000001\n",
            _ => &[0x5a; 37],
        };
        std::fs::write(dir.join(f), contents).unwrap();
    }
}

#[test]
fn a_creation_killed_before_current_is_finished() {
    for files in UNCOMMITTED_CREATIONS {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("db");
        uncommitted_creation(&p, files);
        {
            let store = Store::open(&p).unwrap_or_else(|e| panic!("{files:?}: {e}"));
            store.instance_id().unwrap();
            let mut b = store.batch();
            b.put::<Docs>(&1, &b"one".to_vec());
            store.commit(b, Durability::Durable).unwrap();
        }
        let store = Store::open(&p).unwrap();
        assert_eq!(store.get::<Docs>(&1).unwrap(), Some(b"one".to_vec()));
    }
}

#[test]
fn a_directory_without_current_but_with_data_files_is_not_touched() {
    let all = UNCOMMITTED_CREATIONS[UNCOMMITTED_CREATIONS.len() - 1];
    for extra in ["000004.log", "000009.sst", "000010.blob", "notes.txt"] {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("db");
        uncommitted_creation(&p, all);
        std::fs::write(p.join(extra), b"someone's data").unwrap();
        let before = tree(&p);
        let err = Store::open(&p).unwrap_err();
        assert!(matches!(err, StorageError::NotAStore(_)), "{extra}: {err}");
        assert_eq!(tree(&p), before, "{extra}");
    }
    // A subdirectory is never a RocksDB creation leftover either.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("db");
    uncommitted_creation(&p, all);
    std::fs::create_dir(p.join("archive")).unwrap();
    let err = Store::open(&p).unwrap_err();
    assert!(matches!(err, StorageError::NotAStore(_)), "{err}");
}

#[test]
fn unwritable_place_creates_nothing() {
    // Root ignores mode bits, so use a place no one may create in: a read-only file system
    // (/proc) works as root and as a user alike.
    let p = Path::new("/proc/hozon-store-test");
    let err = Store::open(p).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::NotWritable { .. } | StorageError::Io { .. }
        ),
        "{err}"
    );
    assert!(!p.exists());
    // And a parent that does not exist is an error, not a recursive mkdir.
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("no/such/parent");
    assert!(Store::open(&deep).is_err());
    assert!(!dir.path().join("no").exists());
}

/// Creates a store at `p` holding record 1 of [`Docs`] and marked as written by format
/// `version`.
fn store_marked(p: &std::path::Path, version: u32) {
    let store = Store::open(p).unwrap();
    let mut b = store.batch();
    b.put_meta(
        hozon_storage::MetaKey::FormatVersion,
        &version.to_be_bytes(),
    );
    b.put::<Docs>(&1, &value_for(1, 4096));
    store.commit(b, Durability::Durable).unwrap();
    store.flush().unwrap();
}

#[test]
fn newer_format_is_refused_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    store_marked(&p, FORMAT_VERSION + 1);
    let before = tree(&p);
    let err = Store::open(&p).unwrap_err();
    match &err {
        StorageError::NewerFormat {
            found, supported, ..
        } => {
            assert_eq!(*found, FORMAT_VERSION + 1);
            assert_eq!(*supported, FORMAT_VERSION);
        }
        other => panic!("expected NewerFormat, got {other}"),
    }
    assert_eq!(tree(&p), before, "a refused open must not change the store");
}

#[test]
fn an_older_format_is_read_and_marked_current() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    store_marked(&p, FORMAT_VERSION - 1);
    let store = Store::open(&p).unwrap();
    assert_eq!(
        store
            .meta_get(hozon_storage::MetaKey::FormatVersion)
            .unwrap()
            .unwrap(),
        FORMAT_VERSION.to_be_bytes(),
        "an older hozon must refuse a store this one has written to"
    );
    assert_eq!(store.get::<Docs>(&1).unwrap().unwrap(), value_for(1, 4096));
}

#[test]
fn corrupted_store_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    {
        let store = Store::open(&p).unwrap();
        let mut b = store.batch();
        b.put::<Docs>(&1, &value_for(1, 4096));
        store.commit(b, Durability::Durable).unwrap();
        store.flush().unwrap();
    }
    // Point CURRENT at a manifest that does not exist, then damage every table file.
    let manifest = std::fs::read_to_string(p.join("CURRENT")).unwrap();
    std::fs::write(p.join(manifest.trim()), b"garbage that is not a manifest").unwrap();
    let err = Store::open(&p).unwrap_err();
    assert!(matches!(err, StorageError::Corrupted { .. }), "{err}");
}

#[test]
fn data_without_a_format_version_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    {
        let store = Store::open(&p).unwrap();
        let mut b = store.batch();
        b.put::<Docs>(&1, &value_for(1, 64));
        // Simulate damage: the version record disappears while data stays.
        b.delete_meta(hozon_storage::MetaKey::FormatVersion);
        store.commit(b, Durability::Durable).unwrap();
    }
    let err = Store::open(&p).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupted { reason, .. } if reason.contains("holds data")),
        "{err}"
    );
}

#[test]
fn second_open_in_process_reports_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    let _first = Store::open(&p).unwrap();
    let err = Store::open(&p).unwrap_err();
    assert!(matches!(err, StorageError::Locked(_)), "{err}");
    assert!(err.to_string().contains("locked"));
}

/// A section (`[DBOptions]`, `[CFOptions "documents"]`) of the newest OPTIONS file RocksDB
/// wrote in `dir`.
fn options_on_disk(dir: &Path, header: &str) -> String {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("OPTIONS-"))
        })
        .max()
        .expect("an OPTIONS file");
    let text = std::fs::read_to_string(newest).unwrap();
    let start = text.find(header).expect("the section") + header.len();
    let rest = &text[start..];
    rest[..rest.find("\n[").unwrap_or(rest.len())].to_owned()
}

/// The value of `key` in an OPTIONS section (`  key=value` lines).
fn option<'a>(section: &'a str, key: &str) -> &'a str {
    section
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} in {section}"))
}

#[test]
fn tuning_reaches_rocksdb() {
    // The blob level has no setter in RocksDB's C API and is passed as an options string:
    // a typo there would silently leave zstd's default level 3.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db");
    drop(Store::open(&p).unwrap());
    let db = options_on_disk(&p, "[DBOptions]");
    // Write-ahead logs bounded at 256 MiB (four times the memtable budget).
    assert_eq!(option(&db, "max_total_wal_size"), "268435456");
    let docs = options_on_disk(&p, "[CFOptions \"documents\"]");
    assert_eq!(option(&docs, "enable_blob_files"), "true");
    assert_eq!(option(&docs, "blob_compression_type"), "kZSTD");
    assert_eq!(option(&docs, "compression"), "kZSTD");
    let blob = option(&docs, "blob_compression_opts");
    assert!(blob.contains(";level=1;"), "{blob}");
    let meta = options_on_disk(&p, "[CFOptions \"meta\"]");
    assert_eq!(option(&meta, "compression"), "kNoCompression");
    // Partitioned index and filters in every family: a whole-file filter larger than a block
    // cache shard is read again by every lookup.
    for cf in Cf::ALL {
        let table = options_on_disk(
            &p,
            &format!("[TableOptions/BlockBasedTable \"{}\"]", cf.name()),
        );
        assert_eq!(
            option(&table, "index_type"),
            "kTwoLevelIndexSearch",
            "{cf:?}"
        );
        assert_eq!(option(&table, "partition_filters"), "true", "{cf:?}");
        assert_eq!(option(&table, "metadata_block_size"), "4096", "{cf:?}");
        assert_eq!(
            option(&table, "pin_top_level_index_and_filter"),
            "true",
            "{cf:?}"
        );
        assert!(option(&table, "filter_policy").contains("bloom"), "{cf:?}");
    }
}

/// The only test that changes the process-wide cache: others never depend on its size.
#[test]
fn block_cache_capacity_is_set_for_open_and_later_stores() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = Store::open(a.path().join("s")).unwrap();
    hozon_storage::set_block_cache_capacity(256 << 20);
    assert_eq!(first.block_cache_capacity().unwrap(), 256 << 20);
    let second = Store::open(b.path().join("s")).unwrap();
    assert_eq!(second.block_cache_capacity().unwrap(), 256 << 20);
    hozon_storage::set_block_cache_capacity(hozon_storage::DEFAULT_BLOCK_CACHE);
    assert_eq!(
        first.block_cache_capacity().unwrap(),
        hozon_storage::DEFAULT_BLOCK_CACHE
    );
}
