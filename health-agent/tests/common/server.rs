//! A small HTTP server on 127.0.0.1 that answers with the status, delay and body a test
//! asks for in the query string. Used by the tests and by the benchmark's target servers.
//!
//! Query parameters (all optional):
//! - `status=503` — the status (default 200);
//! - `delay_ms=300` — wait before sending the headers;
//! - `stall_ms=300` — send the headers at once, then wait before sending the body;
//! - `body=text` — the body (percent-decoded; default `ok`);
//! - `json=1` — send the body as `application/json`;
//! - `echo=1` — the body is the method, then each request header as `name: value`;
//! - `fail_first=N&key=K` — the first N requests carrying key K get 503, later ones the
//!   answer asked for (the server counts requests per key; see [`TestServer::hits`]).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};

type Hits = Arc<Mutex<HashMap<String, u32>>>;

/// A running server on its own thread and runtime, so sync and async tests alike can use it.
/// Stops when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Hits,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts one server on 127.0.0.1 with a free port.
    pub fn start() -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let hits: Hits = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let state = hits.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = serve(listener, state) => {}
                    _ = stopped => {}
                }
            });
        });
        TestServer { addr, hits, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT` followed by `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Requests seen with `key=K`.
    pub fn hits(&self, key: &str) -> u32 {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, hits: Hits) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let hits = hits.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let hits = hits.clone();
                async move { Ok::<_, Infallible>(answer(req, &hits).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in req.uri().query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode(k), decode(v));
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(req: Request<Incoming>, hits: &Hits) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let q = query(&req);
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
    let mut status = num("status").and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::OK);
    if let Some(key) = q.get("key") {
        let seen = {
            let mut hits = hits.lock().unwrap();
            let n = hits.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if u64::from(seen) <= num("fail_first").unwrap_or(0) {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    if let Some(ms) = num("delay_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let text = if q.contains_key("echo") {
        let mut t = format!("{}\n", req.method());
        for (k, v) in req.headers() {
            t.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
        }
        t
    } else {
        q.get("body").cloned().unwrap_or_else(|| "ok".into())
    };
    let body = match num("stall_ms") {
        Some(ms) => {
            let chunk = Bytes::from(text);
            let stream = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, Infallible>(Frame::data(chunk))
            });
            BodyExt::boxed_unsync(StreamBody::new(stream.boxed()))
        }
        None => BodyExt::boxed_unsync(Full::new(Bytes::from(text))),
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let content_type = if q.contains_key("json") { "application/json" } else { "text/plain; charset=utf-8" };
    res.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    res
}
