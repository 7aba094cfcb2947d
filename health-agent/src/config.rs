//! Configuration: the TOML file, the command-line layer over it, and the resolved [`Config`].
//!
//! Precedence for every setting: command-line flag (or its `HEALTH_AGENT_*` variable), then
//! the config file, then the built-in default. Probe settings layer per target: a target in
//! the file takes its own fields, then the file's `[defaults]`; a target given with
//! `--target` (and each built-in default target) takes the probe flags, then its built-in
//! fields, then the file's `[defaults]`. A layer that sets any body condition replaces the
//! body conditions of the layers below it rather than adding to them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;

use crate::check::{BodyCheck, StatusSet};
use crate::Error;

/// The helpdesk server's address on its own machine, as the server's defaults have it.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8000";
/// Per-attempt timeout when none is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts when none is set.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Probes in flight at once when no limit is set.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Size of the active log file before it is rotated, like the kubelet's 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Files kept, the active one included, like the kubelet's 5.
pub const DEFAULT_MAX_FILES: u32 = 5;
/// The smallest `max_bytes` accepted. Every line the agent writes is shorter than this:
/// names (128 characters, at most 512 bytes escaped), URLs (2048 bytes), methods (32),
/// error texts (1024 characters, at most 6 KiB escaped) and the fixed fields stay under
/// 10 KiB, so a line always fits in an empty file and the caps hold exactly.
pub const MIN_MAX_BYTES: u64 = 16 * 1024;
/// Upper bound on `max_files`, to keep the rename chain of a rotation short.
pub const MAX_MAX_FILES: u32 = 1000;
/// Longest target name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest HTTP method accepted (custom methods are tokens of any length otherwise).
pub const MAX_METHOD_LEN: usize = 32;
/// Most retries accepted per target.
pub const MAX_RETRIES: u32 = 100;

/// One target, resolved and validated.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique name: the `target` field of each log line.
    pub name: String,
    /// `http` or `https` URL.
    pub url: Url,
    /// HTTP method (default `GET`).
    pub method: Method,
    /// Extra request headers.
    pub headers: HeaderMap,
    /// Acceptable status codes (default 2xx).
    pub expect_status: StatusSet,
    /// Latency bound for a passing probe; `None` means no bound.
    pub max_latency: Option<Duration>,
    /// Body conditions, all of which must hold.
    pub body: Vec<BodyCheck>,
    /// Time allowed for one attempt: connect, request, and reading the whole answer.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay: Duration,
}

/// Size-based rotation of the log: the caps, all of which hold at every moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The active file never grows beyond this many bytes.
    pub max_bytes: u64,
    /// Files kept, the active one included (`probes.log`, `probes.log.1`, ...).
    pub max_files: u32,
    /// All kept files together never hold more than this many bytes.
    pub max_total_bytes: u64,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: DEFAULT_MAX_BYTES,
            max_files: DEFAULT_MAX_FILES,
            max_total_bytes: DEFAULT_MAX_BYTES * u64::from(DEFAULT_MAX_FILES),
        }
    }
}

impl Rotation {
    /// Checks the caps against each other and the minimum line room.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_bytes < MIN_MAX_BYTES {
            return Err(Error::Config(format!(
                "max_bytes is {} bytes; it must be at least {MIN_MAX_BYTES} so that any line fits",
                self.max_bytes
            )));
        }
        if !(1..=MAX_MAX_FILES).contains(&self.max_files) {
            return Err(Error::Config(format!("max_files must be 1 to {MAX_MAX_FILES}, not {}", self.max_files)));
        }
        if self.max_total_bytes < self.max_bytes {
            return Err(Error::Config(format!(
                "max_total_bytes ({}) must be at least max_bytes ({})",
                self.max_total_bytes, self.max_bytes
            )));
        }
        Ok(())
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The targets, in the order given.
    pub targets: Vec<Target>,
    /// The log file (rotated files sit beside it as `<log>.1`, `<log>.2`, ...).
    pub log: PathBuf,
    /// Rotation caps.
    pub rotation: Rotation,
    /// Probes in flight at once.
    pub concurrency: usize,
}

/// Probe settings of one layer (a file target, the file's `[defaults]`, or the flags).
/// Every field is optional; a missing one falls through to the next layer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    /// Target name (targets only).
    pub name: Option<String>,
    /// Target URL (targets only).
    pub url: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Expected statuses: `200`, `"200-299"`, `"2xx"`, `"200,204"` or a list of those.
    pub expect_status: Option<StatusSpec>,
    /// Latency bound, e.g. `"500ms"`.
    #[serde(default, with = "humantime_serde")]
    pub max_latency: Option<Duration>,
    /// The body must contain this text.
    pub body_contains: Option<String>,
    /// The body must match this regular expression.
    pub body_regex: Option<String>,
    /// The body must be JSON in which this RFC 6901 pointer resolves.
    pub json_pointer: Option<String>,
    /// ... to this value (needs `json_pointer`).
    pub json_equals: Option<serde_json::Value>,
    /// Per-attempt timeout, e.g. `"2s"`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Further attempts after a failure.
    pub retries: Option<u32>,
    /// Pause between attempts.
    #[serde(default, with = "humantime_serde")]
    pub retry_delay: Option<Duration>,
}

impl ProbeSettings {
    fn has_body_condition(&self) -> bool {
        self.body_contains.is_some()
            || self.body_regex.is_some()
            || self.json_pointer.is_some()
            || self.json_equals.is_some()
    }

    /// `self` over `lower`, field by field; body conditions replace as a group.
    fn over(&self, lower: &ProbeSettings) -> ProbeSettings {
        let body_from = if self.has_body_condition() { self } else { lower };
        ProbeSettings {
            name: self.name.clone().or_else(|| lower.name.clone()),
            url: self.url.clone().or_else(|| lower.url.clone()),
            method: self.method.clone().or_else(|| lower.method.clone()),
            headers: self.headers.clone().or_else(|| lower.headers.clone()),
            expect_status: self.expect_status.clone().or_else(|| lower.expect_status.clone()),
            max_latency: self.max_latency.or(lower.max_latency),
            body_contains: body_from.body_contains.clone(),
            body_regex: body_from.body_regex.clone(),
            json_pointer: body_from.json_pointer.clone(),
            json_equals: body_from.json_equals.clone(),
            timeout: self.timeout.or(lower.timeout),
            retries: self.retries.or(lower.retries),
            retry_delay: self.retry_delay.or(lower.retry_delay),
        }
    }
}

/// Expected statuses as written in TOML: a number, a string, or a list of either.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// `expect_status = 200`
    Code(u16),
    /// `expect_status = "200-299,304"`
    Text(String),
    /// `expect_status = [200, "3xx"]`
    List(Vec<StatusItem>),
}

/// One item of a [`StatusSpec::List`].
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusItem {
    /// A code.
    Code(u16),
    /// A code, range, class or comma list.
    Text(String),
}

impl StatusSpec {
    fn to_set(&self) -> Result<StatusSet, String> {
        let item = |i: &StatusItem| match i {
            StatusItem::Code(c) => StatusSet::parse(&c.to_string()),
            StatusItem::Text(t) => StatusSet::parse(t),
        };
        match self {
            StatusSpec::Code(c) => StatusSet::parse(&c.to_string()),
            StatusSpec::Text(t) => StatusSet::parse(t),
            StatusSpec::List(items) => StatusSet::union(items.iter().map(item).collect::<Result<Vec<_>, _>>()?),
        }
    }
}

/// A byte size: an integer, or a string such as `"10MiB"`, `"512 KiB"`, `"1GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Text(t) => parse_size(&t).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `123`, `64KiB`, `10 MiB`, `1GiB`, `5MB` (decimal units are powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a size such as 10MiB or 65536"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("`{text}`: unknown unit (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{text}` is too large"))
}

/// Rotation settings of one layer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationSettings {
    /// Active file size cap.
    pub max_bytes: Option<Size>,
    /// File count cap, the active file included.
    pub max_files: Option<u32>,
    /// Total size cap; defaults to `max_bytes * max_files`.
    pub max_total_bytes: Option<Size>,
}

/// The config file.
///
/// ```toml
/// log = "/var/log/health/probes.log"
/// base_url = "http://helpdesk:8000"   # for the built-in default targets only
///
/// [rotation]
/// max_bytes = "10MiB"
/// max_files = 5
///
/// [defaults]
/// timeout = "2s"
/// retries = 1
///
/// [[target]]
/// name = "readiness"
/// url = "http://helpdesk:8000/api/v1/health"
/// expect_status = 200
/// json_pointer = "/status"
/// json_equals = "ready"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The log file.
    pub log: Option<PathBuf>,
    /// Base URL of the helpdesk server for the built-in targets.
    pub base_url: Option<String>,
    /// Probes in flight at once.
    pub concurrency: Option<usize>,
    /// Rotation caps.
    #[serde(default)]
    pub rotation: RotationSettings,
    /// Probe settings for every target that does not set them.
    #[serde(default)]
    pub defaults: ProbeSettings,
    /// The targets (`[[target]]` tables).
    #[serde(default, rename = "target")]
    pub targets: Vec<ProbeSettings>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read the config file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
    }
}

/// What the command line (and its environment variables) say, before resolution.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The parsed config file, if one was given.
    pub file: Option<FileConfig>,
    /// `--target` values: `URL` or `NAME=URL`.
    pub targets: Vec<String>,
    /// Probe flags: they apply to the `--target` targets and the built-in default targets.
    pub settings: ProbeSettings,
    /// `--base-url`.
    pub base_url: Option<String>,
    /// `--log`.
    pub log: Option<PathBuf>,
    /// `--max-bytes`, `--max-files`, `--max-total-bytes`.
    pub rotation: RotationSettings,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
}

/// The built-in targets: the helpdesk server's liveness and readiness endpoints.
pub fn default_targets(base_url: &str) -> Vec<ProbeSettings> {
    let base = base_url.trim_end_matches('/');
    let target = |name: &str, path: &str, status: &str| ProbeSettings {
        name: Some(name.into()),
        url: Some(format!("{base}{path}")),
        expect_status: Some(StatusSpec::Code(200)),
        json_pointer: Some("/status".into()),
        json_equals: Some(serde_json::Value::String(status.into())),
        ..ProbeSettings::default()
    };
    vec![target("liveness", "/health", "ok"), target("readiness", "/api/v1/health", "ready")]
}

impl Config {
    /// Resolves the layers into a validated configuration.
    pub fn resolve(sources: Sources) -> Result<Config, Error> {
        let file = sources.file.unwrap_or_default();
        if file.defaults.name.is_some() || file.defaults.url.is_some() {
            return Err(Error::Config("[defaults] cannot set `name` or `url`; put them in a [[target]]".into()));
        }
        let mut layered: Vec<ProbeSettings> = file.targets.iter().map(|t| t.over(&file.defaults)).collect();
        for spec in &sources.targets {
            let (name, url) = match spec.split_once('=') {
                // A name never contains `:` or `/`; a URL's query may contain `=`.
                Some((name, url)) if !name.contains([':', '/']) => (Some(name.to_string()), url.to_string()),
                _ => (None, spec.clone()),
            };
            let own = ProbeSettings { name, url: Some(url), ..ProbeSettings::default() };
            layered.push(sources.settings.over(&own).over(&file.defaults));
        }
        if layered.is_empty() {
            let base = sources.base_url.or(file.base_url).unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
            for builtin in default_targets(&base) {
                layered.push(sources.settings.over(&builtin).over(&file.defaults));
            }
        }

        let mut targets = Vec::with_capacity(layered.len());
        let mut names = HashSet::new();
        for (i, s) in layered.iter().enumerate() {
            let t = build_target(s).map_err(|e| {
                let which = s.name.as_deref().or(s.url.as_deref()).unwrap_or("");
                Error::Config(format!("target {} ({which}): {e}", i + 1))
            })?;
            if !names.insert(t.name.clone()) {
                return Err(Error::Config(format!(
                    "two targets are named {:?}; give each a unique name (NAME=URL on the command line)",
                    t.name
                )));
            }
            targets.push(t);
        }

        let log = sources.log.or(file.log).ok_or_else(|| {
            Error::Config("no log file: pass --log FILE, set HEALTH_AGENT_LOG, or set `log` in the config file".into())
        })?;
        let max_bytes = sources.rotation.max_bytes.or(file.rotation.max_bytes).map_or(DEFAULT_MAX_BYTES, |s| s.0);
        let max_files = sources.rotation.max_files.or(file.rotation.max_files).unwrap_or(DEFAULT_MAX_FILES);
        let max_total_bytes = sources
            .rotation
            .max_total_bytes
            .or(file.rotation.max_total_bytes)
            .map_or(max_bytes.saturating_mul(u64::from(max_files)), |s| s.0);
        let rotation = Rotation { max_bytes, max_files, max_total_bytes };
        rotation.validate()?;
        let concurrency = sources.concurrency.or(file.concurrency).unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        Ok(Config { targets, log, rotation, concurrency })
    }
}

fn build_target(s: &ProbeSettings) -> Result<Target, String> {
    let raw_url = s.url.as_deref().ok_or("no `url`")?;
    let url = Url::parse(raw_url).map_err(|e| format!("`{raw_url}` is not a URL: {e}"))?;
    // The URL as written to the log (percent-encoded) is what must stay bounded.
    if url.as_str().len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{raw_url}` is not an http:// or https:// URL with a host"));
    }
    let name = match &s.name {
        Some(n) => n.clone(),
        None => default_name(&url),
    };
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(format!("the name {name:?} must be 1 to {MAX_NAME_LEN} characters without control characters"));
    }
    let method = match &s.method {
        Some(m) if m.trim().len() <= MAX_METHOD_LEN => Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{m}` is not an HTTP method"))?,
        Some(m) => return Err(format!("`{m}` is not an HTTP method (at most {MAX_METHOD_LEN} characters)")),
        None => Method::GET,
    };
    let mut headers = HeaderMap::new();
    for (k, v) in s.headers.iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("`{k}` is not a header name"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("the value of header `{k}` is not valid"))?;
        headers.append(name, value);
    }
    let expect_status = match &s.expect_status {
        Some(spec) => spec.to_set().map_err(|e| format!("expect_status: {e}"))?,
        None => StatusSet::success(),
    };
    let mut body = Vec::new();
    if let Some(text) = &s.body_contains {
        body.push(BodyCheck::Contains(text.clone()));
    }
    if let Some(re) = &s.body_regex {
        body.push(BodyCheck::Regex(Regex::new(re).map_err(|e| format!("body_regex: {e}"))?));
    }
    match (&s.json_pointer, &s.json_equals) {
        (Some(p), expected) => {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err(format!("json_pointer `{p}` must be empty or start with `/` (RFC 6901)"));
            }
            body.push(BodyCheck::Json { pointer: p.clone(), expected: expected.clone() });
        }
        (None, Some(_)) => return Err("json_equals needs json_pointer".into()),
        (None, None) => {}
    }
    let timeout = s.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err("timeout must be longer than zero".into());
    }
    let retries = s.retries.unwrap_or(0);
    if retries > MAX_RETRIES {
        return Err(format!("retries must be at most {MAX_RETRIES}"));
    }
    Ok(Target {
        name,
        url,
        method,
        headers,
        expect_status,
        max_latency: s.max_latency,
        body,
        timeout,
        retries,
        retry_delay: s.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
    })
}

/// `host:port/path` of a URL, for a target given without a name.
fn default_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let mut name = match url.port() {
        Some(p) => format!("{host}:{p}{}", url.path()),
        None => format!("{host}{}", url.path()),
    };
    if let Some(q) = url.query() {
        name.push('?');
        name.push_str(q);
    }
    name.chars().take(MAX_NAME_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(log: &str) -> Sources {
        Sources { log: Some(log.into()), ..Sources::default() }
    }

    #[test]
    fn no_targets_means_the_two_helpdesk_endpoints() {
        let c = Config::resolve(sources("x.log")).unwrap();
        let urls: Vec<_> = c.targets.iter().map(|t| (t.name.as_str(), t.url.as_str())).collect();
        assert_eq!(
            urls,
            [("liveness", "http://127.0.0.1:8000/health"), ("readiness", "http://127.0.0.1:8000/api/v1/health")]
        );
        assert_eq!(c.rotation, Rotation::default());
        assert!(c.targets[1].expect_status.contains(200) && !c.targets[1].expect_status.contains(503));
    }

    #[test]
    fn base_url_moves_the_default_targets() {
        let c = Config::resolve(Sources { base_url: Some("http://h:9/".into()), ..sources("x") }).unwrap();
        assert_eq!(c.targets[0].url.as_str(), "http://h:9/health");
    }

    #[test]
    fn command_line_targets_take_names_and_flags() {
        let s = Sources {
            targets: vec!["api=http://a/x?y=1".into(), "http://b:81/p?q=2".into()],
            settings: ProbeSettings { retries: Some(2), body_contains: Some("ok".into()), ..Default::default() },
            ..sources("x")
        };
        let c = Config::resolve(s).unwrap();
        assert_eq!(c.targets[0].name, "api");
        assert_eq!(c.targets[0].url.as_str(), "http://a/x?y=1");
        assert_eq!(c.targets[1].name, "b:81/p?q=2");
        assert!(c.targets.iter().all(|t| t.retries == 2 && t.body.len() == 1));
    }

    #[test]
    fn file_targets_layer_over_defaults_and_body_conditions_replace() {
        let file: FileConfig = toml::from_str(
            r#"
            log = "probes.log"
            [rotation]
            max_bytes = "64KiB"
            max_files = 3
            [defaults]
            timeout = "2s"
            body_contains = "ok"
            expect_status = [200, "3xx"]
            [[target]]
            url = "http://a/"
            [[target]]
            name = "b"
            url = "http://b/"
            timeout = "300ms"
            json_pointer = "/status"
            json_equals = "ready"
            "#,
        )
        .unwrap();
        let c = Config::resolve(Sources { file: Some(file), ..Sources::default() }).unwrap();
        assert_eq!(c.log, PathBuf::from("probes.log"));
        assert_eq!(c.rotation, Rotation { max_bytes: 65536, max_files: 3, max_total_bytes: 3 * 65536 });
        let (a, b) = (&c.targets[0], &c.targets[1]);
        assert_eq!((a.timeout, b.timeout), (Duration::from_secs(2), Duration::from_millis(300)));
        assert!(matches!(a.body[..], [BodyCheck::Contains(_)]));
        assert!(matches!(b.body[..], [BodyCheck::Json { .. }]), "the target's JSON check replaces the default");
        assert_eq!(a.expect_status.to_string(), "200,3xx");
    }

    #[test]
    fn mistakes_are_configuration_errors() {
        let bad_file = |text: &str| toml::from_str::<FileConfig>(text).map_err(|e| e.to_string());
        assert!(bad_file("[[target]]\nurl = \"http://a\"\nexpect_staus = 200").unwrap_err().contains("expect_staus"));
        assert!(bad_file("[rotation]\nmax_bytes = \"10 parsecs\"").unwrap_err().contains("unknown unit"));

        let resolve = |s: Sources| Config::resolve(s).unwrap_err().to_string();
        let t = |spec: &str| Sources { targets: vec![spec.into()], ..sources("x") };
        assert!(resolve(t("ftp://a/")).contains("http://"));
        assert!(resolve(t("not a url")).contains("not a URL"));
        assert!(resolve(Sources { targets: vec!["http://a/".into(), "http://a/".into()], ..sources("x") })
            .contains("two targets are named"));
        assert!(resolve(Sources { log: None, ..Sources::default() }).contains("no log file"));
        let with = |settings: ProbeSettings| Sources { settings, ..t("http://a/") };
        assert!(
            resolve(with(ProbeSettings { body_regex: Some("(".into()), ..Default::default() })).contains("body_regex")
        );
        assert!(resolve(with(ProbeSettings { json_equals: Some(1.into()), ..Default::default() }))
            .contains("needs json_pointer"));
        assert!(
            resolve(with(ProbeSettings { method: Some("GE T".into()), ..Default::default() })).contains("HTTP method")
        );
        assert!(
            resolve(with(ProbeSettings { method: Some("X".repeat(33)), ..Default::default() })).contains("at most 32")
        );
        assert!(resolve(t(&format!("http://a/{}x", " ".repeat(700)))).contains("longer than 2048 bytes"));
        assert!(
            resolve(with(ProbeSettings { timeout: Some(Duration::ZERO), ..Default::default() })).contains("timeout")
        );
        let rot = |max_bytes, max_files, total: Option<u64>| Sources {
            rotation: RotationSettings {
                max_bytes: Some(Size(max_bytes)),
                max_files: Some(max_files),
                max_total_bytes: total.map(Size),
            },
            ..sources("x")
        };
        assert!(resolve(rot(1000, 5, None)).contains("at least 16384"));
        assert!(resolve(rot(MIN_MAX_BYTES, 0, None)).contains("max_files"));
        assert!(resolve(rot(MIN_MAX_BYTES * 2, 5, Some(MIN_MAX_BYTES))).contains("max_total_bytes"));
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("10 MiB"), Ok(10 << 20));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
