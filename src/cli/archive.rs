//! `hozon archive …`: ingest, seal, renew, export, status, serve.
//!
//! Every command takes `--data DIR` (the store is `DIR/archive`) and `--config FILE` (the
//! `[archive]` section of `hozon.toml`); `--tsa URL` and `--trust PATH` add to the config's.
//! Secrets (the API bearer token, a TSA's bearer token) come from the environment or files
//! named in the config, never from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use hozon_archiver::client::{Endpoint, HttpTransport, TokenCheck, TsaPool};
use hozon_archiver::ingest::{prepare, Mode, Prepared, Refused, Stored, Trust};
use hozon_archiver::model::{hex_id, parse_id};
use hozon_archiver::seal::SealWhen;
use hozon_archiver::{Archive, Settings};
use hozon_verifier::document::UsagePolicy;
use hozon_verifier::policy::Policy;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::verify::load_material;

/// Options every archive command takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Data directory; the archive's store is DIR/archive.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Configuration file (its `[archive]` section).
    #[arg(long)]
    config: Option<PathBuf>,
    /// RFC 3161 endpoint (repeatable; tried in order, with failover).
    #[arg(long)]
    tsa: Vec<String>,
    /// Trust anchors: a certificate file or directory (repeatable).
    #[arg(long)]
    trust: Vec<PathBuf>,
    /// Intermediate certificates: a file or directory (repeatable).
    #[arg(long)]
    cert: Vec<PathBuf>,
    /// CRLs: a file or directory (repeatable).
    #[arg(long)]
    crl: Vec<PathBuf>,
}

impl Common {
    /// Options as if given on the command line (for the demo).
    pub fn new(data: PathBuf, tsa: Vec<String>, trust: Vec<PathBuf>, crl: Vec<PathBuf>) -> Self {
        Common {
            data: Some(data),
            config: None,
            tsa,
            trust,
            cert: Vec::new(),
            crl,
        }
    }
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// `hozon archive …`.
#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// Add signed documents (files, or directories searched for *.json).
    Ingest {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Archive any file as opaque bytes (no signature check).
        #[arg(long)]
        opaque: bool,
        /// Keep documents that fail verification, marked unverified, instead of refusing them.
        #[arg(long)]
        keep_unverified: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        common: Common,
    },
    /// Seal pending documents under Merkle-batched timestamps (all of them, or with
    /// --due-only only the batches whose size or age limit is reached).
    Seal {
        /// Only seal what the size or age limit makes due.
        #[arg(long)]
        due_only: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Renew timestamps and hash trees that the policy and TSA certificates make due.
    Renew {
        /// Only say what is due.
        #[arg(long)]
        dry_run: bool,
        /// Algorithm policy: etsi (default), bsi, or a TOML file.
        #[arg(long)]
        policy: Option<String>,
        /// Plan as of this time (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
        /// Carry out the migration plan of a `hozon verify archive --out` report instead of
        /// planning from the stored metadata.
        #[arg(long, conflicts_with_all = ["policy", "at"])]
        plan: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Export a document with its evidence record and validation data.
    Export {
        /// Document id (hex SHA-256, as ingest printed it).
        id: String,
        /// Output directory (created; must be empty).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Counts, batches, the oldest unsealed document, and the next renewal due.
    Status {
        /// Algorithm policy.
        #[arg(long)]
        policy: Option<String>,
        /// As of this time (RFC 3339).
        #[arg(long)]
        at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        common: Common,
    },
    /// Serve the ingest API and run sealing and renewal periodically.
    Serve {
        /// Listen address (default from the config, else 127.0.0.1:8300).
        #[arg(long)]
        listen: Option<String>,
        /// Keep documents that fail verification, marked unverified.
        #[arg(long)]
        keep_unverified: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// The `[archive]` section of the configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// Data directory.
    pub data: PathBuf,
    /// TSA endpoints, preferred first.
    pub tsa: Vec<String>,
    /// Environment variable with the TSAs' bearer token.
    pub tsa_bearer_env: Option<String>,
    /// File with the TSAs' bearer token.
    pub tsa_bearer_file: Option<PathBuf>,
    /// For `https` TSAs: the CAs to trust for their certificates, PEM (default: the system
    /// bundle).
    pub tsa_ca: Option<PathBuf>,
    /// For a TSA that requires client certificates (mutual TLS): this archive's
    /// certificate chain, PEM, and its key (`tsa_client_key`).
    pub tsa_client_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    pub tsa_client_key: Option<PathBuf>,
    /// Per-request timeout, milliseconds.
    pub tsa_timeout_ms: u64,
    /// Rounds over all endpoints before giving up.
    pub tsa_rounds: u32,
    /// Pause after the first failed round, milliseconds (doubles each round).
    pub tsa_backoff_ms: u64,
    /// Largest accepted genTime distance from the local clock, seconds.
    pub tsa_max_skew_secs: u64,
    /// Trust anchors (files or directories).
    pub trust: Vec<PathBuf>,
    /// Intermediate certificates.
    pub certs: Vec<PathBuf>,
    /// CRLs captured as validation data.
    pub crls: Vec<PathBuf>,
    /// Documents per batch.
    pub batch_size: usize,
    /// Longest wait before a batch is sealed, seconds.
    pub batch_age_secs: u64,
    /// Hash algorithm of new batches.
    pub hash: String,
    /// Hash algorithm hash-tree renewals move to.
    pub renew_hash: String,
    /// Algorithm policy: etsi, bsi or a file.
    pub policy: String,
    /// Overrides the policy's renewal window, days.
    pub renewal_window_days: Option<u32>,
    /// HTTP listen address of `serve`.
    pub listen: String,
    /// Environment variable with the API bearer token.
    pub bearer_token_env: Option<String>,
    /// File with the API bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// Largest accepted document, bytes.
    pub body_limit: usize,
    /// How often `serve` checks for a due batch, seconds.
    pub seal_check_secs: u64,
    /// How often `serve` checks for due renewals, seconds.
    pub renew_check_secs: u64,
    /// Block cache of the store, MiB: memory for the records, placements and index blocks
    /// that renewals and `verify archive` read at random. Memory stays bounded by it at any
    /// archive size; more of it makes those runs faster from about a million documents on.
    pub block_cache_mib: usize,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        let s = Settings::default();
        ArchiveSection {
            data: PathBuf::from("./hozon-data"),
            tsa: Vec::new(),
            tsa_bearer_env: None,
            tsa_bearer_file: None,
            tsa_ca: None,
            tsa_client_cert: None,
            tsa_client_key: None,
            tsa_timeout_ms: 10_000,
            tsa_rounds: 3,
            tsa_backoff_ms: 500,
            tsa_max_skew_secs: 600,
            trust: Vec::new(),
            certs: Vec::new(),
            crls: Vec::new(),
            batch_size: s.batch_size,
            batch_age_secs: s.batch_age.as_secs(),
            hash: s.digest.name().to_owned(),
            renew_hash: s.renew_digest.name().to_owned(),
            policy: "etsi".into(),
            renewal_window_days: None,
            listen: "127.0.0.1:8300".into(),
            bearer_token_env: Some("HOZON_ARCHIVE_TOKEN".into()),
            bearer_token_file: None,
            body_limit: 8 << 20,
            seal_check_secs: 5,
            renew_check_secs: 3600,
            block_cache_mib: hozon_storage::DEFAULT_BLOCK_CACHE >> 20,
        }
    }
}

/// Everything a command needs, from the config and the command line.
pub struct Setup {
    /// The section, with command-line additions.
    pub section: ArchiveSection,
    /// Trust for ingest and for tokens.
    pub trust: Arc<Trust>,
    /// Trust anchors' DER (for exports).
    pub anchor_ders: Vec<Vec<u8>>,
    /// Batching.
    pub settings: Settings,
}

fn load_section(common: &Common) -> Result<ArchiveSection> {
    let mut section = match &common.config {
        None => ArchiveSection::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            match table.get("archive") {
                None => ArchiveSection::default(),
                Some(v) => v
                    .clone()
                    .try_into()
                    .with_context(|| format!("[archive] in {}", path.display()))?,
            }
        }
    };
    if let Some(d) = &common.data {
        section.data = d.clone();
    }
    section.tsa.extend(common.tsa.iter().cloned());
    section.trust.extend(common.trust.iter().cloned());
    section.certs.extend(common.cert.iter().cloned());
    section.crls.extend(common.crl.iter().cloned());
    Ok(section)
}

fn digest(name: &str) -> Result<hozon_tsa::signer::DigestAlgorithm> {
    hozon_tsa::config::parse_digest(name).ok_or_else(|| anyhow!("unknown hash algorithm {name:?}"))
}

/// Reads the configuration and trust material.
pub fn setup(common: &Common, need_trust: bool) -> Result<Setup> {
    let section = load_section(common)?;
    let (trust, anchor_ders) = if section.trust.is_empty() {
        if need_trust {
            bail!("no trust anchors: give --trust PATH (HPKI and TSA roots) or [archive] trust");
        }
        (Trust::default(), Vec::new())
    } else {
        let m = load_material(&section.trust, &section.certs, &section.crls, None)?;
        (
            Trust {
                anchors: m.anchors,
                extra_certs: m.extra,
                crls: m.crls.into(),
                usage: UsagePolicy::default(),
            },
            m.anchor_ders,
        )
    };
    let settings = Settings {
        digest: digest(&section.hash)?,
        batch_size: section.batch_size.max(1),
        batch_age: Duration::from_secs(section.batch_age_secs),
        renew_digest: digest(&section.renew_hash)?,
    };
    Ok(Setup {
        section,
        trust: Arc::new(trust),
        anchor_ders,
        settings,
    })
}

/// Opens the archive store under the data directory.
pub fn open(section: &ArchiveSection) -> Result<Archive> {
    if section.block_cache_mib == 0 {
        bail!("[archive] block_cache_mib must be at least 1");
    }
    std::fs::create_dir_all(&section.data)
        .with_context(|| format!("creating {}", section.data.display()))?;
    let path = section.data.join("archive");
    hozon_storage::set_block_cache_capacity(section.block_cache_mib.saturating_mul(1 << 20));
    Archive::open(&path).with_context(|| format!("opening the archive at {}", path.display()))
}

/// The TSA client of the configuration.
pub fn tsa_pool(setup: &Setup) -> Result<TsaPool> {
    let s = &setup.section;
    if s.tsa.is_empty() {
        bail!("no TSA endpoint: give --tsa URL (repeatable) or [archive] tsa = [...]");
    }
    let bearer =
        super::tsa::read_secret(&s.tsa_bearer_env, &s.tsa_bearer_file, "TSA bearer token")?;
    let identity = match (&s.tsa_client_cert, &s.tsa_client_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => bail!("tsa_client_cert and tsa_client_key go together"),
    };
    let tls = super::tsa::client_tls(s.tsa_ca.as_deref(), identity)?.map(Arc::new);
    Ok(TsaPool {
        endpoints: s
            .tsa
            .iter()
            .map(|url| Endpoint {
                url: url.clone(),
                bearer: bearer.clone(),
            })
            .collect(),
        timeout: Duration::from_millis(s.tsa_timeout_ms),
        rounds: s.tsa_rounds,
        backoff: Duration::from_millis(s.tsa_backoff_ms),
        check: TokenCheck {
            anchors: Arc::new(setup.trust.anchors.clone()),
            extra_certs: Arc::new(setup.trust.extra_certs.clone()),
            max_skew: Some(Duration::from_secs(s.tsa_max_skew_secs)),
        },
        transport: Box::new(HttpTransport { tls }),
    })
}

/// The algorithm policy named by `name` (etsi, bsi or a file), with the section's window.
pub fn policy(name: &str, window: Option<u32>) -> Result<Policy> {
    let mut p = match name {
        "etsi" => Policy::etsi(),
        "bsi" => Policy::bsi(),
        file => Policy::from_toml(
            &std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        )
        .with_context(|| format!("policy {file}"))?,
    };
    if let Some(w) = window {
        p.renewal_window_days = w;
    }
    Ok(p)
}

pub fn time_at(at: Option<&str>) -> Result<SystemTime> {
    match at {
        None => Ok(SystemTime::now()),
        Some(t) => {
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .with_context(|| format!("--at {t} is not an RFC 3339 time"))?;
            Ok(SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(t.timestamp()).context("--at before 1970")?))
        }
    }
}

/// The files an ingest of `paths` reads: files as given; in directories (recursively) the
/// `*.json` files, or every file with `opaque`. Sorted, so runs are reproducible.
pub fn input_files(paths: &[PathBuf], opaque: bool) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, opaque: bool, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, opaque, out)?;
            } else if opaque || p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, opaque, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

/// One input's outcome.
pub struct IngestLine {
    /// The file.
    pub file: PathBuf,
    /// Its id.
    pub id: Option<String>,
    /// stored, duplicate, refused.
    pub status: &'static str,
    /// Verification status of a stored document, or the refusal code.
    pub detail: String,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// Ingests `files` in groups: verification in parallel, one durable write per group.
pub fn ingest_files(
    archive: &Archive,
    trust: &Trust,
    files: &[PathBuf],
    mode: Mode,
    mut each: impl FnMut(&IngestLine),
) -> Result<(u64, u64, u64)> {
    const GROUP: usize = 256;
    let (mut stored, mut dup, mut refused) = (0u64, 0u64, 0u64);
    for group in files.chunks(GROUP) {
        let now = SystemTime::now();
        let prepared: Vec<(PathBuf, Result<Prepared, Refused>)> = group
            .par_iter()
            .map(|file| {
                let result = std::fs::read(file)
                    .map_err(|e| Refused {
                        code: "unreadable".into(),
                        reason: e.to_string(),
                    })
                    .and_then(|bytes| {
                        let side = file.with_extension("tsr");
                        let side = (!mode.opaque && side.is_file())
                            .then(|| std::fs::read(&side).ok())
                            .flatten();
                        prepare(bytes, side, mode, trust, now)
                    });
                (file.clone(), result)
            })
            .collect();
        // The prepared documents move into the commit; each line keeps what it reports.
        let mut ok: Vec<Prepared> = Vec::with_capacity(prepared.len());
        let mut pending = Vec::with_capacity(prepared.len());
        for (file, r) in prepared {
            pending.push((
                file,
                r.map(|p| {
                    let seen = (p.id, p.record.failure.clone());
                    ok.push(p);
                    seen
                }),
            ));
        }
        let mut outcomes = archive.commit(ok)?.into_iter();
        for (file, r) in pending {
            let line = match r {
                Ok((id, failure)) => match outcomes.next() {
                    Some(Stored::New(status)) => {
                        stored += 1;
                        IngestLine {
                            file,
                            id: Some(hex_id(&id)),
                            status: "stored",
                            detail: status.as_str().to_owned(),
                            reason: failure.map(|(c, r)| format!("{c}: {r}")),
                        }
                    }
                    _ => {
                        dup += 1;
                        IngestLine {
                            file,
                            id: Some(hex_id(&id)),
                            status: "duplicate",
                            detail: "already archived".into(),
                            reason: None,
                        }
                    }
                },
                Err(e) => {
                    refused += 1;
                    IngestLine {
                        file,
                        id: None,
                        status: "refused",
                        detail: e.code,
                        reason: Some(e.reason),
                    }
                }
            };
            each(&line);
        }
    }
    Ok((stored, dup, refused))
}

fn print_line(line: &IngestLine, format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "file": line.file.display().to_string(),
                "id": line.id,
                "status": line.status,
                "detail": line.detail,
                "reason": line.reason,
            })
        ),
        Format::Text => match line.status {
            "refused" => println!(
                "refused    {}  [{}] {}",
                line.file.display(),
                line.detail,
                line.reason.as_deref().unwrap_or("")
            ),
            s => println!(
                "{s:<10} {}  {} ({})",
                line.file.display(),
                line.id.as_deref().unwrap_or(""),
                line.detail
            ),
        },
    }
}

/// A flag set by Ctrl-C (and SIGTERM), for jobs that stop cleanly between steps.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("hozon: interrupted; stopping after the current step (progress is kept)");
                f.store(true, Ordering::SeqCst);
            }
        });
    });
    flag
}

pub fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} documents, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Renews what is due; returns what was done.
pub fn renew_due(
    archive: &Archive,
    pool: &TsaPool,
    plan: &hozon_archiver::renew::Plan,
    to: hozon_tsa::signer::DigestAlgorithm,
    cancel: &AtomicBool,
) -> Result<Vec<String>> {
    let bar = progress_bar("hash-tree renewal");
    let done = archive.renew(
        plan,
        pool,
        to,
        &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
        cancel,
    );
    bar.finish_and_clear();
    Ok(done?)
}

/// Runs an archive command.
pub fn run(cmd: ArchiveCommand) -> Result<ExitCode> {
    match cmd {
        ArchiveCommand::Ingest {
            paths,
            opaque,
            keep_unverified,
            format,
            common,
        } => {
            let setup = setup(&common, !opaque)?;
            let archive = open(&setup.section)?;
            let files = input_files(&paths, opaque)?;
            let mode = Mode {
                opaque,
                keep_unverified,
            };
            let started = std::time::Instant::now();
            let (stored, dup, refused) = ingest_files(&archive, &setup.trust, &files, mode, |l| {
                print_line(l, format)
            })?;
            if format == Format::Text {
                println!(
                    "{stored} stored, {dup} already archived, {refused} refused ({:.1} s); \
                     stored documents are sealed by `hozon archive seal` or the server",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(if refused > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ArchiveCommand::Seal { due_only, common } => {
            let setup = setup(&common, true)?;
            let archive = open(&setup.section)?;
            let pool = tsa_pool(&setup)?;
            let when = if due_only {
                SealWhen::Due
            } else {
                SealWhen::Force
            };
            let sealed = archive.seal(&pool, &setup.settings, when, SystemTime::now())?;
            if sealed.is_empty() {
                println!("nothing to seal");
            }
            for s in sealed {
                println!(
                    "sealed batch {}: {} document(s), root {}…, timestamp {} by {}",
                    s.tree,
                    s.documents,
                    &s.root[..16.min(s.root.len())],
                    s.gen_time,
                    s.tsa
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ArchiveCommand::Renew {
            dry_run,
            policy: pol,
            at,
            plan: report,
            common,
        } => {
            let setup = setup(&common, !dry_run)?;
            let archive = open(&setup.section)?;
            let mut to = setup.settings.renew_digest;
            let plan = match report {
                Some(path) => {
                    let report = super::verify_archive::read_report(&path)?;
                    let here = hex::encode(archive.store().instance_id()?);
                    if report.archive != here {
                        bail!(
                            "{} was made for archive {}, not this one ({here})",
                            path.display(),
                            report.archive
                        );
                    }
                    if !report.complete {
                        bail!(
                            "{} is a partial report (the run was interrupted): run `hozon verify \
                             archive` to the end first",
                            path.display()
                        );
                    }
                    to = digest(&report.plan.to)?;
                    let (plan, skipped) = archive.plan_of(&report.plan)?;
                    for s in skipped {
                        println!("skipped: {s}");
                    }
                    plan
                }
                None => {
                    let policy = policy(
                        pol.as_deref().unwrap_or(&setup.section.policy),
                        setup.section.renewal_window_days,
                    )?;
                    archive.plan(&policy, time_at(at.as_deref())?)?
                }
            };
            if plan.due.is_empty() {
                println!("nothing is due for renewal");
            }
            for d in &plan.due {
                println!(
                    "due: batch {} ({} documents): {} since {} — {}",
                    d.tree,
                    d.documents,
                    d.kind.as_str(),
                    d.due,
                    d.reason
                );
            }
            if let Some(n) = &plan.next {
                println!(
                    "next: batch {}: {} due {} — {}",
                    n.tree,
                    n.kind.as_str(),
                    n.due,
                    n.reason
                );
            }
            if dry_run {
                return Ok(ExitCode::SUCCESS);
            }
            let pool = tsa_pool(&setup)?;
            let cancel = interrupt_flag();
            for line in renew_due(&archive, &pool, &plan, to, &cancel)? {
                println!("done: {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ArchiveCommand::Export { id, out, common } => {
            let setup = setup(&common, false)?;
            let archive = open(&setup.section)?;
            let id = parse_id(&id)
                .ok_or_else(|| anyhow!("{id:?} is not a document id (64 hex digits)"))?;
            let e = archive.export(&id, &out, &setup.anchor_ders)?;
            println!(
                "exported {} with {} archive timestamp(s) to {}:",
                hex_id(&id),
                e.timestamps,
                out.display()
            );
            for f in &e.files {
                println!("  {f}");
            }
            println!("see {}/README.txt for how to check it", out.display());
            Ok(ExitCode::SUCCESS)
        }
        ArchiveCommand::Status {
            policy: pol,
            at,
            format,
            common,
        } => {
            let setup = setup(&common, false)?;
            let archive = open(&setup.section)?;
            let policy = policy(
                pol.as_deref().unwrap_or(&setup.section.policy),
                setup.section.renewal_window_days,
            )?;
            let status = archive.status(&policy, time_at(at.as_deref())?)?;
            match format {
                Format::Text => print!("{}", status.to_text()),
                Format::Json => println!("{}", status.to_json()),
            }
            Ok(ExitCode::SUCCESS)
        }
        ArchiveCommand::Serve {
            listen,
            keep_unverified,
            common,
        } => {
            let setup = setup(&common, true)?;
            super::archive_http::serve(setup, listen, keep_unverified)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
