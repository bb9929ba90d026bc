//! A `hozon` server run as a child process by an end-to-end test: started, its URL read from
//! the first line it prints, stopped with SIGTERM (graceful, must exit 0) or SIGKILL, and
//! killed if the test panics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `hozon` server.
pub struct Proc {
    child: Child,
    /// What followed the prefix on its first line of output.
    pub url: String,
}

impl Proc {
    /// Starts `hozon ARGS` with `envs` and reads the URL after `prefix` on its first line.
    pub fn start(args: &[&str], envs: &[(&str, &str)], prefix: &str) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hozon"));
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start hozon");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Proc { child, url }
    }

    /// Its process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: graceful shutdown must exit 0.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "graceful shutdown exit status {st}");
    }

    /// SIGKILL and wait.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
