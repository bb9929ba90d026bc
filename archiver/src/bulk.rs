//! Re-verifying the whole archive after an algorithm policy change (`hozon verify archive`).
//!
//! Everything is read from one storage snapshot, so a seal or renewal running meanwhile
//! cannot make the run see half of a write. The work is shared the way the evidence is:
//!
//! - **Once per timestamp.** Every tree's token (document trees and renewal trees) is verified
//!   once against its stored root, and each TSA certificate path once per time it is checked
//!   at; the result is shared by every document the tree protects.
//! - **Once per history.** Documents whose evidence goes through the same trees (the same
//!   chains, renewed by the same timestamps) have the same protection chain: its structure
//!   (each renewal's group leads to the renewal tree's root), the time order, the TSA paths and
//!   the algorithm policy ([`hozon_verifier::report::judge_chain`], the rule the single-document
//!   verifier applies) are judged once for all of them.
//! - **Once per document.** The stored bytes are read and hashed (they must still hash to the
//!   document's id, and to its leaf), the leaf of a renewed chain is recomputed from the
//!   document and its earlier evidence, and with `signatures` the document's own signature and
//!   signer path are verified against the validation data captured at ingest.
//! - **Once per tree.** The tree is rebuilt from the recomputed leaves and compared page by
//!   page with the stored one, so a damaged node is found even where the documents are intact;
//!   only then are the affected documents' paths read one by one, to name them.
//!
//! Live document trees are processed one after another, each in chunks of member pages hashed
//! in parallel (rayon: the caller's pool), so memory is bounded by the largest batch, not by
//! the archive. The result is a [`BulkReport`]: totals per verdict, the batches that need
//! something, the invalid documents by name, and the [`MigrationPlan`] that
//! `hozon archive renew --plan` carries out.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use hozon_storage::{Snapshot, View};
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::document::{verify_document, DocumentContext};
use hozon_verifier::ers::hash_tree_renewal_leaf;
use hozon_verifier::hashtree::root_from_reduced;
use hozon_verifier::path::{validate_path, CrlSet, PathInput, Purpose};
use hozon_verifier::policy::{Policy, Use};
use hozon_verifier::report::{
    document_protections, fmt_time, judge_chain, timestamp_protection, ChainJudgement, Protection,
};
use hozon_verifier::token::{verify_token, VerifiedToken};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::evidence::{Reader, TreeInfo};
use crate::ingest::{sha256, Trust};
use crate::model::{
    doc_ids, hex_id, parse_id, ArrivalRecord, DocId, DocStatus, Json, Objects, PageKey, Pages,
    Pending, Placements, TreeKind, TreeRecord, Trees,
};
use crate::pages::{build, PAGE_WIDTH};
use crate::renew::RenewalKind;
use crate::{Archive, ArchiveError};

/// The report's format name (the `format` field).
pub const REPORT_FORMAT: &str = "hozon-archive-verification/1";

/// Member pages hashed per parallel step (64 × 256 documents: 16 groups, so that the thread
/// left last in a step waits little).
const CHUNK_PAGES: u32 = 64;
/// Documents read together: one cursor over their bytes (its first seek searches every
/// level, and the blocks at a group's two ends are read again by the groups beside it) and,
/// with signatures, one over their records and signature timestamps. The bytes are checked as the
/// cursor lends them, one document at a time, so a group's size bounds no memory.
const READ_GROUP: usize = 1024;
/// The same with `signatures`, where a document takes some thirty times as long: smaller
/// groups keep both threads busy to the end of a tree (the signed corpus of the benchmark is
/// one tree of 3,000 documents: 12 groups of 256 left one thread idle for up to a twelfth).
const SIGNED_GROUP: usize = 64;

/// What a bulk run checks, against what.
pub struct Options<'a> {
    /// The algorithm policy.
    pub policy: &'a Policy,
    /// The verification time.
    pub now: SystemTime,
    /// Trust anchors, intermediates and CRLs (the archive's own).
    pub trust: &'a Trust,
    /// Also verify each document's own signature and signer path.
    pub signatures: bool,
    /// The hash algorithm a hash-tree renewal in the plan moves to.
    pub renew_to: DigestAlgorithm,
    /// Invalid documents listed by name at most (the rest are counted).
    pub max_listed: usize,
    /// Set to stop early; the report then says it is partial.
    pub cancel: &'a AtomicBool,
    /// Called with (documents done, documents in all).
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
}

/// The verdict on a document or a batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Outcome {
    /// Provably intact; nothing ends within the policy's renewal window.
    Valid,
    /// Provably intact, and something of the last timestamp ends within the window.
    RenewalDue {
        /// What renews it.
        action: RenewalKind,
        /// The earliest end date (renew before it), YYYY-MM-DD.
        before: String,
        /// What ends when.
        reason: String,
    },
    /// Not (or no longer) provable.
    Invalid {
        /// A stable code.
        code: String,
        /// What is wrong, naming the tree, leaf or step.
        reason: String,
    },
}

impl Outcome {
    fn invalid(code: &str, reason: impl Into<String>) -> Outcome {
        Outcome::Invalid {
            code: code.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Totals per verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Valid, nothing due.
    pub valid: u64,
    /// Valid, renewal due.
    pub renewal_due: u64,
    /// Invalid.
    pub invalid: u64,
}

/// A batch (live document tree) that needs something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// Tree id.
    pub tree: u64,
    /// Its hash algorithm.
    pub digest: String,
    /// Documents in it.
    pub documents: u64,
    /// The tree holding its newest timestamp (itself, or its last timestamp renewal).
    pub last_timestamp: u64,
    /// The verdict on its protection chain.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Documents in it whose evidence fails on its own (changed, missing, damaged path…).
    pub invalid_documents: u64,
    /// Documents in it whose evidence holds but whose own signature does not verify, or uses
    /// an algorithm the policy had retired when its signature timestamp covered it (with
    /// `signatures` only). No renewal changes these.
    #[serde(default)]
    pub invalid_signatures: u64,
    /// Damage found in its stored nodes ("level 8 page 3").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damage: Vec<String>,
}

/// An invalid document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocEntry {
    /// Document id (SHA-256 of its bytes, hex).
    pub id: String,
    /// The live tree it sits in.
    pub tree: u64,
    /// Its leaf there.
    pub leaf: u64,
    /// Code.
    pub code: String,
    /// What is wrong.
    pub reason: String,
}

/// One tree to renew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// The document tree.
    pub tree: u64,
    /// Its newest timestamp when the report was made: a renewal that finds another has
    /// happened since skips the tree.
    pub last_timestamp: u64,
    /// Documents in it.
    pub documents: u64,
    /// Renew before this date.
    pub before: String,
    /// Why.
    pub reason: String,
}

/// What to renew, for `hozon archive renew --plan`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationPlan {
    /// The hash algorithm hash-tree renewals move to.
    pub to: String,
    /// Trees whose last timestamp must be renewed (same hash algorithm).
    pub timestamp_renewal: Vec<PlanEntry>,
    /// Trees whose documents must be re-hashed into a new tree with `to`.
    pub hash_tree_renewal: Vec<PlanEntry>,
    /// Documents no renewal can save (changed or missing, or their evidence already broken);
    /// re-ingest them from a source copy, if one exists.
    pub lost_documents: u64,
    /// Trees with damaged stored nodes whose documents are intact: the nodes can be recomputed
    /// from the documents (the evidence of their documents cannot be exported until then).
    #[serde(default)]
    pub damaged_trees: Vec<u64>,
}

/// The result of a bulk run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkReport {
    /// [`REPORT_FORMAT`].
    pub format: String,
    /// The archive's instance id (a plan is only carried out on the archive it was made for).
    pub archive: String,
    /// The policy's name.
    pub policy: String,
    /// The verification time.
    pub at: String,
    /// Whether document signatures were verified too.
    pub signatures: bool,
    /// False when the run was interrupted: the totals cover only what was checked.
    pub complete: bool,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Documents checked.
    pub documents: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Documents waiting for their first batch (not yet protected, not checked).
    pub pending: u64,
    /// Live document trees checked.
    pub trees: u64,
    /// Totals.
    pub totals: Totals,
    /// Invalid documents per code.
    pub invalid_by_code: BTreeMap<String, u64>,
    /// The earliest renew-before date among documents due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_due: Option<String>,
    /// Batches that are due, invalid, or hold invalid documents.
    pub batches: Vec<BatchEntry>,
    /// Invalid documents, by name (at most `max_listed`).
    pub invalid_documents: Vec<DocEntry>,
    /// Invalid documents not listed.
    pub invalid_documents_not_listed: u64,
    /// What to renew.
    pub plan: MigrationPlan,
}

/// A check's own finding: the value, or (code, reason) of why it does not hold. (The outer
/// `Result` of the functions returning it is a storage failure, which stops the run.)
type Finding<T> = Result<T, (String, String)>;

/// The finding for an object of a document's validation data that is not in the store.
fn validation_data_missing(what: &str, id: &str) -> (String, String) {
    (
        "validation-data-missing".into(),
        format!("{what} {id} of the document's validation data is missing"),
    )
}

/// A chunk of a tree's members, checked: its first leaf index, the members' ids and stored
/// leaves, and each member's result.
struct Checked {
    first: u64,
    ids: Vec<DocId>,
    stored: Vec<u8>,
    checks: Vec<Result<DocCheck, ArchiveError>>,
}

/// Per-document result of the parallel step.
struct DocCheck {
    leaf: Option<Vec<u8>>,
    size: u64,
    history: Option<Arc<[u64]>>,
    /// With `signatures`: the signature's protection steps (`None` for opaque or unverified
    /// documents), or why the signature does not verify.
    signature: Finding<Option<Vec<Protection>>>,
    /// Why the document's evidence cannot hold (missing, changed, damaged placement).
    failure: Option<(String, String)>,
}

impl DocCheck {
    fn failed(code: &str, reason: String) -> DocCheck {
        DocCheck {
            leaf: None,
            size: 0,
            history: None,
            signature: Ok(None),
            failure: Some((code.to_owned(), reason)),
        }
    }
}

/// What was read for one document of a group: its bytes (`None`: missing) and, with
/// `signatures`, what its signature check needs.
struct DocRead<'b> {
    bytes: Option<&'b [u8]>,
    signature: Option<SignatureInput>,
}

/// What [`Run::signature`] reads besides the document: its validation record and the
/// signature timestamp kept beside it (`None`: no record).
type SignatureInput = Option<ArrivalRecord>;

/// The judged protection chain of one history (the trees a document's evidence goes through).
struct History {
    chain: Finding<Vec<Protection>>,
    digest: DigestAlgorithm,
    outcome: Outcome,
}

struct Run<'a> {
    snap: Snapshot<'a>,
    trees: BTreeMap<u64, TreeRecord>,
    infos: Mutex<HashMap<u64, Arc<TreeInfo>>>,
    tokens: HashMap<u64, Result<VerifiedToken, String>>,
    paths: Mutex<HashMap<(u64, SystemTime), Result<hozon_verifier::path::ValidatedPath, String>>>,
    histories: Mutex<HashMap<Arc<[u64]>, Arc<History>>>,
    objects: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    opts: &'a Options<'a>,
}

/// The verdict on a protection chain whose last document tree uses `digest`.
fn judge(
    policy: &Policy,
    chain: &[Protection],
    digest: DigestAlgorithm,
    now: SystemTime,
) -> Outcome {
    match judge_chain(policy, chain, now) {
        ChainJudgement::Holds { due } => {
            let Some(first) = due.iter().min_by_key(|d| d.date) else {
                return Outcome::Valid;
            };
            let action = if due.iter().any(|d| d.ends == Some(Use::digest(digest))) {
                RenewalKind::HashTree
            } else {
                RenewalKind::Timestamp
            };
            Outcome::RenewalDue {
                action,
                before: first.date.to_string(),
                reason: first.reason.clone(),
            }
        }
        ChainJudgement::Broken {
            index,
            code,
            reason,
        } => Outcome::invalid(
            code,
            format!("step {} of the protection: {reason}", index + 1),
        ),
    }
}

impl<'a> Run<'a> {
    fn info(&self, id: u64) -> Result<Arc<TreeInfo>, ArchiveError> {
        if let Some(i) = self.infos.lock().map_err(poisoned)?.get(&id) {
            return Ok(i.clone());
        }
        let info = Reader::new(&self.snap).tree(id)?;
        self.infos
            .lock()
            .map_err(poisoned)?
            .insert(id, info.clone());
        Ok(info)
    }

    /// The TSA path of tree `id`'s token, checked at `at` (cached: every history that
    /// checks the same timestamp at the same time shares it).
    fn tsa_path(
        &self,
        id: u64,
        token: &VerifiedToken,
        at: SystemTime,
    ) -> Result<Result<hozon_verifier::path::ValidatedPath, String>, ArchiveError> {
        if let Some(p) = self.paths.lock().map_err(poisoned)?.get(&(id, at)) {
            return Ok(p.clone());
        }
        let mut intermediates = self.opts.trust.extra_certs.clone();
        intermediates.extend(token.carried.iter().cloned());
        let p = validate_path(
            &PathInput {
                end_entity: &token.certificate,
                intermediates: &intermediates,
                crls: self.opts.trust.crls.set(),
                time: at,
                purpose: Purpose::TimeStamping,
                remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
            },
            &self.opts.trust.anchors,
        )
        .map_err(|e| e.to_string());
        self.paths
            .lock()
            .map_err(poisoned)?
            .insert((id, at), p.clone());
        Ok(p)
    }

    /// Judges the history `trees` (document trees, oldest chain first), once.
    fn history(&self, trees: &Arc<[u64]>) -> Result<Arc<History>, ArchiveError> {
        if let Some(h) = self.histories.lock().map_err(poisoned)?.get(trees) {
            return Ok(h.clone());
        }
        let h = Arc::new(self.judge_history(trees)?);
        self.histories
            .lock()
            .map_err(poisoned)?
            .insert(trees.clone(), h.clone());
        Ok(h)
    }

    fn judge_history(&self, trees: &[u64]) -> Result<History, ArchiveError> {
        let last = *trees.last().unwrap_or(&0);
        let digest = self.info(last)?.digest;
        let chain = self.history_chain(trees)?;
        let outcome = match &chain {
            Ok(c) => judge(self.opts.policy, c, digest, self.opts.now),
            Err((code, reason)) => Outcome::invalid(code, reason.clone()),
        };
        Ok(History {
            chain,
            digest,
            outcome,
        })
    }

    /// The protection steps of a history, or why it does not hold.
    fn history_chain(&self, trees: &[u64]) -> Result<Finding<Vec<Protection>>, ArchiveError> {
        let bad = |code: &str, reason: String| Ok(Err((code.to_owned(), reason)));
        // Every timestamp of every chain, in order: (tree holding it, hash algorithm).
        let mut stamps: Vec<(u64, DigestAlgorithm)> = Vec::new();
        for &d in trees {
            let info = self.info(d)?;
            // The chain's structure: each renewal's group (the hashes of the timestamps before
            // it, the same for every document of the tree) leads to its renewal tree's root.
            // The tree's own nodes are checked against its documents, in `verify_tree`.
            let mut reader = Reader::new(&self.snap);
            let mut chain = vec![hozon_verifier::ers::ArchiveTimeStamp::with_token(
                info.digest,
                Vec::new(),
                info.time_stamp.clone(),
            )];
            if let Err(e) = reader.renewals(&info, &mut chain) {
                return bad("evidence-damaged", format!("tree {d}: {e}"));
            }
            stamps.push((d, info.digest));
            for &(r, _) in &info.record.renewals {
                stamps.push((r, self.info(r)?.digest));
            }
        }
        let mut chain = Vec::with_capacity(stamps.len());
        let mut previous: Option<SystemTime> = None;
        for (k, &(id, digest)) in stamps.iter().enumerate() {
            let token = match self.tokens.get(&id) {
                Some(Ok(t)) => t,
                Some(Err(e)) => return bad("timestamp-invalid", format!("tree {id}: {e}")),
                None => return bad("evidence-damaged", format!("tree {id} is missing")),
            };
            if previous.is_some_and(|p| token.gen_time < p) {
                return bad(
                    "evidence-damaged",
                    format!(
                        "tree {id}: timestamp {} is older than the one it renews",
                        token.gen_time_text
                    ),
                );
            }
            previous = Some(token.gen_time);
            let at = match stamps.get(k + 1) {
                Some(&(next, _)) => match self.tokens.get(&next) {
                    Some(Ok(t)) => t.gen_time,
                    _ => self.opts.now,
                },
                None => self.opts.now,
            };
            let path = match self.tsa_path(id, token, at)? {
                Ok(p) => p,
                Err(e) => {
                    return bad(
                        "tsa-certificate",
                        format!("tree {id}: TSA certificate at {}: {e}", fmt_time(at)),
                    )
                }
            };
            chain.push(timestamp_protection(k, token, digest, &path));
        }
        Ok(Ok(chain))
    }

    fn object(&self, id: &str) -> Result<Option<Arc<Vec<u8>>>, ArchiveError> {
        if let Some(o) = self.objects.lock().map_err(poisoned)?.get(id) {
            return Ok(Some(o.clone()));
        }
        let Some(key) = parse_id(id) else {
            return Ok(None);
        };
        let Some(bytes) = self.snap.read::<Objects>(&key)? else {
            return Ok(None);
        };
        let bytes = Arc::new(bytes);
        let mut cache = self.objects.lock().map_err(poisoned)?;
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(id.to_owned(), bytes.clone());
        Ok(Some(bytes))
    }

    /// The document's own signature, against the validation data captured at ingest.
    fn signature(
        &self,
        bytes: &[u8],
        input: SignatureInput,
    ) -> Result<Finding<Option<Vec<Protection>>>, ArchiveError> {
        let Some(ArrivalRecord { record, side_token }) = input else {
            return Ok(Err((
                "record-missing".into(),
                "the document's validation record is missing".into(),
            )));
        };
        if record.status != DocStatus::Verified {
            // Opaque objects and documents kept unverified have no signature to re-check.
            return Ok(Ok(None));
        }
        let load = |ids: &[String], what: &str| -> Result<Finding<Vec<Vec<u8>>>, ArchiveError> {
            let mut out = Vec::with_capacity(ids.len());
            for o in ids {
                match self.object(o)? {
                    Some(b) => out.push(b.as_ref().clone()),
                    None => return Ok(Err(validation_data_missing(what, o))),
                }
            }
            Ok(Ok(out))
        };
        let certs = match load(&record.certificates, "certificate")? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        // Captured CRLs that the archive is configured with anyway are not read and copied
        // again for each document (a national CA's CRL can be megabytes); only others are.
        let configured = &self.opts.trust.crls;
        let others: Vec<String> = record
            .crls
            .iter()
            .filter(|id| parse_id(id).is_none_or(|k| !configured.ids().contains(&k)))
            .cloned()
            .collect();
        let others = match load(&others, "CRL")? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        // Each document has its own (read with its group, not cached: it would only crowd
        // out the certificates that documents share).
        let side = match (&record.side_token, side_token) {
            (Some(_), Some(b)) => Some(b),
            (Some(t), None) => return Ok(Err(validation_data_missing("signature timestamp", t))),
            (None, _) => None,
        };
        // The captured validation data, then the archive's own (decoded once for the run;
        // each object once: path validation checks every CRL it is given).
        let all_crls: std::borrow::Cow<CrlSet> = if others.is_empty() {
            std::borrow::Cow::Borrowed(configured.set())
        } else {
            std::borrow::Cow::Owned(configured.set().after(&others))
        };
        let mut extra = certs;
        for c in &self.opts.trust.extra_certs {
            if !extra.contains(c) {
                extra.push(c.clone());
            }
        }
        let ctx = DocumentContext {
            anchors: &self.opts.trust.anchors,
            crls: &all_crls,
            extra_certs: &extra,
            usage: &self.opts.trust.usage,
            remote_policy: hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY,
            side_token: side.as_deref(),
            now: self.opts.now,
        };
        Ok(match verify_document(bytes, &ctx) {
            Ok(doc) => Ok(Some(document_protections(&doc, 0))),
            Err(e) => Err((e.code().to_owned(), format!("signature: {e}"))),
        })
    }

    /// Reads, hashes and (optionally) signature-checks member `index` of tree `tree`.
    fn check_document(
        &self,
        reader: &mut Reader<'_, Snapshot<'a>>,
        tree: &TreeInfo,
        chain: u32,
        index: u64,
        id: &DocId,
        read: DocRead,
    ) -> Result<DocCheck, ArchiveError> {
        let DocRead { bytes, signature } = read;
        let Some(bytes) = bytes else {
            return Ok(DocCheck::failed(
                "document-missing",
                format!("document {} is missing", hex_id(id)),
            ));
        };
        if sha256(bytes) != *id {
            return Ok(DocCheck::failed(
                "document-changed",
                format!(
                    "the stored bytes of document {} no longer hash to its id",
                    hex_id(id)
                ),
            ));
        }
        let digest = tree.digest;
        let (leaf, history) = if chain == 0 {
            let leaf = if digest == DigestAlgorithm::Sha256 {
                id.to_vec()
            } else {
                digest.digest(bytes)
            };
            (leaf, None)
        } else {
            let placements = self.snap.read::<Placements>(id)?.unwrap_or_default().0;
            let k = chain as usize;
            match placements.get(k) {
                Some(p) if p.tree == tree.id && p.leaf == index => {}
                _ => {
                    return Ok(DocCheck::failed(
                        "evidence-damaged",
                        format!(
                            "document {} is not recorded at leaf {index} of tree {}",
                            hex_id(id),
                            tree.id
                        ),
                    ))
                }
            }
            let seq = match reader.sequence(bytes, &placements[..k]) {
                Ok(s) => s,
                Err(e) => {
                    return Ok(DocCheck::failed(
                        "evidence-damaged",
                        format!("document {}: {e}", hex_id(id)),
                    ))
                }
            };
            let leaf = hash_tree_renewal_leaf(digest, &digest.digest(bytes), &seq)
                .map_err(|e| ArchiveError::Evidence(e.to_string()))?;
            let history: Arc<[u64]> = placements[..=k].iter().map(|p| p.tree).collect();
            (leaf, Some(history))
        };
        let signature = match signature {
            Some(input) => self
                .signature(bytes, input)?
                .map_err(|(code, reason)| (code, format!("document {}: {reason}", hex_id(id)))),
            None => Ok(None),
        };
        Ok(DocCheck {
            leaf: Some(leaf),
            size: bytes.len() as u64,
            history,
            signature,
            failure: None,
        })
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> ArchiveError {
    ArchiveError::Damaged("a worker thread panicked".into())
}

/// One document's verdict: its history's (shared, the common case) or its own.
enum Verdict {
    History(Arc<History>),
    Own(Outcome, bool),
}

/// What the run gathers.
#[derive(Default)]
struct Tally {
    documents: u64,
    bytes: u64,
    totals: Totals,
    by_code: BTreeMap<String, u64>,
    earliest_due: Option<String>,
    batches: Vec<BatchEntry>,
    listed: Vec<DocEntry>,
    not_listed: u64,
    lost: u64,
}

impl Tally {
    fn count(&mut self, o: &Outcome, n: u64, lost: bool) {
        match o {
            Outcome::Valid => self.totals.valid += n,
            Outcome::RenewalDue { before, .. } => {
                self.totals.renewal_due += n;
                if self.earliest_due.as_ref().is_none_or(|e| before < e) {
                    self.earliest_due = Some(before.clone());
                }
            }
            Outcome::Invalid { code, .. } => {
                self.totals.invalid += n;
                *self.by_code.entry(code.clone()).or_default() += n;
                if lost {
                    self.lost += n;
                }
            }
        }
    }
}

impl Archive {
    /// Re-verifies every sealed document; see the module documentation.
    pub fn verify_all(&self, opts: &Options<'_>) -> Result<BulkReport, ArchiveError> {
        let started = Instant::now();
        let store = self.store();
        let snap = store.snapshot();
        let mut trees = BTreeMap::new();
        for row in snap.iter::<Trees>() {
            let (id, Json(rec)) = row?;
            trees.insert(id, rec);
        }
        let mut pending = 0u64;
        for row in snap.iter::<Pending>() {
            row?;
            pending += 1;
        }
        // Every timestamp, once, against its stored root.
        let tokens: HashMap<u64, Result<VerifiedToken, String>> = trees
            .par_iter()
            .map(|(&id, rec)| {
                let checked = (|| {
                    let der = rec.token_der().map_err(|e| e.to_string())?;
                    let digest = rec.digest_algorithm().map_err(|e| e.to_string())?;
                    let root = hex::decode(&rec.root).map_err(|e| format!("root: {e}"))?;
                    verify_token(&der, Some((digest, &root)), None, &opts.trust.extra_certs)
                        .map_err(|e| e.to_string())
                })();
                (id, checked)
            })
            .collect();
        // The tokens are not needed again in this form (a tree's decoded token is read back
        // when its evidence is assembled): memory grows with the number of trees, not with
        // their tokens.
        for rec in trees.values_mut() {
            rec.token = String::new();
        }
        let live: Vec<(u64, u32, u64)> = trees
            .iter()
            .filter_map(|(&id, r)| match r.kind {
                TreeKind::Documents { chain } if r.superseded_by.is_none() => {
                    Some((id, chain, r.leaves))
                }
                _ => None,
            })
            .collect();
        let total: u64 = live.iter().map(|l| l.2).sum();
        let run = Run {
            snap,
            trees,
            infos: Mutex::new(HashMap::new()),
            tokens,
            paths: Mutex::new(HashMap::new()),
            histories: Mutex::new(HashMap::new()),
            objects: Mutex::new(HashMap::new()),
            opts,
        };
        let mut tally = Tally::default();
        let done = AtomicU64::new(0);
        let mut complete = true;
        for &(id, chain, _) in &live {
            if opts.cancel.load(Ordering::SeqCst) {
                complete = false;
                break;
            }
            if !verify_tree(&run, id, chain, &mut tally, &done, total)? {
                complete = false;
                break;
            }
        }
        let mut plan = MigrationPlan {
            to: opts.renew_to.name().to_owned(),
            timestamp_renewal: Vec::new(),
            hash_tree_renewal: Vec::new(),
            lost_documents: tally.lost,
            damaged_trees: tally
                .batches
                .iter()
                .filter(|b| !b.damage.is_empty())
                .map(|b| b.tree)
                .collect(),
        };
        for b in &tally.batches {
            if let Outcome::RenewalDue {
                action,
                before,
                reason,
            } = &b.outcome
            {
                let entry = PlanEntry {
                    tree: b.tree,
                    last_timestamp: b.last_timestamp,
                    documents: b.documents,
                    before: before.clone(),
                    reason: reason.clone(),
                };
                match action {
                    RenewalKind::Timestamp => plan.timestamp_renewal.push(entry),
                    RenewalKind::HashTree => plan.hash_tree_renewal.push(entry),
                }
            }
        }
        Ok(BulkReport {
            format: REPORT_FORMAT.to_owned(),
            archive: hex::encode(store.instance_id()?),
            policy: opts.policy.name.clone(),
            at: fmt_time(opts.now),
            signatures: opts.signatures,
            complete,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            documents: tally.documents,
            bytes: tally.bytes,
            pending,
            trees: live.len() as u64,
            totals: tally.totals,
            invalid_by_code: tally.by_code,
            earliest_due: tally.earliest_due,
            batches: tally.batches,
            invalid_documents: tally.listed,
            invalid_documents_not_listed: tally.not_listed,
            plan,
        })
    }
}

/// Verifies live tree `id` and adds it to `tally`; false if cancelled midway (the tree is
/// then left out).
fn verify_tree(
    run: &Run<'_>,
    id: u64,
    chain: u32,
    tally: &mut Tally,
    done: &AtomicU64,
    total: u64,
) -> Result<bool, ArchiveError> {
    let opts = run.opts;
    let info = run.info(id)?;
    let rec = &run.trees[&id];
    let digest = info.digest;
    let len = digest.output_len();
    let n = rec.leaves;
    let pages = n.div_ceil(PAGE_WIDTH as u64) as u32;
    let mut leaves: Vec<u8> = Vec::with_capacity(n as usize * len);
    // Per document: index into `outcomes` (interned), and the failures by leaf.
    let mut outcomes: Vec<(Outcome, bool)> = Vec::new();
    let mut interned: HashMap<(Outcome, bool), u32> = HashMap::new();
    // Histories are interned by address: they live in the run's cache for the whole run.
    let mut by_history: HashMap<usize, u32> = HashMap::new();
    let mut own_history: Option<Arc<History>> = None;
    let mut signature_failures = 0u64;
    let mut damage: Vec<String> = Vec::new();
    let mut per_doc: Vec<u32> = Vec::with_capacity(n as usize);
    let mut failures: BTreeMap<u64, (DocId, String, String)> = BTreeMap::new();
    let mut ids_all: Vec<DocId> = Vec::new();
    let own: Arc<[u64]> = Arc::from(vec![id]);
    let mut batch_history: Option<Arc<History>> = None;
    // Reads a chunk's documents in groups (one scan each where they lie in arrival order, as
    // a tree lists them: `stored::read_in_order`) and checks them in parallel.
    let group_len = if opts.signatures {
        SIGNED_GROUP
    } else {
        READ_GROUP
    };
    let compute = |first: u64, ids: &[DocId]| -> Vec<Result<DocCheck, ArchiveError>> {
        ids.par_chunks(group_len)
            .enumerate()
            .map_init(
                || Reader::new(&run.snap),
                |reader, (g, group)| {
                    let mut inputs = if run.opts.signatures {
                        Some(crate::stored::records_in_order(&run.snap, group).into_iter())
                    } else {
                        None
                    };
                    let mut checks = Vec::with_capacity(group.len());
                    crate::stored::read_in_order(&run.snap, group, |j, bytes| {
                        let index = first + (g * group_len + j) as u64;
                        // One input per member, taken whatever happens to this one.
                        let signature = inputs.as_mut().and_then(Iterator::next).transpose();
                        checks.push(signature.and_then(|signature| {
                            let read = DocRead {
                                bytes: bytes?,
                                signature,
                            };
                            run.check_document(reader, &info, chain, index, &group[j], read)
                        }));
                    });
                    checks
                },
            )
            .flatten()
            .collect()
    };
    // Takes in a checked chunk: each document's verdict, its leaf for the rebuilt tree.
    let mut absorb = |chunk: Checked| -> Result<(), ArchiveError> {
        let Checked {
            first,
            ids,
            stored,
            checks,
        } = chunk;
        for (i, (doc, check)) in ids.iter().zip(checks).enumerate() {
            let check = check?;
            let index = first + i as u64;
            let stored_leaf = stored.get(i * len..(i + 1) * len).unwrap_or(&[]);
            tally.documents += 1;
            tally.bytes += check.size;
            // The document's verdict: its history's, or its own (with whether the archive's
            // own evidence of it is lost).
            let verdict = match (&check.failure, &check.leaf) {
                (Some((code, reason)), _) => {
                    failures.insert(index, (*doc, code.clone(), reason.clone()));
                    Verdict::Own(Outcome::invalid(code, reason.clone()), true)
                }
                (None, Some(leaf)) if leaf.as_slice() != stored_leaf => {
                    let reason = format!(
                        "leaf {index} of tree {id} is not the hash of document {}: the stored tree node was changed",
                        hex_id(doc)
                    );
                    damage.push(format!(
                        "level 0 page {} (leaf {index})",
                        index / PAGE_WIDTH as u64
                    ));
                    failures.insert(index, (*doc, "tree-node-changed".into(), reason.clone()));
                    // The document is intact: the node can be recomputed from it.
                    Verdict::Own(Outcome::invalid("tree-node-changed", reason), false)
                }
                _ => {
                    let history = match (&check.history, &own_history) {
                        (Some(h), _) => run.history(h)?,
                        (None, Some(h)) => h.clone(),
                        (None, None) => {
                            let h = run.history(&own)?;
                            own_history = Some(h.clone());
                            h
                        }
                    };
                    if batch_history.is_none() {
                        batch_history = Some(history.clone());
                    }
                    let combined = match (&check.signature, &history.chain) {
                        (_, Err(_)) => None,
                        (Err((code, reason)), Ok(_)) => {
                            Some(Outcome::invalid(code, reason.clone()))
                        }
                        (Ok(Some(sig)), Ok(steps)) => {
                            let mut all = sig.clone();
                            all.extend(steps.iter().cloned());
                            for (i, p) in all.iter_mut().enumerate() {
                                p.step = i;
                            }
                            Some(judge(opts.policy, &all, history.digest, opts.now))
                        }
                        (Ok(None), Ok(_)) => None,
                    };
                    match combined {
                        // The evidence holds but the document's own signature does not
                        // (under this policy): not something a renewal changes.
                        Some(Outcome::Invalid { code, reason })
                            if !matches!(history.outcome, Outcome::Invalid { .. }) =>
                        {
                            failures.insert(index, (*doc, code.clone(), reason.clone()));
                            signature_failures += 1;
                            Verdict::Own(Outcome::Invalid { code, reason }, false)
                        }
                        Some(o) => Verdict::Own(o, false),
                        None => Verdict::History(history),
                    }
                }
            };
            // Rebuild from the recomputed leaf; where the document itself is gone, from the
            // stored one, so that damage above it is still told apart.
            match (&check.failure, &check.leaf) {
                (None, Some(leaf)) => leaves.extend_from_slice(leaf),
                _ if stored_leaf.len() == len => leaves.extend_from_slice(stored_leaf),
                _ => leaves.extend(std::iter::repeat_n(0u8, len)),
            }
            let k =
                match verdict {
                    Verdict::History(h) => *by_history
                        .entry(Arc::as_ptr(&h) as usize)
                        .or_insert_with(|| {
                            let lost = matches!(h.outcome, Outcome::Invalid { .. });
                            outcomes.push((h.outcome.clone(), lost));
                            (outcomes.len() - 1) as u32
                        }),
                    Verdict::Own(outcome, lost) => {
                        *interned.entry((outcome.clone(), lost)).or_insert_with(|| {
                            outcomes.push((outcome, lost));
                            (outcomes.len() - 1) as u32
                        })
                    }
                };
            per_doc.push(k);
            ids_all.push(*doc);
        }
        let d = done.fetch_add(ids.len() as u64, Ordering::SeqCst) + ids.len() as u64;
        (opts.progress)(d, total);
        Ok(())
    };
    // The verdicts of one chunk are taken in while the next chunk is read and checked: with
    // two threads, the one doing it (sequential work, a tenth of a document's time and more)
    // would otherwise leave the other idle.
    let mut previous: Option<Checked> = None;
    let mut page = 0u32;
    while page < pages {
        if opts.cancel.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let upto = (page + CHUNK_PAGES).min(pages);
        let mut ids: Vec<DocId> = Vec::new();
        let mut stored: Vec<u8> = Vec::new();
        for p in page..upto {
            let members = run
                .snap
                .read::<Pages>(&PageKey {
                    tree: id,
                    level: PageKey::MEMBERS,
                    page: p,
                })?
                .ok_or_else(|| {
                    ArchiveError::Damaged(format!("tree {id} is missing its member page {p}"))
                })?;
            ids.extend(doc_ids(&members));
            let nodes = run
                .snap
                .read::<Pages>(&PageKey {
                    tree: id,
                    level: 0,
                    page: p,
                })?
                .ok_or_else(|| {
                    ArchiveError::Damaged(format!("tree {id} is missing its leaf page {p}"))
                })?;
            stored.extend_from_slice(&nodes);
        }
        let first = u64::from(page) * PAGE_WIDTH as u64;
        let (checks, absorbed) = rayon::join(
            || compute(first, &ids),
            || previous.take().map_or(Ok(()), &mut absorb),
        );
        absorbed?;
        previous = Some(Checked {
            first,
            ids,
            stored,
            checks,
        });
        page = upto;
    }
    if let Some(chunk) = previous.take() {
        absorb(chunk)?;
    }
    // The whole tree, page by page, against what is stored above the leaves.
    if !leaves.is_empty() {
        let rebuilt = build(digest, &leaves).map_err(|e| ArchiveError::Evidence(e.to_string()))?;
        for (level, p, nodes) in rebuilt.pages.iter().filter(|(l, _, _)| *l > 0) {
            let stored = run.snap.read::<Pages>(&PageKey {
                tree: id,
                level: *level,
                page: *p,
            })?;
            if stored.as_deref() != Some(nodes.as_slice()) {
                damage.push(format!("level {level} page {p}"));
            }
        }
        if rebuilt.root != info.root {
            damage.push("root".to_owned());
        }
    }
    if !damage.is_empty() {
        // Name the documents whose stored path no longer reaches the timestamped root.
        let mut reader = Reader::new(&run.snap);
        for (index, doc) in ids_all.iter().enumerate() {
            let index = index as u64;
            if failures.contains_key(&index) {
                continue;
            }
            let leaf = &leaves[index as usize * len..(index as usize + 1) * len];
            let ok = match reader.siblings(&info, index) {
                Ok(sib) => {
                    let reduced = crate::pages::reduced_tree(vec![leaf.to_vec()], sib);
                    matches!(
                        root_from_reduced(digest, leaf, &reduced, |r| r == info.root),
                        Ok(Some(_))
                    )
                }
                Err(_) => false,
            };
            if !ok {
                let reason = format!(
                    "the stored path of leaf {index} of tree {id} no longer reaches its timestamped root ({})",
                    damage.join(", ")
                );
                failures.insert(index, (*doc, "tree-node-changed".into(), reason.clone()));
                let o = Outcome::invalid("tree-node-changed", reason);
                outcomes.push((o, false));
                per_doc[index as usize] = (outcomes.len() - 1) as u32;
            }
        }
    }
    // Count.
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for k in &per_doc {
        *counts.entry(*k).or_default() += 1;
    }
    for (k, c) in &counts {
        let (o, lost) = &outcomes[*k as usize];
        tally.count(o, *c, *lost);
    }
    for (leaf, (doc, code, reason)) in &failures {
        if tally.listed.len() < opts.max_listed {
            tally.listed.push(DocEntry {
                id: hex_id(doc),
                tree: id,
                leaf: *leaf,
                code: code.clone(),
                reason: reason.clone(),
            });
        } else {
            tally.not_listed += 1;
        }
    }
    // The batch's own verdict: its protection chain (the history of its first sound document;
    // the documents' own signatures are not part of it).
    let last_timestamp = rec.renewals.last().map_or(id, |r| r.0);
    let outcome = match batch_history {
        Some(h) => h.outcome.clone(),
        None => Outcome::invalid("no-sound-document", "no document of the batch is intact"),
    };
    if outcome != Outcome::Valid || !failures.is_empty() || !damage.is_empty() {
        tally.batches.push(BatchEntry {
            tree: id,
            digest: digest.name().to_owned(),
            documents: n,
            last_timestamp,
            outcome,
            invalid_documents: failures.len() as u64 - signature_failures,
            invalid_signatures: signature_failures,
            damage,
        });
    }
    Ok(true)
}

impl Archive {
    /// The renewal plan of a report's [`MigrationPlan`], for [`Archive::renew`]. A tree that
    /// was renewed or replaced since the report was made is skipped, with the reason.
    pub fn plan_of(
        &self,
        plan: &MigrationPlan,
    ) -> Result<(crate::renew::Plan, Vec<String>), ArchiveError> {
        let mut out = crate::renew::Plan::default();
        let mut skipped = Vec::new();
        let entries = plan
            .hash_tree_renewal
            .iter()
            .map(|e| (RenewalKind::HashTree, e))
            .chain(
                plan.timestamp_renewal
                    .iter()
                    .map(|e| (RenewalKind::Timestamp, e)),
            );
        for (kind, e) in entries {
            let Some(Json(rec)) = self.store().get::<Trees>(&e.tree)? else {
                skipped.push(format!("batch {}: no such tree in this archive", e.tree));
                continue;
            };
            if let Some(by) = rec.superseded_by {
                skipped.push(format!(
                    "batch {}: already replaced by tree {by} (hash-tree renewal)",
                    e.tree
                ));
                continue;
            }
            let last = rec.renewals.last().map_or(e.tree, |r| r.0);
            if last != e.last_timestamp {
                skipped.push(format!(
                    "batch {}: renewed since the report (its newest timestamp is now tree {last})",
                    e.tree
                ));
                continue;
            }
            let due = chrono::NaiveDate::parse_from_str(&e.before, "%Y-%m-%d").map_err(|_| {
                ArchiveError::Config(format!("plan: {:?} is not a YYYY-MM-DD date", e.before))
            })?;
            out.due.push(crate::renew::Due {
                tree: e.tree,
                documents: rec.leaves,
                kind,
                due,
                reason: e.reason.clone(),
            });
        }
        Ok((out, skipped))
    }
}
