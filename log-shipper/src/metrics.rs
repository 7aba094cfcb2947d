//! The shipper's own Prometheus metrics and the optional listener serving them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::Error;

/// Counters and gauges; cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    /// Lines read from files (including blank lines, which are not shipped).
    pub lines_read: IntCounter,
    /// Bytes read from files.
    pub bytes_read: IntCounter,
    /// Lines acknowledged by Loki.
    pub lines_sent: IntCounter,
    /// Line bytes acknowledged by Loki.
    pub bytes_sent: IntCounter,
    /// Lines dropped, by reason (`rejected` for a 4xx, `too_large` for a one-line 413,
    /// `retries_exhausted`).
    pub lines_dropped: IntCounterVec,
    /// Batches dropped, by reason.
    pub batches_dropped: IntCounterVec,
    /// Lines cut at `max_line_bytes`.
    pub lines_truncated: IntCounter,
    /// Retried push attempts, by reason (`429`, `5xx`, `network`, `timeout`).
    pub retries: IntCounterVec,
    /// Push requests by HTTP status (`error` when no answer came).
    pub requests: IntCounterVec,
    /// Batches split after a 413.
    pub batch_splits: IntCounter,
    /// Seconds from a batch's first attempt to its acknowledgement.
    pub batch_latency: Histogram,
    /// Per tailed file: bytes in the file not yet acknowledged by Loki.
    pub file_lag: IntGaugeVec,
    /// Files open for tailing.
    pub files_open: IntGauge,
    /// Successful positions-file writes.
    pub positions_saves: IntCounter,
    /// Failed positions-file writes.
    pub positions_errors: IntCounter,
    /// Rotations followed, by kind (`rename`, `truncate`, `copy`).
    pub rotations: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Metrics, Error> {
        Self::build().map_err(|e| Error::Internal(format!("metrics: {e}")))
    }

    fn build() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let batch_latency = Histogram::with_opts(
            HistogramOpts::new(
                "log_shipper_batch_duration_seconds",
                "Seconds from a batch's first push attempt to its acknowledgement, retries included",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]),
        )?;
        r.register(Box::new(batch_latency.clone()))?;
        let file_lag = IntGaugeVec::new(
            Opts::new("log_shipper_file_lag_bytes", "Bytes of a tailed file not yet acknowledged by Loki"),
            &["path"],
        )?;
        r.register(Box::new(file_lag.clone()))?;
        let files_open = IntGauge::new("log_shipper_files_open", "Files open for tailing")?;
        r.register(Box::new(files_open.clone()))?;
        Ok(Metrics {
            lines_read: counter(&r, "log_shipper_lines_read_total", "Lines read from files")?,
            bytes_read: counter(&r, "log_shipper_bytes_read_total", "Bytes read from files")?,
            lines_sent: counter(&r, "log_shipper_lines_sent_total", "Lines acknowledged by Loki")?,
            bytes_sent: counter(&r, "log_shipper_bytes_sent_total", "Line bytes acknowledged by Loki")?,
            lines_dropped: counter_vec(&r, "log_shipper_lines_dropped_total", "Lines dropped, by reason", "reason")?,
            batches_dropped: counter_vec(
                &r,
                "log_shipper_batches_dropped_total",
                "Batches dropped, by reason",
                "reason",
            )?,
            lines_truncated: counter(&r, "log_shipper_lines_truncated_total", "Lines cut at max_line_bytes")?,
            retries: counter_vec(&r, "log_shipper_push_retries_total", "Push attempts retried, by reason", "reason")?,
            requests: counter_vec(&r, "log_shipper_push_requests_total", "Push requests by HTTP status", "status")?,
            batch_splits: counter(&r, "log_shipper_batch_splits_total", "Batches split in two after a 413")?,
            batch_latency,
            file_lag,
            files_open,
            positions_saves: counter(&r, "log_shipper_positions_saves_total", "Positions file writes")?,
            positions_errors: counter(&r, "log_shipper_positions_errors_total", "Failed positions file writes")?,
            rotations: counter_vec(&r, "log_shipper_rotations_total", "Rotations followed, by kind", "kind")?,
            registry: r,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Binds the metrics listener (errors surface before the shipper starts).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Metrics { addr, source })
}

/// Serves `GET /metrics` (and 404 for anything else) until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(metrics.render())))
                    } else {
                        hyper::Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
