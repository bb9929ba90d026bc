//! Renewal (RFC 4998 §5.2): what is due, and the two jobs that renew it.
//!
//! **What is due.** For every document tree still in use, the last timestamp of its chain is
//! judged: the TSA certificate's notAfter, the token's signature algorithm and key size and its
//! hash under the algorithm policy, and the tree's own hash algorithm. Each end date minus
//! the policy's renewal window is a due date; what is due on or before `now` is renewed.
//!
//! **Timestamp renewal** (the TSA certificate or signature algorithm ends): one new hash tree
//! whose leaves are, per renewed tree, the node over the hashes of every timestamp of its chain,
//! and one new timestamp over its root. One atomic write adds the renewal to every tree.
//!
//! **Hash-tree renewal** (the hash algorithm ends): every document of the affected trees gets
//! the leaf `H'(H'(d) ‖ H'(its ArchiveTimeStampSequence))`, computed in parallel; the new
//! tree's leaf pages are written as the job goes, with the job's progress, so a crash or
//! Ctrl-C resumes where it stopped. The last write (tree record, upper pages, placements,
//! superseded trees, job done) is atomic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use chrono::{Duration as Days, NaiveDate};
use hozon_storage::{Durability, Store};
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::ers::hash_tree_renewal_leaf;
use hozon_verifier::policy::{Algorithm, Judgement, Policy, Use};
use hozon_verifier::report::utc_date as date;
use rayon::prelude::*;

use crate::client::Timestamper;
use crate::evidence::{renewal_group, Reader};
use crate::model::{
    doc_ids, from_unix, hex_id, unix, DocId, JobKind, JobRecord, JobState, Jobs, Json, PageKey,
    Pages, Placement, Placements, TreeKind, Trees,
};
use crate::pages::{group_leaf, PAGE_WIDTH};
use crate::seal::{next_tree_id, put_pages, tree_record};
use crate::{Archive, ArchiveError};

/// Documents read together during a hash-tree renewal, a member page: one cursor over their
/// bytes ([`crate::stored::read_in_order`], one document held at a time) and one batched
/// MultiGet of their placements.
const READ_GROUP: usize = crate::pages::PAGE_WIDTH;

/// Which renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RenewalKind {
    /// A new timestamp, same hash algorithm.
    Timestamp,
    /// A new chain with another hash algorithm.
    HashTree,
}

impl RenewalKind {
    /// For reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalKind::Timestamp => "timestamp renewal",
            RenewalKind::HashTree => "hash-tree renewal",
        }
    }
}

/// One reason a tree needs renewing, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The document tree.
    pub tree: u64,
    /// Documents in it.
    pub documents: u64,
    /// Which renewal.
    pub kind: RenewalKind,
    /// The date renewal is due (end date minus the renewal window).
    pub due: NaiveDate,
    /// Why: what ends when.
    pub reason: String,
}

/// The renewal plan at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Due now, one entry per tree (hash-tree renewal wins over timestamp renewal).
    pub due: Vec<Due>,
    /// The earliest renewal not yet due.
    pub next: Option<Due>,
}

/// The due date of `u` under `policy` (`None`: it never ends), with the reason.
fn ends(policy: &Policy, u: &Use, today: NaiveDate, what: &str) -> Option<(NaiveDate, String)> {
    match policy.judge(u, today) {
        Judgement::Acceptable { until: None } => None,
        Judgement::Acceptable { until: Some(d) } => Some((
            d,
            format!(
                "{what} {} is retired on {d} ({})",
                u.describe(),
                policy.name
            ),
        )),
        Judgement::Ended(d) => Some((
            d,
            format!(
                "{what} {} was retired on {d} ({})",
                u.describe(),
                policy.name
            ),
        )),
        Judgement::Unknown => Some((
            today,
            format!(
                "{what} {} is not in the policy {}",
                u.describe(),
                policy.name
            ),
        )),
    }
}

impl Archive {
    /// What is due at `now` under `policy`.
    pub fn plan(&self, policy: &Policy, now: SystemTime) -> Result<Plan, ArchiveError> {
        let today = date(now);
        let window = Days::days(i64::from(policy.renewal_window_days));
        let mut reader = Reader::new(&self.store);
        let mut plan = Plan::default();
        let snap = self.store.snapshot();
        for row in snap.iter::<Trees>() {
            let (id, Json(rec)) = row?;
            if !matches!(rec.kind, TreeKind::Documents { .. }) || rec.superseded_by.is_some() {
                continue;
            }
            let tree = reader.tree(id)?;
            let last = match rec.renewals.last() {
                Some(&(r, _)) => reader.tree(r)?,
                None => tree.clone(),
            };
            let mut candidates: Vec<(RenewalKind, NaiveDate, String)> = Vec::new();
            if let Some((d, why)) = ends(policy, &Use::digest(tree.digest), today, "hash") {
                candidates.push((RenewalKind::HashTree, d - window, why));
            }
            let tsa_end = date(from_unix(last.record.tsa_not_after));
            candidates.push((
                RenewalKind::Timestamp,
                tsa_end - window,
                format!(
                    "the certificate of TSA {} expires on {tsa_end}",
                    last.record.tsa
                ),
            ));
            let (alg, bits) = &last.record.signature;
            if let Some(algorithm) = Algorithm::parse(alg) {
                let u = Use {
                    algorithm,
                    bits: *bits,
                };
                if let Some((d, why)) = ends(policy, &u, today, "timestamp signature") {
                    candidates.push((RenewalKind::Timestamp, d - window, why));
                }
            }
            if let Some(d) = hozon_tsa::config::parse_digest(&last.record.signer_digest) {
                if let Some((d, why)) = ends(policy, &Use::digest(d), today, "timestamp hash") {
                    candidates.push((RenewalKind::Timestamp, d - window, why));
                }
            }
            let due_now: Vec<&(RenewalKind, NaiveDate, String)> =
                candidates.iter().filter(|c| c.1 <= today).collect();
            let pick = due_now
                .iter()
                .find(|c| c.0 == RenewalKind::HashTree)
                .or_else(|| due_now.iter().min_by_key(|c| c.1));
            let entry = |c: &(RenewalKind, NaiveDate, String)| Due {
                tree: id,
                documents: rec.leaves,
                kind: c.0,
                due: c.1,
                reason: c.2.clone(),
            };
            if let Some(c) = pick {
                plan.due.push(entry(c));
            } else if let Some(c) = candidates.iter().min_by_key(|c| c.1) {
                if plan.next.as_ref().is_none_or(|n| c.1 < n.due) {
                    plan.next = Some(entry(c));
                }
            }
        }
        Ok(plan)
    }

    /// Carries out `plan`: one timestamp renewal over every tree due for one (per hash
    /// algorithm), then one hash-tree renewal to `to` of every tree due for one. A hash-tree
    /// renewal interrupted earlier is finished first.
    pub fn renew(
        &self,
        plan: &Plan,
        stamper: &dyn Timestamper,
        to: DigestAlgorithm,
        progress: &(dyn Fn(u64, u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<Vec<String>, ArchiveError> {
        let mut done = Vec::new();
        if let Some(msg) = self.resume_hash_tree_renewal(stamper, progress, cancel)? {
            done.push(msg);
        }
        let mut by_digest: Vec<(DigestAlgorithm, Vec<u64>)> = Vec::new();
        let mut reader = Reader::new(&self.store);
        for d in plan.due.iter().filter(|d| d.kind == RenewalKind::Timestamp) {
            let digest = reader.tree(d.tree)?.digest;
            match by_digest.iter_mut().find(|(g, _)| *g == digest) {
                Some((_, v)) => v.push(d.tree),
                None => by_digest.push((digest, vec![d.tree])),
            }
        }
        for (digest, trees) in by_digest {
            done.push(self.renew_timestamps(stamper, digest, &trees)?);
        }
        let hash: Vec<u64> = plan
            .due
            .iter()
            .filter(|d| d.kind == RenewalKind::HashTree)
            .map(|d| d.tree)
            .collect();
        if !hash.is_empty() {
            self.start_hash_tree_renewal(&hash, to)?;
            if let Some(msg) = self.resume_hash_tree_renewal(stamper, progress, cancel)? {
                done.push(msg);
            }
        }
        Ok(done)
    }

    /// One timestamp renewal over `trees` (all of hash algorithm `digest`).
    pub fn renew_timestamps(
        &self,
        stamper: &dyn Timestamper,
        digest: DigestAlgorithm,
        trees: &[u64],
    ) -> Result<String, ArchiveError> {
        let _job = self.job_lock();
        // A tree whose documents moved on (or are moving) to a new chain keeps its chain as
        // it is: the new chain's leaves cover that chain's exact bytes.
        let moving: Vec<u64> = match running_hash_job(&self.store)? {
            Some((
                _,
                JobRecord {
                    kind: JobKind::HashTreeRenewal { trees, .. },
                    ..
                },
            )) => trees,
            _ => Vec::new(),
        };
        let mut reader = Reader::new(&self.store);
        let mut leaves = Vec::with_capacity(trees.len() * digest.output_len());
        let mut infos = Vec::with_capacity(trees.len());
        let mut kept = Vec::with_capacity(trees.len());
        for &t in trees {
            let info = reader.tree(t)?;
            if info.record.superseded_by.is_some() || moving.contains(&t) {
                continue;
            }
            kept.push(t);
            if info.digest != digest {
                return Err(ArchiveError::Damaged(format!(
                    "tree {t} is {} but was grouped with {}",
                    info.digest.name(),
                    digest.name()
                )));
            }
            leaves.extend_from_slice(&group_leaf(digest, &renewal_group(&mut reader, &info)?));
            infos.push(info);
        }
        if kept.is_empty() {
            return Ok("timestamp renewal: nothing left to renew".to_owned());
        }
        let trees = kept.as_slice();
        let paged = crate::pages::build(digest, &leaves)?;
        let stamp = stamper.timestamp(digest, &paged.root)?;
        let record = tree_record(
            TreeKind::Renewal,
            digest,
            trees.len() as u64,
            &paged.root,
            &stamp,
        )?;
        let mut batch = self.store.batch();
        let id = next_tree_id(&self.store, &mut batch)?;
        let members: Vec<u8> = trees.iter().flat_map(|t| t.to_be_bytes()).collect();
        put_pages(&mut batch, id, &paged, &members, 8, false);
        batch.put::<Trees>(&id, &Json(record));
        for (j, info) in infos.iter().enumerate() {
            let mut rec = info.record.clone();
            rec.renewals.push((id, j as u64));
            batch.put::<Trees>(&info.id, &Json(rec));
        }
        let now = unix(SystemTime::now());
        let job = next_job_id(&self.store)?;
        batch.put::<Jobs>(
            &job,
            &Json(JobRecord {
                kind: JobKind::TimestampRenewal {
                    trees: trees.to_vec(),
                },
                state: JobState::Done,
                started: now,
                updated: now,
                detail: format!("renewal tree {id}"),
            }),
        );
        self.store.commit(batch, Durability::Durable)?;
        let docs: u64 = infos.iter().map(|i| i.record.leaves).sum();
        Ok(format!(
            "timestamp renewal: {} tree(s), {docs} document(s), new timestamp {} from {}",
            trees.len(),
            stamp.token.gen_time_text,
            stamp.token.tsa_subject
        ))
    }

    /// Records a hash-tree renewal job of the documents of `trees` to `to`, fixing its
    /// members and reserving its tree id. Does nothing if one is already running.
    pub fn start_hash_tree_renewal(
        &self,
        trees: &[u64],
        to: DigestAlgorithm,
    ) -> Result<(), ArchiveError> {
        let _job = self.job_lock();
        if running_hash_job(&self.store)?.is_some() {
            return Ok(());
        }
        let mut reader = Reader::new(&self.store);
        let mut members: Vec<u8> = Vec::new();
        let mut kept = Vec::with_capacity(trees.len());
        for &t in trees {
            let info = reader.tree(t)?;
            // A plan made before an interrupted renewal was finished may name trees that
            // renewal has since replaced: their documents have moved on already.
            if info.record.superseded_by.is_some()
                || !matches!(info.record.kind, TreeKind::Documents { .. })
            {
                continue;
            }
            if info.digest == to {
                return Err(ArchiveError::Config(format!(
                    "tree {t} is already under {}: a hash-tree renewal must move to another \
                     hash algorithm (set renew_hash to one the policy keeps)",
                    to.name()
                )));
            }
            kept.push(t);
            let pages = info.record.leaves.div_ceil(PAGE_WIDTH as u64);
            for p in 0..pages {
                members.extend_from_slice(&reader.page(PageKey {
                    tree: t,
                    level: PageKey::MEMBERS,
                    page: p as u32,
                })?);
            }
        }
        if kept.is_empty() {
            return Ok(());
        }
        let trees = kept.as_slice();
        let mut batch = self.store.batch();
        let new_tree = next_tree_id(&self.store, &mut batch)?;
        for (page, ids) in members.chunks(PAGE_WIDTH * 32).enumerate() {
            batch.put::<Pages>(
                &PageKey {
                    tree: new_tree,
                    level: PageKey::MEMBERS,
                    page: page as u32,
                },
                &ids.to_vec(),
            );
        }
        let now = unix(SystemTime::now());
        batch.put::<Jobs>(
            &next_job_id(&self.store)?,
            &Json(JobRecord {
                kind: JobKind::HashTreeRenewal {
                    trees: trees.to_vec(),
                    digest: to.name().to_owned(),
                    new_tree,
                    pages_done: 0,
                    members: (members.len() / 32) as u64,
                },
                state: JobState::Running,
                started: now,
                updated: now,
                detail: String::new(),
            }),
        );
        self.store.commit(batch, Durability::Durable)?;
        Ok(())
    }

    /// Runs the hash-tree renewal job in progress, if any, to its end.
    pub fn resume_hash_tree_renewal(
        &self,
        stamper: &dyn Timestamper,
        progress: &(dyn Fn(u64, u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<Option<String>, ArchiveError> {
        let _job = self.job_lock();
        let Some((job_id, mut job)) = running_hash_job(&self.store)? else {
            return Ok(None);
        };
        let JobKind::HashTreeRenewal {
            trees,
            digest,
            new_tree,
            mut pages_done,
            members,
        } = job.kind.clone()
        else {
            return Ok(None);
        };
        let to = hozon_tsa::config::parse_digest(&digest)
            .ok_or_else(|| ArchiveError::Damaged(format!("job {job_id}: digest {digest}")))?;
        let pages = members.div_ceil(PAGE_WIDTH as u64) as u32;
        // Pages per durable step: enough work for both cores, little to redo after a crash.
        const STEP: u32 = 16;
        while pages_done < pages {
            if cancel.load(Ordering::SeqCst) {
                return Err(ArchiveError::Interrupted);
            }
            let end = (pages_done + STEP).min(pages);
            // One snapshot per step; each member page is read by one scan where its documents
            // lie in arrival order ([`crate::stored::read_in_order`]), its placements by a
            // batched MultiGet, and pages are hashed on all cores.
            let snap = self.store.snapshot();
            let computed: Result<Vec<(u32, Vec<u8>)>, ArchiveError> = (pages_done..end)
                .into_par_iter()
                .map_init(
                    || Reader::new(&snap),
                    |reader, p| {
                        let ids = reader.page(PageKey {
                            tree: new_tree,
                            level: PageKey::MEMBERS,
                            page: p,
                        })?;
                        let ids: Vec<DocId> = doc_ids(&ids).collect();
                        let mut leaves = Vec::with_capacity(ids.len() * to.output_len());
                        for group in ids.chunks(READ_GROUP) {
                            let mut placements = snap.multi_get::<Placements>(group).into_iter();
                            let mut failed = None;
                            crate::stored::read_in_order(&snap, group, |j, bytes| {
                                let placement = placements.next();
                                if failed.is_some() {
                                    return;
                                }
                                let missing = || ArchiveError::NotFound(hex_id(&group[j]));
                                let leaf = (|| {
                                    let bytes = bytes?.ok_or_else(missing)?;
                                    let placements =
                                        placement.ok_or_else(missing)??.ok_or_else(missing)?;
                                    let seq = reader.sequence(bytes, &placements.0)?;
                                    hash_tree_renewal_leaf(to, &to.digest(bytes), &seq)
                                        .map_err(ArchiveError::from)
                                })();
                                match leaf {
                                    Ok(leaf) => leaves.extend_from_slice(&leaf),
                                    Err(e) => failed = Some(e),
                                }
                            });
                            if let Some(e) = failed {
                                return Err(e);
                            }
                        }
                        Ok((p, leaves))
                    },
                )
                .collect();
            drop(snap);
            let mut batch = self.store.batch();
            for (p, leaves) in computed? {
                batch.put::<Pages>(
                    &PageKey {
                        tree: new_tree,
                        level: 0,
                        page: p,
                    },
                    &leaves,
                );
            }
            pages_done = end;
            if let JobKind::HashTreeRenewal { pages_done: pd, .. } = &mut job.kind {
                *pd = pages_done;
            }
            job.updated = unix(SystemTime::now());
            batch.put::<Jobs>(&job_id, &Json(job.clone()));
            // A process crash keeps this (WAL); a power loss redoes at most these pages.
            self.store.commit(batch, Durability::Buffered)?;
            progress(
                (u64::from(pages_done) * PAGE_WIDTH as u64).min(members),
                members,
            );
        }

        let mut leaves = Vec::with_capacity(members as usize * to.output_len());
        let mut ids = Vec::with_capacity(members as usize * 32);
        let mut reader = Reader::new(&self.store);
        for p in 0..pages {
            leaves.extend_from_slice(&reader.page(PageKey {
                tree: new_tree,
                level: 0,
                page: p,
            })?);
            ids.extend_from_slice(&reader.page(PageKey {
                tree: new_tree,
                level: PageKey::MEMBERS,
                page: p,
            })?);
        }
        let paged = crate::pages::build(to, &leaves)?;
        let stamp = stamper.timestamp(to, &paged.root)?;
        let mut chain = 0u32;
        let mut batch = self.store.batch();
        // Placements are read and rewritten in key order: ids are hashes, so leaf order is
        // random in the key space, and at a million documents nearly every read then missed
        // the block cache (the final step took 15.7 s of a 57 s renewal).
        let mut ids: Vec<(DocId, u64)> = doc_ids(&ids).zip(0u64..).collect();
        ids.par_sort_unstable_by_key(|&(id, _)| id);
        let snap = self.store.snapshot();
        for group in ids.chunks(1024) {
            let keys: Vec<DocId> = group.iter().map(|&(id, _)| id).collect();
            for ((id, leaf), list) in group.iter().zip(snap.multi_get::<Placements>(&keys)) {
                let mut list = list?.unwrap_or_default();
                chain = chain.max(list.0.len() as u32);
                list.0.push(Placement {
                    tree: new_tree,
                    leaf: *leaf,
                });
                batch.put::<Placements>(id, &list);
            }
        }
        drop(snap);
        let record = tree_record(
            TreeKind::Documents { chain },
            to,
            members,
            &paged.root,
            &stamp,
        )?;
        put_pages(&mut batch, new_tree, &paged, &[], 32, true);
        batch.put::<Trees>(&new_tree, &Json(record));
        for &t in &trees {
            let mut rec = reader.tree(t)?.record.clone();
            rec.superseded_by = Some(new_tree);
            batch.put::<Trees>(&t, &Json(rec));
        }
        job.state = JobState::Done;
        job.updated = unix(SystemTime::now());
        job.detail = format!("new tree {new_tree}");
        batch.put::<Jobs>(&job_id, &Json(job));
        self.store.commit(batch, Durability::Durable)?;
        Ok(Some(format!(
            "hash-tree renewal to {}: {} tree(s), {members} document(s), new timestamp {} from {}",
            to.name(),
            trees.len(),
            stamp.token.gen_time_text,
            stamp.token.tsa_subject
        )))
    }
}

fn next_job_id(store: &Store) -> Result<u64, ArchiveError> {
    Ok(store.last::<Jobs>()?.map_or(1, |(k, _)| k + 1))
}

fn running_hash_job(store: &Store) -> Result<Option<(u64, JobRecord)>, ArchiveError> {
    for row in store.snapshot().iter::<Jobs>() {
        let (id, Json(job)) = row?;
        if job.state == JobState::Running && matches!(job.kind, JobKind::HashTreeRenewal { .. }) {
            return Ok(Some((id, job)));
        }
    }
    Ok(None)
}
