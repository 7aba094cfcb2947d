//! Shared helpers: run the agent binary, start a real helpdesk-server on loopback, make
//! databases with history.
#![allow(dead_code)]
// Test support code: a failed step should panic with its error, as in a test body.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use helpdesk_core::{Actor, Category, Config, Durability, Helpdesk, NewComment, NewTicket, Priority, Status};
use serde_json::{json, Value};

/// Exit codes, as documented.
pub const OK: i32 = 0;
pub const USAGE: i32 = 2;
pub const SOURCE_UNREACHABLE: i32 = 3;
pub const LOCK_HELD: i32 = 4;
pub const VERIFICATION_FAILED: i32 = 5;
pub const OUT_OF_SPACE: i32 = 6;

pub const BIN: &str = env!("CARGO_BIN_EXE_backup-agent");

/// The agent binary with JSON logs and no inherited BACKUP_AGENT_* settings.
pub fn agent() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BACKUP_AGENT_") {
            c.env_remove(k);
        }
    }
    c.env("BACKUP_AGENT_LOG_FORMAT", "json").stdin(Stdio::null());
    c
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Every stderr line must be a JSON object (quiet JSON logs when not a TTY).
    pub fn json_logs(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}")))
            .collect()
    }
}

pub fn run(args: &[&str]) -> Run {
    Run::from(agent().args(args).output().unwrap())
}

/// Runs the agent from async code without blocking the runtime the server lives on.
pub async fn run_async(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .unwrap()
}

pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The archives (final names) in `dir`, sorted.
pub fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("helpdesk-") && n.ends_with(".tar.gz")
        })
        .collect();
    v.sort();
    v
}

/// Files in `dir` whose names end with `.partial`.
pub fn partials(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A server data directory `<dir>/db` with `n` tickets and some history, made through the
/// core (no server), closed again.
pub fn make_data_dir(dir: &Path, n: usize) {
    let desk = Helpdesk::open(dir.join("db"), Config::default().durability(Durability::Relaxed)).unwrap();
    fill(&desk, n);
    desk.flush().unwrap();
}

pub fn fill(desk: &Helpdesk, n: usize) {
    let agent = Actor::agent("grace");
    for i in 0..n {
        let cat = [Category::Network, Category::Account, Category::Hardware, Category::Email][i % 4];
        let t = desk
            .create(
                NewTicket::new(
                    format!("Ticket {i}: eduroam drops in building {}", i % 7),
                    format!("Reported by a student; details {i} {}", "x".repeat(i % 50)),
                    cat,
                    format!("user{i}@campus.example"),
                    format!("User {i}"),
                )
                .priority([Priority::Low, Priority::Medium, Priority::High][i % 3]),
                &Actor::requester(format!("user{i}")),
            )
            .unwrap();
        if i % 2 == 0 {
            desk.transition(t.id, Status::InProgress, None, &agent).unwrap();
            desk.comment(t.id, NewComment::public(format!("Looking into it ({i})")), &agent).unwrap();
        }
        if i % 3 == 0 {
            desk.comment(t.id, NewComment::internal("AP firmware suspected"), &agent).unwrap();
            desk.transition(t.id, Status::Resolved, Some("Firmware updated".into()), &agent).unwrap();
        }
    }
}

/// A real helpdesk-server on 127.0.0.1, random port, data in `dir`.
pub async fn server(dir: &Path) -> helpdesk_server::Running {
    let figment =
        helpdesk_server::config::figment().merge(("address", "127.0.0.1")).merge(("port", 0)).merge(("data_dir", dir));
    helpdesk_server::spawn(figment).await.unwrap()
}

pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token")).unwrap().trim().to_owned()
}

/// Writes the admin token of `data_dir` to `<into>/token` and returns its path.
pub fn token_file(data_dir: &Path, into: &Path) -> PathBuf {
    let p = into.join("token");
    std::fs::write(&p, format!("{}\n", admin_token(data_dir))).unwrap();
    p
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Creates a ticket over HTTP; returns (id, version).
pub async fn create_ticket(c: &reqwest::Client, base: &str, token: &str, i: usize) -> (u64, u64) {
    let res = c
        .post(format!("{base}/api/v1/tickets"))
        .bearer_auth(token)
        .json(&json!({
            "title": format!("Printer {i} jams"),
            "description": format!("Lab printer {i} jams on every duplex job"),
            "category": "hardware",
            "priority": "medium",
            "submitter_email": format!("u{i}@campus.example"),
            "submitter_name": format!("U {i}"),
            "tags": ["printer"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let v: Value = res.json().await.unwrap();
    (v["id"].as_u64().unwrap(), v["version"].as_u64().unwrap())
}

/// Applies a PATCH; returns the new version.
pub async fn patch(c: &reqwest::Client, base: &str, token: &str, id: u64, body: Value) -> u64 {
    let res = c.patch(format!("{base}/api/v1/tickets/{id}")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let v: Value = res.json().await.unwrap();
    v["version"].as_u64().unwrap()
}

pub async fn comment(c: &reqwest::Client, base: &str, token: &str, id: u64, body: &str) {
    let res = c
        .post(format!("{base}/api/v1/tickets/{id}/comments"))
        .bearer_auth(token)
        .json(&json!({ "body": body }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

pub async fn get_json(c: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let res = c.get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}
