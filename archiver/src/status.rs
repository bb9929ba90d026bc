//! `hozon archive status`: counts, batches, the oldest unsealed document, jobs, and the next
//! renewal due and why.

use std::time::SystemTime;

use hozon_verifier::policy::Policy;
use serde_json::{json, Value};

use crate::model::{JobState, Jobs, Json, Pending, TreeKind, Trees};
use crate::renew::{Due, Plan};
use crate::{Archive, ArchiveError};

/// The archive's state.
#[derive(Clone, Debug)]
pub struct Status {
    /// Sealed documents (in document trees still in use).
    pub sealed: u64,
    /// Documents waiting for a batch.
    pub pending: u64,
    /// Ingest time of the oldest pending document, Unix seconds.
    pub oldest_pending: Option<u64>,
    /// Document trees in use.
    pub document_trees: u64,
    /// Timestamp-renewal trees.
    pub renewal_trees: u64,
    /// Document trees replaced by a hash-tree renewal.
    pub superseded_trees: u64,
    /// Sealed documents per hash algorithm of their current tree.
    pub by_digest: Vec<(String, u64)>,
    /// Jobs not done: (id, what, state, detail).
    pub open_jobs: Vec<(u64, String, String, String)>,
    /// The renewal plan now.
    pub plan: Plan,
}

impl Archive {
    /// The status at `now` under `policy`.
    pub fn status(&self, policy: &Policy, now: SystemTime) -> Result<Status, ArchiveError> {
        let snap = self.store.snapshot();
        let mut pending = 0;
        let mut oldest_pending: Option<u64> = None;
        for row in snap.iter::<Pending>() {
            let (_, e) = row?;
            pending += 1;
            oldest_pending = Some(oldest_pending.map_or(e.at, |o| o.min(e.at)));
        }
        let mut s = Status {
            sealed: 0,
            pending,
            oldest_pending,
            document_trees: 0,
            renewal_trees: 0,
            superseded_trees: 0,
            by_digest: Vec::new(),
            open_jobs: Vec::new(),
            plan: Plan::default(),
        };
        for row in snap.iter::<Trees>() {
            let (_, Json(t)) = row?;
            match t.kind {
                TreeKind::Renewal => s.renewal_trees += 1,
                TreeKind::Documents { .. } if t.superseded_by.is_some() => s.superseded_trees += 1,
                TreeKind::Documents { .. } => {
                    s.document_trees += 1;
                    s.sealed += t.leaves;
                    match s.by_digest.iter_mut().find(|(d, _)| *d == t.digest) {
                        Some((_, n)) => *n += t.leaves,
                        None => s.by_digest.push((t.digest.clone(), t.leaves)),
                    }
                }
            }
        }
        for row in snap.iter::<Jobs>() {
            let (id, Json(j)) = row?;
            if j.state != JobState::Done {
                let what = serde_json::to_value(&j.kind)
                    .ok()
                    .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_default();
                let state = match j.state {
                    JobState::Running => "running (resumes at the next renew)",
                    JobState::Failed => "failed",
                    JobState::Done => "done",
                };
                s.open_jobs
                    .push((id, what, state.to_owned(), j.detail.clone()));
            }
        }
        drop(snap);
        s.plan = self.plan(policy, now)?;
        Ok(s)
    }
}

fn due_json(d: &Due) -> Value {
    json!({
        "tree": d.tree,
        "documents": d.documents,
        "kind": d.kind.as_str(),
        "due": d.due.to_string(),
        "reason": d.reason,
    })
}

impl Status {
    /// For machines.
    pub fn to_json(&self) -> Value {
        json!({
            "sealed": self.sealed,
            "pending": self.pending,
            "oldest_pending": self.oldest_pending
                .map(|t| hozon_verifier::report::fmt_time(crate::model::from_unix(t))),
            "document_trees": self.document_trees,
            "renewal_trees": self.renewal_trees,
            "superseded_trees": self.superseded_trees,
            "by_digest": self.by_digest.iter().map(|(d, n)| json!({"digest": d, "documents": n})).collect::<Vec<_>>(),
            "open_jobs": self.open_jobs.iter().map(|(id, w, st, d)| json!({"id": id, "type": w, "state": st, "detail": d})).collect::<Vec<_>>(),
            "renewal_due": self.plan.due.iter().map(due_json).collect::<Vec<_>>(),
            "next_renewal": self.plan.next.as_ref().map(due_json),
        })
    }

    /// For people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "documents sealed: {} in {} batch(es)",
            self.sealed, self.document_trees
        ));
        if !self.by_digest.is_empty() {
            let parts: Vec<String> = self
                .by_digest
                .iter()
                .map(|(d, n)| format!("{n} under {d}"))
                .collect();
            out.push_str(&format!(" ({})", parts.join(", ")));
        }
        out.push('\n');
        out.push_str(&format!(
            "timestamp renewals: {}; trees replaced by hash-tree renewal: {}\n",
            self.renewal_trees, self.superseded_trees
        ));
        match self.oldest_pending {
            Some(t) => out.push_str(&format!(
                "waiting for a batch: {} (oldest since {})\n",
                self.pending,
                hozon_verifier::report::fmt_time(crate::model::from_unix(t))
            )),
            None => out.push_str("waiting for a batch: none\n"),
        }
        for (id, what, state, detail) in &self.open_jobs {
            out.push_str(&format!("job {id} ({what}): {state} {detail}\n"));
        }
        if self.plan.due.is_empty() {
            out.push_str("renewal due now: nothing\n");
        } else {
            let docs: u64 = self.plan.due.iter().map(|d| d.documents).sum();
            out.push_str(&format!(
                "renewal due now: {} batch(es), {docs} document(s)\n",
                self.plan.due.len()
            ));
            for d in self.plan.due.iter().take(10) {
                out.push_str(&format!(
                    "  batch {}: {} since {} — {}\n",
                    d.tree,
                    d.kind.as_str(),
                    d.due,
                    d.reason
                ));
            }
        }
        match &self.plan.next {
            Some(d) => out.push_str(&format!(
                "next renewal: {} of batch {} due {} — {}\n",
                d.kind.as_str(),
                d.tree,
                d.due,
                d.reason
            )),
            None if self.plan.due.is_empty() => out.push_str("next renewal: none scheduled\n"),
            None => {}
        }
        out
    }
}
