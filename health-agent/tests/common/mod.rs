//! Helpers shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use health_agent::record::Record;

/// The built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_health-agent"))
}

/// Runs the binary with `args` and no `HEALTH_AGENT_*` variables from the test's
/// environment.
pub fn run(args: &[&str]) -> Output {
    agent(args).output().expect("run health-agent")
}

/// A command for the binary with a clean `HEALTH_AGENT_*` environment.
pub fn agent(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("HEALTH_AGENT_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args);
    cmd
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every line of one file parsed as a record; panics on any line that is not one.
pub fn records_of(path: &Path) -> Vec<Record> {
    let content = std::fs::read_to_string(path).unwrap_or_default();
    assert!(content.is_empty() || content.ends_with('\n'), "{} ends in a torn line", path.display());
    content
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display())))
        .collect()
}
