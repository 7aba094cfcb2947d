//! Shared test helpers: the test Loki receiver and a handle on a running `log-shipper`
//! process.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

pub mod loki;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that normally takes well under a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Flags that make the shipper react quickly in tests.
pub const FAST: &[&str] = &[
    "--poll-interval",
    "100ms",
    "--batch-wait",
    "50ms",
    "--min-backoff",
    "20ms",
    "--max-backoff",
    "200ms",
    "--release-after",
    "300ms",
    "--partial-line-timeout",
    "300ms",
];

/// A running `log-shipper`. Dropping it kills the process.
pub struct Shipper {
    child: Child,
    stderr_path: PathBuf,
}

impl Shipper {
    /// Starts the binary with `args`; its stderr goes to a file in `dir`.
    pub fn start(dir: &Path, args: &[String]) -> Shipper {
        let stderr_path = dir.join(format!(
            "shipper-{}.stderr",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        let err = File::create(&stderr_path).expect("stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_log-shipper"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start log-shipper");
        Shipper { child, stderr_path }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM via kill(1).
    pub fn term(&self) {
        let st = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill -TERM");
        assert!(st.success());
    }

    /// Waits for exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Peak resident set size (VmHWM) in KiB, while it runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Arguments for a shipper tailing `glob` into `loki` with positions in `dir`.
pub fn args(glob: &Path, loki_url: &str, positions: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--path".into(),
        glob.display().to_string(),
        "--loki-url".into(),
        loki_url.into(),
        "--positions".into(),
        positions.display().to_string(),
        "--label".into(),
        "job=test".into(),
        "--from-beginning".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    // The fast defaults, unless `extra` sets the flag itself.
    for pair in FAST.chunks(2) {
        if !extra.contains(&pair[0]) {
            v.extend(pair.iter().map(|s| s.to_string()));
        }
    }
    v
}

/// Appends lines to a file (O_APPEND, one write per call).
pub fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// Polls `cond` until it holds, or panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a counter (sum over all its series) from the shipper's /metrics.
pub fn metric(addr: &str, name: &str) -> f64 {
    let body = reqwest::blocking::get(format!("http://{addr}/metrics")).and_then(|r| r.text()).unwrap_or_default();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A free port on 127.0.0.1 for the metrics listener.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
