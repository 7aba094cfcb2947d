//! The `health-agent` binary: flags and environment, printing, exit codes. The work is in
//! the library.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use health_agent::config::{self, FileConfig, ProbeSettings, RotationSettings, Size, Sources, StatusSpec};
use health_agent::report::{self, Filter};
use health_agent::schedule::Schedule;
use health_agent::{exit, Config, DaemonOptions, Error};

const ABOUT: &str = "Probes HTTP endpoints and appends one JSON line per probe to a rotated log on a volume.";

const LONG_ABOUT: &str = "\
Probes HTTP endpoints and appends one JSON line per probe to a rotated log on a volume.

Without targets it probes the helpdesk server: GET <base-url>/health (liveness: 200 and
{\"status\":\"ok\"}) and GET <base-url>/api/v1/health (readiness: 200 and {\"status\":\"ready\"};
the server answers 503 when not ready). Targets come from --target flags and/or the
[[target]] tables of a TOML config file (--config); probes run concurrently.

Each line of the log is one probe: time (RFC 3339 UTC), run_id, target, url, method, ok,
status, latency_ms, connect_ms, attempts, failed (the condition: connect, timeout, request,
status, body_contains, body_regex, json, latency), error, agent_version. Lines are appended
with O_APPEND, one write each, under an advisory lock on <log>.lock, so a CronJob and a
sidecar can share one log; the log is fsynced at the end of each run. Rotation renames
<log> to <log>.1 (and <log>.1 to <log>.2, ...) before a line would push <log> past
--max-bytes; at most --max-files files are kept and together they never exceed
--max-total-bytes.

Every flag has an environment variable (shown with the flag) used when the flag is absent;
flags and variables override the config file.";

const EXIT_CODES: &str = "\
Exit codes:
  0  every probe passed and every result was written
  1  at least one probe failed
  2  configuration or usage error
  3  the log could not be written (report, tail: read)";

const CONFIG_HELP: &str = "\
Config file (TOML), every key optional:

  log = \"/var/log/health/probes.log\"
  base_url = \"http://helpdesk:8000\"     # for the built-in targets
  concurrency = 64

  [rotation]
  max_bytes = \"10MiB\"                   # or a number of bytes
  max_files = 5
  max_total_bytes = \"50MiB\"

  [defaults]                            # for every [[target]] that does not say
  timeout = \"2s\"
  retries = 1

  [[target]]
  name = \"readiness\"
  url = \"http://helpdesk:8000/api/v1/health\"
  method = \"GET\"
  headers = { Authorization = \"Bearer ...\" }
  expect_status = [200, \"3xx\"]          # or 200, or \"200-299,304\"
  max_latency = \"500ms\"
  body_contains = \"ready\"
  body_regex = '\"uptime_seconds\":\\d+'
  json_pointer = \"/status\"              # RFC 6901
  json_equals = \"ready\"                 # any TOML value
  timeout = \"2s\"
  retries = 2
  retry_delay = \"500ms\"";

#[derive(Parser)]
#[command(name = "health-agent", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe every target once, append the results to the log and exit (for a CronJob).
    #[command(after_help = format!("{EXIT_CODES}\n\n{CONFIG_HELP}"))]
    Once(ProbeArgs),
    /// Probe on a schedule until SIGTERM, optionally serving /metrics (for a sidecar).
    ///
    /// A run in progress at SIGTERM (or Ctrl-C) is finished and synced, then the daemon
    /// exits 0. A log that cannot be written is reported on stderr and in
    /// health_agent_log_write_errors_total, and the next run tries again.
    #[command(after_help = CONFIG_HELP)]
    Daemon {
        #[command(flatten)]
        probe: ProbeArgs,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Per-target availability, p50/p95 latency and last failure over a time window.
    Report(ReportArgs),
    /// The last records of the log, one line each.
    Tail(TailArgs),
    /// Resolve the configuration, print the targets and the log settings, and exit.
    CheckConfig(ProbeArgs),
}

#[derive(Args)]
struct ProbeArgs {
    /// TOML config file (see below).
    #[arg(long, short = 'c', env = "HEALTH_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// A target: URL, or NAME=URL (repeat the flag; in the variable, separate with commas).
    #[arg(
        long = "target",
        short = 't',
        env = "HEALTH_AGENT_TARGETS",
        value_name = "[NAME=]URL",
        value_delimiter = ','
    )]
    targets: Vec<String>,
    /// Base URL of the helpdesk server for the built-in targets [default: http://127.0.0.1:8000].
    #[arg(long, env = "HEALTH_AGENT_BASE_URL", value_name = "URL")]
    base_url: Option<String>,
    /// The log file; rotated files and the lock file sit beside it.
    #[arg(long, short = 'l', env = "HEALTH_AGENT_LOG", value_name = "FILE")]
    log: Option<PathBuf>,
    /// Rotate before the log would exceed this size (at least 16KiB) [default: 10MiB].
    #[arg(long, env = "HEALTH_AGENT_MAX_BYTES", value_name = "SIZE", value_parser = parse_size)]
    max_bytes: Option<Size>,
    /// Files kept, the active one included [default: 5].
    #[arg(long, env = "HEALTH_AGENT_MAX_FILES", value_name = "N")]
    max_files: Option<u32>,
    /// Bytes all kept files may hold together [default: max-bytes x max-files].
    #[arg(long, env = "HEALTH_AGENT_MAX_TOTAL_BYTES", value_name = "SIZE", value_parser = parse_size)]
    max_total_bytes: Option<Size>,
    /// Probes in flight at once [default: 64].
    #[arg(long, env = "HEALTH_AGENT_CONCURRENCY", value_name = "N")]
    concurrency: Option<usize>,

    #[command(flatten)]
    settings: SettingArgs,
}

/// Probe settings for the --target targets and the built-in ones (file targets take theirs
/// from the file).
#[derive(Args)]
#[command(next_help_heading = "Probe settings (for --target and the built-in targets; file targets use the file)")]
struct SettingArgs {
    /// HTTP method [default: GET].
    #[arg(long, env = "HEALTH_AGENT_METHOD")]
    method: Option<String>,
    /// Extra request header, "Name: value" (repeatable).
    #[arg(long = "header", short = 'H', env = "HEALTH_AGENT_HEADER", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Expected statuses: 200, 200-299, 2xx, or a comma list of those [default: 2xx].
    #[arg(long, env = "HEALTH_AGENT_EXPECT_STATUS", value_name = "LIST")]
    expect_status: Option<String>,
    /// Fail a probe that answers slower than this, e.g. 500ms.
    #[arg(long, env = "HEALTH_AGENT_MAX_LATENCY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_latency: Option<Duration>,
    /// The body must contain this text.
    #[arg(long, env = "HEALTH_AGENT_BODY_CONTAINS", value_name = "TEXT")]
    body_contains: Option<String>,
    /// The body must match this regular expression.
    #[arg(long, env = "HEALTH_AGENT_BODY_REGEX", value_name = "REGEX")]
    body_regex: Option<String>,
    /// The body must be JSON in which this RFC 6901 pointer resolves, e.g. /status.
    #[arg(long, env = "HEALTH_AGENT_JSON_POINTER", value_name = "POINTER")]
    json_pointer: Option<String>,
    /// ... to this value: JSON (3, true, "x") or else a plain string.
    #[arg(long, env = "HEALTH_AGENT_JSON_EQUALS", value_name = "VALUE", requires = "json_pointer")]
    json_equals: Option<String>,
    /// Time allowed for one attempt, answer body included [default: 5s].
    #[arg(long, env = "HEALTH_AGENT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Further attempts after a failed one [default: 0].
    #[arg(long, env = "HEALTH_AGENT_RETRIES", value_name = "N")]
    retries: Option<u32>,
    /// Pause between attempts [default: 500ms].
    #[arg(long, env = "HEALTH_AGENT_RETRY_DELAY", value_name = "DURATION", value_parser = humantime::parse_duration)]
    retry_delay: Option<Duration>,
}

#[derive(Args)]
struct DaemonArgs {
    /// Cron expression in UTC: 5 fields as in a CronJob ("*/5 * * * *") or 6 with seconds
    /// first ("*/30 * * * * *").
    #[arg(long, env = "HEALTH_AGENT_SCHEDULE", value_name = "CRON", required_unless_present = "every")]
    schedule: Option<String>,
    /// Run at start and then every DURATION (e.g. 30s) instead of on a cron schedule.
    #[arg(long, env = "HEALTH_AGENT_EVERY", value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "schedule")]
    every: Option<Duration>,
    /// Serve Prometheus metrics (probe_success, probe_duration_seconds, ...) on ADDR:PORT at
    /// /metrics, e.g. 0.0.0.0:9102.
    #[arg(long, env = "HEALTH_AGENT_METRICS_ADDR", value_name = "ADDR:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Also fsync every N lines within a run (0: only at the end of each run).
    #[arg(long, env = "HEALTH_AGENT_FSYNC_EVERY", value_name = "N", default_value_t = 100)]
    fsync_every: u64,
}

#[derive(Args)]
struct ReadArgs {
    /// The log file (rotated files beside it are read too).
    #[arg(long, short = 'l', env = "HEALTH_AGENT_LOG", value_name = "FILE")]
    log: PathBuf,
    /// Only this target.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// Only failed probes.
    #[arg(long)]
    failures: bool,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// The window: records from this long ago until now (e.g. 1h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "24h", conflicts_with = "all")]
    since: Duration,
    /// The whole log instead of a window.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TailArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// How many records.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
    lines: usize,
    /// Only records from this long ago until now (e.g. 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Print the JSON lines themselves.
    #[arg(long)]
    json: bool,
}

fn parse_size(text: &str) -> Result<Size, String> {
    config::parse_size(text).map(Size)
}

impl ProbeArgs {
    fn sources(&self) -> Result<Sources, Error> {
        let file = self.config.as_deref().map(FileConfig::load).transpose()?;
        let s = &self.settings;
        let headers = s
            .headers
            .iter()
            .map(|h| {
                let (k, v) =
                    h.split_once(':').ok_or_else(|| Error::Config(format!("header {h:?} is not NAME: VALUE")))?;
                Ok((k.trim().to_string(), v.trim().to_string()))
            })
            .collect::<Result<_, Error>>()?;
        let settings = ProbeSettings {
            method: s.method.clone(),
            headers: (!s.headers.is_empty()).then_some(headers),
            expect_status: s.expect_status.clone().map(StatusSpec::Text),
            max_latency: s.max_latency,
            body_contains: s.body_contains.clone(),
            body_regex: s.body_regex.clone(),
            json_pointer: s.json_pointer.clone(),
            json_equals: s
                .json_equals
                .as_deref()
                .map(|v| serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()))),
            timeout: s.timeout,
            retries: s.retries,
            retry_delay: s.retry_delay,
            ..ProbeSettings::default()
        };
        Ok(Sources {
            file,
            targets: self.targets.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
            settings,
            base_url: self.base_url.clone(),
            log: self.log.clone(),
            rotation: RotationSettings {
                max_bytes: self.max_bytes,
                max_files: self.max_files,
                max_total_bytes: self.max_total_bytes,
            },
            concurrency: self.concurrency,
        })
    }

    fn config(&self) -> Result<Config, Error> {
        Config::resolve(self.sources()?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!(exit_code = e.exit_code(), "{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Diagnostics go to stderr through tracing: JSON lines when stderr is not a terminal (a
/// pod's log), compact text on a terminal. `HEALTH_AGENT_LOG_FILTER` sets the filter
/// (default `info`). stdout carries only the human summaries and reports.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEALTH_AGENT_LOG_FILTER")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.compact().with_target(false).init();
    } else {
        builder.json().flatten_event(true).with_target(false).init();
    }
}

/// Logs what a run left to say besides its summary: repairs and a failed write.
fn log_run_problems(run: &health_agent::RunSummary) {
    for w in &run.warnings {
        tracing::warn!(run_id = %run.run_id, "{w}");
    }
    if let Some(e) = &run.log_error {
        tracing::error!(
            run_id = %run.run_id,
            not_written = run.results.len() - run.written,
            "{e}"
        );
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Setup(format!("cannot start the async runtime: {e}")))
}

fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Once(args) => {
            let config = args.config()?;
            let summary = runtime()?.block_on(health_agent::run_once(&config))?;
            log_run_problems(&summary);
            print!("{}", summary.render(&config, true));
            Ok(summary.exit_code())
        }
        Command::Daemon { probe, daemon } => {
            let config = probe.config()?;
            let schedule = match (&daemon.schedule, daemon.every) {
                (Some(expr), _) => Schedule::cron(expr)?,
                (None, Some(every)) => Schedule::every(every)?,
                (None, None) => return Err(Error::Config("give --schedule CRON or --every DURATION".into())),
            };
            let rt = runtime()?;
            rt.block_on(async {
                let metrics = match daemon.metrics_addr {
                    Some(addr) => {
                        let listener = tokio::net::TcpListener::bind(addr)
                            .await
                            .map_err(|e| Error::Setup(format!("cannot serve metrics on {addr}: {e}")))?;
                        let bound = listener.local_addr().map_err(|e| Error::Setup(e.to_string()))?;
                        tracing::info!(metrics_url = %format!("http://{bound}/metrics"), "serving metrics");
                        Some(listener)
                    }
                    None => None,
                };
                let options = DaemonOptions { schedule, metrics, fsync_every: daemon.fsync_every };
                let on_run = |run: &health_agent::RunSummary| {
                    log_run_problems(run);
                    print!("{}", run.render(&config, false));
                    // Keep the summaries flowing to `kubectl logs` one run at a time.
                    let _ = std::io::stdout().flush();
                };
                tracing::info!(targets = config.targets.len(), log = %config.log.display(), "daemon started");
                health_agent::run_daemon(config.clone(), options, shutdown_signal(), on_run).await
            })?;
            tracing::info!("daemon stopped");
            Ok(exit::OK)
        }
        Command::Report(args) => {
            let since = if args.all { None } else { ago(args.since) };
            let filter = Filter { since, target: args.read.target, failures_only: args.read.failures };
            let report = report::report(&args.read.log, &filter)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", report::render_report(&args.read.log, &filter, &report));
            }
            Ok(exit::OK)
        }
        Command::Tail(args) => {
            let since = args.since.and_then(ago);
            let filter = Filter { since, target: args.read.target, failures_only: args.read.failures };
            let (records, read) = report::tail(&args.read.log, args.lines, &filter)?;
            if !args.json {
                println!("{}", report::render_read(&args.read.log, &read));
            }
            for r in &records {
                if args.json {
                    println!("{}", r.to_line());
                } else {
                    println!("{}", report::render_record(r));
                }
            }
            Ok(exit::OK)
        }
        Command::CheckConfig(args) => {
            let config = args.config()?;
            print!("{}", health_agent::describe(&config));
            Ok(exit::OK)
        }
    }
}

/// The time `d` ago; `None` when that is before any representable date (the whole log).
fn ago(d: Duration) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::Duration::from_std(d).ok().and_then(|d| chrono::Utc::now().checked_sub_signed(d))
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "finishing the current run, then stopping"),
                _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "finishing the current run, then stopping"),
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
