//! Crash durability: `kill -9` never loses an acknowledged write.
//!
//! A child process (this test binary re-executed, running only [`crash_child`]) creates,
//! updates and comments on tickets from several threads and prints one line per
//! acknowledged write. The parent kills it with SIGKILL after a random number of
//! acknowledgements, reopens the database and checks that every acknowledged change is
//! there, that nothing more than the writes in flight at the moment of the kill appeared,
//! and that `verify` is clean. Some rounds reuse the database the previous round crashed,
//! so the child also has to recover a crashed database before writing to it.
//!
//! Set `HELPDESK_CRASH_SEED` to replay the parent's choices (kill points) of a run; the
//! child's interleavings are not reproducible.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use helpdesk_core::{
    workflow, Actor, Category, Config, Error, EventKind, Filter, Helpdesk, ListQuery, NewComment, NewTicket, Priority,
    Status, Ticket, TicketId, TicketUpdate,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Tells the re-executed test binary it is the child, and where the database is.
const CHILD_ENV: &str = "HELPDESK_CRASH_CHILD_DIR";
/// Starts an acknowledgement line. libtest writes `test crash_child ... ` without a newline
/// before the test runs, so the first acknowledgement does not start its line: the parent
/// looks for this marker anywhere in a line.
const ACK: &str = "@ack ";
/// Starts the report of a write that failed.
const ERR: &str = "@err ";
/// Writer threads in the child.
const CHILD_THREADS: usize = 6;
/// A child that was never killed (its parent died) stops writing after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);
/// Rounds of spawn, kill -9, reopen, check.
const ROUNDS: usize = 12;
/// Every third round starts on a fresh database; the other rounds reuse the one the
/// previous round crashed.
const CHAIN: usize = 3;
/// Acknowledgements to wait for before the kill.
const KILL_AFTER_ACKS: std::ops::RangeInclusive<usize> = 20..=400;
/// Longest wait for the child's acknowledgements in one round.
const ACK_DEADLINE: Duration = Duration::from_secs(40);
/// Longest wait for a database lock released by a process that just ended.
const LOCK_DEADLINE: Duration = Duration::from_secs(10);
/// Longest wait for the end of a killed child's stdout.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

// ---- the child -------------------------------------------------------------------------

/// The child's body. Without [`CHILD_ENV`] (a normal test run) it does nothing.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let desk = open_with_retry(Path::new(&dir));
    let started = Instant::now();
    let threads: Vec<JoinHandle<()>> = (0..CHILD_THREADS)
        .map(|n| {
            let desk = desk.clone();
            std::thread::Builder::new()
                .name(format!("crash-writer-{n}"))
                .spawn(move || child_writer(&desk, n, started))
                .expect("spawn a writer thread")
        })
        .collect();
    for t in threads {
        t.join().expect("a writer thread panicked");
    }
}

/// What a writer thread knows about a ticket it created.
struct Mine {
    id: TicketId,
    status: Status,
}

/// Creates tickets and changes the ones it created (so no other thread races it on them),
/// printing an acknowledgement after every write that returned `Ok`. Odd-numbered threads
/// use the `*_async` writes (on their own single-threaded runtime), so batches mix both
/// kinds and both kinds of acknowledgement are checked.
fn child_writer(desk: &Helpdesk, n: usize, started: Instant) {
    let rt = (n % 2 == 1).then(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"));
    let do_create = |new: NewTicket, who: &Actor| match &rt {
        Some(rt) => rt.block_on(desk.create_async(new, who)),
        None => desk.create(new, who),
    };
    let do_update = |id: TicketId, update: TicketUpdate, who: &Actor| match &rt {
        Some(rt) => rt.block_on(desk.update_async(id, update, who)),
        None => desk.update(id, update, who),
    };
    let do_comment = |id: TicketId, comment: NewComment, who: &Actor| match &rt {
        Some(rt) => rt.block_on(desk.comment_async(id, comment, who)),
        None => desk.comment(id, comment, who),
    };
    let mut rng = rand::thread_rng();
    let agent = Actor::agent(format!("agent-{n}"));
    let requester = Actor::requester(format!("user-{n}"));
    let mut mine: Vec<Mine> = Vec::new();
    let mut seq = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        seq += 1;
        if mine.is_empty() || rng.gen_bool(0.3) {
            let new = NewTicket::new(
                format!("Crash test ticket t{n} n{seq}"),
                "Created by the crash-durability child process.\nSecond line.",
                *[Category::Network, Category::Hardware, Category::Software, Category::Email]
                    .choose(&mut rng)
                    .expect("non-empty"),
                format!("user{n}@campus.example"),
                format!("User {n}"),
            )
            .priority(*Priority::ALL.choose(&mut rng).expect("non-empty"))
            .tags([format!("t{n}"), format!("s{}", seq % 5)]);
            match do_create(new, &requester) {
                Ok(t) => {
                    mine.push(Mine { id: t.id, status: t.status });
                    if !ack('C', &t) {
                        return;
                    }
                }
                Err(e) => return nack('C', None, &e),
            }
            continue;
        }
        // Work mostly on recent tickets, so tickets go through long histories.
        let from = mine.len().saturating_sub(8);
        let idx = rng.gen_range(from..mine.len());
        let (id, status) = (mine[idx].id, mine[idx].status);
        let roll = rng.gen_range(0..10);
        let result = if roll < 3 {
            let body = format!("comment {seq} from thread {n}");
            let comment = if rng.gen_bool(0.5) { NewComment::public(body) } else { NewComment::internal(body) };
            do_comment(id, comment, &agent).map(|(t, _)| ('M', t))
        } else if roll < 6 {
            let update = TicketUpdate {
                title: Some(format!("Crash test ticket t{n} n{seq} (edited)")),
                priority: Some(*Priority::ALL.choose(&mut rng).expect("non-empty")),
                tags: Some(vec![format!("t{n}"), format!("e{}", seq % 7)]),
                assigned_to: Some(rng.gen_bool(0.7).then(|| format!("agent-{}", rng.gen_range(0..3)))),
                ..TicketUpdate::default()
            };
            do_update(id, update, &agent).map(|t| ('U', t))
        } else {
            // Closed tickets are dropped from `mine`, so there is always a legal move.
            let to = *workflow::allowed_from(status).choose(&mut rng).expect("not closed");
            let notes = (to == Status::Resolved).then(|| format!("fixed by agent-{n} in step {seq}"));
            let change = TicketUpdate { status: Some(to), resolution_notes: notes, ..TicketUpdate::default() };
            do_update(id, change, &agent).map(|t| ('U', t))
        };
        match result {
            Ok((op, t)) => {
                mine[idx].status = t.status;
                if t.status == Status::Closed {
                    // Read-only from now on.
                    mine.swap_remove(idx);
                }
                if !ack(op, &t) {
                    return;
                }
            }
            Err(e) => return nack('U', Some(id), &e),
        }
    }
}

/// Prints `@ack <op> <id> <version> <status> <priority>` and flushes it to the pipe.
/// Returns false once stdout is gone (the parent died): time to stop.
fn ack(op: char, t: &Ticket) -> bool {
    let line = format!("{ACK}{op} {} {} {} {}\n", t.id, t.version, t.status, t.priority);
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_ok()
}

/// Reports a write the library refused; the parent fails the round on it.
fn nack(op: char, id: Option<TicketId>, e: &Error) {
    let id = id.map_or_else(|| "-".to_owned(), |id| id.to_string());
    let line = format!("{ERR}{op} {id} {e}\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
}

// ---- the parent ------------------------------------------------------------------------

/// One acknowledged write, as the child printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    op: char,
    id: TicketId,
    version: u64,
    status: Status,
    priority: Priority,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let rest = &line[line.find(ACK)? + ACK.len()..];
    let f: Vec<&str> = rest.split(' ').collect();
    let [op, id, version, status, priority] = f[..] else { panic!("malformed acknowledgement {line:?}") };
    let op = match op {
        "C" | "U" | "M" => op.chars().next().expect("one char"),
        _ => panic!("unknown operation in {line:?}"),
    };
    Some(Ack {
        op,
        id: id.parse().unwrap_or_else(|e| panic!("bad id in {line:?}: {e}")),
        version: version.parse().unwrap_or_else(|e| panic!("bad version in {line:?}: {e}")),
        status: status.parse().unwrap_or_else(|e| panic!("bad status in {line:?}: {e}")),
        priority: priority.parse().unwrap_or_else(|e| panic!("bad priority in {line:?}: {e}")),
    })
}

/// The latest acknowledged state of one ticket.
#[derive(Debug, Clone)]
struct Expected {
    /// Highest acknowledged version, with the status and priority it was acknowledged with.
    last: Ack,
    /// Acknowledged versions and what kind of event each one was.
    kinds: BTreeMap<u64, char>,
}

/// What one database has acknowledged over all the rounds that wrote to it.
#[derive(Default)]
struct Ledger {
    tickets: BTreeMap<TicketId, Expected>,
    /// Tickets as the previous round's check found them, which later rounds never touch
    /// (a child only changes tickets it created itself).
    settled: BTreeMap<TicketId, Ticket>,
}

impl Ledger {
    fn record(&mut self, a: Ack) {
        let e = self.tickets.entry(a.id).or_insert(Expected { last: a, kinds: BTreeMap::new() });
        if let Some(prev) = e.kinds.insert(a.version, a.op) {
            panic!("ticket {} version {} acknowledged twice ({prev} and {})", a.id, a.version, a.op);
        }
        if a.version >= e.last.version {
            e.last = a;
        }
    }
}

/// Figures from one round, for the summary line.
struct RoundReport {
    acked_creates: usize,
    acked_changes: usize,
    drained: usize,
    found: usize,
    unacked_present: usize,
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    let seed = match std::env::var("HELPDESK_CRASH_SEED") {
        Ok(s) => s.parse().expect("HELPDESK_CRASH_SEED must be a u64"),
        Err(_) => rand::thread_rng().gen(),
    };
    println!("crash test seed {seed} (set HELPDESK_CRASH_SEED={seed} to replay the kill points)");
    let mut rng = StdRng::seed_from_u64(seed);
    let exe = std::env::current_exe().expect("path of the test binary");
    let started = Instant::now();

    let mut chain: Option<(tempfile::TempDir, Ledger)> = None;
    for round in 0..ROUNDS {
        if round % CHAIN == 0 {
            chain = None;
        }
        let fresh = chain.is_none();
        let (tmp, ledger) = chain.get_or_insert_with(|| {
            let tmp = tempfile::Builder::new().prefix("helpdesk-crash-").tempdir().expect("temp dir");
            (tmp, Ledger::default())
        });
        let db = tmp.path().join("db");
        let kill_after = rng.gen_range(KILL_AFTER_ACKS);
        let round_started = Instant::now();
        let r = run_round(&exe, &db, kill_after, ledger, round);
        println!(
            "round {round:2}: {} db, killed after {kill_after:3} acks: acked creates {:3}, acked changes {:3} \
             ({} read after the kill), tickets found {:4} ({} present unacknowledged), {:.2?}",
            if fresh { "fresh " } else { "reused" },
            r.acked_creates,
            r.acked_changes,
            r.drained,
            r.found,
            r.unacked_present,
            round_started.elapsed(),
        );
    }
    println!("{ROUNDS} crash rounds in {:.2?}", started.elapsed());
}

/// Spawns the child on `db`, kills it after `kill_after` acknowledgements, then checks the
/// reopened database against everything `ledger` holds.
fn run_round(exe: &Path, db: &Path, kill_after: usize, ledger: &mut Ledger, round: usize) -> RoundReport {
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let lines = line_reader(child.stdout.take().expect("piped stdout"));
    let stderr = stderr_reader(child.stderr.take().expect("piped stderr"));

    let mut round_acks: Vec<Ack> = Vec::new();
    let mut errors: Vec<String> = Vec::new();

    // Wait for acknowledgements, not for time.
    let deadline = Instant::now() + ACK_DEADLINE;
    let mut child_ended = false;
    while round_acks.len() < kill_after {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.rx.recv_timeout(left) {
            Ok(line) => sort_line(line, &mut round_acks, &mut errors),
            Err(RecvTimeoutError::Timeout) => {
                kill(&mut child);
                panic!(
                    "round {round}: only {} of {kill_after} acknowledgements within {ACK_DEADLINE:?}; child stderr:\n{}",
                    round_acks.len(),
                    stderr.finish()
                );
            }
            Err(RecvTimeoutError::Disconnected) => {
                child_ended = true;
                break;
            }
        }
    }
    kill(&mut child);
    if child_ended {
        panic!(
            "round {round}: the child closed stdout after {} acknowledgements (errors: {errors:?}); stderr:\n{}",
            round_acks.len(),
            stderr.finish()
        );
    }

    // Lines the child wrote before it died were acknowledged too: drain them.
    let before_drain = round_acks.len();
    for line in lines.finish() {
        sort_line(line, &mut round_acks, &mut errors);
    }
    let drained = round_acks.len() - before_drain;
    let child_stderr = stderr.finish();
    assert!(errors.is_empty(), "round {round}: the child's writes failed: {errors:#?}\nchild stderr:\n{child_stderr}");

    let acked_creates = round_acks.iter().filter(|a| a.op == 'C').count();
    let acked_changes = round_acks.len() - acked_creates;
    let round_ids: BTreeSet<TicketId> = round_acks.iter().map(|a| a.id).collect();
    for a in &round_acks {
        ledger.record(*a);
    }
    let (found, unacked_present) = check_database(db, ledger, &round_ids, round, &child_stderr);
    RoundReport { acked_creates, acked_changes, drained, found, unacked_present }
}

/// Sorts one line of the child's stdout.
fn sort_line(line: String, acks: &mut Vec<Ack>, errors: &mut Vec<String>) {
    if let Some(at) = line.find(ERR) {
        errors.push(line[at..].to_owned());
    } else if let Some(a) = parse_ack(&line) {
        acks.push(a);
    }
    // Anything else is libtest's own chatter ("running 1 test", ...).
}

/// Reopens the database and checks it against the ledger. Returns the number of tickets
/// found and how many of them were created but never acknowledged (in flight at the kill).
fn check_database(
    db: &Path,
    ledger: &mut Ledger,
    round_ids: &BTreeSet<TicketId>,
    round: usize,
    child_stderr: &str,
) -> (usize, usize) {
    let desk = open_with_retry(db);
    let ctx = |what: String| format!("round {round}: {what}\nchild stderr:\n{child_stderr}");

    let report = desk.verify().expect("verify runs");
    assert!(
        report.is_clean(),
        "{}",
        ctx(format!("verify found {} problems after kill -9: {:#?}", report.problem_count, report.problems))
    );

    let all = list_all(&desk);
    let stats = desk.stats().expect("stats");
    assert_eq!(stats.total, all.len() as u64, "{}", ctx("stats total differs from the listed tickets".into()));
    assert_eq!(report.tickets, all.len() as u64, "{}", ctx("verify saw a different number of tickets".into()));

    // Every acknowledged write is there.
    for (id, e) in &ledger.tickets {
        // A writer changes only tickets whose creation it acknowledged: if this fails, the
        // parent missed an acknowledgement line.
        assert_eq!(e.kinds.get(&1), Some(&'C'), "ticket {id}: changes acknowledged, but not its creation");
        let t = all.get(id).unwrap_or_else(|| {
            panic!("{}", ctx(format!("acknowledged ticket {id} is lost (last acknowledged: {:?})", e.last)))
        });
        assert!(
            t.version >= e.last.version,
            "{}",
            ctx(format!(
                "ticket {id} is at version {} but version {} was acknowledged: {:?}",
                t.version, e.last.version, e.last
            ))
        );
        // Only the one write its owner had in flight can have landed unacknowledged.
        assert!(
            t.version <= e.last.version + 1,
            "{}",
            ctx(format!("ticket {id} is at version {}, acknowledged only up to {}", t.version, e.last.version))
        );
        if t.version == e.last.version {
            assert_eq!(
                (t.status, t.priority),
                (e.last.status, e.last.priority),
                "{}",
                ctx(format!("ticket {id} differs from its acknowledged version {}", t.version))
            );
        }
        let history = desk.history(*id).expect("history");
        let versions: Vec<u64> = history.iter().map(|ev| ev.version).collect();
        assert_eq!(
            versions,
            (1..=t.version).collect::<Vec<_>>(),
            "{}",
            ctx(format!("ticket {id}: events do not match its version {}", t.version))
        );
        for (v, op) in &e.kinds {
            let kind = history[(*v - 1) as usize].kind;
            let want = match op {
                'C' => EventKind::Created,
                'U' => EventKind::Updated,
                _ => EventKind::Commented,
            };
            assert_eq!(kind, want, "{}", ctx(format!("ticket {id} version {v} was acknowledged as {op}")));
        }
    }

    // Tickets as an earlier round's check found them are never touched again (a child
    // only changes tickets it created) and must read exactly the same.
    for (id, before) in &ledger.settled {
        let now = all.get(id).unwrap_or_else(|| panic!("{}", ctx(format!("ticket {id} of an earlier round is lost"))));
        assert_eq!(now, before, "{}", ctx(format!("ticket {id} of an earlier round changed")));
    }

    // Nothing beyond the writes in flight at the kill appeared: each writer thread had at
    // most one, either an unacknowledged creation or one version past its last
    // acknowledged one.
    let unacked: Vec<TicketId> =
        all.keys().filter(|id| !ledger.tickets.contains_key(id) && !ledger.settled.contains_key(id)).copied().collect();
    let ahead: Vec<TicketId> =
        round_ids.iter().filter(|id| all[*id].version > ledger.tickets[*id].last.version).copied().collect();
    assert!(
        unacked.len() + ahead.len() <= CHILD_THREADS,
        "{}",
        ctx(format!(
            "more unacknowledged writes landed than {CHILD_THREADS} threads had in flight: new tickets {unacked:?}, \
             tickets past their acknowledged version {ahead:?}"
        ))
    );

    // The id allocator survived the crash: a new ticket gets a fresh id.
    let max_id = all.keys().next_back().copied().unwrap_or(TicketId(0));
    let t = desk
        .create(
            NewTicket::new("After the crash", "Written by the parent.", Category::Other, "parent@campus.example", "P"),
            &Actor::system("crash-test"),
        )
        .unwrap_or_else(|e| panic!("{}", ctx(format!("create after recovery failed: {e}"))));
    assert!(t.id > max_id, "{}", ctx(format!("new ticket got id {} but {max_id} exists", t.id)));
    let report = desk.verify().expect("verify runs");
    assert!(report.is_clean(), "{}", ctx(format!("verify after one more write: {:#?}", report.problems)));

    let found = all.len();
    let unacked_present = unacked.len();
    ledger.settled = all;
    ledger.settled.insert(t.id, t);
    // The next round's child needs the lock: close the database (this flushes it).
    drop(desk);
    (found, unacked_present)
}

/// Every ticket, by id, read page by page.
fn list_all(desk: &Helpdesk) -> BTreeMap<TicketId, Ticket> {
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = desk.list(&ListQuery::new(Filter::default()).limit(1000).after(cursor)).expect("list");
        for t in page.tickets {
            let id = t.id;
            assert!(out.insert(id, t).is_none(), "ticket {id} listed twice");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Opens the durable database, waiting (with a deadline) for a process that just ended or
/// a handle just dropped to release sled's lock.
fn open_with_retry(db: &Path) -> Helpdesk {
    let deadline = Instant::now() + LOCK_DEADLINE;
    loop {
        match Helpdesk::open(db, Config::default()) {
            Ok(desk) => return desk,
            Err(Error::Locked { .. }) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("cannot open {}: {e}", db.display()),
        }
    }
}

/// SIGKILL (what `Child::kill` sends on Unix), then reap.
fn kill(child: &mut Child) {
    // Fails only if the child already exited, which `wait` then reports.
    let _ = child.kill();
    child.wait().expect("reap the child");
}

/// Complete lines of the child's stdout, read on a thread.
struct Lines {
    rx: Receiver<String>,
    thread: JoinHandle<()>,
}

impl Lines {
    /// The lines not yet received, up to the end of the stream (the child is dead, so the
    /// pipe reaches its end as soon as its buffer is read).
    fn finish(self) -> Vec<String> {
        let deadline = Instant::now() + DRAIN_DEADLINE;
        let mut out = Vec::new();
        loop {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the child's stdout did not end after it was killed"),
            }
        }
        self.thread.join().expect("stdout reader");
        out
    }
}

/// Sends every newline-terminated line; a last line cut short by the kill is not an
/// acknowledgement and is dropped.
fn line_reader(stdout: impl Read + Send + 'static) -> Lines {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) if buf.last() != Some(&b'\n') => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Lines { rx, thread }
}

/// The child's stderr, collected on a thread (so a chatty child never blocks on it).
struct Stderr(JoinHandle<String>);

impl Stderr {
    fn finish(self) -> String {
        self.0.join().unwrap_or_else(|_| "<stderr reader panicked>".into())
    }
}

fn stderr_reader(mut stderr: impl Read + Send + 'static) -> Stderr {
    Stderr(std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    }))
}
