//! Sealing: pending documents become one hash tree and one timestamp over its root.
//!
//! The order is: read a consistent view of the pending queue, build the tree, get and verify
//! the timestamp, then write the tree record, its pages, every document's placement and the
//! removal of exactly the entries sealed in one durable batch. A crash before that write
//! leaves the documents pending (the next run seals them; the unused token is only a line in
//! the TSA's audit log); after it, they are sealed once. Nothing is half-sealed.

use std::time::SystemTime;

use base64::Engine;
use hozon_storage::{Batch, Durability, MetaKey, Store};
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::ers::ArchiveTimeStamp;
use hozon_verifier::policy::Use;
use rayon::slice::ParallelSliceMut;

use crate::client::{Stamp, Timestamper};
use crate::model::{
    hex_id, unix, DocId, Json, PageKey, Pages, Pending, Placement, PlacementList, Placements,
    TreeKind, TreeRecord, Trees,
};
use crate::pages::{PagedTree, PAGE_WIDTH};
use crate::{Archive, ArchiveError, Settings};

/// A sealed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The new tree.
    pub tree: u64,
    /// Documents in it.
    pub documents: u64,
    /// Its root, hex.
    pub root: String,
    /// The timestamp's genTime, RFC 3339.
    pub gen_time: String,
    /// The TSA.
    pub tsa: String,
}

/// Why a batch is (not) due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealWhen {
    /// Only when the size or age limit is reached.
    Due,
    /// Now, whatever is pending.
    Force,
}

/// The token as an ArchiveTimeStamp will carry it (re-encoded DER), so that the hashes a
/// renewal covers are those of the bytes in the record.
pub(crate) fn canonical_token(
    digest: DigestAlgorithm,
    der: &[u8],
) -> Result<Vec<u8>, ArchiveError> {
    Ok(ArchiveTimeStamp::new(digest, Vec::new(), der)?.time_stamp_der()?)
}

/// A tree record for `tree` stamped by `stamp`.
pub(crate) fn tree_record(
    kind: TreeKind,
    digest: DigestAlgorithm,
    leaves: u64,
    root: &[u8],
    stamp: &Stamp,
) -> Result<TreeRecord, ArchiveError> {
    let token = canonical_token(digest, &stamp.der)?;
    let [sig, _] = Use::signature(stamp.token.signature_algorithm, stamp.token.key_bits);
    Ok(TreeRecord {
        kind,
        digest: digest.name().to_owned(),
        leaves,
        root: hex_id(root),
        token: base64::engine::general_purpose::STANDARD.encode(token),
        gen_time: unix(stamp.token.gen_time),
        tsa: stamp.token.tsa_subject.clone(),
        tsa_not_after: unix(stamp.tsa_not_after),
        signature: (sig.algorithm.name().to_owned(), sig.bits),
        signer_digest: stamp.token.signer_digest.name().to_owned(),
        tsa_url: stamp.source.clone(),
        sealed_at: unix(SystemTime::now()),
        renewals: Vec::new(),
        superseded_by: None,
    })
}

/// Puts a tree's node pages and its member pages (`members`: fixed-width ids in leaf order).
pub(crate) fn put_pages(
    batch: &mut Batch<'_>,
    tree: u64,
    paged: &PagedTree,
    members: &[u8],
    member_width: usize,
    skip_level0: bool,
) {
    for (level, page, nodes) in &paged.pages {
        if skip_level0 && *level == 0 {
            continue;
        }
        batch.put::<Pages>(
            &PageKey {
                tree,
                level: *level,
                page: *page,
            },
            nodes,
        );
    }
    for (page, ids) in members.chunks(PAGE_WIDTH * member_width).enumerate() {
        batch.put::<Pages>(
            &PageKey {
                tree,
                level: PageKey::MEMBERS,
                page: page as u32,
            },
            &ids.to_vec(),
        );
    }
}

/// Reserves the next tree id in `batch` (committed with it).
pub(crate) fn next_tree_id(store: &Store, batch: &mut Batch<'_>) -> Result<u64, ArchiveError> {
    let id = store.meta_u64(MetaKey::ArchiveNextTree)?.unwrap_or(1);
    batch.put_meta(MetaKey::ArchiveNextTree, &(id + 1).to_be_bytes());
    Ok(id)
}

/// Runs of consecutive keys, as half-open ranges (so that a range delete never touches an
/// entry this seal did not see).
fn runs(keys: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &k in keys {
        match out.last_mut() {
            Some((_, end)) if *end == k => *end = k + 1,
            _ => out.push((k, k + 1)),
        }
    }
    out
}

impl Archive {
    /// Seals one batch if one is due (or pending documents at all, with
    /// [`SealWhen::Force`]). Returns `None` when nothing was sealed.
    pub fn seal_once(
        &self,
        stamper: &dyn Timestamper,
        settings: &Settings,
        when: SealWhen,
        now: SystemTime,
    ) -> Result<Option<Sealed>, ArchiveError> {
        let _job = self.job_lock();
        let snap = self.store.snapshot();
        let mut keys = Vec::new();
        let mut ids: Vec<DocId> = Vec::new();
        let mut oldest = u64::MAX;
        for row in snap.iter::<Pending>() {
            let (seq, entry) = row?;
            keys.push(seq);
            ids.push(entry.id);
            oldest = oldest.min(entry.at);
            if ids.len() >= settings.batch_size.max(1) {
                break;
            }
        }
        drop(snap);
        if ids.is_empty() {
            return Ok(None);
        }
        let full = ids.len() >= settings.batch_size.max(1);
        let old = unix(now).saturating_sub(oldest) >= settings.batch_age.as_secs();
        if when == SealWhen::Due && !full && !old {
            return Ok(None);
        }
        let digest = settings.digest;
        let leaves: Vec<u8> = if digest == DigestAlgorithm::Sha256 {
            ids.concat()
        } else {
            let mut v = Vec::with_capacity(ids.len() * digest.output_len());
            for id in &ids {
                let bytes = crate::stored::read(&self.store, id)?.ok_or_else(|| {
                    ArchiveError::Damaged(format!("pending document {} has no bytes", hex_id(id)))
                })?;
                v.extend_from_slice(&digest.digest(&bytes));
            }
            v
        };
        let paged = crate::pages::build(digest, &leaves)?;
        let stamp = stamper.timestamp(digest, &paged.root)?;
        let record = tree_record(
            TreeKind::Documents { chain: 0 },
            digest,
            ids.len() as u64,
            &paged.root,
            &stamp,
        )?;

        let mut batch = self.store.batch();
        let tree = next_tree_id(&self.store, &mut batch)?;
        put_pages(&mut batch, tree, &paged, &ids.concat(), 32, false);
        // A pending document has no placement yet (ingest stores each id once, and only a
        // seal, atomically with removing it from the queue, gives it one). Written in key
        // order: ids are hashes, and sorted inserts are what the memtable is fastest at.
        let mut by_id: Vec<(&DocId, u64)> = ids.iter().zip(0u64..).collect();
        by_id.par_sort_unstable_by_key(|&(id, _)| id);
        for (id, leaf) in by_id {
            batch.put::<Placements>(id, &PlacementList(vec![Placement { tree, leaf }]));
        }
        for (from, to) in runs(&keys) {
            batch.delete_range::<Pending>(&from, &to);
        }
        let floor = keys.iter().max().map_or(0, |k| k + 1);
        let old_floor = self
            .store
            .meta_u64(MetaKey::ArchivePendingFloor)?
            .unwrap_or(0);
        batch.put_meta(
            MetaKey::ArchivePendingFloor,
            &floor.max(old_floor).to_be_bytes(),
        );
        batch.put::<Trees>(&tree, &Json(record.clone()));
        self.store.commit(batch, Durability::Durable)?;
        metrics::counter!("hozon_archive_sealed_total").increment(ids.len() as u64);
        tracing::info!(tree, documents = ids.len(), tsa = %stamp.source, "sealed a batch");
        Ok(Some(Sealed {
            tree,
            documents: ids.len() as u64,
            root: record.root,
            gen_time: stamp.token.gen_time_text.clone(),
            tsa: stamp.token.tsa_subject.clone(),
        }))
    }

    /// Seals batches until none is due (with [`SealWhen::Force`]: until nothing is pending).
    pub fn seal(
        &self,
        stamper: &dyn Timestamper,
        settings: &Settings,
        when: SealWhen,
        now: SystemTime,
    ) -> Result<Vec<Sealed>, ArchiveError> {
        let mut out = Vec::new();
        while let Some(s) = self.seal_once(stamper, settings, when, now)? {
            out.push(s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_cover_exactly_the_keys_seen() {
        assert_eq!(runs(&[1, 2, 3, 5, 6, 9]), vec![(1, 4), (5, 7), (9, 10)]);
        assert!(runs(&[]).is_empty());
    }
}
