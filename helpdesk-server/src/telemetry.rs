//! Observability: Prometheus metrics through OpenTelemetry, JSON logs through tracing, and
//! the fairing that gives every request an id, a log line and its metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use helpdesk_core::{Category, FlushObserver, Helpdesk, Priority, Stats, Status as TicketStatus};
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, Registry, TextEncoder};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

/// Buckets for request latency, in seconds (1 ms .. 10 s).
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets for flush latency, in seconds (50 µs .. 1 s).
const FLUSH_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The meter provider and the instruments the server records into.
pub struct Metrics {
    registry: Registry,
    // Kept alive: dropping the provider stops collection.
    provider: SdkMeterProvider,
    requests: Counter<u64>,
    latency: Histogram<f64>,
}

impl Metrics {
    /// Builds the exporter, provider and request instruments.
    pub fn new() -> Result<Self, String> {
        let registry = Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| format!("prometheus exporter: {e}"))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("helpdesk-server");
        let requests = meter
            .u64_counter("http.server.requests")
            .with_description("HTTP requests served, by method, route template and status")
            .build();
        let latency = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("HTTP request latency, by method, route template and status")
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        Ok(Metrics { registry, provider, requests, latency })
    }

    /// A flush observer feeding the flush-latency histogram.
    pub fn flush_observer(&self) -> FlushObserver {
        let h = self
            .provider
            .meter("helpdesk-server")
            .f64_histogram("helpdesk.db.flush.duration")
            .with_unit("s")
            .with_description("Duration of group-commit flushes to disk")
            .with_boundaries(FLUSH_BUCKETS.to_vec())
            .build();
        FlushObserver::new(move |d: Duration| h.record(d.as_secs_f64(), &[]))
    }

    /// Registers the gauges read from the database at scrape time.
    pub fn observe_database(&self, desk: &Helpdesk) {
        let meter = self.provider.meter("helpdesk-server");
        let d = desk.clone();
        let _tickets = meter
            .u64_observable_gauge("helpdesk.tickets")
            .with_description("Tickets by status, category and priority (one dimension per series)")
            .with_callback(move |obs| {
                let Ok(s) = d.stats() else { return };
                for st in TicketStatus::ALL {
                    obs.observe(s.by_status[st], &[KeyValue::new("status", st.as_str())]);
                }
                for c in Category::ALL {
                    obs.observe(s.by_category[c], &[KeyValue::new("category", c.as_str())]);
                }
                for p in Priority::ALL {
                    obs.observe(s.by_priority[p], &[KeyValue::new("priority", p.as_str())]);
                }
            })
            .build();
        let stats_gauge = |name: &'static str, description: &'static str, read: fn(&Stats) -> u64| {
            let d = desk.clone();
            meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |obs| {
                    if let Ok(s) = d.stats() {
                        obs.observe(read(&s), &[]);
                    }
                })
                .build()
        };
        stats_gauge("helpdesk.tickets.open_backlog", "Unresolved tickets (open, in_progress, waiting)", |s| {
            s.open_backlog
        });
        stats_gauge("helpdesk.sla.breached", "Unresolved tickets past an SLA deadline", |s| s.sla_breached);
        let d = desk.clone();
        let _mttr = meter
            .f64_observable_gauge("helpdesk.tickets.mttr")
            .with_unit("s")
            .with_description("Mean time to resolve over resolved and closed tickets")
            .with_callback(move |obs| {
                if let Ok(Some(m)) = d.stats().map(|s| s.mttr_seconds) {
                    obs.observe(m, &[]);
                }
            })
            .build();
        let d = desk.clone();
        let _size = meter
            .u64_observable_gauge("helpdesk.db.size")
            .with_unit("By")
            .with_description("Size of the database on disk")
            .with_callback(move |obs| {
                if let Ok(n) = d.size_on_disk() {
                    obs.observe(n, &[]);
                }
            })
            .build();
    }

    /// The Prometheus text exposition (reads the database: call off the async threads).
    pub fn render(&self) -> Result<String, String> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).map_err(|e| e.to_string())?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let attrs = [
            KeyValue::new("method", method.to_owned()),
            KeyValue::new("route", route.to_owned()),
            KeyValue::new("status", i64::from(status)),
        ];
        self.requests.add(1, &attrs);
        self.latency.record(elapsed.as_secs_f64(), &attrs);
    }
}

/// Where and how to keep the log file.
#[derive(Debug, Clone, Copy)]
pub struct LogFile<'a> {
    /// The active file.
    pub path: &'a std::path::Path,
    /// Rotate before the file would grow past this many bytes; 0 never rotates.
    pub max_bytes: u64,
    /// Rotated files kept (`<path>.1` is the newest).
    pub keep: u32,
}

/// Installs the JSON log subscriber: stdout, plus the log file (appending, rotated by
/// size) when given.
pub fn init_logging(filter: &str, log_file: Option<LogFile<'_>>) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .map_err(|e| format!("log_filter: {e}"))?;
    let json = || fmt::layer().json().flatten_event(true).with_current_span(false).with_span_list(false);
    let mut layers = vec![json().with_writer(std::io::stdout).boxed()];
    if let Some(log) = log_file {
        let file = RotatingFile::open(log).map_err(|e| format!("log_file {}: {e}", log.path.display()))?;
        layers.push(json().with_writer(std::sync::Mutex::new(file)).boxed());
    }
    tracing_subscriber::registry().with(filter).with(layers).try_init().map_err(|e| format!("logging: {e}"))
}

/// An append-only file rotated by size, by rename then reopen (what log shippers and
/// `logrotate`'s default expect): `log` → `log.1` → `log.2` ..., the oldest deleted. Each
/// event arrives as one `write` of whole lines, so a line never straddles two files.
pub struct RotatingFile {
    path: std::path::PathBuf,
    max_bytes: u64,
    keep: u32,
    file: std::fs::File,
    /// The active file's length, counted by what is written (from its length at open);
    /// after a failed rotation it restarts at 0 (see `write`), so it is what is compared
    /// with `max_bytes`, not always the file's length.
    size: u64,
}

impl RotatingFile {
    /// Opens (creating it and its directory) the active file for appending.
    pub fn open(log: LogFile<'_>) -> std::io::Result<RotatingFile> {
        if let Some(dir) = log.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log.path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { path: log.path.to_owned(), max_bytes: log.max_bytes, keep: log.keep, file, size })
    }

    fn numbered(&self, n: u32) -> std::path::PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        name.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                match std::fs::rename(self.numbered(n), self.numbered(n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl std::io::Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = buf.len() as u64;
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            // A failed rotation keeps appending to the current file: losing log lines
            // would be worse than a file over its cap. The count restarts so the next
            // attempt comes after another `max_bytes`, not on every following line.
            if let Err(e) = self.rotate() {
                eprintln!("helpdesk-server: cannot rotate {}: {e}", self.path.display());
                self.size = 0;
            }
        }
        self.file.write_all(buf)?;
        self.size += len;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Per-request bookkeeping kept in the request's local cache.
pub struct RequestMeta {
    /// The request id (echoed as `X-Request-Id`).
    pub id: String,
    started: Instant,
}

/// Gives each request an id (`X-Request-Id`, accepted when sane, else generated), and on
/// the way out echoes it, logs one access line and records the metrics.
pub struct RequestTelemetry(pub Arc<Metrics>);

fn sane_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[rocket::async_trait]
impl Fairing for RequestTelemetry {
    fn info(&self) -> Info {
        Info { name: "request id, access log and metrics", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let id = match req.headers().get_one("X-Request-Id") {
            Some(v) if sane_request_id(v) => v.to_owned(),
            _ => {
                use rand::Rng;
                format!("{:016x}", rand::thread_rng().gen::<u64>())
            }
        };
        req.local_cache(|| RequestMeta { id, started: Instant::now() });
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let meta = req.local_cache(|| RequestMeta { id: String::new(), started: Instant::now() });
        let elapsed = meta.started.elapsed();
        let route = req.route().map(|r| r.uri.path().to_string()).unwrap_or_else(|| "unmatched".into());
        let status = res.status().code;
        res.set_header(Header::new("X-Request-Id", meta.id.clone()));
        self.0.record(req.method().as_str(), &route, status, elapsed);
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::error!(target: "helpdesk_server::access", request_id = %meta.id, method = %req.method(),
                route = %route, path = %req.uri().path(), status, duration_ms, "request");
        } else {
            tracing::info!(target: "helpdesk_server::access", request_id = %meta.id, method = %req.method(),
                route = %route, path = %req.uri().path(), status, duration_ms, "request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rotates_whole_lines_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/server.log");
        let mut f = RotatingFile::open(LogFile { path: &path, max_bytes: 100, keep: 2 }).unwrap();
        for i in 0..20 {
            // 30-byte lines: three fit in 100 bytes, the fourth rotates.
            f.write_all(format!("{{\"n\":{i:02},\"pad\":\"xxxxxxxxxx\"}}\n").as_bytes()).unwrap();
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
        let numbered = |n: u32| dir.path().join(format!("logs/server.log.{n}"));
        assert!(!numbered(3).exists(), "only two rotated files are kept");
        let (active, one, two) = (read(&path), read(&numbered(1)), read(&numbered(2)));
        for content in [&active, &one, &two] {
            assert!(content.len() <= 100);
            assert!(content.lines().all(|l| l.starts_with("{\"n\":") && l.ends_with('}')), "{content}");
        }
        // Newest last: .2 then .1 then the active file, consecutive and ending at 19.
        let all: Vec<u32> = [two, one, active].concat().lines().map(|l| l[5..7].parse().unwrap()).collect();
        assert_eq!(all, (20 - all.len() as u32..20).collect::<Vec<_>>());
        assert_eq!(all.len(), 8);

        // Reopening continues the active file's size count.
        drop(f);
        let mut f = RotatingFile::open(LogFile { path: &path, max_bytes: 100, keep: 2 }).unwrap();
        f.write_all(&[b'x'; 60]).unwrap();
        assert_eq!(read(&path).len(), 60, "the 60 bytes did not fit: the file rotated first");
    }

    #[test]
    fn a_failed_rotation_keeps_every_line_in_the_active_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        // `server.log.1` is a non-empty directory: renaming onto it fails.
        std::fs::create_dir_all(dir.path().join("server.log.1/x")).unwrap();
        let mut f = RotatingFile::open(LogFile { path: &path, max_bytes: 100, keep: 1 }).unwrap();
        for i in 0..20 {
            f.write_all(format!("line {i:02} .....................\n").as_bytes()).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 20, "nothing lost, all in the active file");
        assert!(dir.path().join("server.log.1/x").is_dir());
    }

    #[test]
    fn after_a_failed_rotation_the_next_attempt_waits_for_another_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        let obstacle = dir.path().join("server.log.1");
        std::fs::create_dir_all(obstacle.join("x")).unwrap();
        let mut f = RotatingFile::open(LogFile { path: &path, max_bytes: 100, keep: 1 }).unwrap();
        let line = [b'x'; 29].iter().chain(b"\n").copied().collect::<Vec<u8>>(); // 30 bytes
        for _ in 0..4 {
            f.write_all(&line).unwrap(); // the 4th line finds 90 + 30 > 100: rotation fails
        }
        // The obstacle goes. The count restarted at the failure (the 4th line: 30 bytes),
        // so the next two lines (60, 90) must not retry; without the restart, every line
        // after the failure would.
        std::fs::remove_dir_all(&obstacle).unwrap();
        for _ in 0..2 {
            f.write_all(&line).unwrap();
        }
        assert!(!obstacle.exists(), "rotation retried before another max_bytes");
        f.write_all(&line).unwrap(); // 90 + 30 > 100 since the failure: retry, and succeed
        assert_eq!(std::fs::read(&obstacle).unwrap().len(), 6 * 30, "the retry rotated the file");
        assert_eq!(std::fs::read(&path).unwrap().len(), 30);
    }
}
