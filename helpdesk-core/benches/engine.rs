//! Benchmarks of the ticket engine (criterion): durable creates with 1 and 64 writers
//! beside the disk's own fsync rate, relaxed creates, and get / list / stats on cached
//! data sets of 10k, 100k and 1M tickets. Results and how to read them: docs/BENCHMARKS.md.
//!
//! ```text
//! cargo bench -p helpdesk-core --bench engine -- --warm-up-time 1 --measurement-time 3
//! HELPDESK_BENCH_QUICK=1 HELPDESK_BENCH_SIZES=10k,100k cargo bench -p helpdesk-core
//! cargo bench -p helpdesk-core --bench engine -- interleaved   # only the interleaved checks
//! ```
//!
//! After criterion's groups, two interleaved checks run (unless a filter excludes them):
//! `interleaved/reads` times list and stats on every size back to back for 41 rounds and
//! reports the median of the per-round 1M/10k ratios, which background load on a shared
//! machine cannot bias the way it biases sizes measured minutes apart; `interleaved/writes`
//! alternates fsync, durable (1 and 64 writers) and relaxed creates in 2-second slices.
//!
//! Environment:
//!
//! * `HELPDESK_BENCH_SIZES` — comma-separated data-set sizes, from `10k`, `100k`, `1m`
//!   (default: all three), e.g. `HELPDESK_BENCH_SIZES=10k,100k` for a quick run.
//! * `HELPDESK_BENCH_DATA` — where the data sets are cached (default:
//!   `$CARGO_TARGET_DIR/bench-data`, else `bench-data` in the target directory this binary
//!   was built in). A data set is `<dir>/<size>/db`; `<dir>/<size>/COMPLETE` marks it as
//!   finished and holds the generation report (time, writes, peak RSS, size on disk).
//! * `HELPDESK_BENCH_QUICK=1` — warm up 1 s and measure 3 s per benchmark (criterion's
//!   defaults are 3 s and 5 s), the same as `-- --warm-up-time 1 --measurement-time 3`.
//!   Useful with plain `cargo bench -p helpdesk-core`, which also runs the library's
//!   libtest bench harness, and that harness rejects criterion's options.
//! * `HELPDESK_BENCH_GENERATE=<size>` — only make sure that data set exists, then exit.
//!   The benchmark uses it itself to generate each data set in a child process, so the
//!   memory of the bulk load does not stay in the measuring process.
//!
//! Data sets are generated through the public API in relaxed mode with a manual clock:
//! one ticket every ~3 minutes over the years before (now - 40 days), with their later
//! updates interleaved in time order. Most tickets end resolved or closed, about 5 % stay
//! unresolved (open, in progress, waiting).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap};
use std::env;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use helpdesk_core::{
    Actor, Category, Config, Durability, Filter, FlushObserver, Helpdesk, ListQuery, ManualClock, NewComment,
    NewTicket, Priority, Status, TicketId, TicketUpdate, Timestamp,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod support;

use support::{data_root, rss_kib};

const SIZES_VAR: &str = "HELPDESK_BENCH_SIZES";
const DATA_VAR: &str = "HELPDESK_BENCH_DATA";
const GENERATE_VAR: &str = "HELPDESK_BENCH_GENERATE";
const QUICK_VAR: &str = "HELPDESK_BENCH_QUICK";
const MARKER: &str = "COMPLETE";

/// Concurrent writers in the group-commit benchmark.
const WRITERS: usize = 64;

fn main() {
    if let Ok(label) = env::var(GENERATE_VAR) {
        let root = data_root();
        let n = parse_size(&label);
        let dir = root.join(&label);
        if dir.join(MARKER).exists() {
            eprintln!("data set {} already complete", dir.display());
        } else {
            generate(&dir, n);
        }
        return;
    }
    let ctx = Ctx::new();
    let mut c = Criterion::default();
    if env::var(QUICK_VAR).is_ok_and(|v| v != "0") {
        c = c.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    }
    let mut c = c.configure_from_args();
    bench_baseline(&mut c, &ctx);
    bench_create(&mut c, &ctx);
    bench_reads(&mut c, &ctx);
    c.final_summary();
    if wants("interleaved/writes") {
        interleaved_writes(&ctx);
    }
    if wants("interleaved/reads") {
        interleaved_reads(&ctx);
    }
}

/// Whether the benchmark filter given on the command line (if any) selects `name`; a
/// plain substring match (criterion's filter is a regex, this is good enough here).
fn wants(name: &str) -> bool {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--profile-time",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--significance-level",
        "--noise-threshold",
        "--confidence-level",
        "--nresamples",
        "--format",
    ];
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list" || a == "--test" || a.starts_with("--profile-time")) {
        return false;
    }
    let mut filter = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if WITH_VALUE.contains(&a.as_str()) {
            i += 1;
        } else if !a.starts_with('-') {
            filter = Some(a.clone());
        }
        i += 1;
    }
    filter.is_none_or(|f| name.contains(&f))
}

// ---- paths and sizes -------------------------------------------------------------------

fn parse_size(label: &str) -> u64 {
    let l = label.trim().to_ascii_lowercase();
    let (digits, mult) = match l.strip_suffix('k') {
        Some(d) => (d, 1_000),
        None => match l.strip_suffix('m') {
            Some(d) => (d, 1_000_000),
            None => (l.as_str(), 1),
        },
    };
    digits.parse::<u64>().map(|d| d * mult).unwrap_or_else(|_| panic!("bad data-set size {label:?} (e.g. 10k, 1m)"))
}

fn sizes() -> Vec<(String, u64)> {
    let spec = env::var(SIZES_VAR).unwrap_or_else(|_| "10k,100k,1m".into());
    spec.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| (s.to_ascii_lowercase(), parse_size(s))).collect()
}

// ---- realistic tickets -----------------------------------------------------------------

const CATEGORIES: &[(Category, u32)] = &[
    (Category::Network, 25),
    (Category::Account, 25),
    (Category::Hardware, 15),
    (Category::Software, 15),
    (Category::Email, 12),
    (Category::Other, 8),
];
const PRIORITIES: &[(Priority, u32)] =
    &[(Priority::Low, 20), (Priority::Medium, 55), (Priority::High, 20), (Priority::Critical, 5)];
const TAGS: &[&str] = &[
    "wifi",
    "eduroam",
    "vpn",
    "ethernet",
    "printing",
    "lab-a",
    "lab-b",
    "library",
    "password",
    "mfa",
    "laptop",
    "projector",
    "licence",
    "matlab",
    "office",
    "outlook",
    "quota",
    "phishing",
    "lms",
    "exam",
    "dorm",
    "monitor",
    "backup",
    "video-call",
    "new-hire",
    "vip",
    "hardware-swap",
    "onboarding",
    "lecture-hall",
    "remote",
];
const AGENTS: usize = 40;
const STUDENTS: u32 = 20_000;
const STAFF: u32 = 600;

fn pick<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn agent_name(rng: &mut StdRng) -> String {
    format!("agent{:02}", rng.gen_range(1..=AGENTS))
}

const FILLER: &[&str] = &[
    "It worked fine until this morning.",
    "I already restarted the computer twice.",
    "Colleagues in the same room have the same problem.",
    "The error message says to contact the administrator.",
    "This is blocking my coursework due on Friday.",
    "I am on the third floor, room 3.14, near the window.",
    "It happens both on the campus network and at home.",
    "Screenshots are available on request.",
    "I tried the self-service portal but it timed out.",
    "The problem started after the last software update.",
];

/// A new ticket as a campus requester would file it (about 300–900 bytes stored).
fn new_ticket(rng: &mut StdRng) -> (NewTicket, Actor) {
    let category = pick(rng, CATEGORIES);
    let subject = match category {
        Category::Network => ["Wi-Fi keeps dropping", "No network in lab", "VPN will not connect", "Slow eduroam"],
        Category::Account => ["Cannot log in", "Password expired", "MFA token lost", "Account locked"],
        Category::Hardware => ["Printer jams", "Projector has no signal", "Laptop will not boot", "Broken monitor"],
        Category::Software => ["Licence error", "Cannot install package", "App crashes on start", "Update fails"],
        Category::Email => ["Mailbox full", "Mail not delivered", "Phishing report", "Calendar not syncing"],
        Category::Other => ["Question about storage", "Request new account", "Room booking screen", "Other issue"],
    }[rng.gen_range(0..4)];
    let (email, name) = if rng.gen_bool(0.9) {
        let k = rng.gen_range(1..=STUDENTS);
        (format!("s{k:05}@students.campus.example"), format!("Student {k}"))
    } else {
        let k = rng.gen_range(1..=STAFF);
        (format!("staff{k:03}@campus.example"), format!("Staff Member {k}"))
    };
    let title = format!("{subject} (building {})", rng.gen_range(1..=40));
    let mut description = format!("{subject}. ");
    for _ in 0..rng.gen_range(1..=8) {
        description.push_str(FILLER[rng.gen_range(0..FILLER.len())]);
        description.push(' ');
    }
    let ntags = pick(rng, &[(0usize, 30), (1, 40), (2, 20), (3, 10)]);
    let tags: Vec<&str> = (0..ntags).map(|_| TAGS[rng.gen_range(0..TAGS.len())]).collect();
    let mut new =
        NewTicket::new(title, description, category, email, name.clone()).priority(pick(rng, PRIORITIES)).tags(tags);
    if rng.gen_bool(0.15) {
        new = new.assigned_to(agent_name(rng));
    }
    (new, Actor::requester(name))
}

// ---- data-set generation ---------------------------------------------------------------

/// Mean time between two tickets (a campus helpdesk of ~480 tickets a day).
const MEAN_GAP_MS: u64 = 180_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

#[derive(Debug, Clone)]
enum Step {
    /// Take it (status in_progress, assigned to the agent).
    Start,
    /// Assign without changing the status.
    Assign,
    /// Wait on the requester.
    Wait,
    /// The agent comments publicly.
    Comment,
    /// Resolve with notes.
    Resolve,
    /// The requester reopens a resolved ticket.
    Reopen,
    /// Closed automatically some days after resolution.
    Close,
}

/// What will happen to a ticket after its creation: `(delay after the previous step, step)`.
fn plan(rng: &mut StdRng) -> Vec<(u64, Step)> {
    let respond = |rng: &mut StdRng| rng.gen_range(5 * MINUTE..2 * DAY);
    let work = |rng: &mut StdRng| rng.gen_range(30 * MINUTE..6 * DAY);
    let mut steps = Vec::new();
    // Per mille: open 30, in_progress 15, waiting 5, resolved 200, closed 750.
    let fate = rng.gen_range(0..1000);
    match fate {
        0..=29 => {
            if rng.gen_bool(0.4) {
                steps.push((respond(rng), Step::Assign));
            }
        }
        30..=44 => steps.push((respond(rng), Step::Start)),
        45..=49 => {
            steps.push((respond(rng), Step::Start));
            steps.push((work(rng), Step::Comment));
            steps.push((rng.gen_range(MINUTE..HOUR), Step::Wait));
        }
        _ => {
            if rng.gen_bool(0.35) {
                steps.push((respond(rng), Step::Start));
            }
            if rng.gen_bool(0.2) {
                steps.push((work(rng), Step::Comment));
            }
            steps.push((work(rng), Step::Resolve));
            if rng.gen_bool(0.03) {
                steps.push((rng.gen_range(HOUR..3 * DAY), Step::Reopen));
                steps.push((work(rng), Step::Resolve));
            }
            if fate >= 250 {
                steps.push((rng.gen_range(3 * DAY..14 * DAY), Step::Close));
            }
        }
    }
    steps
}

/// A ticket with steps still to come, ordered by the time of its next step.
struct Pending {
    at: u64,
    seq: u64,
    id: TicketId,
    agent: String,
    steps: std::vec::IntoIter<(u64, Step)>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` pops the earliest step first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

fn apply_step(desk: &Helpdesk, rng: &mut StdRng, p: &Pending, step: &Step) -> u64 {
    let agent = Actor::agent(p.agent.clone());
    let r = match step {
        Step::Start => desk
            .update(
                p.id,
                TicketUpdate {
                    status: Some(Status::InProgress),
                    assigned_to: Some(Some(p.agent.clone())),
                    ..TicketUpdate::default()
                },
                &agent,
            )
            .map(|_| ()),
        Step::Assign => desk.assign(p.id, Some(p.agent.clone()), &agent).map(|_| ()),
        Step::Wait => desk.transition(p.id, Status::Waiting, None, &agent).map(|_| ()),
        Step::Comment => {
            let body = FILLER[rng.gen_range(0..FILLER.len())];
            desk.comment(p.id, NewComment::public(format!("Could you check again? {body}")), &agent).map(|_| ())
        }
        Step::Resolve => desk
            .update(
                p.id,
                TicketUpdate {
                    status: Some(Status::Resolved),
                    assigned_to: Some(Some(p.agent.clone())),
                    resolution_notes: Some(format!("Fixed by {}: {}", p.agent, FILLER[rng.gen_range(0..FILLER.len())])),
                    ..TicketUpdate::default()
                },
                &agent,
            )
            .map(|_| ()),
        Step::Reopen => desk.transition(p.id, Status::Open, None, &Actor::requester("requester")).map(|_| ()),
        Step::Close => desk.transition(p.id, Status::Closed, None, &Actor::system("auto-close")).map(|_| ()),
    };
    r.unwrap_or_else(|e| panic!("step {step:?} on ticket {}: {e}", p.id));
    1
}

/// Generates `n` tickets into `dir/db` and writes `dir/COMPLETE` with a report.
fn generate(dir: &Path, n: u64) {
    if dir.exists() {
        fs::remove_dir_all(dir).expect("remove an incomplete data set");
    }
    fs::create_dir_all(dir).expect("create the data-set directory");
    let end = Timestamp::now().as_millis() - 40 * DAY;
    let start = end - n * MEAN_GAP_MS;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(start)));
    let config = Config::default().durability(Durability::Relaxed).clock(clock.clone());
    let desk = Helpdesk::open(dir.join("db"), config).expect("open the data-set database");
    let mut rng = StdRng::seed_from_u64(0x4e1d_de5c);
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let began = Instant::now();
    let mut writes = 0u64;
    let mut seq = 0u64;
    let mut peak_rss = 0u64;
    let run_due = |heap: &mut BinaryHeap<Pending>, rng: &mut StdRng, until: u64, writes: &mut u64| {
        while heap.peek().is_some_and(|p| p.at <= until) {
            let Some(mut p) = heap.pop() else { break };
            clock.set(Timestamp::from_millis(p.at));
            if let Some((_, step)) = p.steps.next() {
                *writes += apply_step(&desk, rng, &p, &step);
            }
            if let Some((delay, _)) = p.steps.as_slice().first() {
                p.at += delay;
                heap.push(p);
            }
        }
    };
    eprintln!("generating {n} tickets into {}", dir.display());
    for i in 0..n {
        let created = start + i * MEAN_GAP_MS + rng.gen_range(0..MEAN_GAP_MS);
        run_due(&mut heap, &mut rng, created, &mut writes);
        clock.set(Timestamp::from_millis(created));
        let (new, requester) = new_ticket(&mut rng);
        let t = desk.create(new, &requester).expect("create a ticket");
        writes += 1;
        let steps = plan(&mut rng);
        if let Some((delay, _)) = steps.first() {
            seq += 1;
            let agent = t.assigned_to.clone().unwrap_or_else(|| agent_name(&mut rng));
            heap.push(Pending { at: created + delay, seq, id: t.id, agent, steps: steps.into_iter() });
        }
        if (i + 1).is_multiple_of(50_000) {
            let (rss, hwm) = rss_kib();
            peak_rss = peak_rss.max(hwm);
            let secs = began.elapsed().as_secs_f64();
            eprintln!(
                "  {} tickets, {writes} writes, {secs:.0} s ({:.0} writes/s), RSS {} MiB",
                i + 1,
                writes as f64 / secs,
                rss / 1024
            );
        }
    }
    run_due(&mut heap, &mut rng, u64::MAX, &mut writes);
    desk.flush().expect("flush the data set");
    let load_secs = began.elapsed().as_secs_f64();
    let stats = desk.stats().expect("stats of the data set");
    assert_eq!(stats.total, n, "generated ticket count");
    let size_on_disk = desk.size_on_disk().expect("size on disk");
    drop(desk);
    let (rss, hwm) = rss_kib();
    peak_rss = peak_rss.max(hwm);
    let secs = began.elapsed().as_secs_f64();
    let by_status: Vec<String> = stats.by_status.iter().map(|(s, c)| format!("{s}:{c}")).collect();
    let report = format!(
        "tickets={n}\nwrites={writes}\nload_seconds={load_secs:.1}\nseconds_with_close={secs:.1}\n\
         writes_per_second={:.0}\npeak_rss_mib={}\nrss_after_close_mib={}\nsize_on_disk_mib={}\n\
         by_status={}\nfirst_created_ms={start}\nlast_created_ms={}\n",
        writes as f64 / load_secs,
        peak_rss / 1024,
        rss / 1024,
        size_on_disk / (1 << 20),
        by_status.join(","),
        start + n * MEAN_GAP_MS,
    );
    eprint!("{report}");
    let mut f = fs::File::create(dir.join(MARKER)).expect("create the marker");
    f.write_all(report.as_bytes()).expect("write the marker");
    f.sync_all().expect("sync the marker");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt_secs(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

// ---- interleaved checks ----------------------------------------------------------------

/// Rounds of the interleaved read check.
const READ_ROUNDS: usize = 41;

/// The flatness ratios measured so that background load cannot bias them: every round
/// times each query on every data-set size back to back (in a rotating order), the ratio
/// 1M/10k is taken within each round, and the median over the rounds is reported.
/// Criterion runs the sizes one after the other, minutes apart, so on a shared machine a
/// change in background load between them shows up as a ratio.
fn interleaved_reads(ctx: &Ctx) {
    let labels: Vec<String> = ctx.sizes.iter().map(|(l, _)| l.clone()).collect();
    if labels.is_empty() {
        return;
    }
    let desks: Vec<Helpdesk> = labels.iter().map(|l| ctx.desk(l)).collect();
    let open = ListQuery::new(Filter { status: Some(Status::Open), ..Filter::default() }).limit(50);
    let two =
        ListQuery::new(Filter { status: Some(Status::Open), category: Some(Category::Network), ..Filter::default() })
            .limit(50);
    type Op<'a> = Box<dyn Fn(&Helpdesk) + 'a>;
    let ops: Vec<(&str, usize, Op<'_>)> = vec![
        ("list/50_filtered", 20, Box::new(|d: &Helpdesk| drop(d.list(&open).expect("list")))),
        ("list/50_two_filters", 10, Box::new(|d: &Helpdesk| drop(d.list(&two).expect("list")))),
        ("stats", 5000, Box::new(|d: &Helpdesk| drop(d.stats().expect("stats")))),
    ];
    eprintln!("interleaved/reads: {READ_ROUNDS} rounds over {}", labels.join(", "));
    // times[op][size] = seconds per call, one per round.
    let mut times = vec![vec![Vec::with_capacity(READ_ROUNDS); labels.len()]; ops.len()];
    for round in 0..READ_ROUNDS {
        for (o, (_, batch, op)) in ops.iter().enumerate() {
            for k in 0..labels.len() {
                let s = (k + round) % labels.len();
                let d = &desks[s];
                op(d);
                let began = Instant::now();
                for _ in 0..*batch {
                    op(d);
                }
                times[o][s].push(began.elapsed().as_secs_f64() / *batch as f64);
            }
        }
    }
    println!("\ninterleaved/reads ({READ_ROUNDS} rounds; median per call, and the median of the per-round ratios)");
    for (o, (name, ..)) in ops.iter().enumerate() {
        let mut line = format!("  {name:<22}");
        for (s, label) in labels.iter().enumerate() {
            line.push_str(&format!(" {label}: {:>10}", fmt_secs(median(&mut times[o][s].clone()))));
        }
        if labels.len() > 1 {
            let last = labels.len() - 1;
            let mut ratios: Vec<f64> = (0..READ_ROUNDS).map(|r| times[o][last][r] / times[o][0][r]).collect();
            let mut sorted = ratios.clone();
            sorted.sort_by(f64::total_cmp);
            line.push_str(&format!(
                "   {}/{}: {:.2} (quartiles {:.2}–{:.2})",
                labels[last],
                labels[0],
                median(&mut ratios),
                sorted[sorted.len() / 4],
                sorted[sorted.len() * 3 / 4]
            ));
        }
        println!("{line}");
    }
}

/// Rounds of the interleaved write check, and the time given to each measurement.
const WRITE_ROUNDS: usize = 5;
const WRITE_SLICE: Duration = Duration::from_secs(2);

/// Durable creates (1 and 64 writers), relaxed creates and the disk's fsync rate,
/// alternated in slices of two seconds, so that each round compares them under the same
/// background load.
/// Runs `op` over and over for one slice of `interleaved/writes`; operations per second.
fn slice_rate(mut op: impl FnMut()) -> f64 {
    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed() < WRITE_SLICE {
        op();
        n += 1;
    }
    n as f64 / began.elapsed().as_secs_f64()
}

fn interleaved_writes(ctx: &Ctx) {
    eprintln!("interleaved/writes: {WRITE_ROUNDS} rounds of {WRITE_SLICE:?} each");
    let payload = [b'x'; 100];
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ctx.scratch.path().join("fsync-interleaved"))
        .expect("open the fsync file");
    let durable = ctx.scratch_db("interleaved-durable", Config::default());
    let relaxed = ctx.scratch_db("interleaved-relaxed", Config::default().durability(Durability::Relaxed));
    let names = ["fsync", "durable_1_writer", "durable_64_writers", "relaxed"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..WRITE_ROUNDS {
        rates[0].push(slice_rate(|| {
            f.write_all(&payload).expect("write");
            f.sync_data().expect("sync_data");
        }));
        rates[1].push(slice_rate(|| {
            let (new, who) = new_ticket(&mut rng);
            durable.create(new, &who).expect("durable create");
        }));
        // 64 durable writers
        let total = AtomicU64::new(0);
        let barrier = Barrier::new(WRITERS + 1);
        let elapsed = std::thread::scope(|s| {
            for w in 0..WRITERS as u64 {
                let (durable, barrier, total) = (&durable, &barrier, &total);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(2000 + w);
                    barrier.wait();
                    let began = Instant::now();
                    let mut n = 0u64;
                    while began.elapsed() < WRITE_SLICE {
                        let (new, who) = new_ticket(&mut rng);
                        durable.create(new, &who).expect("durable create");
                        n += 1;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                });
            }
            barrier.wait();
            Instant::now()
        })
        .elapsed();
        rates[2].push(total.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64());
        rates[3].push(slice_rate(|| {
            let (new, who) = new_ticket(&mut rng);
            relaxed.create(new, &who).expect("relaxed create");
        }));
    }
    println!("\ninterleaved/writes ({WRITE_ROUNDS} rounds of {WRITE_SLICE:?}; operations per second)");
    for (name, r) in names.iter().zip(&rates) {
        let per_round: Vec<String> = r.iter().map(|x| format!("{x:.0}")).collect();
        println!("  {name:<20} median {:>7.0}/s   rounds: {}", median(&mut r.clone()), per_round.join(" "));
    }
    let mut gain: Vec<f64> = rates[2].iter().zip(&rates[0]).map(|(d, f)| d / f).collect();
    let mut vs_one: Vec<f64> = rates[2].iter().zip(&rates[1]).map(|(d, o)| d / o).collect();
    println!(
        "  durable_64_writers / fsync: {:.1}x, durable_64_writers / durable_1_writer: {:.1}x (medians of per-round ratios)",
        median(&mut gain),
        median(&mut vs_one)
    );
}

// ---- benchmark context -----------------------------------------------------------------

struct Ctx {
    root: PathBuf,
    sizes: Vec<(String, u64)>,
    /// Data sets opened so far (each is opened once per process).
    open: Mutex<BTreeMap<String, Helpdesk>>,
    /// Scratch space for write benchmarks and the fsync baseline (same file system).
    scratch: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Self {
        let root = data_root();
        fs::create_dir_all(&root).expect("create the bench-data directory");
        let scratch = tempfile::Builder::new().prefix("scratch-").tempdir_in(&root).expect("scratch directory");
        Ctx { root, sizes: sizes(), open: Mutex::new(BTreeMap::new()), scratch }
    }

    /// The data set `label`, generated (in a child process) if it is not cached yet.
    fn desk(&self, label: &str) -> Helpdesk {
        let mut open = self.open.lock().expect("data-set map lock");
        if let Some(d) = open.get(label) {
            return d.clone();
        }
        let dir = self.root.join(label);
        if !dir.join(MARKER).exists() {
            let exe = env::current_exe().expect("the path of the benchmark binary");
            let status = Command::new(exe)
                .env(GENERATE_VAR, label)
                .env(DATA_VAR, &self.root)
                .status()
                .expect("run the data-set generator");
            assert!(status.success() && dir.join(MARKER).exists(), "generating data set {label} failed: {status}");
        }
        let began = Instant::now();
        let desk = Helpdesk::open(dir.join("db"), Config::default()).expect("open a cached data set");
        let total = desk.stats().expect("stats").total;
        assert_eq!(total, parse_size(label), "data set {label} holds {total} tickets; delete {}", dir.display());
        eprintln!("opened data set {label} ({total} tickets) in {:.2} s", began.elapsed().as_secs_f64());
        open.insert(label.to_string(), desk.clone());
        desk
    }

    fn scratch_db(&self, name: &str, config: Config) -> Helpdesk {
        Helpdesk::open(self.scratch.path().join(name), config).expect("open a scratch database")
    }
}

// ---- benchmarks ------------------------------------------------------------------------

/// The disk's own rate of small synchronous writes, on the file system holding the data.
fn bench_baseline(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let payload = [b'x'; 100];
    g.bench_function("fsync", |b| {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ctx.scratch.path().join("fsync-append"))
            .expect("open the fsync file");
        b.iter(|| {
            f.write_all(&payload).expect("write");
            f.sync_data().expect("sync_data");
        })
    });
    g.bench_function("fsync_overwrite", |b| {
        use std::os::unix::fs::FileExt as _;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(ctx.scratch.path().join("fsync-overwrite"))
            .expect("open the fsync file");
        f.write_all_at(&payload, 0).expect("write");
        f.sync_all().expect("sync_all");
        b.iter(|| {
            f.write_all_at(&payload, 0).expect("write");
            f.sync_data().expect("sync_data");
        })
    });
    g.finish();
}

/// Counts the group-commit flushes of a database.
#[derive(Clone, Default)]
struct FlushCount {
    flushes: Arc<AtomicU64>,
    micros: Arc<AtomicU64>,
}

impl FlushCount {
    fn observer(&self) -> FlushObserver {
        let me = self.clone();
        FlushObserver::new(move |d: Duration| {
            me.flushes.fetch_add(1, Ordering::Relaxed);
            me.micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        })
    }

    fn report(&self, what: &str, creates: u64) {
        let flushes = self.flushes.load(Ordering::Relaxed);
        if creates == 0 || flushes == 0 {
            return;
        }
        let micros = self.micros.load(Ordering::Relaxed);
        eprintln!(
            "{what}: {creates} creates, {flushes} flushes: {:.1} creates per flush, mean flush {:.2} ms",
            creates as f64 / flushes as f64,
            micros as f64 / flushes as f64 / 1000.0
        );
    }
}

fn bench_create(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group("create");
    g.throughput(Throughput::Elements(1));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);

    let count = FlushCount::default();
    let desk = ctx.scratch_db("durable-1", Config::default().flush_observer(count.observer()));
    let mut rng = StdRng::seed_from_u64(1);
    let mut creates = 0u64;
    g.bench_function("durable_1_writer", |b| {
        b.iter(|| {
            let (new, who) = new_ticket(&mut rng);
            creates += 1;
            desk.create(new, &who).expect("durable create")
        })
    });
    count.report("create/durable_1_writer", creates);
    drop(desk);

    let count = FlushCount::default();
    let desk = ctx.scratch_db("durable-64", Config::default().flush_observer(count.observer()));
    let creates = AtomicU64::new(0);
    g.bench_function(format!("durable_{WRITERS}_writers"), |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(WRITERS + 1);
            std::thread::scope(|s| {
                for w in 0..WRITERS as u64 {
                    let mine = iters / WRITERS as u64 + u64::from(w < iters % WRITERS as u64);
                    let (desk, barrier, creates) = (&desk, &barrier, &creates);
                    s.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(1000 + w);
                        let work: Vec<_> = (0..mine).map(|_| new_ticket(&mut rng)).collect();
                        barrier.wait();
                        for (new, who) in work {
                            desk.create(new, &who).expect("durable create");
                        }
                        creates.fetch_add(mine, Ordering::Relaxed);
                    });
                }
                barrier.wait();
                let started = Instant::now();
                // Leaving the scope joins every writer.
                started
            })
            .elapsed()
        })
    });
    count.report("create/durable_64_writers", creates.load(Ordering::Relaxed));
    drop(desk);

    let desk = ctx.scratch_db("relaxed", Config::default().durability(Durability::Relaxed));
    let mut rng = StdRng::seed_from_u64(2);
    g.bench_function("relaxed", |b| {
        b.iter(|| {
            let (new, who) = new_ticket(&mut rng);
            desk.create(new, &who).expect("relaxed create")
        })
    });
    let (rss, hwm) = rss_kib();
    let tickets = desk.stats().expect("stats").total;
    eprintln!(
        "after create/relaxed ({tickets} tickets in that database): VmRSS {} MiB, VmHWM {} MiB",
        rss >> 10,
        hwm >> 10
    );
    drop(desk);
    g.finish();
}

fn bench_reads(c: &mut Criterion, ctx: &Ctx) {
    let sizes = ctx.sizes.clone();

    let mut g = c.benchmark_group("get");
    for (label, n) in &sizes {
        g.bench_function(BenchmarkId::new("by_id", label), |b| {
            let desk = ctx.desk(label);
            let mut rng = StdRng::seed_from_u64(3);
            b.iter(|| desk.get(TicketId(rng.gen_range(1..=*n))).expect("get by id"))
        });
    }
    g.finish();

    let open = Filter { status: Some(Status::Open), ..Filter::default() };
    let open_network = Filter { category: Some(Category::Network), ..open.clone() };
    let agent_high = Filter {
        assigned_to: Some("agent07".into()),
        priority: Some(Priority::High),
        status: Some(Status::Closed),
        ..Filter::default()
    };
    let mut g = c.benchmark_group("list");
    for (name, filter) in [("50_filtered", &open), ("50_two_filters", &open_network), ("50_three_filters", &agent_high)]
    {
        for (label, _) in &sizes {
            g.bench_function(BenchmarkId::new(name, label), |b| {
                let desk = ctx.desk(label);
                let q = ListQuery::new(filter.clone()).limit(50);
                b.iter(|| {
                    let page = desk.list(&q).expect("list");
                    assert!(!page.tickets.is_empty());
                    page
                })
            });
        }
    }
    // A page of 50 starting at a random point in history: the pages touched change on
    // every call, so this also shows the cost of reading past sled's cache.
    for (label, _) in &sizes {
        g.bench_function(BenchmarkId::new("50_random_depth", label), |b| {
            let desk = ctx.desk(label);
            let first = desk.get(TicketId(1)).expect("first ticket").created_at.as_millis();
            let last = desk.list(&ListQuery::default().limit(1)).expect("newest").tickets[0].created_at.as_millis();
            let mut rng = StdRng::seed_from_u64(4);
            b.iter(|| {
                let before = Timestamp::from_millis(rng.gen_range(first + 1..=last));
                let f = Filter { category: Some(Category::Network), created_before: Some(before), ..Filter::default() };
                desk.list(&ListQuery::new(f).limit(50)).expect("list")
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("stats");
    for (label, _) in &sizes {
        g.bench_function(label.as_str(), |b| {
            let desk = ctx.desk(label);
            b.iter(|| desk.stats().expect("stats"))
        });
    }
    g.finish();
}
