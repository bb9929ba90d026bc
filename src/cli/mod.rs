//! The subcommand tree of DESIGN.md §4.

mod archive;
mod archive_http;
mod demo;
mod dev;
mod tsa;
mod verify;
mod verify_archive;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hozon",
    version,
    about = "hozon (保存): keeps signed medical documents provably intact and provably dated",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole chain end to end on an embedded default (local store, development key).
    Demo {
        /// Data directory for the demo store.
        #[arg(long, default_value = "./hozon-data")]
        data: PathBuf,
    },
    /// RFC 3161 Time-Stamp Authority.
    #[command(subcommand)]
    Tsa(tsa::TsaCommand),
    /// Archive of signed documents under RFC 4998 evidence records.
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
    /// Verify documents, timestamps, evidence records and whole archives.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Algorithm policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Development fixtures: a look-alike HPKI hierarchy and signed FHIR corpora.
    #[command(subcommand)]
    Dev(dev::DevCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Name what changes from policy OLD to NEW (etsi, bsi, or TOML files), and when; exit 1
    /// when NEW retires something earlier (then run `hozon verify archive --policy NEW`).
    Diff {
        /// The policy in force.
        old: String,
        /// The policy to move to.
        new: String,
    },
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Verify one document (signed FHIR or any file) with its evidence record; exit 0 valid,
    /// 1 invalid, 2 usage or I/O error.
    Document(verify::DocumentArgs),
    /// Verify a bare RFC 3161 timestamp token (and the data it covers).
    Token(verify::TokenArgs),
    /// Re-verify the whole archive under an algorithm policy and write the migration plan;
    /// exit 0 all valid, 1 some invalid, 2 error, 130 interrupted.
    Archive(verify_archive::ArchiveArgs),
}

/// Print an error with its chain of causes; exit status 2 (usage or I/O), as for every
/// subcommand that failed before reaching a verdict.
/// The bytes of `path`, with the path in the error.
pub(crate) fn read(path: impl AsRef<std::path::Path>) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let path = path.as_ref();
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hozon: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A command whose success is a verdict: its exit code, or 2 for an error before one.
fn verdict(r: anyhow::Result<ExitCode>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hozon: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HOZON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parse the command line and run it.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Demo { data } => report(demo::run(&data)),
        Command::Tsa(cmd) => report(tsa::run(cmd)),
        Command::Archive(cmd) => verdict(archive::run(cmd)),
        Command::Verify(VerifyCommand::Archive(args)) => verdict(verify_archive::run(args)),
        Command::Verify(VerifyCommand::Document(args)) => verdict(verify::document(args)),
        Command::Verify(VerifyCommand::Token(args)) => verdict(verify::token(args)),
        Command::Policy(PolicyCommand::Diff { old, new }) => {
            verdict(verify_archive::policy_diff(&old, &new))
        }
        Command::Dev(cmd) => report(dev::run(cmd)),
    }
}
