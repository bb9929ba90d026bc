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

use crate::document::{verify_document, DocumentContext, DocumentError, UsagePolicy};
use crate::evidence::{check_evidence, StepKind};
use crate::path::{validate_path, PathInput, Purpose, TrustAnchors, ValidatedPath};
use crate::policy::{Judgement, Policy, Use};

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

/// A step's place in the protection chain, for the policy: when it happened, which
/// algorithms it used, and which TSA certificate (whose expiry makes renewal due).
struct Protection {
    step: usize,
    time: SystemTime,
    uses: Vec<Use>,
    tsa_not_after: Option<SystemTime>,
}

fn path_uses(p: &ValidatedPath) -> Vec<Use> {
    p.certificates
        .iter()
        .filter_map(|c| c.signed_with)
        .flat_map(|(a, bits)| Use::signature(a, bits))
        .collect()
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
    let ctx = DocumentContext {
        anchors: input.anchors,
        crls: input.crls,
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
            let mut uses = Use::signature(doc.algorithm.0, doc.algorithm.1).to_vec();
            uses.extend(path_uses(&doc.signer));
            chain.push(Protection {
                step: steps.len(),
                time: doc.validated_at,
                uses,
                tsa_not_after: None,
            });
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
                    let mut uses =
                        Use::signature(ts.token.signature_algorithm, ts.token.key_bits).to_vec();
                    uses.push(Use::digest(ts.token.digest));
                    uses.extend(path_uses(&ts.tsa_path));
                    chain.push(Protection {
                        step: steps.len(),
                        time: ts.token.gen_time,
                        uses,
                        tsa_not_after: ts.tsa_path.certificates.first().map(|c| c.not_after),
                    });
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
                    crls: input.crls,
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
                    let mut uses =
                        Use::signature(s.token.signature_algorithm, s.token.key_bits).to_vec();
                    uses.push(Use::digest(s.digest));
                    uses.extend(path_uses(&p));
                    chain.push(Protection {
                        step: steps.len(),
                        time: s.token.gen_time,
                        uses,
                        tsa_not_after: p.certificates.first().map(|c| c.not_after),
                    });
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
    let date = |t: SystemTime| {
        chrono::DateTime::from_timestamp(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            0,
        )
        .map(|d| d.date_naive())
        .unwrap_or_default()
    };
    let window = chrono::Duration::days(i64::from(input.policy.renewal_window_days));
    let mut renewal_due: Option<(chrono::NaiveDate, String)> = None;
    for (k, p) in chain.iter().enumerate() {
        let (covered_at, by) = match chain.get(k + 1) {
            Some(next) => (next.time, format!("by step {}", next.step + 1)),
            None => (input.now, "now".to_owned()),
        };
        let mut seen = Vec::new();
        for u in p.uses.iter().filter(|u| {
            let new = !seen.contains(*u);
            seen.push(**u);
            new
        }) {
            match input.policy.judge(u, date(covered_at)) {
                Judgement::Acceptable { until } => {
                    if let (Some(end), None) = (until, chain.get(k + 1)) {
                        if end - window <= date(input.now)
                            && renewal_due.as_ref().is_none_or(|(d, _)| end < *d)
                        {
                            renewal_due = Some((end, format!("{} ends on {end}", u.describe())));
                        }
                    }
                }
                Judgement::Ended(end) => {
                    let title = steps[p.step].title.clone();
                    let reason = format!(
                        "{} ended on {end} under {}, before this step was covered ({by}, {})",
                        u.describe(),
                        input.policy.name,
                        fmt_time(covered_at)
                    );
                    steps[p.step].ok = false;
                    steps[p.step]
                        .details
                        .push(("algorithm policy".into(), reason.clone()));
                    return fail(steps, notes, &title, "algorithm-expired", reason);
                }
                Judgement::Unknown => {
                    let title = steps[p.step].title.clone();
                    let reason = format!(
                        "{} is not in the policy {}",
                        u.describe(),
                        input.policy.name
                    );
                    steps[p.step].ok = false;
                    steps[p.step]
                        .details
                        .push(("algorithm policy".into(), reason.clone()));
                    return fail(steps, notes, &title, "algorithm-not-in-policy", reason);
                }
            }
        }
    }
    if let Some(last) = chain.last() {
        if let Some(na) = last.tsa_not_after {
            let end = date(na);
            if end - window <= date(input.now) && renewal_due.as_ref().is_none_or(|(d, _)| end < *d)
            {
                renewal_due = Some((
                    end,
                    format!("the last timestamp's TSA certificate expires on {end}"),
                ));
            }
        }
    }
    Report {
        verdict: Verdict::Valid {
            unchanged_since: earliest.map(fmt_time),
            renewal_due: renewal_due.map(|(d, why)| (d.to_string(), why)),
        },
        steps,
        notes,
    }
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
