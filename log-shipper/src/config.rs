//! Configuration: the command line (with `LOG_SHIPPER_*` environment fallbacks), the TOML
//! file given by `--config`, and the validated [`Config`] the shipper runs with.
//!
//! Precedence: a flag (or its environment variable) beats the file, which beats the
//! default. `--path` globs are added to the file's `[[inputs]]` as one more input.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::Error;

/// Default timestamp fields: `timestamp` (the server's tracing JSON), `time` (the
/// health-agent's probe log), `ts`.
pub const DEFAULT_TIMESTAMP_FIELDS: &[&str] = &["timestamp", "time", "ts"];
/// Default label fields: low-cardinality fields of the server's and agents' JSON lines.
pub const DEFAULT_LABEL_FIELDS: &[&str] = &["level", "target", "service"];
/// Default structured-metadata fields: high-cardinality ids.
pub const DEFAULT_METADATA_FIELDS: &[&str] = &["request_id", "run_id", "trace_id"];
/// Loki's default `max_line_size` (256 KB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;

/// How push bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// `logproto.PushRequest`, snappy block compressed (Loki's native format).
    Protobuf,
    /// JSON, gzip compressed (`Content-Encoding: gzip`).
    JsonGzip,
    /// JSON, uncompressed.
    Json,
}

/// Credentials sent to Loki (or the gateway in front of it).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic auth.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <redacted> }}"),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// One group of globs sharing static labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Glob patterns of files to tail (globset syntax; `**` crosses directories).
    pub paths: Vec<String>,
    /// Globs of files never to tail (e.g. `*.gz`), matched against the full path.
    pub exclude: Vec<String>,
    /// Static labels of this input, on top of the global ones.
    pub labels: BTreeMap<String, String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to tail.
    pub inputs: Vec<Input>,
    /// The push endpoint (`.../loki/api/v1/push`).
    pub loki_url: reqwest::Url,
    /// `X-Scope-OrgID`, for multi-tenant Loki.
    pub tenant: Option<String>,
    /// Credentials.
    pub auth: Auth,
    /// Extra PEM CA certificates to trust (besides the system store).
    pub tls_ca_file: Option<PathBuf>,
    /// Accept any TLS certificate (testing only).
    pub tls_insecure_skip_verify: bool,
    /// The positions file.
    pub positions: PathBuf,
    /// Read files found at the very first start from their beginning (default: from
    /// their end). Files found later, or after any positions file existed, are always read
    /// from the beginning.
    pub from_beginning: bool,
    /// Body encoding.
    pub encoding: Encoding,
    /// Labels on every stream.
    pub labels: BTreeMap<String, String>,
    /// JSON fields turned into labels (low cardinality only).
    pub label_fields: Vec<String>,
    /// JSON fields sent as structured metadata (high cardinality is fine).
    pub metadata_fields: Vec<String>,
    /// JSON fields holding the line's time, first match wins.
    pub timestamp_fields: Vec<String>,
    /// A batch is sent once it holds this many bytes of lines...
    pub batch_bytes: usize,
    /// ...or once its first line has waited this long.
    pub batch_wait: Duration,
    /// Batches waiting behind the one being sent; reading pauses when they are full.
    pub max_pending_batches: usize,
    /// Longer lines are truncated (and counted).
    pub max_line_bytes: usize,
    /// A last line without a newline is sent after waiting this long.
    pub partial_line_timeout: Duration,
    /// How often files are stat-polled and globs re-scanned (inotify events can be missed).
    pub poll_interval: Duration,
    /// A file that left the globs (rotated away, deleted) is closed after being idle at its
    /// end this long.
    pub release_after: Duration,
    /// Per-request timeout.
    pub push_timeout: Duration,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Retry delay cap (also caps `Retry-After`).
    pub max_backoff: Duration,
    /// Attempts per batch before it is dropped; 0 = retry forever.
    pub max_retries: u32,
    /// On SIGTERM: how long to keep delivering what was read.
    pub shutdown_timeout: Duration,
    /// How often the positions file is fsynced (it is rewritten atomically after every
    /// acknowledged batch regardless); zero fsyncs every write.
    pub positions_sync_interval: Duration,
    /// Serve `/metrics` here.
    pub metrics_addr: Option<SocketAddr>,
}

/// `log-shipper`: tails log files and pushes them to Grafana Loki without losing a line.
///
/// Positions (per file, the offset Loki acknowledged) survive restarts; rotation by rename
/// and by copytruncate is followed; 429/5xx/network errors are retried with capped,
/// jittered exponential backoff (honouring Retry-After), a 413 batch is split, other 4xx
/// batches are dropped and counted. Reading pauses while Loki is down, so memory stays
/// bounded.
///
/// Exit codes: 0 stopped cleanly (everything read was delivered); 1 runtime failure
/// (positions file not writable, metrics address taken); 2 bad command line or
/// configuration; 3 stopped at the shutdown deadline with lines undelivered (they are sent
/// after the next start).
#[derive(Debug, Parser)]
#[command(name = "log-shipper", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file with the full set of options (flags override it).
    #[arg(long, env = "LOG_SHIPPER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Glob of files to tail; repeatable (environment: comma-separated).
    #[arg(long = "path", env = "LOG_SHIPPER_PATHS", value_name = "GLOB", value_delimiter = ',')]
    pub paths: Vec<String>,
    /// Glob of files never to tail (e.g. '*.gz'); repeatable.
    #[arg(long = "exclude", env = "LOG_SHIPPER_EXCLUDE", value_name = "GLOB", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Loki push URL; a bare base URL gets /loki/api/v1/push appended.
    #[arg(long, env = "LOG_SHIPPER_LOKI_URL", value_name = "URL")]
    pub loki_url: Option<String>,
    /// Static label on every stream; repeatable (environment: comma-separated).
    #[arg(long = "label", env = "LOG_SHIPPER_LABELS", value_name = "K=V", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The positions file (created if missing; its directory must exist).
    #[arg(long, env = "LOG_SHIPPER_POSITIONS", value_name = "FILE")]
    pub positions: Option<PathBuf>,
    /// At the very first start, read existing files from the beginning instead of the end.
    #[arg(long, env = "LOG_SHIPPER_FROM_BEGINNING")]
    pub from_beginning: bool,
    /// Tenant sent as X-Scope-OrgID.
    #[arg(long, env = "LOG_SHIPPER_TENANT", value_name = "ID")]
    pub tenant: Option<String>,
    /// Body encoding [default: protobuf].
    #[arg(long, env = "LOG_SHIPPER_ENCODING", value_enum)]
    pub encoding: Option<Encoding>,
    /// JSON field turned into a label; repeatable; replaces the default (level, target, service).
    #[arg(long = "label-field", env = "LOG_SHIPPER_LABEL_FIELDS", value_name = "FIELD", value_delimiter = ',')]
    pub label_fields: Vec<String>,
    /// JSON field sent as structured metadata; repeatable; replaces the default
    /// (request_id, run_id, trace_id).
    #[arg(long = "metadata-field", env = "LOG_SHIPPER_METADATA_FIELDS", value_name = "FIELD", value_delimiter = ',')]
    pub metadata_fields: Vec<String>,
    /// Send no structured metadata (for Loki without allow_structured_metadata).
    #[arg(long, env = "LOG_SHIPPER_NO_METADATA")]
    pub no_metadata: bool,
    /// JSON field holding the line's time (RFC 3339 or epoch number); repeatable, first
    /// present wins; replaces the default (timestamp, time, ts).
    #[arg(long = "timestamp-field", env = "LOG_SHIPPER_TIMESTAMP_FIELDS", value_name = "FIELD", value_delimiter = ',')]
    pub timestamp_fields: Vec<String>,
    /// HTTP basic auth user.
    #[arg(long, env = "LOG_SHIPPER_BASIC_AUTH_USER", value_name = "USER")]
    pub basic_auth_user: Option<String>,
    /// HTTP basic auth password (prefer the file or the environment variable).
    #[arg(long, env = "LOG_SHIPPER_BASIC_AUTH_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub basic_auth_password: Option<String>,
    /// File holding the basic auth password.
    #[arg(long, env = "LOG_SHIPPER_BASIC_AUTH_PASSWORD_FILE", value_name = "FILE")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// Bearer token (prefer the file or the environment variable).
    #[arg(long, env = "LOG_SHIPPER_BEARER_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub bearer_token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, env = "LOG_SHIPPER_BEARER_TOKEN_FILE", value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for https Loki URLs.
    #[arg(long, env = "LOG_SHIPPER_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Accept any TLS certificate (testing only).
    #[arg(long, env = "LOG_SHIPPER_TLS_INSECURE_SKIP_VERIFY")]
    pub tls_insecure_skip_verify: bool,
    /// Send a batch once it holds this much line data (e.g. 1MiB) [default: 1MiB].
    #[arg(long, env = "LOG_SHIPPER_BATCH_BYTES", value_name = "SIZE", value_parser = parse_size)]
    pub batch_bytes: Option<usize>,
    /// Send a batch once its first line waited this long [default: 1s].
    #[arg(long, env = "LOG_SHIPPER_BATCH_WAIT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub batch_wait: Option<Duration>,
    /// Batches queued behind the one in flight; reading pauses when full [default: 2].
    #[arg(long, env = "LOG_SHIPPER_MAX_PENDING_BATCHES", value_name = "N")]
    pub max_pending_batches: Option<usize>,
    /// Truncate longer lines [default: 256KiB, Loki's max_line_size].
    #[arg(long, env = "LOG_SHIPPER_MAX_LINE_BYTES", value_name = "SIZE", value_parser = parse_size)]
    pub max_line_bytes: Option<usize>,
    /// Send an unterminated last line after this long [default: 5s].
    #[arg(long, env = "LOG_SHIPPER_PARTIAL_LINE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub partial_line_timeout: Option<Duration>,
    /// Stat-poll and glob re-scan period, besides inotify wake-ups [default: 1s].
    #[arg(long, env = "LOG_SHIPPER_POLL_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Close a file that left the globs after it sat idle at its end this long [default: 5s].
    #[arg(long, env = "LOG_SHIPPER_RELEASE_AFTER", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub release_after: Option<Duration>,
    /// Timeout of one push request [default: 10s].
    #[arg(long, env = "LOG_SHIPPER_PUSH_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub push_timeout: Option<Duration>,
    /// First retry delay [default: 500ms].
    #[arg(long, env = "LOG_SHIPPER_MIN_BACKOFF", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub min_backoff: Option<Duration>,
    /// Retry delay cap, also the cap on Retry-After [default: 5m].
    #[arg(long, env = "LOG_SHIPPER_MAX_BACKOFF", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_backoff: Option<Duration>,
    /// Attempts per batch before dropping it; 0 retries forever [default: 0].
    #[arg(long, env = "LOG_SHIPPER_MAX_RETRIES", value_name = "N")]
    pub max_retries: Option<u32>,
    /// On SIGTERM, keep delivering what was read for at most this long [default: 10s].
    #[arg(long, env = "LOG_SHIPPER_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Fsync the positions file this often (it is replaced atomically after every
    /// acknowledged batch regardless, which survives a crash of the process); 0 fsyncs
    /// every write [default: 1s].
    #[arg(long, env = "LOG_SHIPPER_POSITIONS_SYNC_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub positions_sync_interval: Option<Duration>,
    /// Serve Prometheus metrics on this address at /metrics (e.g. 0.0.0.0:9080).
    #[arg(long, env = "LOG_SHIPPER_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log filter (tracing EnvFilter syntax) for the shipper's own logs.
    #[arg(long, env = "LOG_SHIPPER_LOG", value_name = "FILTER", default_value = "info")]
    pub log: String,
    /// Validate the configuration, print it (secrets redacted) and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The TOML file (every key optional; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    loki_url: Option<String>,
    tenant: Option<String>,
    positions: Option<PathBuf>,
    from_beginning: Option<bool>,
    encoding: Option<Encoding>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    label_fields: Option<Vec<String>>,
    metadata_fields: Option<Vec<String>>,
    timestamp_fields: Option<Vec<String>>,
    batch_bytes: Option<Size>,
    #[serde(default, with = "humantime_serde")]
    batch_wait: Option<Duration>,
    max_pending_batches: Option<usize>,
    max_line_bytes: Option<Size>,
    #[serde(default, with = "humantime_serde")]
    partial_line_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    release_after: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    push_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    min_backoff: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_backoff: Option<Duration>,
    max_retries: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    shutdown_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    positions_sync_interval: Option<Duration>,
    metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    inputs: Vec<FileInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    basic_user: Option<String>,
    basic_password: Option<String>,
    basic_password_file: Option<PathBuf>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca_file: Option<PathBuf>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInput {
    paths: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A byte size in TOML: an integer, or a string like `"1MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(usize),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<usize, String> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(s) => parse_size(s),
        }
    }
}

/// Parses `1048576`, `512KiB`, `1MiB`, `1MB` (1,000,000), `64k` (1024-based).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("{s:?} is not a size (examples: 1048576, 512KiB, 1MiB)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB, GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

fn cfg_err(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// Loki's label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !n.starts_with("__")
}

fn parse_label(kv: &str) -> Result<(String, String), Error> {
    let (k, v) = kv.split_once('=').ok_or_else(|| cfg_err(format!("label {kv:?} is not of the form name=value")))?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

fn read_secret(path: &Path, what: &str) -> Result<String, Error> {
    let s = std::fs::read_to_string(path).map_err(|e| cfg_err(format!("{what} file {}: {e}", path.display())))?;
    let s = s.trim_end_matches(['\n', '\r']).to_owned();
    if s.is_empty() {
        return Err(cfg_err(format!("{what} file {} is empty", path.display())));
    }
    Ok(s)
}

impl Cli {
    /// Merges the flags with the `--config` file and validates the result.
    pub fn into_config(self) -> Result<Config, Error> {
        let file = match &self.config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| cfg_err(format!("config file {}: {e}", p.display())))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| cfg_err(format!("config file {}: {e}", p.display())))?
            }
            None => FileConfig::default(),
        };

        let mut inputs: Vec<Input> =
            file.inputs.into_iter().map(|i| Input { paths: i.paths, exclude: i.exclude, labels: i.labels }).collect();
        if !self.paths.is_empty() {
            inputs.push(Input { paths: self.paths, exclude: Vec::new(), labels: BTreeMap::new() });
        }
        if !self.exclude.is_empty() {
            for i in &mut inputs {
                i.exclude.extend(self.exclude.iter().cloned());
            }
        }

        let mut labels = file.labels;
        for kv in &self.labels {
            let (k, v) = parse_label(kv)?;
            labels.insert(k, v);
        }

        let list = |cli: Vec<String>, file: Option<Vec<String>>, default: &[&str]| {
            if !cli.is_empty() {
                cli
            } else {
                file.unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
            }
        };
        let mut metadata_fields = list(self.metadata_fields, file.metadata_fields, DEFAULT_METADATA_FIELDS);
        if self.no_metadata {
            metadata_fields.clear();
        }

        let size = |cli: Option<usize>, file: Option<Size>, default: usize, what: &str| -> Result<usize, Error> {
            match (cli, file) {
                (Some(n), _) => Ok(n),
                (None, Some(s)) => s.bytes().map_err(|e| cfg_err(format!("{what}: {e}"))),
                (None, None) => Ok(default),
            }
        };

        let fa = file.auth;
        let user = self.basic_auth_user.or(fa.basic_user);
        let password = match (self.basic_auth_password, self.basic_auth_password_file) {
            (Some(p), _) => Some(p),
            (None, Some(f)) => Some(read_secret(&f, "basic auth password")?),
            (None, None) => match (fa.basic_password, fa.basic_password_file) {
                (Some(p), _) => Some(p),
                (None, Some(f)) => Some(read_secret(&f, "basic auth password")?),
                (None, None) => None,
            },
        };
        let token = match (self.bearer_token, self.bearer_token_file) {
            (Some(t), _) => Some(t),
            (None, Some(f)) => Some(read_secret(&f, "bearer token")?),
            (None, None) => match (fa.bearer_token, fa.bearer_token_file) {
                (Some(t), _) => Some(t),
                (None, Some(f)) => Some(read_secret(&f, "bearer token")?),
                (None, None) => None,
            },
        };
        let auth = match (user, password, token) {
            (None, None, None) => Auth::None,
            (Some(user), Some(password), None) => Auth::Basic { user, password },
            (None, None, Some(t)) => Auth::Bearer(t),
            (Some(_), None, None) => return Err(cfg_err("basic auth user given without a password")),
            (None, Some(_), None) => return Err(cfg_err("basic auth password given without a user")),
            (_, _, Some(_)) => return Err(cfg_err("choose basic auth or a bearer token, not both")),
        };

        let loki = self.loki_url.or(file.loki_url).ok_or_else(|| cfg_err("--loki-url is required"))?;
        let cfg = Config {
            inputs,
            loki_url: parse_loki_url(&loki)?,
            tenant: self.tenant.or(file.tenant),
            auth,
            tls_ca_file: self.tls_ca_file.or(file.tls.ca_file),
            tls_insecure_skip_verify: self.tls_insecure_skip_verify || file.tls.insecure_skip_verify.unwrap_or(false),
            positions: self.positions.or(file.positions).ok_or_else(|| cfg_err("--positions is required"))?,
            from_beginning: self.from_beginning || file.from_beginning.unwrap_or(false),
            encoding: self.encoding.or(file.encoding).unwrap_or(Encoding::Protobuf),
            labels,
            label_fields: list(self.label_fields, file.label_fields, DEFAULT_LABEL_FIELDS),
            metadata_fields,
            timestamp_fields: list(self.timestamp_fields, file.timestamp_fields, DEFAULT_TIMESTAMP_FIELDS),
            batch_bytes: size(self.batch_bytes, file.batch_bytes, 1 << 20, "batch_bytes")?,
            batch_wait: self.batch_wait.or(file.batch_wait).unwrap_or(Duration::from_secs(1)),
            max_pending_batches: self.max_pending_batches.or(file.max_pending_batches).unwrap_or(2),
            max_line_bytes: size(self.max_line_bytes, file.max_line_bytes, DEFAULT_MAX_LINE_BYTES, "max_line_bytes")?,
            partial_line_timeout: self
                .partial_line_timeout
                .or(file.partial_line_timeout)
                .unwrap_or(Duration::from_secs(5)),
            poll_interval: self.poll_interval.or(file.poll_interval).unwrap_or(Duration::from_secs(1)),
            release_after: self.release_after.or(file.release_after).unwrap_or(Duration::from_secs(5)),
            push_timeout: self.push_timeout.or(file.push_timeout).unwrap_or(Duration::from_secs(10)),
            min_backoff: self.min_backoff.or(file.min_backoff).unwrap_or(Duration::from_millis(500)),
            max_backoff: self.max_backoff.or(file.max_backoff).unwrap_or(Duration::from_secs(300)),
            max_retries: self.max_retries.or(file.max_retries).unwrap_or(0),
            shutdown_timeout: self.shutdown_timeout.or(file.shutdown_timeout).unwrap_or(Duration::from_secs(10)),
            positions_sync_interval: self
                .positions_sync_interval
                .or(file.positions_sync_interval)
                .unwrap_or(Duration::from_secs(1)),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Accepts a full push URL or a base URL (`http://loki:3100` → `.../loki/api/v1/push`).
pub fn parse_loki_url(s: &str) -> Result<reqwest::Url, Error> {
    let mut url = reqwest::Url::parse(s).map_err(|e| cfg_err(format!("loki URL {s:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(cfg_err(format!("loki URL {s:?} must be http or https")));
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/loki/api/v1/push");
    }
    Ok(url)
}

impl Config {
    /// A configuration with defaults for everything but the essentials (for embedding and
    /// tests).
    pub fn new(paths: Vec<String>, loki_url: &str, positions: PathBuf) -> Result<Config, Error> {
        let mut args = vec!["log-shipper".to_owned(), "--loki-url".into(), loki_url.into(), "--positions".into()];
        args.push(positions.to_string_lossy().into_owned());
        for p in paths {
            args.push("--path".into());
            args.push(p);
        }
        Cli::try_parse_from(args).map_err(|e| cfg_err(e.to_string()))?.into_config()
    }

    /// Checks everything that can be checked without touching files or the network.
    pub fn validate(&self) -> Result<(), Error> {
        if self.inputs.iter().all(|i| i.paths.is_empty()) {
            return Err(cfg_err("nothing to tail: give --path GLOB or [[inputs]] in the config file"));
        }
        for i in &self.inputs {
            for g in i.paths.iter().chain(&i.exclude) {
                globset::Glob::new(g).map_err(|e| cfg_err(format!("glob {g:?}: {e}")))?;
            }
        }
        for (k, v) in self.labels.iter().chain(self.inputs.iter().flat_map(|i| i.labels.iter())) {
            if !valid_label_name(k) {
                return Err(cfg_err(format!(
                    "label name {k:?} is not valid in Loki (letters, digits, _; not starting with a digit or __)"
                )));
            }
            if v.is_empty() {
                return Err(cfg_err(format!("label {k:?} has an empty value (Loki drops such labels)")));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in self.label_fields.iter().chain(&self.metadata_fields) {
            if !seen.insert(f) {
                return Err(cfg_err(format!("field {f:?} is listed twice among label and metadata fields")));
            }
        }
        for f in &self.label_fields {
            if !valid_label_name(f) {
                return Err(cfg_err(format!("label field {f:?} is not a valid Loki label name")));
            }
            if self.metadata_fields.contains(f) {
                return Err(cfg_err(format!("field {f:?} cannot be both a label and structured metadata")));
            }
        }
        for f in &self.metadata_fields {
            if !valid_label_name(f) {
                return Err(cfg_err(format!("metadata field {f:?} is not a valid structured-metadata name")));
            }
        }
        if self.batch_bytes == 0 || self.batch_bytes > 64 << 20 {
            return Err(cfg_err("batch_bytes must be between 1 byte and 64MiB"));
        }
        if self.max_line_bytes == 0 {
            return Err(cfg_err("max_line_bytes must be at least 1"));
        }
        if self.max_pending_batches == 0 {
            return Err(cfg_err("max_pending_batches must be at least 1"));
        }
        if self.min_backoff.is_zero() || self.min_backoff > self.max_backoff {
            return Err(cfg_err("min_backoff must be above zero and at most max_backoff"));
        }
        for (name, d) in [
            ("batch_wait", self.batch_wait),
            ("poll_interval", self.poll_interval),
            ("push_timeout", self.push_timeout),
        ] {
            if d.is_zero() {
                return Err(cfg_err(format!("{name} must be above zero")));
            }
        }
        if self.positions.as_os_str().is_empty() || self.positions.file_name().is_none() {
            return Err(cfg_err("--positions must name a file"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Config, Error> {
        let mut v = vec!["log-shipper"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map_err(|e| Error::Config(e.to_string()))?.into_config()
    }

    const BASE: &[&str] = &["--path", "/var/log/*.log", "--loki-url", "http://loki:3100", "--positions", "/tmp/p.json"];

    #[test]
    fn minimal_flags_and_defaults() {
        let c = cli(BASE).unwrap();
        assert_eq!(c.loki_url.as_str(), "http://loki:3100/loki/api/v1/push");
        assert_eq!(c.encoding, Encoding::Protobuf);
        assert_eq!(c.batch_bytes, 1 << 20);
        assert_eq!(c.max_line_bytes, 256 * 1024);
        assert_eq!(c.timestamp_fields, ["timestamp", "time", "ts"]);
        assert_eq!(c.label_fields, ["level", "target", "service"]);
        assert_eq!(c.metadata_fields, ["request_id", "run_id", "trace_id"]);
        assert_eq!(c.max_retries, 0, "unlimited retries by default");
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            r#"
loki_url = "https://loki.example/loki/api/v1/push"
positions = "/data/pos.json"
batch_bytes = "256KiB"
batch_wait = "250ms"
encoding = "json-gzip"
labels = { job = "helpdesk", namespace = "campus" }
[auth]
bearer_token = "t0k"
[[inputs]]
paths = ["/logs/server.log*"]
exclude = ["*.gz"]
labels = { app = "server" }
"#,
        )
        .unwrap();
        let c = cli(&["--config", f.to_str().unwrap(), "--label", "pod=p-0", "--batch-wait", "2s"]).unwrap();
        assert_eq!(c.batch_bytes, 256 * 1024);
        assert_eq!(c.batch_wait, Duration::from_secs(2), "the flag wins");
        assert_eq!(c.encoding, Encoding::JsonGzip);
        assert_eq!(c.auth, Auth::Bearer("t0k".into()));
        assert_eq!(c.labels.len(), 3);
        assert_eq!(c.inputs[0].labels["app"], "server");
        assert!(!format!("{c:?}").contains("t0k"), "secrets are redacted in Debug");
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        let cases: &[(&[&str], &str)] = &[
            (&["--loki-url", "http://l", "--positions", "/p"], "nothing to tail"),
            (&["--path", "/x", "--positions", "/p"], "--loki-url is required"),
            (&["--path", "/x", "--loki-url", "ftp://l", "--positions", "/p"], "http or https"),
            (&["--path", "/x/[", "--loki-url", "http://l", "--positions", "/p"], "glob"),
            (&["--path", "/x", "--loki-url", "http://l", "--positions", "/p", "--label", "1bad=x"], "label name"),
            (&["--path", "/x", "--loki-url", "http://l", "--positions", "/p", "--label", "nokv"], "name=value"),
            (&["--path", "/x", "--loki-url", "http://l", "--positions", "/p", "--label-field", "request_id"], "twice"),
            (
                &["--path", "/x", "--loki-url", "http://l", "--positions", "/p", "--basic-auth-user", "u"],
                "without a password",
            ),
            (&["--path", "/x", "--loki-url", "http://l", "--positions", "/p", "--batch-bytes", "0"], "batch_bytes"),
            (&["--path", "/x", "--loki-url", "http://l", "--positions", "/p", "--min-backoff", "1h"], "min_backoff"),
        ];
        for (args, want) in cases {
            let err = cli(args).expect_err(want).to_string();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "loki_ulr = \"http://l\"\n").unwrap();
        let err = cli(&["--config", f.to_str().unwrap()]).unwrap_err().to_string();
        assert!(err.contains("loki_ulr"), "{err}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("").is_err());
    }
}
