//! What an investigator gets: one verdict and the ordered steps behind it, for a document
//! (signed FHIR or any bytes) and, optionally, its RFC 4998 evidence record.
//!
//! [`verify`] composes the pieces of this crate:
//! 1. if the data is a signed FHIR Bundle, [`crate::document::verify_document`] (signature,
//!    signature timestamp, signer path at the signing time, usage restriction); otherwise the
//!    report says that only the evidence is checked;
//! 2. with an evidence record, [`crate::evidence::check_evidence`] (every archive timestamp
//!    covers what it must), then each archive timestamp's TSA certificate path validated at
//!    the time of the step that covered it (the next archive timestamp's `genTime`, or the
//!    verification time for the last one);
//! 3. the verdict: valid, with the earliest time from which the data is proven unchanged, or
//!    invalid, with the first failing step and its code.
//!
//! 4. the algorithm policy ([`crate::policy`]): every algorithm of each step (signature and
//!    hash of the signature, of each certificate on its path, of each timestamp and hash tree)
//!    must have been acceptable when the next step covered it, or now for the last step;
//!    when an algorithm of the last step, or its TSA certificate, ends within the policy's
//!    renewal window, the verdict is "valid, renewal due" with the date and the reason.

use std::time::SystemTime;

use serde_json::{json, Value};

use hozon_tsa::signer::DigestAlgorithm;

use crate::document::{
    verify_document, DocumentContext, DocumentError, UsagePolicy, VerifiedDocument,
};
use crate::evidence::{check_evidence, StepKind};
use crate::path::{validate_path, CrlSet, PathInput, Purpose, TrustAnchors, ValidatedPath};
use crate::policy::{Judgement, Policy, Use};
use crate::token::VerifiedToken;

/// Formats a time as RFC 3339 UTC.
pub fn fmt_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "?".into())
}

/// One step of the protection chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What was checked ("Signature", "Archive timestamp 2 (timestamp renewal)" …).
    pub title: String,
    /// When the step happened, if it has a time.
    pub time: Option<String>,
    /// Findings, as (label, value) pairs in reading order.
    pub details: Vec<(String, String)>,
    /// Whether it passed.
    pub ok: bool,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every step passed.
    Valid {
        /// The earliest time from which the data is proven to exist unchanged.
        unchanged_since: Option<String>,
        /// When renewal is due, and why, if within the policy's window.
        renewal_due: Option<(String, String)>,
    },
    /// A step failed.
    Invalid {
        /// The failing step's title.
        step: String,
        /// Stable code.
        code: String,
        /// What went wrong.
        reason: String,
    },
}

/// A verification report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The steps, oldest first.
    pub steps: Vec<Step>,
    /// Remarks that do not change the verdict.
    pub notes: Vec<String>,
}

/// Everything [`verify`] needs besides the data.
#[derive(Clone, Copy, Debug)]
pub struct VerifyInput<'a> {
    /// The evidence record (DER), if any.
    pub evidence: Option<&'a [u8]>,
    /// Trust anchors.
    pub anchors: &'a TrustAnchors,
    /// Intermediate certificates for path building.
    pub extra_certs: &'a [Vec<u8>],
    /// CRLs.
    pub crls: &'a [Vec<u8>],
    /// A JWS signature's timestamp token kept beside the document.
    pub side_token: Option<&'a [u8]>,
    /// Usage restriction.
    pub usage: &'a UsagePolicy,
    /// Remote-signature policy OID.
    pub remote_policy: &'a rasn::types::Oid,
    /// Verification time.
    pub now: SystemTime,
    /// Algorithm policy.
    pub policy: &'a Policy,
}

fn path_uses(p: &ValidatedPath) -> Vec<Use> {
    p.certificates
        .iter()
        .filter_map(|c| c.signed_with)
        .flat_map(|(a, bits)| Use::signature(a, bits))
        .collect()
}

/// The protection steps of a verified signed document: its signature (at the time it was
/// validated) and, if it has one, its signature timestamp; `first_step` is the report index
/// of the signature step (the timestamp's is the next).
pub fn document_protections(doc: &VerifiedDocument, first_step: usize) -> Vec<Protection> {
    let mut uses = Use::signature(doc.algorithm.0, doc.algorithm.1).to_vec();
    uses.extend(path_uses(&doc.signer));
    let mut out = vec![Protection {
        step: first_step,
        time: doc.validated_at,
        uses,
        tsa_not_after: None,
    }];
    if let Some(ts) = &doc.timestamp {
        out.push(timestamp_protection(
            first_step + 1,
            &ts.token,
            ts.token.digest,
            &ts.tsa_path,
        ));
    }
    out
}

/// The protection step of a verified timestamp whose imprint uses `digest`, with its TSA path.
pub fn timestamp_protection(
    step: usize,
    token: &VerifiedToken,
    digest: DigestAlgorithm,
    tsa_path: &ValidatedPath,
) -> Protection {
    let mut uses = Use::signature(token.signature_algorithm, token.key_bits).to_vec();
    uses.push(Use::digest(digest));
    uses.extend(path_uses(tsa_path));
    Protection {
        step,
        time: token.gen_time,
        uses,
        tsa_not_after: tsa_path.certificates.first().map(|c| c.not_after),
    }
}

fn path_details(prefix: &str, p: &ValidatedPath) -> Vec<(String, String)> {
    let chain: Vec<String> = p.certificates.iter().map(|c| c.subject.clone()).collect();
    let mut d = vec![(format!("{prefix} path"), chain.join(" ← "))];
    if let Some(c) = p.certificates.first() {
        d.push((
            format!("{prefix} revocation"),
            format!("{:?}", c.revocation),
        ));
    }
    d
}

/// Verifies `data` (and its evidence); see the module documentation.
pub fn verify(data: &[u8], input: &VerifyInput<'_>) -> Report {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut earliest: Option<SystemTime> = None;
    let mut chain: Vec<Protection> = Vec::new();
    let fail =
        |steps: Vec<Step>, notes: Vec<String>, step: &str, code: &str, reason: String| Report {
            verdict: Verdict::Invalid {
                step: step.to_owned(),
                code: code.to_owned(),
                reason,
            },
            steps,
            notes,
        };

    // 1. The document's own signature.
    let crls = CrlSet::new(input.crls);
    let ctx = DocumentContext {
        anchors: input.anchors,
        crls: &crls,
        extra_certs: input.extra_certs,
        usage: input.usage,
        remote_policy: input.remote_policy,
        side_token: input.side_token,
        now: input.now,
    };
    match verify_document(data, &ctx) {
        Ok(doc) => {
            let signer = doc
                .signer
                .certificates
                .first()
                .map(|c| c.subject.clone())
                .unwrap_or_default();
            let mut details = vec![
                ("signer".to_owned(), signer),
                (
                    "qualification (hcRole)".to_owned(),
                    if doc.signer.hc_roles.is_empty() {
                        "none".to_owned()
                    } else {
                        doc.signer.hc_roles.join(", ")
                    },
                ),
                (
                    "certificate kind".to_owned(),
                    doc.signer
                        .kind
                        .map_or("not an HPKI certificate", |k| k.as_str())
                        .to_owned(),
                ),
                (
                    "document".to_owned(),
                    format!(
                        "{} {}",
                        doc.doc_type.map_or("type", |t| t.as_str()),
                        doc.doc_type_code.as_deref().unwrap_or("unknown")
                    ),
                ),
                (
                    "format".to_owned(),
                    format!(
                        "{:?}, {:?} with a {}-bit key",
                        doc.format, doc.algorithm.0, doc.algorithm.1
                    ),
                ),
            ];
            if let Some(t) = doc.claimed_time {
                details.push(("claimed signing time".to_owned(), fmt_time(t)));
            }
            details.extend(path_details("signer", &doc.signer));
            chain.extend(document_protections(&doc, steps.len()));
            steps.push(Step {
                title: "Signature".into(),
                time: Some(fmt_time(doc.validated_at)),
                details,
                ok: true,
            });
            match &doc.timestamp {
                Some(ts) => {
                    earliest = Some(ts.token.gen_time);
                    let mut details = vec![
                        ("TSA".to_owned(), ts.token.tsa_subject.clone()),
                        ("serial".to_owned(), hex::encode(&ts.token.serial)),
                        (
                            "algorithm".to_owned(),
                            format!(
                                "{:?}, {}-bit key",
                                ts.token.signature_algorithm, ts.token.key_bits
                            ),
                        ),
                    ];
                    details.extend(path_details("TSA", &ts.tsa_path));
                    steps.push(Step {
                        title: "Signature timestamp".into(),
                        time: Some(fmt_time(ts.token.gen_time)),
                        details,
                        ok: true,
                    });
                }
                None => notes.push(
                    "the signature has no timestamp: the signer's certificate was checked at the \
                     verification time"
                        .into(),
                ),
            }
        }
        Err(
            DocumentError::NotJson(_) | DocumentError::NotABundle(_) | DocumentError::NoSignature,
        ) if input.evidence.is_some() => {
            notes.push("not a signed FHIR document: only the evidence record is checked".into());
        }
        Err(e) => {
            let code = e.code().to_owned();
            steps.push(Step {
                title: "Signature".into(),
                time: None,
                details: vec![("error".into(), e.to_string())],
                ok: false,
            });
            return fail(steps, notes, "Signature", &code, e.to_string());
        }
    }

    // 2. The evidence record.
    if let Some(record) = input.evidence {
        let ers_steps = match check_evidence(record, data, input.extra_certs) {
            Ok(s) => s,
            Err(e) => {
                steps.push(Step {
                    title: "Evidence record".into(),
                    time: None,
                    details: vec![("error".into(), e.to_string())],
                    ok: false,
                });
                return fail(
                    steps,
                    notes,
                    "Evidence record",
                    "evidence-invalid",
                    e.to_string(),
                );
            }
        };
        for (i, s) in ers_steps.iter().enumerate() {
            let kind = match s.kind {
                StepKind::Initial => "first timestamp".to_owned(),
                StepKind::TimestampRenewal => "timestamp renewal".to_owned(),
                StepKind::HashTreeRenewal { sorted } => format!(
                    "hash-tree renewal{}",
                    if sorted { ", sorted concatenation" } else { "" }
                ),
            };
            let title = format!("Archive timestamp {} ({kind})", i + 1);
            // The TSA's certificate must have been valid when the next step covered this one.
            let (checked_at, by) = match ers_steps.get(i + 1) {
                Some(next) => (next.token.gen_time, format!("archive timestamp {}", i + 2)),
                None => (input.now, "the verification time".to_owned()),
            };
            let mut details = vec![
                ("TSA".to_owned(), s.token.tsa_subject.clone()),
                ("hash algorithm".to_owned(), s.digest.name().to_owned()),
                ("hash tree levels".to_owned(), s.tree_depth.to_string()),
                (
                    "signature".to_owned(),
                    format!(
                        "{:?}, {}-bit key",
                        s.token.signature_algorithm, s.token.key_bits
                    ),
                ),
            ];
            if !s.leniency.is_empty() {
                details.push(("read leniently".to_owned(), format!("{:?}", s.leniency)));
                notes.push(format!(
                    "{title}: written in a form hozon accepts but does not write ({:?})",
                    s.leniency
                ));
            }
            let path = validate_path(
                &PathInput {
                    end_entity: &s.token.certificate,
                    intermediates: input.extra_certs,
                    crls: &crls,
                    time: checked_at,
                    purpose: Purpose::TimeStamping,
                    remote_policy: input.remote_policy,
                },
                input.anchors,
            );
            match path {
                Ok(p) => {
                    details.push((
                        "TSA certificate checked at".to_owned(),
                        format!("{} ({by})", fmt_time(checked_at)),
                    ));
                    details.extend(path_details("TSA", &p));
                    chain.push(timestamp_protection(steps.len(), &s.token, s.digest, &p));
                    steps.push(Step {
                        title,
                        time: Some(fmt_time(s.token.gen_time)),
                        details,
                        ok: true,
                    });
                }
                Err(e) => {
                    let reason = format!("TSA certificate at {} ({by}): {e}", fmt_time(checked_at));
                    details.push(("error".to_owned(), reason.clone()));
                    steps.push(Step {
                        title: title.clone(),
                        time: Some(fmt_time(s.token.gen_time)),
                        details,
                        ok: false,
                    });
                    return fail(steps, notes, &title, "tsa-certificate", reason);
                }
            }
            earliest = Some(earliest.map_or(s.token.gen_time, |e| e.min(s.token.gen_time)));
        }
    } else {
        notes.push("no evidence record given: long-term integrity is not shown".into());
    }
    // 3. The algorithm policy over the protection chain.
    notes.push(format!("algorithm policy: {}", input.policy.name));
    let renewal_due = match judge_chain(input.policy, &chain, input.now) {
        ChainJudgement::Holds { due } => due.into_iter().min_by_key(|d| d.date),
        ChainJudgement::Broken {
            index,
            code,
            reason,
        } => {
            let step = chain[index].step;
            let title = steps[step].title.clone();
            steps[step].ok = false;
            steps[step]
                .details
                .push(("algorithm policy".into(), reason.clone()));
            return fail(steps, notes, &title, code, reason);
        }
    };
    Report {
        verdict: Verdict::Valid {
            unchanged_since: earliest.map(fmt_time),
            renewal_due: renewal_due.map(|d| (d.date.to_string(), d.reason)),
        },
        steps,
        notes,
    }
}

/// A step's place in the protection chain, for the policy: when it happened, which
/// algorithms it used, and which TSA certificate (whose expiry makes renewal due).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// Index of the step in the report (for naming it).
    pub step: usize,
    /// When it happened (signing time, or the timestamp's genTime).
    pub time: SystemTime,
    /// The algorithms it used.
    pub uses: Vec<Use>,
    /// The notAfter of its TSA certificate, for a timestamp.
    pub tsa_not_after: Option<SystemTime>,
}

/// Something of the last step that ends within the policy's renewal window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueItem {
    /// When it ends.
    pub date: chrono::NaiveDate,
    /// What ends when, in words.
    pub reason: String,
    /// The algorithm that ends (`None`: the TSA certificate expires).
    pub ends: Option<Use>,
}

/// What the algorithm policy says of a protection chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainJudgement {
    /// Every step was covered in time; `due` lists what of the last step ends within the
    /// renewal window (empty: nothing).
    Holds {
        /// Every end within the window.
        due: Vec<DueItem>,
    },
    /// Step `index` of the chain used an algorithm that had ended (or that the policy does not
    /// know) when the next step covered it.
    Broken {
        /// Index into the chain.
        index: usize,
        /// `algorithm-expired` or `algorithm-not-in-policy`.
        code: &'static str,
        /// What ended when.
        reason: String,
    },
}

/// The calendar date (UTC) of `t`.
pub fn utc_date(t: SystemTime) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        0,
    )
    .map(|d| d.date_naive())
    .unwrap_or_default()
}

/// Judges a protection chain under `policy` at `now`: each step's algorithms must have been
/// acceptable when the next step covered it (or at `now`, for the last step). Shared by
/// [`verify`] and the archive's bulk re-verification, so both say the same of the same chain.
pub fn judge_chain(policy: &Policy, chain: &[Protection], now: SystemTime) -> ChainJudgement {
    let date = utc_date;
    let window = chrono::Duration::days(i64::from(policy.renewal_window_days));
    let mut due: Vec<DueItem> = Vec::new();
    for (k, p) in chain.iter().enumerate() {
        let (covered_at, by) = match chain.get(k + 1) {
            Some(next) => (next.time, format!("by step {}", next.step + 1)),
            None => (now, "now".to_owned()),
        };
        let mut seen = Vec::new();
        for u in p.uses.iter().filter(|u| {
            let new = !seen.contains(*u);
            seen.push(**u);
            new
        }) {
            match policy.judge(u, date(covered_at)) {
                Judgement::Acceptable { until } => {
                    if let (Some(end), None) = (until, chain.get(k + 1)) {
                        if end - window <= date(now) {
                            due.push(DueItem {
                                date: end,
                                reason: format!("{} ends on {end}", u.describe()),
                                ends: Some(*u),
                            });
                        }
                    }
                }
                Judgement::Ended(end) => {
                    return ChainJudgement::Broken {
                        index: k,
                        code: "algorithm-expired",
                        reason: format!(
                            "{} ended on {end} under {}, before this step was covered ({by}, {})",
                            u.describe(),
                            policy.name,
                            fmt_time(covered_at)
                        ),
                    };
                }
                Judgement::Unknown => {
                    return ChainJudgement::Broken {
                        index: k,
                        code: "algorithm-not-in-policy",
                        reason: format!("{} is not in the policy {}", u.describe(), policy.name),
                    };
                }
            }
        }
    }
    if let Some(na) = chain.last().and_then(|l| l.tsa_not_after) {
        let end = date(na);
        if end - window <= date(now) {
            due.push(DueItem {
                date: end,
                reason: format!("the last timestamp's TSA certificate expires on {end}"),
                ends: None,
            });
        }
    }
    ChainJudgement::Holds { due }
}

impl Report {
    /// Whether the verdict is valid.
    pub fn is_valid(&self) -> bool {
        matches!(self.verdict, Verdict::Valid { .. })
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match &self.verdict {
            Verdict::Valid {
                unchanged_since,
                renewal_due,
            } => {
                out.push_str("VALID");
                if let Some(t) = unchanged_since {
                    out.push_str(&format!(": unchanged since {t}"));
                }
                out.push('\n');
                if let Some((date, why)) = renewal_due {
                    out.push_str(&format!("RENEWAL DUE by {date}: {why}\n"));
                }
            }
            Verdict::Invalid { step, code, reason } => {
                out.push_str(&format!("INVALID at \"{step}\" [{code}]: {reason}\n"));
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!(
                "\n{}. {} {}{}\n",
                i + 1,
                if s.ok { "✓" } else { "✗" },
                s.title,
                s.time
                    .as_ref()
                    .map(|t| format!(" — {t}"))
                    .unwrap_or_default()
            ));
            for (k, v) in &s.details {
                out.push_str(&format!("     {k}: {v}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        out
    }

    /// A self-contained HTML page (no scripts, no external resources): the verdict, then the
    /// protection chain as a timeline, for readers who are not engineers.
    pub fn to_html(&self, title: &str) -> String {
        fn esc(s: &str) -> String {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        }
        let (banner, class) = match &self.verdict {
            Verdict::Valid {
                unchanged_since,
                renewal_due,
            } => {
                let mut b = "Valid".to_owned();
                if let Some(t) = unchanged_since {
                    b.push_str(&format!(" — unchanged since {}", esc(t)));
                }
                if let Some((d, why)) = renewal_due {
                    b.push_str(&format!("<br>Renewal due by {}: {}", esc(d), esc(why)));
                }
                (b, "ok")
            }
            Verdict::Invalid { step, code, reason } => (
                format!(
                    "Invalid at “{}” — {} ({})",
                    esc(step),
                    esc(reason),
                    esc(code)
                ),
                "bad",
            ),
        };
        let mut items = String::new();
        for s in &self.steps {
            let mut rows = String::new();
            for (k, v) in &s.details {
                rows.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)));
            }
            items.push_str(&format!(
                "<li class=\"{}\"><div class=\"when\">{}</div><h2>{} {}</h2><table>{}</table></li>\n",
                if s.ok { "ok" } else { "bad" },
                esc(s.time.as_deref().unwrap_or("")),
                if s.ok { "✓" } else { "✗" },
                esc(&s.title),
                rows
            ));
        }
        let notes: String = self
            .notes
            .iter()
            .map(|n| format!("<li>{}</li>", esc(n)))
            .collect();
        format!(
            "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
             <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}\
             .banner{{padding:1em;border-radius:6px;font-size:1.3em}}.banner.ok{{background:#e3f6e3}}\
             .banner.bad{{background:#fde2e2}}ol.timeline{{list-style:none;border-left:4px solid #999;\
             padding-left:1.5em}}ol.timeline li{{margin:1.5em 0;position:relative}}\
             ol.timeline li::before{{content:'';position:absolute;left:-2.1em;top:.3em;width:1em;\
             height:1em;border-radius:50%;background:#4a4}}ol.timeline li.bad::before{{background:#c33}}\
             .when{{color:#666}}h2{{font-size:1.1em;margin:.2em 0}}th{{text-align:left;\
             padding-right:1em;color:#555;font-weight:normal;vertical-align:top}}</style></head>\n\
             <body><h1>{t}</h1><div class=\"banner {class}\">{banner}</div>\n\
             <ol class=\"timeline\">\n{items}</ol><h2>Notes</h2><ul>{notes}</ul></body></html>\n",
            t = esc(title),
        )
    }

    /// The report for machines.
    pub fn to_json(&self) -> Value {
        let verdict = match &self.verdict {
            Verdict::Valid {
                unchanged_since,
                renewal_due,
            } => json!({
                "result": if renewal_due.is_some() { "valid-renewal-due" } else { "valid" },
                "unchanged_since": unchanged_since,
                "renewal_due": renewal_due.as_ref().map(|(d, why)| json!({"date": d, "reason": why})),
            }),
            Verdict::Invalid { step, code, reason } => {
                json!({"result": "invalid", "step": step, "code": code, "reason": reason})
            }
        };
        json!({
            "verdict": verdict,
            "steps": self.steps.iter().map(|s| json!({
                "title": s.title,
                "time": s.time,
                "ok": s.ok,
                "details": s.details.iter().map(|(k, v)| json!({"label": k, "value": v})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}
