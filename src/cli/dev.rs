//! `hozon dev pki` and `hozon dev corpus`: test fixtures, never real keys.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use hozon_devkit::corpus::{write_corpus, CorpusSpec, Format};
use hozon_devkit::pki::TestPki;

#[derive(Subcommand)]
pub enum DevCommand {
    /// Generate a look-alike HPKI hierarchy (roots, CAs, doctors, pharmacists, TSAs, CRLs)
    /// as PEM files, deterministically from a seed. Keys are written unencrypted: fixtures only.
    Pki {
        /// Output directory (created; must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// Seed of every key, serial number and name.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Generate signed FHIR documents (e-prescriptions, referral letters) with a manifest and
    /// a few deliberately bad documents, deterministically from a seed.
    Corpus {
        /// A hierarchy written by `hozon dev pki`.
        #[arg(long)]
        pki: PathBuf,
        /// Number of good documents (the bad ones come on top).
        #[arg(long)]
        count: u64,
        /// Output directory (created; must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the documents' content, times and timestamp serials.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Signature format of the good documents.
        #[arg(long, value_enum, default_value_t = FormatArg::Mixed)]
        format: FormatArg,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// JWS (application/jose), detached payload, x5c.
    Jose,
    /// Detached CMS (application/pkcs7-signature), CAdES-T.
    Cms,
    /// Half and half.
    Mixed,
}

pub fn run(cmd: DevCommand) -> Result<()> {
    match cmd {
        DevCommand::Pki { out, seed } => {
            if out.exists()
                && out
                    .read_dir()
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                bail!("{} exists and is not an empty directory", out.display());
            }
            let started = Instant::now();
            let pki = TestPki::generate(seed).context("generating the hierarchy")?;
            pki.write(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "hozon dev pki: {} certificates and {} CRLs in {} ({:.1} s, seed {seed}); \
                 trust anchors in {}",
                pki.entities.len(),
                pki.crls.len(),
                out.display(),
                started.elapsed().as_secs_f64(),
                out.join("trust").display()
            );
            Ok(())
        }
        DevCommand::Corpus {
            pki,
            count,
            out,
            seed,
            format,
            threads,
        } => {
            let hierarchy = TestPki::load(&pki)
                .with_context(|| format!("reading the hierarchy in {}", pki.display()))?;
            let spec = CorpusSpec {
                count,
                seed,
                format: match format {
                    FormatArg::Jose => Format::Jose,
                    FormatArg::Cms => Format::Cms,
                    FormatArg::Mixed => Format::Mixed,
                },
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.unwrap_or(0))
                .build()
                .context("starting worker threads")?;
            let bar = indicatif::ProgressBar::new(count);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {pos}/{len} documents [{elapsed_precise}, {per_sec}, eta {eta}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let started = Instant::now();
            let summary = pool
                .install(|| write_corpus(&hierarchy, spec, &out, |n| bar.set_position(n)))
                .with_context(|| format!("writing the corpus to {}", out.display()))?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "hozon dev corpus: {} documents and {} bad ones in {} ({:.1} s, {:.0} documents/s; \
                 {}–{} bytes, {:.1} MB in all)",
                summary.good,
                summary.bad,
                out.display(),
                secs,
                summary.good as f64 / secs.max(1e-9),
                summary.min_size,
                summary.max_size,
                summary.document_bytes as f64 / 1e6
            );
            Ok(())
        }
    }
}
