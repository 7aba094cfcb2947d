//! Process-level tests: the real `helpdesk-server` binary as a child process, one temporary
//! directory and a random port per test, spoken to over real HTTP.
//!
//! They check what only a real process can show: acknowledged creates survive SIGKILL,
//! SIGTERM drains and exits 0, the bootstrap admin token is private and never logged, the
//! JSON access log, `check-config`, and the tokens file.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_helpdesk-server");

/// How long a server may take to announce its port.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a killed or terminated server may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);
/// How long a load phase may take to reach its target.
const LOAD_DEADLINE: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// What the child wrote, line by line, collected by two reader threads.
#[derive(Default)]
struct Output {
    stdout: Vec<String>,
    stderr: Vec<String>,
    stdout_closed: bool,
    stderr_closed: bool,
}

#[derive(Default)]
struct Captured {
    out: Mutex<Output>,
    changed: Condvar,
}

impl Captured {
    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn capture(pipe: impl Read + Send + 'static, captured: Arc<Captured>, is_stdout: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut out = captured.lock();
            if is_stdout {
                out.stdout.push(line);
            } else {
                out.stderr.push(line);
            }
            captured.changed.notify_all();
        }
        let mut out = captured.lock();
        if is_stdout {
            out.stdout_closed = true;
        } else {
            out.stderr_closed = true;
        }
        captured.changed.notify_all();
    });
}

/// A command for the binary that inherits no HELPDESK_* / ROCKET_* / RUST_LOG settings
/// and runs in `cwd` (so no stray Rocket.toml is read).
fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    without_server_env(&mut cmd).current_dir(cwd);
    cmd
}

/// Removes the HELPDESK_* / ROCKET_* / RUST_LOG settings this process has from `cmd`.
fn without_server_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("HELPDESK_") || k.starts_with("ROCKET_") || k == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Calls `f` every 10 ms until it returns `Some` or `deadline` has passed (the one
/// waiting loop of this file; the helpers below name what they wait for).
fn try_poll<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `try_wait` until the child exits or the deadline passes.
fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    try_poll(deadline, || child.try_wait().expect("try_wait on the server"))
}

/// A running `helpdesk-server serve`. Dropping it kills the process.
struct Server {
    child: Child,
    captured: Arc<Captured>,
    port: u16,
    data_dir: PathBuf,
}

impl Server {
    /// Spawns the server on 127.0.0.1, port 0, data in `<root>/data`, plus `env`; does not
    /// wait for it.
    fn spawn(root: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn_with(command(root), root, env)
    }

    /// [`Server::spawn`] with a prepared command (e.g. a shell that sets limits, then
    /// `exec`s the binary, so the child's pid is still the server's).
    fn spawn_with(mut cmd: Command, root: &Path, env: &[(&str, &str)]) -> Server {
        let data_dir = root.join("data");
        cmd.env("HELPDESK_ADDRESS", "127.0.0.1")
            .env("HELPDESK_PORT", "0")
            .env("HELPDESK_DATA_DIR", &data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn helpdesk-server");
        let captured = Arc::new(Captured::default());
        capture(child.stdout.take().expect("piped stdout"), captured.clone(), true);
        capture(child.stderr.take().expect("piped stderr"), captured.clone(), false);
        Server { child, captured, port: 0, data_dir }
    }

    /// Spawns the server and waits for its `listening` line.
    fn start(root: &Path, env: &[(&str, &str)]) -> Server {
        let mut server = Server::spawn(root, env);
        server.wait_listening();
        server
    }

    /// Waits for the JSON line `"message":"listening"` on stdout and takes the port from it.
    fn wait_listening(&mut self) {
        let until = Instant::now() + START_DEADLINE;
        loop {
            {
                let out = self.captured.lock();
                let port = out.stdout.iter().find_map(|line| {
                    let v: Value = serde_json::from_str(line).ok()?;
                    (v["message"] == "listening").then(|| v["port"].as_u64())?
                });
                if let Some(port) = port {
                    self.port = u16::try_from(port).expect("port fits u16");
                    assert_ne!(self.port, 0, "the listening line must give the real port");
                    return;
                }
                if out.stdout_closed {
                    drop(out);
                    let status = wait_exit(&mut self.child, EXIT_DEADLINE);
                    panic!("server exited ({status:?}) before listening:\n{}", self.all_output());
                }
                let left = until.saturating_duration_since(Instant::now());
                let hint = if out.stdout.is_empty() { " (stdout is empty: is logging filtered off?)" } else { "" };
                assert!(!left.is_zero(), "no listening line within {START_DEADLINE:?}{hint}:\n{}", self.describe(&out));
                // Woken by every new line; the timeout only bounds the wait.
                let _unused = self.captured.changed.wait_timeout(out, left.min(Duration::from_millis(200)));
            }
        }
    }

    fn describe(&self, out: &Output) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout.join("\n"), out.stderr.join("\n"))
    }

    fn all_output(&self) -> String {
        self.describe(&self.captured.lock())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The bootstrap admin token (`<data_dir>/admin.token`).
    fn admin_token(&self) -> String {
        read_admin_token(&self.data_dir)
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL the server");
        wait_exit(&mut self.child, EXIT_DEADLINE).expect("a SIGKILLed server exits")
    }

    /// Sends SIGTERM with kill(1) (no libc dependency).
    fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed: {status}", self.pid());
    }

    /// SIGTERM, then wait for the exit status (`None` past the deadline).
    fn terminate(&mut self) -> Option<ExitStatus> {
        self.sigterm();
        wait_exit(&mut self.child, EXIT_DEADLINE)
    }

    /// After the process exited: waits for the readers to reach EOF, then returns
    /// (stdout, stderr).
    fn finished_output(&self) -> (String, String) {
        let until = Instant::now() + EXIT_DEADLINE;
        let mut out = self.captured.lock();
        while !(out.stdout_closed && out.stderr_closed) {
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the server's output pipes did not close");
            out = self.captured.changed.wait_timeout(out, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        (out.stdout.join("\n"), out.stderr.join("\n"))
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.captured.lock().stdout.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = wait_exit(&mut self.child, EXIT_DEADLINE);
        }
    }
}

fn read_admin_token(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("admin.token")).expect("read admin.token");
    let token = text.trim().to_owned();
    assert!(!token.is_empty(), "admin.token is empty");
    token
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("build the HTTP client")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("helpdesk-process-").tempdir().expect("create a temporary directory")
}

/// Polls `f` until it returns `Some`; fails the test naming `what` after the deadline.
fn poll<T>(what: &str, deadline: Duration, f: impl FnMut() -> Option<T>) -> T {
    try_poll(deadline, f).unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// The JSON lines of a log file (any non-JSON line fails the test).
fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect()
}

fn has_message(lines: &[Value], message: &str) -> bool {
    lines.iter().any(|v| v["message"] == message)
}

fn stdout_json(server: &Server) -> Vec<Value> {
    server.stdout_lines().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn ticket_body(title: &str, email: &str) -> Value {
    json!({
        "title": title,
        "description": "Created by the process-level tests",
        "category": "network",
        "submitter_email": email,
        "submitter_name": "Process Test",
        "priority": "high",
        "tags": ["process-test"],
    })
}

// ---------------------------------------------------------------------------------------
// Concurrent create load
// ---------------------------------------------------------------------------------------

/// A create acknowledged with 201: the id and the title sent.
#[derive(Debug, Clone)]
struct Acked {
    id: u64,
    title: String,
}

#[derive(Debug, Default)]
struct LoadStats {
    /// Statuses other than 201 (status, body), e.g. during shutdown.
    other: Vec<(u16, String)>,
    /// Requests without a complete answer (connection refused, reset, ...).
    transport_errors: usize,
}

/// `threads` clients POSTing creates as fast as they can until stopped.
struct Load {
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<LoadStats>>,
}

impl Load {
    fn start(url: String, token: &str, threads: usize, label: &str) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = client();
        let handles = (0..threads)
            .map(|t| {
                let (acked, count, stop, client) = (acked.clone(), count.clone(), stop.clone(), client.clone());
                let (url, auth, label) = (url.clone(), format!("Bearer {token}"), label.to_owned());
                std::thread::spawn(move || {
                    let mut stats = LoadStats::default();
                    let mut seq = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        seq += 1;
                        let title = format!("{label} thread {t} seq {seq}");
                        let sent = client
                            .post(&url)
                            .header("Authorization", &auth)
                            .json(&ticket_body(&title, "ada@campus.example"))
                            .send();
                        let res = match sent {
                            Ok(res) => res,
                            Err(_) => {
                                stats.transport_errors += 1;
                                std::thread::sleep(Duration::from_millis(5));
                                continue;
                            }
                        };
                        let status = res.status();
                        let Ok(body) = res.text() else {
                            // No complete answer: not acknowledged.
                            stats.transport_errors += 1;
                            continue;
                        };
                        if status != StatusCode::CREATED {
                            stats.other.push((status.as_u16(), body));
                            continue;
                        }
                        let ticket: Value = serde_json::from_str(&body).expect("a 201 carries the ticket JSON");
                        let id = ticket["id"].as_u64().unwrap_or_else(|| panic!("201 without a numeric id: {body}"));
                        assert_eq!(ticket["title"], title.as_str(), "201 echoes the title");
                        assert!(ticket["version"].is_u64(), "201 without a version: {body}");
                        acked.lock().expect("acked list").push(Acked { id, title });
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    stats
                })
            })
            .collect();
        Load { acked, count, stop, handles }
    }

    /// Waits until at least `n` creates were acknowledged.
    fn wait_for(&self, n: usize) {
        poll(&format!("{n} acknowledged creates"), LOAD_DEADLINE, || {
            (self.count.load(Ordering::SeqCst) >= n).then_some(())
        });
    }

    /// Stops the clients and returns every acknowledged create.
    fn finish(self) -> (Vec<Acked>, LoadStats) {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadStats::default();
        for h in self.handles {
            let s = h.join().expect("a load thread panicked");
            total.other.extend(s.other);
            total.transport_errors += s.transport_errors;
        }
        let acked = std::mem::take(&mut *self.acked.lock().expect("acked list"));
        (acked, total)
    }
}

/// GETs every acknowledged ticket (4 threads): each must be 200 with the same title.
fn verify_present(server: &Server, token: &str, acked: &[Acked]) {
    let ids: HashSet<u64> = acked.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), acked.len(), "two acknowledged creates got the same id");
    let client = client();
    let auth = format!("Bearer {token}");
    let failures: Vec<String> = std::thread::scope(|s| {
        let chunk = acked.len().div_ceil(4).max(1);
        let handles: Vec<_> = acked
            .chunks(chunk)
            .map(|part| {
                let (client, auth) = (client.clone(), auth.clone());
                s.spawn(move || {
                    let mut failures = Vec::new();
                    for a in part {
                        let url = server.url(&format!("/api/v1/tickets/{}", a.id));
                        match client.get(&url).header("Authorization", &auth).send() {
                            Ok(res) => {
                                let status = res.status();
                                let body = res.text().unwrap_or_default();
                                let title = serde_json::from_str::<Value>(&body).ok().map(|v| v["title"].clone());
                                if status != StatusCode::OK || title != Some(Value::from(a.title.as_str())) {
                                    failures.push(format!("ticket {} ({:?}): {status} {body}", a.id, a.title));
                                }
                            }
                            Err(e) => failures.push(format!("ticket {}: request failed: {e}", a.id)),
                        }
                    }
                    failures
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a verify thread panicked")).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} acknowledged tickets are missing or wrong after restart; first: {:#?}",
        failures.len(),
        acked.len(),
        &failures[..failures.len().min(10)]
    );
}

/// Polls `f` until it is true or the deadline passes; returns whether it became true.
fn poll_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    try_poll(deadline, || f().then_some(())).is_some()
}

/// A create over a raw connection whose body is sent in a second step: `begin` sends the
/// headers with `Expect: 100-continue` and returns once the server answered
/// `100 Continue` (the handler is reading the body); `finish` sends the body and reads the
/// final answer.
struct SlowCreate {
    stream: TcpStream,
    body: Vec<u8>,
}

impl SlowCreate {
    fn begin(port: u16, token: &str, title: &str) -> SlowCreate {
        let body = serde_json::to_vec(&ticket_body(title, "ada@campus.example")).expect("serialize");
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        let head = format!(
            "POST /api/v1/tickets HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send the request head");
        let (status, _) = read_response(&mut stream, true);
        assert_eq!(status, 100, "the server must ask for the body with 100 Continue");
        SlowCreate { stream, body }
    }

    fn finish(&mut self) -> (u16, String) {
        self.stream.write_all(&self.body).expect("send the body");
        read_response(&mut self.stream, false)
    }
}

/// Reads one HTTP/1.1 response (status, body); `interim`: a 1xx without a body.
fn read_response(stream: &mut TcpStream, interim: bool) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => panic!("connection closed inside a response head: {:?}", String::from_utf8_lossy(&buf)),
            Err(e) => panic!("reading a response head: {e}; so far {:?}", String::from_utf8_lossy(&buf)),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    if interim {
        return (status, String::new());
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read the response body");
    (status, String::from_utf8(body).expect("utf-8 body"))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn sigkill_never_loses_an_acknowledged_create() {
    let dir = tempdir();
    let mut all: Vec<Acked> = Vec::new();
    let mut rng = rand::thread_rng();
    for round in 0..3 {
        let mut server = Server::start(dir.path(), &[("HELPDESK_DURABILITY", "durable")]);
        let token = server.admin_token();
        // Everything acknowledged in earlier rounds survived the SIGKILL(s).
        verify_present(&server, &token, &all);

        let target = rng.gen_range(100..=400);
        let load = Load::start(server.url("/api/v1/tickets"), &token, 8, &format!("round {round}"));
        load.wait_for(target);
        let status = server.kill();
        let (acked, stats) = load.finish();
        assert!(!status.success(), "SIGKILL is not a clean exit: {status}");
        assert!(acked.len() >= target, "round {round}: {} acked < target {target}", acked.len());
        assert!(
            stats.other.is_empty(),
            "round {round}: unexpected answers before the kill: {:?}",
            &stats.other[..stats.other.len().min(5)]
        );
        eprintln!(
            "round {round}: killed after {} acknowledged creates (target {target}), {} requests cut off",
            acked.len(),
            stats.transport_errors
        );
        all.extend(acked);
    }
    // The last round's creates, after the last SIGKILL.
    let server = Server::start(dir.path(), &[("HELPDESK_DURABILITY", "durable")]);
    let token = server.admin_token();
    verify_present(&server, &token, &all);
}

/// A disk that stops taking writes (here: the file-size limit, `ulimit -f`, with SIGXFSZ
/// ignored, so writes fail with EFBIG as on a full volume): the write that hits it and
/// every later one get 503 in the JSON error shape, readiness says 503 `not_ready` while
/// liveness stays 200, reads keep working, and after a restart on a healthy disk every
/// acknowledged ticket is there.
#[test]
fn a_failing_disk_gives_503_and_loses_nothing_acknowledged() {
    let dir = tempdir();
    let mut limited = Command::new("bash");
    // 4 MiB (in 1 KiB blocks): a few hundred tickets of ~3 KB fill it.
    limited.args(["-c", "trap '' XFSZ; ulimit -f 4096; exec \"$0\"", BIN]).current_dir(dir.path());
    without_server_env(&mut limited);
    let mut server = Server::spawn_with(limited, dir.path(), &[]);
    server.wait_listening();
    let token = server.admin_token();
    let http = client();
    let auth = format!("Bearer {token}");
    let filler = "x".repeat(3000);
    let mut acked = Vec::new();
    let refused = loop {
        assert!(acked.len() < 5000, "4 MiB never filled up");
        let mut body = ticket_body(&format!("disk test {}", acked.len()), "disk@campus.example");
        body["description"] = json!(filler);
        let res = http.post(server.url("/api/v1/tickets")).header("Authorization", &auth).json(&body).send().unwrap();
        if res.status() != StatusCode::CREATED {
            break res;
        }
        let t: Value = res.json().unwrap();
        acked.push(t["id"].as_u64().unwrap());
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "after {} creates", acked.len());
    let e: Value = refused.json().unwrap();
    assert_eq!(e["error"]["code"], "unavailable", "{e}");
    assert!(!acked.is_empty());

    // Still refused, never a 500; readiness fails, liveness and reads do not.
    let res = http
        .post(server.url("/api/v1/tickets"))
        .header("Authorization", &auth)
        .json(&ticket_body("again", "disk@campus.example"))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = http.get(server.url("/api/v1/health")).send().unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().unwrap()["error"]["code"], "not_ready");
    assert_eq!(http.get(server.url("/health")).send().unwrap().status(), StatusCode::OK);
    let last = *acked.last().unwrap();
    let res = http.get(server.url(&format!("/api/v1/tickets/{last}"))).header("Authorization", &auth).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // It still shuts down on SIGTERM, without a panic.
    let status = server.terminate().expect("the server exits on SIGTERM");
    let (_, stderr) = server.finished_output();
    assert!(!stderr.contains("panicked"), "{status}: {stderr}");
    drop(server);

    // On a healthy disk, every acknowledged ticket is there.
    let server = Server::start(dir.path(), &[]);
    let token = server.admin_token();
    for id in acked {
        let res = http
            .get(server.url(&format!("/api/v1/tickets/{id}")))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "acknowledged ticket {id} is missing after the restart");
    }
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempdir();
    let log = dir.path().join("logs/server.log");
    let log_str = log.to_str().expect("utf-8 path");
    // A grace period well beyond the 2 s poll below: with Rocket's default (also 2 s) a
    // slow machine could end the grace before the in-flight body is sent, closing the
    // connection and turning a drain test into a race.
    let env = [
        ("HELPDESK_DURABILITY", "durable"),
        ("HELPDESK_LOG_FILE", log_str),
        ("HELPDESK_SHUTDOWN", "{grace=10,mercy=5}"),
    ];
    let mut server = Server::start(dir.path(), &env);
    let token = server.admin_token();

    let load = Load::start(server.url("/api/v1/tickets"), &token, 8, "sigterm");
    load.wait_for(rand::thread_rng().gen_range(50..=150));

    // One request is provably inside a handler when the signal comes: it asks for
    // `100 Continue`, which the server only sends once the handler reads the body.
    let slow_title = "sent before SIGTERM, body after";
    let mut slow = SlowCreate::begin(server.port, &token, slow_title);

    let sent_at = Instant::now();
    server.sigterm();
    // Shutdown has begun once new connections are refused; then finish the body.
    let refused = poll_until(Duration::from_secs(2), || TcpStream::connect(("127.0.0.1", server.port)).is_err());
    let (slow_status, slow_body) = slow.finish();
    let status = wait_exit(&mut server.child, EXIT_DEADLINE);
    let (mut acked, stats) = load.finish();
    let status =
        status.unwrap_or_else(|| panic!("no exit within {EXIT_DEADLINE:?} of SIGTERM:\n{}", server.all_output()));
    let (stdout, stderr) = server.finished_output();
    assert!(status.success(), "SIGTERM must exit 0, got {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    eprintln!(
        "sigterm: exit after {:?}, {} acknowledged, {} cut off, other answers: {:?}, new connections refused: {refused}",
        sent_at.elapsed(),
        acked.len(),
        stats.transport_errors,
        stats.other.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
    // The request in flight at SIGTERM was drained: answered, and acknowledged.
    assert_eq!(slow_status, 201, "the in-flight create must complete after SIGTERM: {slow_body}");
    let ticket: Value = serde_json::from_str(&slow_body).expect("ticket JSON");
    assert_eq!(ticket["title"], slow_title);
    acked.push(Acked { id: ticket["id"].as_u64().expect("numeric id"), title: slow_title.to_owned() });
    // Draining may refuse new work, but nothing may fail inside the server.
    let server_errors: Vec<_> = stats.other.iter().filter(|(s, _)| *s >= 500 && *s != 503).collect();
    assert!(server_errors.is_empty(), "server errors while draining: {server_errors:?}");

    // The shutdown is logged, to stdout and to the log file.
    let out: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(has_message(&out, "stopped"), "no \"stopped\" line on stdout:\n{stdout}");
    assert!(has_message(&out, "shutdown: database flushed"), "no flush line on stdout:\n{stdout}");
    let logged = json_lines(&log);
    assert!(has_message(&logged, "stopped"), "no \"stopped\" line in the log file");

    let server = Server::start(dir.path(), &env);
    verify_present(&server, &token, &acked);
}

#[test]
fn first_start_creates_a_private_admin_token() {
    let dir = tempdir();
    let log = dir.path().join("server.log");
    let log_str = log.to_str().expect("utf-8 path");
    let token_path = dir.path().join("data/admin.token");
    assert!(!token_path.exists());

    let mut server = Server::start(dir.path(), &[("HELPDESK_LOG_FILE", log_str)]);
    assert!(token_path.is_file(), "first start must create {}", token_path.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).expect("stat admin.token").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "admin.token must be private, is {:o}", mode & 0o777);
    }
    let token = server.admin_token();
    assert!(token.len() >= 32, "the token is long and random: {} chars", token.len());

    let http = client();
    let metrics = server.url("/api/v1/metrics");
    let res = http.get(&metrics).bearer_auth(&token).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::OK, "the admin token opens /api/v1/metrics");
    let res = http.get(&metrics).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no token, no metrics");
    let res = http.get(&metrics).bearer_auth(format!("{token}x")).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a wrong token is refused");

    // The log names the file, never the token.
    let first_log = stdout_json(&server);
    assert!(
        first_log.iter().any(|v| v["path"].as_str().is_some_and(|p| p.ends_with("admin.token"))),
        "the path of admin.token is logged:\n{}",
        server.all_output()
    );
    let status = server.terminate().expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM exit: {status}");
    let (stdout1, stderr1) = server.finished_output();

    // Second start: the same token, not a new one.
    let mut server = Server::start(dir.path(), &[("HELPDESK_LOG_FILE", log_str)]);
    assert_eq!(server.admin_token(), token, "a restart reuses admin.token");
    let res = http.get(server.url("/api/v1/metrics")).bearer_auth(&token).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::OK, "the old token still works after a restart");
    assert!(has_message(&stdout_json(&server), "using the bootstrap admin token"));
    let status = server.terminate().expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM exit: {status}");
    let (stdout2, stderr2) = server.finished_output();

    let log_text = std::fs::read_to_string(&log).expect("read the log file");
    assert!(log_text.contains("admin.token"), "the log file names admin.token");
    for (what, text) in [
        ("stdout 1", &stdout1),
        ("stderr 1", &stderr1),
        ("stdout 2", &stdout2),
        ("stderr 2", &stderr2),
        ("log", &log_text),
    ] {
        assert!(!text.contains(&token), "the admin token leaked into {what}");
    }
}

#[test]
fn log_file_gets_json_access_lines() {
    let dir = tempdir();
    let log = dir.path().join("access.log");
    let server = Server::start(dir.path(), &[("HELPDESK_LOG_FILE", log.to_str().expect("utf-8 path"))]);
    let token = server.admin_token();
    let http = client();

    let res = http
        .post(server.url("/api/v1/tickets"))
        .bearer_auth(&token)
        .json(&ticket_body("Printer on fire", "ada@campus.example"))
        .send()
        .expect("POST ticket");
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers().get("Location").expect("201 has a Location").to_str().expect("ascii").to_owned();
    let id = res.json::<Value>().expect("ticket JSON")["id"].as_u64().expect("numeric id");
    assert_eq!(location, format!("/api/v1/tickets/{id}"));

    // A caller-chosen request id is echoed and logged.
    let res = http
        .get(server.url(&location))
        .bearer_auth(&token)
        .header("X-Request-Id", "test-123")
        .send()
        .expect("GET ticket");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("X-Request-Id").map(|v| v.to_str().ok()), Some(Some("test-123")));

    let line = poll("the access line of test-123", Duration::from_secs(10), || {
        json_lines(&log).into_iter().find(|v| v["request_id"] == "test-123")
    });
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["route"], "/api/v1/tickets/<id>", "the route template, not the path: {line}");
    assert_eq!(line["path"], location.as_str(), "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "duration_ms: {line}");
    assert!(line["timestamp"].as_str().is_some_and(|t| !t.is_empty()), "timestamp: {line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["message"], "request", "{line}");

    // Without the header (or with an unusable one) the server makes one up, echoes and logs it.
    for header in [None, Some("not a sane id!")] {
        let mut req = http.get(server.url("/health"));
        if let Some(h) = header {
            req = req.header("X-Request-Id", h);
        }
        let res = req.send().expect("GET /health");
        assert_eq!(res.status(), StatusCode::OK);
        let id = res.headers().get("X-Request-Id").expect("an id is always echoed").to_str().expect("ascii").to_owned();
        assert!(!id.is_empty() && Some(id.as_str()) != header, "generated id {id:?} for header {header:?}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "generated id {id:?}");
        let line = poll(&format!("the access line of {id}"), Duration::from_secs(10), || {
            json_lines(&log).into_iter().find(|v| v["request_id"] == id.as_str())
        });
        assert_eq!(line["route"], "/health", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["status"], 200, "{line}");
    }

    // An unmatched path is logged too, without inventing a route.
    let res = http.get(server.url("/no/such/thing")).header("X-Request-Id", "test-404").send().expect("GET");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let line = poll("the access line of test-404", Duration::from_secs(10), || {
        json_lines(&log).into_iter().find(|v| v["request_id"] == "test-404")
    });
    assert_eq!(line["status"], 404, "{line}");
    assert_eq!(line["route"], "unmatched", "{line}");

    // Every line in the file is JSON (json_lines checks) and stdout got the same lines.
    let out = stdout_json(&server);
    assert!(out.iter().any(|v| v["request_id"] == "test-123"), "stdout also gets the access line");
}

#[test]
fn check_config_accepts_valid_and_rejects_invalid() {
    let dir = tempdir();
    let run = |env: &[(&str, &str)]| {
        let out = command(dir.path()).arg("check-config").envs(env.iter().copied()).output().expect("run check-config");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (status, stdout, stderr) = run(&[]);
    assert_eq!(status.code(), Some(0), "defaults are valid; stdout: {stdout} stderr: {stderr}");
    assert!(stdout.contains("configuration ok"), "stdout: {stdout}");

    let (status, stdout, stderr) = run(&[("HELPDESK_DURABILITY", "durable"), ("HELPDESK_PORT", "0")]);
    assert_eq!(status.code(), Some(0), "explicit valid settings; stdout: {stdout} stderr: {stderr}");

    let (status, _, stderr) = run(&[("HELPDESK_DURABILITY", "sometimes")]);
    assert_eq!(status.code(), Some(2), "HELPDESK_DURABILITY=sometimes is invalid; stderr: {stderr}");
    assert!(stderr.contains("sometimes") || stderr.contains("durability"), "stderr names the problem: {stderr}");

    let (status, _, stderr) = run(&[("HELPDESK_PORT", "not-a-port")]);
    assert_eq!(status.code(), Some(2), "HELPDESK_PORT=not-a-port is invalid; stderr: {stderr}");
    assert!(stderr.contains("port"), "stderr names the problem: {stderr}");

    let toml = dir.path().join("bogus.toml");
    std::fs::write(&toml, "[default]\nbogus_key = 1\n").expect("write bogus.toml");
    let (status, _, stderr) = run(&[("HELPDESK_CONFIG", toml.to_str().expect("utf-8 path"))]);
    assert_eq!(status.code(), Some(2), "an unknown key in the config file is refused; stderr: {stderr}");
    assert!(stderr.contains("bogus_key"), "stderr names the unknown key: {stderr}");

    // Platforms inject variables of their own (Kubernetes: HELPDESK_SERVICE_HOST for a
    // Service named helpdesk), so an unknown HELPDESK_* variable only warns.
    let (status, _, stderr) = run(&[("HELPDESK_BOGUS_KEY", "1")]);
    assert_eq!(status.code(), Some(0), "an unknown HELPDESK_ variable only warns; stderr: {stderr}");
    assert!(stderr.contains("warning") && stderr.contains("bogus_key"), "the warning names the key: {stderr}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[default]\ndurability = \"relaxed\"\nport = 8123\n").expect("write good.toml");
    let (status, stdout, stderr) = run(&[("HELPDESK_CONFIG", good.to_str().expect("utf-8 path"))]);
    assert_eq!(status.code(), Some(0), "a valid config file; stdout: {stdout} stderr: {stderr}");
}

/// `helpdesk-server hash-token` with `token` on stdin.
fn hash_token(cwd: &Path, token: &str) -> String {
    let mut child = command(cwd)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hash-token");
    child.stdin.take().expect("piped stdin").write_all(token.as_bytes()).expect("write the token");
    let out = child.wait_with_output().expect("hash-token output");
    assert!(out.status.success(), "hash-token failed: {}", String::from_utf8_lossy(&out.stderr));
    let hash = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "hash-token printed {hash:?}");
    hash
}

/// `helpdesk-server new-token`.
fn new_token(cwd: &Path) -> String {
    let out = command(cwd).arg("new-token").output().expect("run new-token");
    assert!(out.status.success(), "new-token failed");
    let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert!(token.len() >= 32, "new-token printed {token:?}");
    token
}

#[test]
fn tokens_file_sets_roles_and_malformed_files_stop_the_start() {
    let dir = tempdir();
    let agent = new_token(dir.path());
    let reporter = new_token(dir.path());
    assert_ne!(agent, reporter, "new-token is random");
    // hash-token trims the trailing newline a shell would add.
    assert_eq!(hash_token(dir.path(), &agent), hash_token(dir.path(), &format!("{agent}\n")));

    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"alice\"\nrole = \"agent\"\nsha256 = \"{}\"\n\n\
             [[token]]\nname = \"rita\"\nrole = \"reporter\"\nemail = \"rita@campus.example\"\nsha256 = \"{}\"\n",
            hash_token(dir.path(), &agent),
            hash_token(dir.path(), &reporter)
        ),
    )
    .expect("write tokens.toml");
    let log = dir.path().join("server.log");
    let env = [
        ("HELPDESK_TOKENS_FILE", tokens.to_str().expect("utf-8 path")),
        ("HELPDESK_LOG_FILE", log.to_str().expect("utf-8 path")),
    ];
    let mut server = Server::start(dir.path(), &env);
    let http = client();
    let metrics = server.url("/api/v1/metrics");

    let res = http.get(&metrics).bearer_auth(&agent).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::OK, "an agent sees the metrics");
    let res = http.get(&metrics).bearer_auth(&reporter).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a reporter does not");
    let res = http.get(&metrics).bearer_auth(new_token(dir.path())).send().expect("GET metrics");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "an unlisted token is unknown");

    // A reporter files tickets under their own address only.
    let tickets = server.url("/api/v1/tickets");
    let res = http
        .post(&tickets)
        .bearer_auth(&reporter)
        .json(&ticket_body("VPN drops", "rita@campus.example"))
        .send()
        .expect("POST");
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = http
        .post(&tickets)
        .bearer_auth(&reporter)
        .json(&ticket_body("VPN drops", "someone.else@campus.example"))
        .send()
        .expect("POST");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    assert!(!server.data_dir.join("admin.token").exists(), "with a tokens file no admin.token is created");
    let status = server.terminate().expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM exit: {status}");
    let (stdout, stderr) = server.finished_output();
    let log_text = std::fs::read_to_string(&log).expect("read the log file");
    for text in [&stdout, &stderr, &log_text] {
        assert!(!text.contains(&agent) && !text.contains(&reporter), "a token leaked into the output");
    }

    // Malformed tokens files: the server refuses to start and says why.
    let hash = hash_token(dir.path(), &agent);
    let cases = [
        ("not toml", "[[token]\nname = ".to_owned(), "tokens file"),
        ("unknown role", format!("[[token]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"{hash}\"\n"), "root"),
        ("short hash", "[[token]]\nname = \"x\"\nrole = \"agent\"\nsha256 = \"abc123\"\n".to_owned(), "sha256"),
        (
            "reporter without email",
            format!("[[token]]\nname = \"x\"\nrole = \"reporter\"\nsha256 = \"{hash}\"\n"),
            "reporter without an email",
        ),
        ("no tokens", "# nothing here\n".to_owned(), "no [[token]]"),
        (
            "unknown field",
            format!("[[token]]\nname = \"x\"\nrole = \"agent\"\nsha256 = \"{hash}\"\nextra = 1\n"),
            "extra",
        ),
    ];
    for (what, text, expected) in cases {
        let bad = dir.path().join("bad-tokens.toml");
        std::fs::write(&bad, text).expect("write bad-tokens.toml");
        let case_dir = tempdir();
        let mut server = Server::spawn(case_dir.path(), &[("HELPDESK_TOKENS_FILE", bad.to_str().expect("utf-8 path"))]);
        let status = wait_exit(&mut server.child, START_DEADLINE)
            .unwrap_or_else(|| panic!("{what}: the server kept running:\n{}", server.all_output()));
        let (stdout, stderr) = server.finished_output();
        assert!(!status.success(), "{what}: exit status {status}");
        assert!(
            stderr.contains("bad-tokens.toml") && stderr.contains(expected),
            "{what}: stderr must name the file and {expected:?}:\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}"
        );
        assert!(!stdout.contains("\"listening\""), "{what}: it must not listen");
        assert!(!case_dir.path().join("data/admin.token").exists(), "{what}: no fallback to a bootstrap token");
    }

    // A tokens file that does not exist is an error too, not a fallback to admin.token.
    let case_dir = tempdir();
    let missing = case_dir.path().join("missing.toml");
    let mut server = Server::spawn(case_dir.path(), &[("HELPDESK_TOKENS_FILE", missing.to_str().expect("utf-8 path"))]);
    let status = wait_exit(&mut server.child, START_DEADLINE).expect("exit with a missing tokens file");
    let (_, stderr) = server.finished_output();
    assert!(!status.success() && stderr.contains("missing.toml"), "missing tokens file: {status}\n{stderr}");
    assert!(!case_dir.path().join("data/admin.token").exists());
}

/// The configuration shipped in the Kubernetes ConfigMap (deploy/k8s/base/config) and the
/// example tokens Secret are accepted by the real binary, as the pod will run them: the
/// same file, the same environment variable, only the tokens path pointing into the repo.
#[test]
fn deployed_configmap_and_tokens_example_are_accepted() {
    let dir = tempdir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = root.join("deploy/k8s/base/config/helpdesk.toml");
    let tokens = root.join("deploy/k8s/base/secrets/tokens.example.toml");
    let out = command(dir.path())
        .arg("check-config")
        .env("HELPDESK_CONFIG", &config)
        .env("HELPDESK_TOKENS_FILE", &tokens)
        // The pod's data dir exists there; here it is created in the temp dir.
        .env("HELPDESK_DATA_DIR", dir.path().join("data"))
        .output()
        .expect("run check-config");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout} stderr: {stderr}");
    assert!(!stderr.contains("warning"), "no unknown keys: {stderr}");

    // And it really is read: a typo in a key of that file is refused.
    let broken = dir.path().join("helpdesk.toml");
    let text = std::fs::read_to_string(&config).expect("read the ConfigMap's config");
    std::fs::write(&broken, text.replace("durability =", "durabilty =")).expect("write the broken copy");
    let out = command(dir.path())
        .arg("check-config")
        .env("HELPDESK_CONFIG", &broken)
        .env("HELPDESK_TOKENS_FILE", &tokens)
        .output()
        .expect("run check-config");
    assert_eq!(out.status.code(), Some(2), "a misspelt key is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("durabilty"));
}
