//! Bouncy Castle 1.72's ERS (Debian libbcpkix-java) driven through `ErsTool.java`: compiled
//! once per test binary with `javac`, run with `java`. Shared by the tests that need the
//! interop judge (`#[path]`-included).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Debian's Bouncy Castle jars.
pub const BC_JARS: &str =
    "/usr/share/java/bcprov.jar:/usr/share/java/bcpkix.jar:/usr/share/java/bcutil.jar";

/// The compiled ErsTool classes (a directory that lives as long as the test binary).
pub fn classes() -> &'static Path {
    static CLASSES: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &CLASSES
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let classes = dir.path().join("classes");
            // The source is compiled into the test binary: a binary built in one checkout
            // and run from another (CI's shared target directory) finds no stale path.
            let src = dir.path().join("ErsTool.java");
            std::fs::write(&src, include_str!("ErsTool.java")).unwrap();
            let out = Command::new("javac")
                .args(["-cp", BC_JARS, "-d"])
                .arg(&classes)
                .arg(&src)
                .output()
                .expect("javac runs (install-deps installs a JDK)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (dir, classes)
        })
        .1
}

/// Runs `ErsTool ARGS`; whether it printed OK and exited 0, and everything it printed.
pub fn ers_tool(args: &[&str]) -> (bool, String) {
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!("{BC_JARS}:{}", classes().display()))
        .arg("ErsTool")
        .args(args)
        .output()
        .expect("java runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("OK"), text)
}
