//! `hozon`: the command line. Parsing and reporting only; the work is in the library crates.

mod cli;
mod stores;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
