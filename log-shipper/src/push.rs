//! Delivery: one batch at a time to `POST /loki/api/v1/push`, with the retry rules that
//! keep every line.
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | acknowledged: positions move past the batch and are saved before the next push |
//! | 429, 5xx, timeout, connection error | retried after capped, jittered exponential backoff (`Retry-After` honoured, capped at `max_backoff`), forever unless `max_retries` is set |
//! | 413 | the batch is split in two (by read order) and each half delivered in turn; a single line still too large is dropped |
//! | other 4xx | dropped, counted and logged, never retried (a 400 can be a partial success: Loki stored the valid lines) |
//!
//! Dropped batches are acknowledged too: re-reading them would only be refused again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tokio::sync::watch;

use crate::batch::Batch;
use crate::config::{Auth, Config, Encoding};
use crate::metrics::Metrics;
use crate::positions::Ledger;
use crate::proto;
use crate::Error;

/// Sends batches and applies their acknowledgements to the ledger.
pub struct Pusher {
    client: reqwest::Client,
    url: reqwest::Url,
    encoding: Encoding,
    tenant: Option<String>,
    auth: Auth,
    min_backoff: Duration,
    max_backoff: Duration,
    max_retries: u32,
    /// Every positions write fsynced (interval 0).
    durable_saves: bool,
    metrics: Arc<Metrics>,
    ledger: Arc<Ledger>,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every line was acknowledged or definitively dropped.
    Done,
    /// The shutdown deadline passed first; the batch's lines were not acknowledged.
    Deadline,
}

enum Attempt {
    Ok,
    Split,
    Drop(&'static str),
    Retry { reason: &'static str, after: Option<Duration> },
}

/// Sleeps until the shutdown deadline (forever while none is set).
pub async fn until_deadline(rx: &mut watch::Receiver<Option<Instant>>) {
    loop {
        let d = *rx.borrow_and_update();
        if let Some(d) = d {
            tokio::time::sleep_until(d.into()).await;
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = when.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The n-th retry delay (n ≥ 1): `min · 2^(n-1)` capped at `max`, with the upper half
/// jittered so that many shippers do not retry in step.
pub fn backoff(min: Duration, max: Duration, n: u32) -> Duration {
    let exp = min.saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(30))).min(max);
    let half = exp / 2;
    half + Duration::from_nanos(rand::thread_rng().gen_range(0..=half.as_nanos().min(u64::MAX as u128) as u64))
}

impl Pusher {
    /// Builds the HTTP client (rustls; the system trust store plus `tls_ca_file`).
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, ledger: Arc<Ledger>) -> Result<Pusher, Error> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.push_timeout)
            .connect_timeout(cfg.push_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("log-shipper/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(2)
            .danger_accept_invalid_certs(cfg.tls_insecure_skip_verify);
        if let Some(ca) = &cfg.tls_ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::Client(format!("CA file {}: {e}", ca.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Client(format!("CA file {}: {e}", ca.display())))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(Pusher {
            client: b.build().map_err(|e| Error::Client(e.to_string()))?,
            url: cfg.loki_url.clone(),
            encoding: cfg.encoding,
            tenant: cfg.tenant.clone(),
            auth: cfg.auth.clone(),
            min_backoff: cfg.min_backoff,
            max_backoff: cfg.max_backoff,
            max_retries: cfg.max_retries,
            durable_saves: cfg.positions_sync_interval.is_zero(),
            metrics,
            ledger,
        })
    }

    async fn attempt(&self, body: Bytes) -> Attempt {
        let mut req = self.client.post(self.url.clone()).body(body);
        req = match self.encoding {
            Encoding::Protobuf => req.header("Content-Type", "application/x-protobuf"),
            Encoding::JsonGzip => req.header("Content-Type", "application/json").header("Content-Encoding", "gzip"),
            Encoding::Json => req.header("Content-Type", "application/json"),
        };
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.requests.with_label_values(&["error"]).inc();
                let reason = if e.is_timeout() { "timeout" } else { "network" };
                tracing::warn!(error = %e, reason, "push failed; will retry");
                return Attempt::Retry { reason, after: None };
            }
        };
        let status = resp.status();
        self.metrics.requests.with_label_values(&[status.as_str()]).inc();
        if status.is_success() {
            return Attempt::Ok;
        }
        let after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(1024).collect();
        match status.as_u16() {
            413 => {
                tracing::warn!(status = 413, body = %body.trim(), "batch too large for Loki; splitting it");
                Attempt::Split
            }
            429 => {
                tracing::warn!(status = 429, body = %body.trim(), "Loki is rate limiting; will retry");
                Attempt::Retry { reason: "429", after }
            }
            s if s >= 500 => {
                tracing::warn!(status = s, body = %body.trim(), "Loki failed; will retry");
                Attempt::Retry { reason: "5xx", after }
            }
            s => {
                let hint = match s {
                    401 | 403 => " (check --tenant and the credentials)",
                    400 => " (Loki may have stored the valid lines of the batch: not retried)",
                    _ => "",
                };
                tracing::error!(status = s, body = %body.trim(), "Loki refused a batch; dropping it{hint}");
                Attempt::Drop("rejected")
            }
        }
    }

    /// Delivers `batch`, retrying as the module docs say, until it is acknowledged or
    /// dropped, or until the shutdown deadline in `deadline` passes.
    pub async fn deliver(&self, batch: Batch, deadline: &mut watch::Receiver<Option<Instant>>) -> Delivery {
        let mut queue = VecDeque::from([batch]);
        while let Some(mut b) = queue.pop_front() {
            if b.lines() == 0 {
                // Only blank lines: nothing to send, but their bytes are done with.
                self.acknowledge(&b).await;
                continue;
            }
            // Usually encoded by the reader thread already, overlapping the previous push.
            let encoded = match b.body.take() {
                Some(body) => Ok(body),
                None => proto::encode(&mut b, self.encoding),
            };
            let body = match encoded {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(error = %e, lines = b.lines(), "could not encode a batch; dropping it");
                    self.dropped(&b, "encoding").await;
                    continue;
                }
            };
            let started = Instant::now();
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let outcome = tokio::select! {
                    a = self.attempt(body.clone()) => a,
                    _ = until_deadline(deadline) => {
                        let lines: usize = std::iter::once(&b).chain(queue.iter()).map(Batch::lines).sum();
                        tracing::warn!(lines, "shutdown deadline passed during a push");
                        return Delivery::Deadline;
                    }
                };
                match outcome {
                    Attempt::Ok => {
                        self.metrics.lines_sent.inc_by(b.lines() as u64);
                        self.metrics.bytes_sent.inc_by(b.line_bytes() as u64);
                        self.metrics.batch_latency.observe(started.elapsed().as_secs_f64());
                        self.acknowledge(&b).await;
                        break;
                    }
                    Attempt::Split if b.lines() > 1 => {
                        self.metrics.batch_splits.inc();
                        let (first, second) = b.split();
                        queue.push_front(second);
                        queue.push_front(first);
                        break;
                    }
                    Attempt::Split => {
                        tracing::error!("a single line is larger than Loki accepts; dropping it");
                        self.dropped(&b, "too_large").await;
                        break;
                    }
                    Attempt::Drop(reason) => {
                        self.dropped(&b, reason).await;
                        break;
                    }
                    Attempt::Retry { reason, after } => {
                        if self.max_retries > 0 && attempts >= self.max_retries {
                            tracing::error!(attempts, lines = b.lines(), "giving up on a batch after max_retries");
                            self.dropped(&b, "retries_exhausted").await;
                            break;
                        }
                        self.metrics.retries.with_label_values(&[reason]).inc();
                        let wait = match after {
                            Some(a) => a.min(self.max_backoff),
                            None => backoff(self.min_backoff, self.max_backoff, attempts),
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = until_deadline(deadline) => return Delivery::Deadline,
                        }
                    }
                }
            }
        }
        Delivery::Done
    }

    async fn dropped(&self, b: &Batch, reason: &'static str) {
        self.metrics.batches_dropped.with_label_values(&[reason]).inc();
        self.metrics.lines_dropped.with_label_values(&[reason]).inc_by(b.lines() as u64);
        self.acknowledge(b).await;
    }

    /// Moves the positions past `b` and saves them before anything else is sent, so a
    /// crash re-sends at most the batch in flight (fsynced only on the sync timer, unless
    /// `positions_sync_interval` is 0).
    async fn acknowledge(&self, b: &Batch) {
        self.ledger.ack(&b.offsets());
        let (ledger, durable) = (self.ledger.clone(), self.durable_saves);
        let res = tokio::task::spawn_blocking(move || ledger.save(durable)).await;
        match res {
            Ok(Ok(true)) => self.metrics.positions_saves.inc(),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                self.metrics.positions_errors.inc();
                tracing::error!(error = %e, "could not write the positions file; lines may be sent again after a restart");
            }
            Err(e) => {
                self.metrics.positions_errors.inc();
                tracing::error!(error = %e, "positions writer failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date means now");
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for n in 1..=40 {
            let d = backoff(min, max, n);
            let cap = min.saturating_mul(1 << (n - 1).min(20)).min(max);
            assert!(d >= cap / 2 && d <= cap, "attempt {n}: {d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
    }
}
