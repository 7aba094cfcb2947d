//! Probes against real HTTP servers on 127.0.0.1: every condition type passes and fails,
//! timeouts and retries behave, runs are concurrent.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod common;

use std::time::{Duration, Instant};

use common::server::TestServer;
use health_agent::check::Condition;
use health_agent::config::{ProbeSettings, Sources, StatusSpec};
use health_agent::probe::{ProbeResult, Prober};
use health_agent::Config;

fn config(targets: &[String], settings: ProbeSettings, log: &std::path::Path) -> Config {
    Config::resolve(Sources { targets: targets.to_vec(), settings, log: Some(log.to_path_buf()), ..Sources::default() })
        .unwrap()
}

async fn probe(url: String, settings: ProbeSettings) -> ProbeResult {
    let c = config(&[url], settings, "unused.log".as_ref());
    Prober::new().unwrap().probe(0, &c.targets[0]).await
}

fn failed(r: &ProbeResult) -> Option<Condition> {
    r.failure.as_ref().map(|f| f.condition)
}

#[tokio::test]
async fn status_conditions_pass_and_fail() {
    let s = TestServer::start();
    let ok = probe(s.url("/?status=204"), ProbeSettings::default()).await;
    assert!(ok.ok(), "{ok:?}");
    assert_eq!(ok.status, Some(204));
    assert!(ok.connect.is_some_and(|c| c <= ok.latency), "connect time is measured: {ok:?}");

    let down = probe(s.url("/?status=503"), ProbeSettings::default()).await;
    assert_eq!(failed(&down), Some(Condition::Status));
    assert_eq!(down.status, Some(503));
    assert_eq!(down.failure.unwrap().message, "status 503, expected 2xx");

    let expect =
        |spec: &str| ProbeSettings { expect_status: Some(StatusSpec::Text(spec.into())), ..Default::default() };
    assert!(probe(s.url("/?status=503"), expect("500-503")).await.ok());
    assert!(probe(s.url("/?status=404"), expect("200,404")).await.ok());
    assert!(probe(s.url("/?status=301"), expect("3xx")).await.ok(), "redirects are not followed");
    assert_eq!(failed(&probe(s.url("/?status=200"), expect("404")).await), Some(Condition::Status));
}

#[tokio::test]
async fn body_contains_passes_and_fails() {
    let s = TestServer::start();
    let contains = |t: &str| ProbeSettings { body_contains: Some(t.into()), ..Default::default() };
    assert!(probe(s.url("/?body=all+systems+go"), contains("systems")).await.ok());
    let r = probe(s.url("/?body=degraded"), contains("systems")).await;
    assert_eq!(failed(&r), Some(Condition::BodyContains));
    assert_eq!(r.status, Some(200));
}

#[tokio::test]
async fn body_regex_passes_and_fails() {
    let s = TestServer::start();
    let regex = |t: &str| ProbeSettings { body_regex: Some(t.into()), ..Default::default() };
    assert!(probe(s.url("/?body=uptime%3D42s"), regex(r"^uptime=\d+s$")).await.ok());
    assert_eq!(
        failed(&probe(s.url("/?body=uptime%3D%3Fs"), regex(r"^uptime=\d+s$")).await),
        Some(Condition::BodyRegex)
    );
}

#[tokio::test]
async fn json_pointer_passes_and_fails() {
    let s = TestServer::start();
    let json = |p: &str, v: Option<serde_json::Value>| ProbeSettings {
        json_pointer: Some(p.into()),
        json_equals: v,
        ..Default::default()
    };
    let body = "/?json=1&body=%7B%22status%22%3A%22ready%22%2C%22db%22%3A%7B%22ok%22%3Atrue%7D%7D"; // {"status":"ready","db":{"ok":true}}
    assert!(probe(s.url(body), json("/status", Some("ready".into()))).await.ok());
    assert!(probe(s.url(body), json("/db/ok", Some(true.into()))).await.ok());
    assert!(probe(s.url(body), json("/db", None)).await.ok());

    let wrong = probe(s.url(body), json("/status", Some("down".into()))).await;
    assert_eq!(failed(&wrong), Some(Condition::Json));
    assert_eq!(wrong.failure.unwrap().message, r#"JSON /status is "ready", expected "down""#);
    let missing = probe(s.url(body), json("/uptime", None)).await;
    assert!(missing.failure.unwrap().message.contains("/uptime is not in the body"));
    let not_json = probe(s.url("/?body=%3Chtml%3E"), json("/status", None)).await;
    assert!(not_json.failure.unwrap().message.starts_with("body is not JSON"));
}

#[tokio::test]
async fn latency_bound_passes_and_fails() {
    let s = TestServer::start();
    let bound = |ms| ProbeSettings { max_latency: Some(Duration::from_millis(ms)), ..Default::default() };
    let slow = probe(s.url("/?delay_ms=300"), bound(100)).await;
    assert_eq!(failed(&slow), Some(Condition::Latency));
    assert!(slow.latency >= Duration::from_millis(300), "{slow:?}");
    assert!(slow.failure.unwrap().message.contains("over the 100.0 ms bound"));
    assert!(probe(s.url("/?delay_ms=50"), bound(5_000)).await.ok());
}

#[tokio::test]
async fn a_slow_answer_times_out_at_the_timeout() {
    let s = TestServer::start();
    let timeout = ProbeSettings { timeout: Some(Duration::from_millis(200)), ..Default::default() };
    for path in ["/?delay_ms=3000", "/?stall_ms=3000"] {
        let r = probe(s.url(path), timeout.clone()).await;
        assert_eq!(failed(&r), Some(Condition::Timeout), "{path}: {r:?}");
        assert_eq!(r.status, None, "{path}: no complete answer, no status");
        assert!(r.latency >= Duration::from_millis(200) && r.latency < Duration::from_millis(2000), "{path}: {r:?}");
        assert_eq!(r.failure.unwrap().message, "no complete answer within 200ms");
    }
    // Within the timeout, the stalled body is read and checked.
    let patient = ProbeSettings {
        timeout: Some(Duration::from_secs(5)),
        body_contains: Some("late".into()),
        ..Default::default()
    };
    assert!(probe(s.url("/?stall_ms=100&body=late"), patient).await.ok());
}

#[tokio::test]
async fn retries_stop_at_the_first_pass() {
    let s = TestServer::start();
    let retries =
        |n| ProbeSettings { retries: Some(n), retry_delay: Some(Duration::from_millis(50)), ..Default::default() };

    let start = Instant::now();
    let r = probe(s.url("/?fail_first=2&key=a"), retries(3)).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.attempts, s.hits("a")), (3, 3), "two failures, then a pass, then no more requests");
    assert!(start.elapsed() >= Duration::from_millis(100), "two pauses of 50 ms");

    let r = probe(s.url("/?fail_first=2&key=b"), retries(1)).await;
    assert_eq!(failed(&r), Some(Condition::Status));
    assert_eq!((r.attempts, s.hits("b")), (2, 2));

    let r = probe(s.url("/?key=c"), retries(5)).await;
    assert_eq!((r.attempts, s.hits("c")), (1, 1), "a pass is not retried");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = probe(format!("http://127.0.0.1:{port}/health"), ProbeSettings::default()).await;
    assert_eq!(failed(&r), Some(Condition::Connect), "{r:?}");
    assert!(r.failure.unwrap().message.contains("refused"));
    assert_eq!(r.connect, None);
}

#[tokio::test]
async fn method_and_headers_are_sent() {
    let s = TestServer::start();
    let settings = ProbeSettings {
        method: Some("post".into()),
        headers: Some([("X-Probe".to_string(), "yes".to_string())].into()),
        body_regex: Some(r"(?m)\APOST\n(.*\n)*x-probe: yes\n".into()),
        ..Default::default()
    };
    let r = probe(s.url("/?echo=1"), settings).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.method, "POST");
}

#[tokio::test]
async fn a_run_probes_its_targets_concurrently_and_logs_each() {
    let s = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("probes.log");
    let targets: Vec<String> =
        (0..30).map(|i| format!("t{i:02}={}", s.url(&format!("/?delay_ms=300&n={i}")))).collect();
    let c = config(&targets, ProbeSettings::default(), &log);
    let start = Instant::now();
    let run = health_agent::run_once(&c).await.unwrap();
    let took = start.elapsed();
    assert_eq!(run.exit_code(), 0, "{run:?}");
    assert!(took < Duration::from_secs(3), "30 probes of 300 ms took {took:?}: not concurrent");
    assert_eq!(
        run.results.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(),
        c.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        "results in configuration order"
    );

    let lines = common::records_of(&log);
    assert_eq!(lines.len(), 30);
    assert!(lines.iter().all(|r| r.ok && r.run_id == run.run_id && r.status == Some(200) && r.latency_ms >= 300.0));
}
