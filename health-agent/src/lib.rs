//! `health-agent`: probes HTTP endpoints and appends one JSON line per probe to a log on a
//! volume, for a Kubernetes CronJob (`once`) or a sidecar (`daemon`).
//!
//! Modules:
//! - [`config`] — the TOML file, the command-line layer and the resolved [`Config`];
//! - [`check`] — expected statuses, body conditions, the latency bound;
//! - [`probe`] — the HTTP client, attempts and retries, concurrent runs;
//! - [`record`] — the JSON line of one probe;
//! - [`logfile`] — locked appends, rotation with exact caps, a torn-line tolerant reader;
//! - [`report`] — `report` and `tail` over the log;
//! - [`schedule`] — cron expressions and intervals for the daemon;
//! - [`metrics`] — the daemon's Prometheus endpoint.
//!
//! The binary is thin: it parses flags into a [`config::Sources`], resolves a [`Config`],
//! and calls [`run_once`] or [`run_daemon`], which take the configuration and (for the
//! daemon) a shutdown future as values, so tests drive them directly.

pub mod check;
pub mod config;
pub mod logfile;
pub mod metrics;
pub mod probe;
pub mod record;
pub mod report;
pub mod schedule;

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use config::Config;
use logfile::{LogError, LogWriter};
use probe::{spawn_probes, ProbeResult, Prober};
use record::Record;
use schedule::Schedule;

/// The agent's errors. Each maps to an exit code ([`Error::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or the command line is wrong (exit code 2).
    #[error("{0}")]
    Config(String),
    /// Something needed to start could not be set up: the HTTP client, the metrics
    /// listener (exit code 2).
    #[error("{0}")]
    Setup(String),
    /// The log could not be written (exit code 3).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log could not be read (exit code 3).
    #[error("cannot read the log {path}: {source}")]
    ReadLog {
        /// The log.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Exit codes of the binary.
pub mod exit {
    /// Every probe passed (and, for `once`, every result was written).
    pub const OK: u8 = 0;
    /// At least one probe failed.
    pub const PROBE_FAILED: u8 = 1;
    /// The configuration or the command line is wrong.
    pub const USAGE: u8 = 2;
    /// The log could not be written (or, for `report` and `tail`, read).
    pub const LOG: u8 = 3;
}

impl Error {
    /// The exit code this error ends the binary with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Setup(_) => exit::USAGE,
            Error::Log(_) | Error::ReadLog { .. } => exit::LOG,
        }
    }
}

/// What one run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The run id written into each of its lines.
    pub run_id: String,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// One result per target, in configuration order.
    pub results: Vec<ProbeResult>,
    /// Lines appended to the log.
    pub written: usize,
    /// Why the remaining results were not written (or not synced), if so.
    pub log_error: Option<LogError>,
    /// Things the log writer repaired on the way (torn lines of interrupted writers).
    pub warnings: Vec<String>,
}

impl RunSummary {
    /// Probes that failed.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.ok()).count()
    }

    /// 3 if the log could not be written, else 1 if a probe failed, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.log_error.is_some() {
            exit::LOG
        } else if self.failed() > 0 {
            exit::PROBE_FAILED
        } else {
            exit::OK
        }
    }

    /// The short human summary printed on stdout after a run: a headline, then one line
    /// per target (`all`) or per failed target only (the daemon, to keep its output short).
    pub fn render(&self, config: &Config, all: bool) -> String {
        let mut out = String::new();
        let n = self.results.len();
        let _ = writeln!(
            out,
            "health-agent {} run {}: {} of {n} targets ok, {} failed; {} of {n} lines appended to {}",
            record::AGENT_VERSION,
            self.run_id,
            n - self.failed(),
            self.failed(),
            self.written,
            config.log.display()
        );
        let width = self.results.iter().map(|r| r.target.chars().count()).max().unwrap_or(0);
        for r in self.results.iter().filter(|r| all || !r.ok()) {
            let status = r.status.map_or_else(|| "---".to_string(), |s| s.to_string());
            let _ = write!(
                out,
                "  {:<4}  {:<width$}  {status:>3}  {:>9}",
                if r.ok() { "ok" } else { "FAIL" },
                r.target,
                check::fmt_duration(r.latency)
            );
            if r.attempts > 1 {
                let _ = write!(out, "  ({} attempts)", r.attempts);
            }
            if let Some(f) = &r.failure {
                let _ = write!(out, "  {}: {}", f.condition, f.message);
            }
            out.push('\n');
        }
        if let Some(e) = &self.log_error {
            let _ = writeln!(out, "  LOG NOT WRITTEN: {e}");
        }
        out
    }
}

/// Probes every target once, appends one line per result (as each completes) and fsyncs.
/// Failing probes and an unwritable log are reported in the summary, not as errors: the
/// only error is a client that cannot be built.
pub async fn run_once(config: &Config) -> Result<RunSummary, Error> {
    let prober = Prober::new()?;
    let mut writer = None;
    Ok(execute_run(&prober, config, &mut writer, 0).await)
}

async fn execute_run(prober: &Prober, config: &Config, writer: &mut Option<LogWriter>, sync_every: u64) -> RunSummary {
    let started = Utc::now();
    let run_id = record::new_run_id(started);
    let mut rx = spawn_probes(prober, &config.targets, config.concurrency);
    let mut results = Vec::with_capacity(config.targets.len());
    let mut written = 0;
    let mut log_error = None;
    while let Some(result) = rx.recv().await {
        if log_error.is_none() {
            let line = Record::from_result(&run_id, &result).to_line();
            match with_writer(writer, config, sync_every, move |w| w.append(&line)).await {
                Ok(()) => written += 1,
                Err(e) => log_error = Some(e),
            }
        }
        results.push(result);
    }
    if log_error.is_none() && written > 0 {
        log_error = with_writer(writer, config, sync_every, LogWriter::sync).await.err();
    }
    let warnings = writer.as_mut().map(LogWriter::take_warnings).unwrap_or_default();
    results.sort_by_key(|r| r.index);
    RunSummary { run_id, started, results, written, log_error, warnings }
}

/// Runs `f` on the writer (opening it first if need be) on the blocking pool: file I/O and
/// fsync must not stall the workers that time the probes.
async fn with_writer<T: Send + 'static>(
    slot: &mut Option<LogWriter>,
    config: &Config,
    sync_every: u64,
    f: impl FnOnce(&mut LogWriter) -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    let taken = slot.take();
    let (path, rotation) = (config.log.clone(), config.rotation);
    let job = tokio::task::spawn_blocking(move || {
        let mut writer = match taken {
            Some(w) => w,
            None => LogWriter::open(&path, rotation)?.sync_every(sync_every),
        };
        let out = f(&mut writer);
        Ok::<_, LogError>((writer, out))
    });
    match job.await {
        Ok(Ok((writer, out))) => {
            *slot = Some(writer);
            out
        }
        Ok(Err(open_failed)) => Err(open_failed),
        Err(join) => Err(LogError {
            op: "append to",
            path: config.log.clone(),
            source: std::io::Error::other(format!("the writer task failed: {join}")),
        }),
    }
}

/// How the daemon runs.
pub struct DaemonOptions {
    /// When to run.
    pub schedule: Schedule,
    /// Where to serve `/metrics`, if anywhere (bound by the caller, so a test can bind
    /// port 0 and read the port back).
    pub metrics: Option<tokio::net::TcpListener>,
    /// Also fsync every this many lines within a run (0: only at the end of each run).
    pub fsync_every: u64,
}

/// Runs on `options.schedule` until `shutdown` completes. A run in progress when it does is
/// finished (its probes are bounded by their timeouts), its lines synced, and then this
/// returns. `on_run` sees every completed run (the binary prints its summary). A log that
/// cannot be written does not stop the daemon: the error goes to `on_run` and to the
/// `health_agent_log_write_errors_total` counter, and the next run tries again.
pub async fn run_daemon(
    config: Config,
    options: DaemonOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut on_run: impl FnMut(&RunSummary),
) -> Result<(), Error> {
    let prober = Prober::new()?;
    let metrics = Arc::new(metrics::Metrics::new()?);
    let server = options.metrics.map(|listener| tokio::spawn(metrics::serve(listener, metrics.clone())));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let mut writer = None;
    let mut next = options.schedule.first(Utc::now());
    while let Some(at) = next {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop_rx.wait_for(|stop| *stop) => break,
        }
        let run = execute_run(&prober, &config, &mut writer, options.fsync_every).await;
        metrics.observe(&run);
        on_run(&run);
        if *stop_rx.borrow() {
            break;
        }
        next = options.schedule.next(at, Utc::now());
    }
    // Every run ends with an fsync; this one covers a run cut short by a write error.
    if writer.is_some() {
        let _ = with_writer(&mut writer, &config, 0, LogWriter::sync).await;
    }
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}

/// A description of a resolved configuration, as `check-config` prints it.
pub fn describe(config: &Config) -> String {
    let mib = |b: u64| format!("{:.2} MiB", b as f64 / f64::from(1 << 20));
    let r = &config.rotation;
    let mut out = format!(
        "log {}: rotate before {}, keep {} files, {} in all; {} probes at once\n{} targets:\n",
        config.log.display(),
        mib(r.max_bytes),
        r.max_files,
        mib(r.max_total_bytes),
        config.concurrency,
        config.targets.len()
    );
    for t in &config.targets {
        let _ = write!(out, "  {}: {} {}  expect {}", t.name, t.method, t.url, t.expect_status);
        if let Some(max) = t.max_latency {
            let _ = write!(out, ", within {}", humantime::format_duration(max));
        }
        for b in &t.body {
            let _ = match b {
                check::BodyCheck::Contains(s) => write!(out, ", body contains {s:?}"),
                check::BodyCheck::Regex(re) => write!(out, ", body matches /{}/", re.as_str()),
                check::BodyCheck::Json { pointer, expected: Some(v) } => write!(out, ", JSON {pointer} == {v}"),
                check::BodyCheck::Json { pointer, expected: None } => write!(out, ", JSON has {pointer}"),
            };
        }
        let _ = writeln!(
            out,
            "; timeout {}, {} retries {} apart",
            humantime::format_duration(t.timeout),
            t.retries,
            humantime::format_duration(t.retry_delay)
        );
    }
    out
}
