//! The daemon's own metrics in the Prometheus text format, served over HTTP.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus::{Gauge, GaugeVec, IntCounter, Opts, Registry, TextEncoder};

use crate::{Error, RunSummary};

/// The gauges and counters of one daemon.
pub struct Metrics {
    registry: Registry,
    success: GaugeVec,
    duration: GaugeVec,
    status: GaugeVec,
    runs: IntCounter,
    write_errors: IntCounter,
    last_run: Gauge,
}

impl Metrics {
    /// Registers the metrics in a registry of their own.
    pub fn new() -> Result<Metrics, Error> {
        let setup = |e: prometheus::Error| Error::Setup(format!("metrics: {e}"));
        let labels = ["target", "url"];
        let success = GaugeVec::new(
            Opts::new("probe_success", "Whether the target's last probe passed every condition (1) or not (0)."),
            &labels,
        )
        .map_err(setup)?;
        let duration = GaugeVec::new(
            Opts::new("probe_duration_seconds", "Duration of the target's last probe attempt, in seconds."),
            &labels,
        )
        .map_err(setup)?;
        let status = GaugeVec::new(
            Opts::new("probe_http_status_code", "HTTP status of the target's last probe (0 when no answer came)."),
            &labels,
        )
        .map_err(setup)?;
        let runs = IntCounter::new("health_agent_runs_total", "Probe runs completed.").map_err(setup)?;
        let write_errors =
            IntCounter::new("health_agent_log_write_errors_total", "Runs whose results could not all be written.")
                .map_err(setup)?;
        let last_run =
            Gauge::new("health_agent_last_run_timestamp_seconds", "Start of the last completed run (Unix time).")
                .map_err(setup)?;
        let registry = Registry::new();
        for c in [
            Box::new(success.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(status.clone()),
            Box::new(runs.clone()),
            Box::new(write_errors.clone()),
            Box::new(last_run.clone()),
        ] {
            registry.register(c).map_err(setup)?;
        }
        Ok(Metrics { registry, success, duration, status, runs, write_errors, last_run })
    }

    /// Records a completed run.
    pub fn observe(&self, run: &RunSummary) {
        for r in &run.results {
            let labels = [r.target.as_str(), r.url.as_str()];
            self.success.with_label_values(&labels).set(if r.ok() { 1.0 } else { 0.0 });
            self.duration.with_label_values(&labels).set(r.latency.as_secs_f64());
            self.status.with_label_values(&labels).set(f64::from(r.status.unwrap_or(0)));
        }
        self.runs.inc();
        if run.log_error.is_some() {
            self.write_errors.inc();
        }
        self.last_run.set(run.started.timestamp_millis() as f64 / 1000.0);
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        // Encoding gauges and counters into a String does not fail.
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. Each connection is served
/// in its own task; errors of one connection end only that connection.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or a connection reset before accept: back off briefly
                // rather than spin; the listener itself stays usable.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
        res
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            text(StatusCode::OK, metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        }
        (_, "/metrics") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into(), "text/plain; charset=utf-8"),
        _ => text(StatusCode::NOT_FOUND, "health-agent serves /metrics only\n".into(), "text/plain; charset=utf-8"),
    }
}
