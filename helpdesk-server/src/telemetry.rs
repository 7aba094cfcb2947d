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

/// Installs the JSON log subscriber: stdout, plus `log_file` (appending) when given.
pub fn init_logging(filter: &str, log_file: Option<&std::path::Path>) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .map_err(|e| format!("log_filter: {e}"))?;
    let json = || fmt::layer().json().flatten_event(true).with_current_span(false).with_span_list(false);
    let mut layers = vec![json().with_writer(std::io::stdout).boxed()];
    if let Some(path) = log_file {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("log_file {}: {e}", path.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("log_file {}: {e}", path.display()))?;
        layers.push(json().with_writer(std::sync::Mutex::new(f)).boxed());
    }
    tracing_subscriber::registry().with(filter).with(layers).try_init().map_err(|e| format!("logging: {e}"))
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
