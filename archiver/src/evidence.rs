//! The evidence record of an archived document, assembled from the stored trees.
//!
//! A document sits in one document tree per hash algorithm it has been protected under
//! ([`crate::model::Placements`]); each such tree starts an ArchiveTimeStampChain, and each
//! timestamp renewal of that tree adds an ArchiveTimeStamp to the chain:
//!
//! - chain 0 starts with the document's leaf `H(d)`;
//! - a later chain (hash-tree renewal) starts with `H'(H'(d) ‖ H'(sequence so far))`;
//! - a renewal covers the hashes of every timestamp of the chain so far, as one group in the
//!   first list (DESIGN §3);
//! - every path is checked against the stored root while it is assembled, so a damaged node
//!   is reported rather than exported.

use std::collections::HashMap;
use std::sync::Arc;

use hozon_storage::{Store, View};
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::ers::{
    evidence_record, hash_tree_renewal_leaf, timestamp_renewal_hashes, ArchiveTimeStamp,
    ArchiveTimeStampChain, ArchiveTimeStampSequence,
};
use hozon_verifier::hashtree::{root_from_reduced, HashTree};

use crate::model::TreeRecord;
use crate::model::{hex_id, DocId, PageKey, Pages, Placement, Placements, Trees};
use crate::pages::{page_tree, reduced_tree, siblings};
use crate::ArchiveError;

/// A tree record with its decoded parts.
#[derive(Clone, Debug)]
pub struct TreeInfo {
    /// Tree id.
    pub id: u64,
    /// The record.
    pub record: TreeRecord,
    /// Its hash algorithm.
    pub digest: DigestAlgorithm,
    /// Its token, DER.
    pub token: Vec<u8>,
    /// Its token, decoded (once per tree, not once per document).
    pub time_stamp: rasn_cms::ContentInfo,
    /// The root.
    pub root: Vec<u8>,
}

/// Reads trees and pages with small caches (paths of neighbouring leaves share pages).
pub struct Reader<'a, V: View = Store> {
    store: &'a V,
    trees: HashMap<u64, Arc<TreeInfo>>,
    pages: HashMap<PageKey, Arc<Vec<u8>>>,
    page_trees: HashMap<PageKey, Arc<HashTree>>,
}

/// Pages kept in a reader's cache before it is emptied (bounded memory in long jobs).
const PAGE_CACHE: usize = 64;

impl<'a, V: View> Reader<'a, V> {
    /// A reader over `store` (the live store, or a snapshot of it).
    pub fn new(store: &'a V) -> Self {
        Reader {
            store,
            trees: HashMap::new(),
            pages: HashMap::new(),
            page_trees: HashMap::new(),
        }
    }

    /// Tree `id`.
    pub fn tree(&mut self, id: u64) -> Result<Arc<TreeInfo>, ArchiveError> {
        if let Some(t) = self.trees.get(&id) {
            return Ok(t.clone());
        }
        let record = self
            .store
            .read::<Trees>(&id)?
            .ok_or_else(|| ArchiveError::Damaged(format!("tree {id} is referenced but missing")))?
            .0;
        let token = record.token_der()?;
        let time_stamp = rasn::der::decode(&token)
            .map_err(|e| ArchiveError::Damaged(format!("tree {id} token: {e}")))?;
        let info = Arc::new(TreeInfo {
            id,
            digest: record.digest_algorithm()?,
            token,
            time_stamp,
            root: hex::decode(&record.root)
                .map_err(|e| ArchiveError::Damaged(format!("tree {id} root: {e}")))?,
            record,
        });
        self.trees.insert(id, info.clone());
        Ok(info)
    }

    /// Page `key`.
    pub fn page(&mut self, key: PageKey) -> Result<Arc<Vec<u8>>, ArchiveError> {
        if let Some(p) = self.pages.get(&key) {
            return Ok(p.clone());
        }
        let page = Arc::new(self.store.read::<Pages>(&key)?.ok_or_else(|| {
            ArchiveError::Damaged(format!(
                "tree {} is missing its page {} of level {}",
                key.tree, key.page, key.level
            ))
        })?);
        if self.pages.len() >= PAGE_CACHE {
            self.pages.clear();
        }
        self.pages.insert(key, page.clone());
        Ok(page)
    }

    /// The hash tree of page `key` of `tree` (built once per reader: neighbouring leaves
    /// share it).
    fn page_tree(&mut self, tree: &TreeInfo, key: PageKey) -> Result<Arc<HashTree>, ArchiveError> {
        if let Some(t) = self.page_trees.get(&key) {
            return Ok(t.clone());
        }
        let page = self.page(key)?;
        let built = Arc::new(page_tree(tree.digest, &page)?);
        if self.page_trees.len() >= PAGE_CACHE {
            self.page_trees.clear();
        }
        self.page_trees.insert(key, built.clone());
        Ok(built)
    }

    /// The siblings of leaf `leaf` of `tree`.
    pub fn siblings(&mut self, tree: &TreeInfo, leaf: u64) -> Result<Vec<Vec<u8>>, ArchiveError> {
        siblings(tree.record.leaves, leaf, |level, page| {
            self.page_tree(
                tree,
                PageKey {
                    tree: tree.id,
                    level,
                    page,
                },
            )
        })
    }

    /// An archive timestamp of `tree` for the leaf at `index` made of `group`, checked to lead
    /// to the tree's root.
    pub(crate) fn ats(
        &mut self,
        tree: &TreeInfo,
        index: u64,
        group: Vec<Vec<u8>>,
    ) -> Result<ArchiveTimeStamp, ArchiveError> {
        let sib = self.siblings(tree, index)?;
        let probe = group[0].clone();
        let reduced = reduced_tree(group, sib);
        let reaches = root_from_reduced(tree.digest, &probe, &reduced, |r| r == tree.root)?;
        if reaches.is_none() {
            return Err(ArchiveError::Damaged(format!(
                "leaf {index} of tree {} does not lead to the tree's timestamped root",
                tree.id
            )));
        }
        Ok(ArchiveTimeStamp::with_token(
            tree.digest,
            reduced,
            tree.time_stamp.clone(),
        ))
    }

    /// The chain a document tree starts, for a document whose leaf there is `leaf`.
    pub(crate) fn chain(
        &mut self,
        tree: &TreeInfo,
        index: u64,
        leaf: Vec<u8>,
    ) -> Result<ArchiveTimeStampChain, ArchiveError> {
        let mut chain = vec![self.ats(tree, index, vec![leaf])?];
        self.renewals(tree, &mut chain)?;
        Ok(chain)
    }

    /// Appends to `chain` (which starts with `tree`'s own archive timestamp) one archive
    /// timestamp per renewal of `tree`, each checked to lead to its renewal tree's root.
    pub(crate) fn renewals(
        &mut self,
        tree: &TreeInfo,
        chain: &mut ArchiveTimeStampChain,
    ) -> Result<(), ArchiveError> {
        for &(r, j) in &tree.record.renewals {
            let renewal = self.tree(r)?;
            let group = timestamp_renewal_hashes(renewal.digest, chain)?;
            chain.push(self.ats(&renewal, j, group)?);
        }
        Ok(())
    }

    /// The ArchiveTimeStampSequence of the document `data` at `placements`.
    pub fn sequence(
        &mut self,
        data: &[u8],
        placements: &[Placement],
    ) -> Result<ArchiveTimeStampSequence, ArchiveError> {
        let mut seq: ArchiveTimeStampSequence = Vec::with_capacity(placements.len());
        for (n, p) in placements.iter().enumerate() {
            let tree = self.tree(p.tree)?;
            let leaf = if n == 0 {
                tree.digest.digest(data)
            } else {
                hash_tree_renewal_leaf(tree.digest, &tree.digest.digest(data), &seq)?
            };
            seq.push(self.chain(&tree, p.leaf, leaf)?);
        }
        Ok(seq)
    }

    /// The document's bytes and placements.
    pub fn document(&self, id: &DocId) -> Result<(Vec<u8>, Vec<Placement>), ArchiveError> {
        let bytes = crate::stored::read(self.store, id)?
            .ok_or_else(|| ArchiveError::NotFound(hex_id(id)))?;
        match self.store.read::<Placements>(id)? {
            Some(p) if !p.0.is_empty() => Ok((bytes, p.0)),
            _ => {
                if self.store.has::<crate::model::Records>(id)? {
                    Err(ArchiveError::NotSealed(hex_id(id)))
                } else {
                    Err(ArchiveError::NotFound(hex_id(id)))
                }
            }
        }
    }

    /// The DER evidence record of document `id`.
    pub fn evidence_record(&mut self, id: &DocId) -> Result<Vec<u8>, ArchiveError> {
        let (bytes, placements) = self.document(id)?;
        let seq = self.sequence(&bytes, &placements)?;
        rasn::der::encode(&evidence_record(seq))
            .map_err(|e| ArchiveError::Evidence(format!("DER encoding: {e}")))
    }
}

/// The leaves of a timestamp renewal: per renewed tree, the group node over the hashes of
/// every timestamp of its chain so far (its own token, then each renewal's).
pub fn renewal_group<V: View>(
    reader: &mut Reader<'_, V>,
    tree: &TreeInfo,
) -> Result<Vec<Vec<u8>>, ArchiveError> {
    let d = tree.digest;
    let mut group = vec![d.digest(&tree.token)];
    for &(r, _) in &tree.record.renewals {
        group.push(d.digest(&reader.tree(r)?.token));
    }
    Ok(group)
}
