//! `hozon`: the command line. Parsing and reporting only; the work is in the library crates.

mod cli;
mod stores;

use std::process::ExitCode;

/// Ingest and verification allocate many small DER and JSON values on several threads;
/// mimalloc's thread-local free lists serve them faster than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::run()
}
