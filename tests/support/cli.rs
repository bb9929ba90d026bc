//! Running the `hozon` binary from integration tests (each test binary uses a part).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `hozon ARGS`.
pub fn hozon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hozon"))
        .args(args)
        .output()
        .expect("hozon runs")
}

/// A path as a `&str` argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Standard output and error, together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
