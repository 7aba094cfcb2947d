//! The real thing the shipper exists for: a real `helpdesk-server` (in-process, real HTTP
//! on 127.0.0.1) writes its JSON access log to a file with its own logging setup, and the
//! shipper takes those lines to the test Loki with the right labels, structured metadata
//! and timestamps.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod support;

use std::time::Duration;

use support::loki::Loki;
use support::{args, Shipper, PATIENCE};

#[test]
fn the_servers_own_log_lines_arrive_with_level_target_request_id_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/server.log");
    // The server's logging, exactly as `helpdesk-server serve` sets it up with
    // HELPDESK_LOG_FILE (this test binary holds nothing else that logs).
    let file = helpdesk_server::telemetry::LogFile { path: &log, max_bytes: 10 * 1024 * 1024, keep: 4 };
    helpdesk_server::telemetry::init_logging("info,rocket=warn", Some(file)).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = dir.path().join("data");
    let server = rt
        .block_on(helpdesk_server::spawn(
            helpdesk_server::config::figment()
                .merge(("address", "127.0.0.1"))
                .merge(("port", 0))
                .merge(("data_dir", &data)),
        ))
        .unwrap();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let health = client.get(format!("{}/health", server.base_url())).header("X-Request-Id", "probe-1").send().unwrap();
    assert_eq!(health.status(), 200);
    let missing = client
        .get(format!("{}/api/v1/tickets/424242", server.base_url()))
        .bearer_auth(token.trim())
        .header("X-Request-Id", "lookup-2")
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);

    let loki = Loki::start();
    let _s = Shipper::start(
        dir.path(),
        &args(
            &dir.path().join("logs/server.log*"),
            &loki.url(),
            &dir.path().join("pos.json"),
            &["--label", "app=helpdesk"],
        ),
    );
    loki.wait_for(PATIENCE, "both access lines", |p| {
        p.iter().flat_map(|p| &p.accepted).filter(|e| e.metadata.contains_key("request_id")).count() >= 2
    });
    let entries = loki.entries();
    let access = |id: &str| {
        entries
            .iter()
            .find(|e| e.metadata.get("request_id").map(String::as_str) == Some(id))
            .unwrap_or_else(|| panic!("no line for request {id}: {entries:#?}"))
    };
    for (id, status) in [("probe-1", 200), ("lookup-2", 404)] {
        let e = access(id);
        let line: serde_json::Value = serde_json::from_str(&e.line).unwrap();
        assert_eq!(line["status"], status);
        assert_eq!(e.labels["target"], "helpdesk_server::access");
        assert_eq!(e.labels["level"], "info");
        assert_eq!(e.labels["app"], "helpdesk");
        assert_eq!(e.labels["job"], "test");
        let ts = chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(e.ts_ns, ts.timestamp_nanos_opt().unwrap(), "Loki's timestamp is the server's");
    }
    assert_eq!(access("lookup-2").labels.len(), 4, "no high-cardinality label: {:?}", access("lookup-2").labels);
    rt.block_on(server.stop()).unwrap();
}
