//! `hozon verify archive`: re-verify every sealed document under a policy and write the
//! migration plan that `hozon archive renew --plan` carries out.
//!
//! Exit status: 0 every checked document valid (renewal may be due: the report says), 1 some
//! document invalid, 2 usage or I/O error, 130 interrupted (a partial report was written).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hozon_archiver::bulk::{BulkReport, Options, Outcome, REPORT_FORMAT};

use super::archive::{self, Common};

/// Output on standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A summary for people.
    Text,
    /// The whole report as JSON.
    Json,
}

/// `hozon verify archive`.
#[derive(Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    common: Common,
    /// Algorithm policy: etsi (default: the archive's), bsi, or a TOML file.
    #[arg(long)]
    policy: Option<String>,
    /// Verify as of this time (RFC 3339; default now).
    #[arg(long)]
    at: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Also verify every document's own signature and signer path (slower).
    #[arg(long)]
    signatures: bool,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write the JSON report (with the migration plan) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// List at most this many invalid documents by name (the rest are counted).
    #[arg(long, default_value_t = 10_000)]
    max_listed: usize,
}

/// Runs `hozon verify archive`.
pub fn run(a: ArchiveArgs) -> Result<ExitCode> {
    let setup = archive::setup(&a.common, true)?;
    let archive = archive::open(&setup.section)?;
    let policy = archive::policy(
        a.policy.as_deref().unwrap_or(&setup.section.policy),
        setup.section.renewal_window_days,
    )?;
    let now = archive::time_at(a.at.as_deref())?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = a.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("starting the worker threads")?;
    let cancel = archive::interrupt_flag();
    let bar = archive::progress_bar("verifying");
    let report = pool.install(|| {
        archive.verify_all(&Options {
            policy: &policy,
            now,
            trust: &setup.trust,
            signatures: a.signatures,
            renew_to: setup.settings.renew_digest,
            max_listed: a.max_listed,
            cancel: &cancel,
            progress: &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        })
    });
    bar.finish_and_clear();
    let report = report?;
    if let Some(out) = &a.out {
        let text = serde_json::to_vec_pretty(&report)?;
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", to_text(&report)),
    }
    if !report.complete || cancel.load(Ordering::SeqCst) {
        eprintln!("hozon: interrupted; the report covers only the batches checked so far");
        return Ok(ExitCode::from(130));
    }
    Ok(if report.totals.invalid > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report for people.
pub fn to_text(r: &BulkReport) -> String {
    let mut s = String::new();
    let rate = r.documents as f64 / r.elapsed_seconds.max(1e-9);
    s.push_str(&format!(
        "archive {} under {} as of {}{}\n",
        r.archive,
        r.policy,
        r.at,
        if r.complete {
            ""
        } else {
            " — INTERRUPTED, PARTIAL REPORT"
        }
    ));
    s.push_str(&format!(
        "checked {} documents ({:.1} MB) in {} batches in {:.1} s ({:.0} documents/s, {:.0} MB/s){}\n",
        r.documents,
        r.bytes as f64 / 1e6,
        r.trees,
        r.elapsed_seconds,
        rate,
        r.bytes as f64 / 1e6 / r.elapsed_seconds.max(1e-9),
        if r.signatures {
            ", signatures included"
        } else {
            ", evidence only"
        }
    ));
    s.push_str(&format!("  valid:        {}\n", r.totals.valid));
    s.push_str(&format!(
        "  renewal due:  {}{}\n",
        r.totals.renewal_due,
        r.earliest_due
            .as_ref()
            .map(|d| format!(" (earliest: renew before {d})"))
            .unwrap_or_default()
    ));
    s.push_str(&format!("  invalid:      {}\n", r.totals.invalid));
    for (code, n) in &r.invalid_by_code {
        s.push_str(&format!("    {code}: {n}\n"));
    }
    if r.pending > 0 {
        s.push_str(&format!(
            "  pending:      {} (waiting for their first batch; not checked)\n",
            r.pending
        ));
    }
    for b in &r.batches {
        let what = match &b.outcome {
            Outcome::Valid => "valid".to_owned(),
            Outcome::RenewalDue {
                action,
                before,
                reason,
            } => format!("{} before {before}: {reason}", action.as_str()),
            Outcome::Invalid { code, reason } => format!("INVALID ({code}): {reason}"),
        };
        s.push_str(&format!(
            "batch {} ({} documents, {}): {what}",
            b.tree, b.documents, b.digest
        ));
        if b.invalid_documents > 0 {
            s.push_str(&format!("; {} invalid document(s)", b.invalid_documents));
        }
        if b.invalid_signatures > 0 {
            s.push_str(&format!(
                "; {} document(s) whose own signature fails",
                b.invalid_signatures
            ));
        }
        if !b.damage.is_empty() {
            s.push_str(&format!("; damaged nodes: {}", b.damage.join(", ")));
        }
        s.push('\n');
    }
    for d in &r.invalid_documents {
        s.push_str(&format!(
            "invalid document {} ({}): {}\n",
            d.id, d.code, d.reason
        ));
    }
    if r.invalid_documents_not_listed > 0 {
        s.push_str(&format!(
            "… and {} more invalid documents (see --max-listed)\n",
            r.invalid_documents_not_listed
        ));
    }
    let p = &r.plan;
    if p.timestamp_renewal.is_empty() && p.hash_tree_renewal.is_empty() {
        s.push_str("plan: nothing to renew\n");
    } else {
        s.push_str(&format!(
            "plan: timestamp renewal of {} batch(es), hash-tree renewal to {} of {} batch(es); \
             carry it out with `hozon archive renew --plan REPORT`\n",
            p.timestamp_renewal.len(),
            p.to,
            p.hash_tree_renewal.len()
        ));
    }
    if !p.damaged_trees.is_empty() {
        s.push_str(&format!(
            "damaged: stored nodes of batch(es) {:?} differ from what their documents give; the \
             documents are intact, the nodes must be rebuilt from them before their evidence \
             can be exported\n",
            p.damaged_trees
        ));
    }
    if p.lost_documents > 0 {
        s.push_str(&format!(
            "lost: {} document(s) no renewal can save; re-ingest them from a source copy\n",
            p.lost_documents
        ));
    }
    s
}

/// Reads a report written by `hozon verify archive --out`, for `hozon archive renew --plan`.
pub fn read_report(path: &std::path::Path) -> Result<BulkReport> {
    let text = super::read(path)?;
    let report: BulkReport = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a report of `hozon verify archive`",
            path.display()
        )
    })?;
    if report.format != REPORT_FORMAT {
        bail!(
            "{}: format {:?}, this version reads {REPORT_FORMAT:?}",
            path.display(),
            report.format
        );
    }
    Ok(report)
}

/// `hozon policy diff OLD NEW`: what a policy change retires, and when. Exit status 0 when
/// nothing is retired earlier, 1 when something is (so a deployment script can ask for a
/// `hozon verify archive` run).
pub fn policy_diff(old: &str, new: &str) -> Result<ExitCode> {
    let (a, b) = (archive::policy(old, None)?, archive::policy(new, None)?);
    let today = hozon_verifier::report::utc_date(std::time::SystemTime::now());
    println!("{} → {}", a.name, b.name);
    let changes = hozon_verifier::policy::diff(&a, &b);
    if changes.is_empty() {
        println!("no algorithm is judged differently");
    }
    for c in &changes {
        let when = match c.new {
            hozon_verifier::policy::Acceptance::Until(d) if c.retires() => {
                let days = (d - today).num_days();
                if days <= 0 {
                    format!("  — already past: what it alone protects is invalid from {d}")
                } else {
                    format!("  — in {days} days")
                }
            }
            _ => String::new(),
        };
        println!(
            "{:<8} {}: {} → {}{when}",
            if c.retires() { "retires" } else { "extends" },
            c.what.describe(),
            c.old,
            c.new
        );
    }
    if a.renewal_window_days != b.renewal_window_days {
        println!(
            "renewal window: {} → {} days",
            a.renewal_window_days, b.renewal_window_days
        );
    }
    Ok(if changes.iter().any(|c| c.retires()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
