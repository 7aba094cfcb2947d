//! The default targets against a real helpdesk server (in-process, over loopback HTTP):
//! liveness and readiness pass while it serves and fail once it has stopped.

#![allow(clippy::unwrap_used)] // Helpers outside #[test] functions unwrap too.

mod common;

use std::time::Duration;

use common::{records_of, text};
use health_agent::check::Condition;
use health_agent::config::Sources;
use health_agent::Config;

async fn start_server(dir: &std::path::Path) -> helpdesk_server::Running {
    let figment = helpdesk_server::config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0))
        .merge(("data_dir", dir.join("data")));
    helpdesk_server::spawn(figment).await.unwrap()
}

async fn once(args: &[&str]) -> std::process::Output {
    let std_cmd = common::agent(args);
    tokio::process::Command::from(std_cmd).output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_targets_check_a_real_helpdesk_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path()).await;
    let base = server.base_url();
    let log = dir.path().join("probes.log");

    // Through the library: both built-in targets, with their JSON conditions, pass.
    let config =
        Config::resolve(Sources { base_url: Some(base.clone()), log: Some(log.clone()), ..Sources::default() })
            .unwrap();
    let run = health_agent::run_once(&config).await.unwrap();
    assert_eq!(run.exit_code(), 0, "{run:#?}");
    let names: Vec<_> = run.results.iter().map(|r| (r.target.as_str(), r.status)).collect();
    assert_eq!(names, [("liveness", Some(200)), ("readiness", Some(200))]);

    // Through the binary, as a CronJob runs it.
    let out = once(&["once", "--base-url", &base, "--log", log.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 of 2 targets ok"), "{stdout}");

    // Readiness really reads the answer: a condition the server does not meet fails.
    let out = once(&[
        "once",
        "--log",
        log.to_str().unwrap(),
        "--target",
        &format!("readiness={base}/api/v1/health"),
        "--json-pointer",
        "/durability",
        "--json-equals",
        "relaxed",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"JSON /durability is "durable", expected "relaxed""#));

    server.stop().await.unwrap();
    let out = once(&["once", "--base-url", &base, "--log", log.to_str().unwrap(), "--timeout", "2s"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let records = records_of(&log);
    assert_eq!(records.len(), 2 + 2 + 1 + 2);
    let last_two = &records[records.len() - 2..];
    for r in last_two {
        assert!(!r.ok && r.status.is_none(), "{r:?}");
        assert_eq!(r.failed, Some(Condition::Connect), "{r:?}");
    }
    let first_ok = &records[0];
    assert!(
        first_ok.ok && first_ok.connect_ms.is_some() && first_ok.latency_ms < Duration::from_secs(5).as_millis() as f64
    );
}
