//! Probing: one shared HTTP client, one attempt per connection, retries, concurrent runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Semaphore};

use crate::check::{check_latency, Condition, Failure};
use crate::config::Target;
use crate::Error;

/// At most this much of a body is read; conditions see that much.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The outcome of probing one target (its last attempt).
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// The target's position in the configuration.
    pub index: usize,
    /// The target's name.
    pub target: String,
    /// The URL probed.
    pub url: String,
    /// The HTTP method.
    pub method: String,
    /// When the first attempt started.
    pub started: DateTime<Utc>,
    /// Attempts made.
    pub attempts: u32,
    /// Status of the last attempt, if an answer came.
    pub status: Option<u16>,
    /// Duration of the last attempt, up to the end of the body or the failure.
    pub latency: Duration,
    /// Connection set-up time of the last attempt, when a connection was made.
    pub connect: Option<Duration>,
    /// Why the last attempt failed; `None` when it passed.
    pub failure: Option<Failure>,
}

impl ProbeResult {
    /// Whether the probe passed.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

tokio::task_local! {
    /// Where the connector of the current request reports its set-up time.
    static CONNECT_TIME: Arc<Mutex<Option<Duration>>>;
}

/// Probes targets. Cheap to clone: clones share one HTTP client.
#[derive(Clone)]
pub struct Prober {
    client: reqwest::Client,
}

impl Prober {
    /// Builds the HTTP client: no connection reuse (each attempt opens its own connection,
    /// so a probe sees what a new client sees), no redirects followed (a probe checks the URL
    /// it was given; expect 3xx to accept a redirect), no proxy from the environment.
    pub fn new() -> Result<Prober, Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("health-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .no_proxy()
            .connector_layer(ConnectTiming)
            .build()
            .map_err(|e| Error::Setup(format!("cannot build the HTTP client: {}", error_chain(&e))))?;
        Ok(Prober { client })
    }

    /// Probes one target: up to `1 + retries` attempts, `retry_delay` apart, stopping at the
    /// first that passes.
    pub async fn probe(&self, index: usize, target: &Target) -> ProbeResult {
        let started = Utc::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let a = self.attempt(target).await;
            if a.failure.is_none() || attempts > target.retries {
                return ProbeResult {
                    index,
                    target: target.name.clone(),
                    url: target.url.to_string(),
                    method: target.method.to_string(),
                    started,
                    attempts,
                    status: a.status,
                    latency: a.latency,
                    connect: a.connect,
                    failure: a.failure,
                };
            }
            tokio::time::sleep(target.retry_delay).await;
        }
    }

    async fn attempt(&self, target: &Target) -> Attempt {
        let slot = Arc::new(Mutex::new(None));
        let request = self.client.request(target.method.clone(), target.url.clone()).headers(target.headers.clone());
        let start = Instant::now();
        let exchange = CONNECT_TIME.scope(slot.clone(), async {
            let mut response = request.send().await.map_err(transport_failure)?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| Failure::new(Condition::Request, format!("reading the body: {}", error_chain(&e))))?
            {
                let room = MAX_BODY_BYTES - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, Failure>((status, body, truncated))
        });
        let outcome = tokio::time::timeout(target.timeout, exchange).await;
        let latency = start.elapsed();
        let connect = slot.lock().ok().and_then(|s| *s);
        let (status, failure) = match outcome {
            Err(_) => (
                None,
                Some(Failure::new(
                    Condition::Timeout,
                    format!("no complete answer within {}", humantime::format_duration(target.timeout)),
                )),
            ),
            Ok(Err(failure)) => (None, Some(failure)),
            Ok(Ok((status, body, truncated))) => (Some(status), judge(target, status, &body, truncated, latency).err()),
        };
        Attempt { status, latency, connect, failure }
    }
}

struct Attempt {
    status: Option<u16>,
    latency: Duration,
    connect: Option<Duration>,
    failure: Option<Failure>,
}

/// The conditions in order: status, then each body condition, then the latency bound.
fn judge(target: &Target, status: u16, body: &[u8], truncated: bool, latency: Duration) -> Result<(), Failure> {
    if !target.expect_status.contains(status) {
        return Err(Failure::new(Condition::Status, format!("status {status}, expected {}", target.expect_status)));
    }
    for check in &target.body {
        check.check(body, truncated)?;
    }
    check_latency(latency, target.max_latency)
}

fn transport_failure(e: reqwest::Error) -> Failure {
    let condition = if e.is_connect() {
        Condition::Connect
    } else if e.is_timeout() {
        Condition::Timeout
    } else {
        Condition::Request
    };
    Failure::new(condition, error_chain(&e))
}

/// The causes of an error joined with `: `, without the top line (reqwest's names the URL,
/// which the record has), hyper's generic `client error (...)` wrapper, and repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if parts.last() != Some(&text) && !text.starts_with("client error (") {
            parts.push(text);
        }
        cur = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Probes every target, at most `concurrency` at once, each in its own task (so a slow
/// consumer of the results never delays a measurement). Results arrive in completion
/// order; the channel closes after the last one.
pub fn spawn_probes(prober: &Prober, targets: &[Target], concurrency: usize) -> mpsc::UnboundedReceiver<ProbeResult> {
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    for (index, target) in targets.iter().enumerate() {
        let (prober, target, tx, permits) = (prober.clone(), target.clone(), tx.clone(), permits.clone());
        tokio::spawn(async move {
            // The semaphore is never closed, so acquiring only fails if it were.
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let result = prober.probe(index, &target).await;
            let _ = tx.send(result);
        });
    }
    rx
}

/// A connector layer that times connection set-up (DNS, TCP, TLS) and reports it to the
/// request that asked for the connection, through [`CONNECT_TIME`]. hyper calls the
/// connector from within the request's own future, so the task-local is in scope there;
/// when it is not (a connection started for someone else), nothing is reported.
#[derive(Clone)]
struct ConnectTiming;

impl<S> tower_layer::Layer<S> for ConnectTiming {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner }
    }
}

#[derive(Clone)]
struct Timed<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower_service::Service<R> for Timed<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let slot = CONNECT_TIME.try_with(Arc::clone).ok();
        let start = Instant::now();
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let conn = connecting.await;
            if let (Some(slot), true) = (slot, conn.is_ok()) {
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(start.elapsed());
                }
            }
            conn
        })
    }
}
