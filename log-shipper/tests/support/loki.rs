//! A test Loki: a real HTTP server on 127.0.0.1 that decodes Loki's push wire formats and
//! answers the way Loki's distributor does, written from Loki's documented behaviour:
//!
//! - `POST /loki/api/v1/push` with `Content-Type: application/x-protobuf`: the body is a
//!   snappy **block** (Go's `snappy.Decode`), else `400 snappy: corrupt input`; inside, a
//!   `logproto.PushRequest` (decoded here with this file's own message definitions, written
//!   from `pkg/push/push.proto`, not the shipper's).
//! - `Content-Type: application/json` (optionally `Content-Encoding: gzip`):
//!   `{"streams":[{"stream":{..},"values":[["<ns>","<line>",{metadata}?]]}]}`.
//! - `204` on success; with tenancy on, `401 no org id` without `X-Scope-OrgID`; `413` when
//!   the decompressed message is over the size limit; `400` with partial acceptance when
//!   some entries are invalid (here: lines containing [`REJECT`]) — the valid entries are
//!   stored and the answer lists the ignored ones, like Loki's "entry ... ignored" errors.
//! - Injected faults: any status (429/5xx) with an optional `Retry-After`, a delay before
//!   answering, a dropped connection (no answer), or refused connections (listener closed).
//!
//! It records every accepted entry, in order, with the push it came in.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

/// Lines containing this are refused by the receiver (as Loki refuses invalid entries).
pub const REJECT: &str = "REJECT-ME";

/// `logproto` messages, from Loki's `pkg/push/push.proto`.
pub mod logproto {
    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
    /// `PushRequest { repeated StreamAdapter streams = 1; string format = 2; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
        #[prost(string, tag = "2")]
        pub format: String,
    }
    /// `StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    /// `LabelPairAdapter { string name = 1; string value = 2; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    /// `EntryAdapter { Timestamp timestamp = 1; string line = 2;
    /// repeated LabelPairAdapter structuredMetadata = 3; repeated LabelPairAdapter parsed = 4; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<LabelPairAdapter>,
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Decode, store, 204 (or 400 partial / 413 / 401 as Loki would).
    Accept,
    /// Answer this status without storing (e.g. 429, 500, 503), with `Retry-After` secs.
    Status(u16, Option<u64>),
    /// Wait this long, then behave as `Accept`.
    Delay(Duration),
    /// Read the request, then close the connection without an answer.
    Drop,
    /// Close the listener: connections are refused (RST) until the mode changes.
    Refuse,
}

/// One accepted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Stream labels (shared by the stream's entries).
    pub labels: Arc<BTreeMap<String, String>>,
    /// Nanoseconds since the epoch.
    pub ts_ns: i64,
    /// The line.
    pub line: String,
    /// Structured metadata.
    pub metadata: BTreeMap<String, String>,
}

/// One push request that reached the decoding stage.
#[derive(Debug, Clone)]
pub struct Push {
    /// Answer given.
    pub status: u16,
    /// `X-Scope-OrgID`.
    pub tenant: Option<String>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// `Content-Type` + `Content-Encoding`.
    pub encoding: String,
    /// Entries stored from this push (all of them for a 204, the valid ones for a 400).
    pub accepted: Vec<Entry>,
    /// Entries in the request.
    pub entries_in_request: usize,
    /// Entries stored (counted even when `discard` is set).
    pub accepted_count: usize,
    /// Bytes of line text stored.
    pub accepted_bytes: usize,
    /// When the request's body had been read (before decoding).
    pub received_at: Instant,
    /// When the answer was decided.
    pub answered_at: Instant,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    /// Answers for the next requests, before `mode` applies.
    script: VecDeque<Mode>,
    pushes: Vec<Push>,
    /// Every request seen, by the answer given (`drop` for dropped connections).
    answers: BTreeMap<String, u64>,
}

/// Options fixed at start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Require `X-Scope-OrgID` (Loki with `auth_enabled: true`).
    pub require_tenant: bool,
    /// Largest decompressed message accepted (Loki: `max_recv_msg_size`).
    pub max_message_bytes: Option<usize>,
    /// Decode and count, but keep no entries (for benchmarks).
    pub discard: bool,
}

/// The running receiver. Dropping it stops it.
pub struct Loki {
    addr: SocketAddr,
    shared: Arc<(Mutex<State>, Condvar)>,
    opts: Options,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    refuse_changed: Arc<tokio::sync::Notify>,
}

impl Loki {
    /// Starts a receiver that accepts everything.
    pub fn start() -> Loki {
        Loki::with(Options::default())
    }

    /// Starts a receiver with options.
    pub fn with(opts: Options) -> Loki {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let shared = Arc::new((Mutex::new(State { mode: Some(Mode::Accept), ..State::default() }), Condvar::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let refuse_changed = Arc::new(tokio::sync::Notify::new());
        let (sh, o, rc) = (shared.clone(), opts.clone(), refuse_changed.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                tokio::select! {
                    _ = serve(listener, addr, sh, o, rc) => {}
                    _ = stop_rx => {}
                }
            });
        });
        Loki { addr, shared, opts, stop: Some(stop_tx), thread: Some(thread), refuse_changed }
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The push URL.
    pub fn push_url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how every following request is answered.
    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = Some(mode);
        self.refuse_changed.notify_waiters();
    }

    /// Answers the next requests with `modes`, in order, then falls back to the mode.
    pub fn script(&self, modes: impl IntoIterator<Item = Mode>) {
        self.state().script.extend(modes);
    }

    /// Every push that was decoded (or answered with an injected status).
    pub fn pushes(&self) -> Vec<Push> {
        self.state().pushes.clone()
    }

    /// Number of pushes seen so far.
    pub fn push_count(&self) -> usize {
        self.state().pushes.len()
    }

    /// Requests seen, by answer (`"204"`, `"429"`, `"drop"`, ...).
    pub fn answers(&self) -> BTreeMap<String, u64> {
        self.state().answers.clone()
    }

    /// Every accepted entry, in arrival order.
    pub fn entries(&self) -> Vec<Entry> {
        self.state().pushes.iter().flat_map(|p| p.accepted.iter().cloned()).collect()
    }

    /// Every accepted line, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.entries().into_iter().map(|e| e.line).collect()
    }

    /// Waits until `cond` holds over the pushes, or panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, mut cond: impl FnMut(&[Push]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut g = self.state();
        loop {
            if cond(&g.pushes) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                let n: usize = g.pushes.iter().map(|p| p.accepted_count).sum();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {} pushes, {n} entries, answers {:?}",
                    g.pushes.len(),
                    g.answers
                );
            }
            g = self.shared.1.wait_timeout(g, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits until at least `n` entries were accepted.
    pub fn wait_entries(&self, n: usize, timeout: Duration) {
        self.wait_for(timeout, &format!("{n} entries"), |p| p.iter().map(|p| p.accepted_count).sum::<usize>() >= n);
    }

    /// Entries and line bytes accepted so far.
    pub fn accepted(&self) -> (usize, usize) {
        let g = self.state();
        g.pushes.iter().fold((0, 0), |(n, b), p| (n + p.accepted_count, b + p.accepted_bytes))
    }
}

impl Drop for Loki {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Shared = Arc<(Mutex<State>, Condvar)>;

async fn serve(
    mut listener: tokio::net::TcpListener,
    addr: SocketAddr,
    shared: Shared,
    opts: Options,
    refuse_changed: Arc<tokio::sync::Notify>,
) {
    let refusing = |s: &Shared| s.0.lock().unwrap_or_else(|p| p.into_inner()).mode == Some(Mode::Refuse);
    loop {
        if refusing(&shared) {
            drop(listener);
            while refusing(&shared) {
                let notified = refuse_changed.notified();
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = refuse_changed.notified() => continue,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (shared, opts) = (shared.clone(), opts.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (shared, opts) = (shared.clone(), opts.clone());
                async move { handle(req, shared, opts).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: u16, body: &str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    shared: Shared,
    opts: Options,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let mode = {
        let mut g = shared.0.lock().unwrap_or_else(|p| p.into_inner());
        g.script.pop_front().or_else(|| g.mode.clone()).unwrap_or(Mode::Accept)
    };
    let record_answer = |answer: &str| {
        let mut g = shared.0.lock().unwrap_or_else(|p| p.into_inner());
        *g.answers.entry(answer.to_owned()).or_default() += 1;
    };
    if req.method() != hyper::Method::POST || req.uri().path() != "/loki/api/v1/push" {
        record_answer("404");
        return Ok(reply(404, "404 page not found\n"));
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let tenant = header("x-scope-orgid");
    let authorization = header("authorization");
    let content_type = header("content-type").unwrap_or_default();
    let content_encoding = header("content-encoding").unwrap_or_default();
    let body = req.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
    let received_at = Instant::now();

    match mode {
        Mode::Drop | Mode::Refuse => {
            record_answer("drop");
            // An error from the service makes hyper close the connection unanswered.
            return Err(std::io::Error::other("injected connection drop"));
        }
        Mode::Status(code, retry_after) => {
            let mut r = reply(code, &format!("injected {code}\n"));
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().expect("header value"));
            }
            let mut g = shared.0.lock().unwrap_or_else(|p| p.into_inner());
            *g.answers.entry(code.to_string()).or_default() += 1;
            g.pushes.push(Push {
                status: code,
                tenant,
                authorization,
                encoding: format!("{content_type} {content_encoding}").trim().to_owned(),
                accepted: vec![],
                entries_in_request: 0,
                accepted_count: 0,
                accepted_bytes: 0,
                received_at,
                answered_at: Instant::now(),
            });
            shared.1.notify_all();
            return Ok(r);
        }
        Mode::Delay(d) => tokio::time::sleep(d).await,
        Mode::Accept => {}
    }

    let Decision { status, msg, mut accepted, total, counted: (accepted_count, accepted_bytes) } =
        decide(&opts, tenant.as_deref(), &content_type, &content_encoding, &body);
    if opts.discard {
        accepted = Vec::new();
    }
    let mut g = shared.0.lock().unwrap_or_else(|p| p.into_inner());
    *g.answers.entry(status.to_string()).or_default() += 1;
    g.pushes.push(Push {
        status,
        tenant,
        authorization,
        encoding: format!("{content_type} {content_encoding}").trim().to_owned(),
        accepted,
        entries_in_request: total,
        accepted_count,
        accepted_bytes,
        received_at,
        answered_at: Instant::now(),
    });
    shared.1.notify_all();
    Ok(reply(status, &msg))
}

/// What the distributor decided about one push.
struct Decision {
    status: u16,
    msg: String,
    /// Entries stored.
    accepted: Vec<Entry>,
    /// Entries in the request.
    total: usize,
    /// Entries and line bytes stored.
    counted: (usize, usize),
}

impl Decision {
    fn refuse(status: u16, msg: String) -> Decision {
        Decision { status, msg, accepted: vec![], total: 0, counted: (0, 0) }
    }

    fn store(status: u16, msg: String, accepted: Vec<Entry>, total: usize) -> Decision {
        let counted = (accepted.len(), accepted.iter().map(|e| e.line.len()).sum());
        Decision { status, msg, accepted, total, counted }
    }
}

/// Loki's distributor, reduced to its answers.
fn decide(opts: &Options, tenant: Option<&str>, content_type: &str, content_encoding: &str, body: &[u8]) -> Decision {
    if opts.require_tenant && tenant.is_none_or(str::is_empty) {
        return Decision::refuse(401, "no org id\n".into());
    }
    if opts.discard && content_type.starts_with("application/x-protobuf") {
        // Benchmarks: decode fully, count, keep nothing.
        return match decode_protobuf_counting(body, opts.max_message_bytes) {
            Ok(counted) => Decision { status: 204, msg: String::new(), accepted: vec![], total: counted.0, counted },
            Err((status, msg)) => Decision::refuse(status, msg),
        };
    }
    let decoded = match content_type.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "" => decode_protobuf(body, opts.max_message_bytes),
        "application/json" => decode_json(body, content_encoding, opts.max_message_bytes),
        other => Err((415, format!("unsupported content type {other:?}\n"))),
    };
    let entries = match decoded {
        Ok(e) => e,
        Err((code, msg)) => return Decision::refuse(code, msg),
    };
    let total = entries.len();
    let (bad, good): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.line.contains(REJECT));
    if bad.is_empty() {
        Decision::store(204, String::new(), good, total)
    } else {
        let mut msg = String::new();
        for e in &bad {
            let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            msg.push_str(&format!(
                "entry for stream '{{{}}}' has timestamp too old: {}, oldest acceptable timestamp is: ...\n",
                labels.join(", "),
                e.ts_ns
            ));
        }
        msg.push_str(&format!("user 'fake', total ignored: {} out of {total}\n", bad.len()));
        Decision::store(400, msg, good, total)
    }
}

fn too_large(n: usize, max: Option<usize>) -> Result<(), (u16, String)> {
    match max {
        Some(m) if n > m => Err((413, format!("request body too large: {n} bytes, limit: {m} bytes\n"))),
        _ => Ok(()),
    }
}

/// Snappy block then protobuf, as Loki decodes a push (with its size limit and errors).
fn decode_push(body: &[u8], max: Option<usize>) -> Result<logproto::PushRequest, (u16, String)> {
    let len = snap::raw::decompress_len(body).map_err(|_| (400, "snappy: corrupt input\n".to_string()))?;
    too_large(len, max)?;
    let raw =
        snap::raw::Decoder::new().decompress_vec(body).map_err(|_| (400, "snappy: corrupt input\n".to_string()))?;
    prost::Message::decode(raw.as_slice()).map_err(|e| (400, format!("proto: {e}\n")))
}

fn decode_protobuf(body: &[u8], max: Option<usize>) -> Result<Vec<Entry>, (u16, String)> {
    let req = decode_push(body, max)?;
    let mut out = Vec::new();
    for s in req.streams {
        let labels = Arc::new(parse_labels(&s.labels).map_err(|e| (400, format!("{e}\n")))?);
        for e in s.entries {
            let ts = e.timestamp.ok_or((400, "entry without timestamp\n".to_string()))?;
            out.push(Entry {
                labels: labels.clone(),
                ts_ns: ts.seconds * 1_000_000_000 + i64::from(ts.nanos),
                line: e.line,
                metadata: e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect(),
            });
        }
    }
    Ok(out)
}

/// Decodes a protobuf push and returns (entries, line bytes) without keeping them.
fn decode_protobuf_counting(body: &[u8], max: Option<usize>) -> Result<(usize, usize), (u16, String)> {
    let req = decode_push(body, max)?;
    let (mut n, mut bytes) = (0, 0);
    for s in &req.streams {
        parse_labels(&s.labels).map_err(|e| (400, format!("{e}\n")))?;
        n += s.entries.len();
        bytes += s.entries.iter().map(|e| e.line.len()).sum::<usize>();
    }
    Ok((n, bytes))
}

fn decode_json(body: &[u8], encoding: &str, max: Option<usize>) -> Result<Vec<Entry>, (u16, String)> {
    let raw = if encoding.eq_ignore_ascii_case("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body).read_to_end(&mut out).map_err(|e| (400, format!("gzip: {e}\n")))?;
        out
    } else {
        body.to_vec()
    };
    too_large(raw.len(), max)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| (400, format!("json: {e}\n")))?;
    let bad = |m: &str| (400, format!("{m}\n"));
    let mut out = Vec::new();
    for s in v["streams"].as_array().ok_or_else(|| bad("no streams"))? {
        let labels: Arc<BTreeMap<String, String>> = s["stream"]
            .as_object()
            .ok_or_else(|| bad("stream is not an object"))?
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or_else(|| bad("label value not a string"))?.to_owned())))
            .collect::<Result<BTreeMap<_, _>, (u16, String)>>()
            .map(Arc::new)?;
        for val in s["values"].as_array().ok_or_else(|| bad("no values"))? {
            let arr = val.as_array().ok_or_else(|| bad("value is not an array"))?;
            let ts: i64 = arr
                .first()
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bad("timestamp must be a string of nanoseconds"))?;
            let line = arr.get(1).and_then(|l| l.as_str()).ok_or_else(|| bad("line must be a string"))?.to_owned();
            let metadata = match arr.get(2) {
                None => BTreeMap::new(),
                Some(m) => m
                    .as_object()
                    .ok_or_else(|| bad("structured metadata must be an object"))?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
            };
            out.push(Entry { labels: labels.clone(), ts_ns: ts, line, metadata });
        }
    }
    Ok(out)
}

/// Parses `{a="x", b="y\"z"}` (Prometheus label notation with Go string escapes).
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| format!("parse error: labels {s:?} are not in braces"))?;
    let mut out = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')).collect();
        if name.is_empty() || chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(format!("parse error in labels {s:?}"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Err(format!("parse error in labels {s:?}")),
                },
                Some(c) => value.push(c),
                None => return Err(format!("unterminated value in labels {s:?}")),
            }
        }
        out.insert(name, value);
    }
    if out.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    Ok(out)
}
