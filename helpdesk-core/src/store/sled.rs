//! The sled backend: tickets, events, indexes and counters in one sled `Db`.
//!
//! # Concurrency
//!
//! All writes go through one writer mutex. sled would serialise conflicting transactions
//! anyway (every write touches the shared counters), so the mutex costs no parallelism,
//! and it gives three things cheaply: id allocation without retries, counters and the
//! breach cache updated in commit order, and a barrier for point-in-time exports.
//!
//! Writes are *combined*: a writer queues its change; whoever holds the mutex applies
//! every queued change in one transaction (`BatchState`, each change validated against the
//! batch's own view of the tickets) and answers each writer. sled writes its log once per
//! transaction, so this is what lets many writers go faster than one. The flush that makes
//! them durable happens after the mutex is released and is shared by every waiting writer
//! (see [`super::commit`]).
//!
//! Two kinds of writer feed the queue. A blocking caller (`submit`) takes the mutex itself
//! and then waits for the flush on a condvar. An async caller (`submit_async`) only queues
//! its change with a oneshot sender and wakes the store's writer thread, which applies the
//! batch; the batch hands the durable answers to the flusher, which sends them when their
//! flush is done. An async write thus costs no thread of its own, and fewer thread
//! hand-offs than a blocking call made from a thread pool (figures in docs/BENCHMARKS.md,
//! "Async writes and inline reads").
//!
//! Readers take no lock. A reader that combines an index entry with a ticket re-checks the
//! ticket against its filter, so a ticket changing between the two reads never shows up
//! where it does not belong.
//!
//! # Snapshots
//!
//! An export registers itself under the writer mutex and notes the highest ticket id. From
//! then on, the first write to each such ticket also stores the ticket's previous value as
//! a pre-image (in the same transaction). The export reads tickets in chunks under the
//! writer mutex and prefers the pre-image when there is one, so it sees every ticket
//! exactly as it was when the export began, while writers are held up only for the few
//! milliseconds a chunk takes. Events are append-only and keyed by version, so the events
//! of a ticket at version `v` are simply `1..=v`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional, Tree};

use super::commit::{self, flush_to_disk, GroupCommit};
use super::keys;
use super::migrate;
use super::{decode, encode, lock};
use crate::clock::Timestamp;
use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::history::Event;
use crate::query::{Cursor, ListQuery, Page, SCAN_BUDGET};
use crate::snapshot::{self, Header, Record, SnapshotReader, SnapshotSummary, SnapshotWriter, SNAPSHOT_FORMAT};
use crate::stats::{Counter, Counters, Stats};
use crate::ticket::{Ticket, TicketId};
use crate::verify::{ProblemKind, RepairReport, VerifyReport};

/// Tickets read per chunk of an export (each chunk briefly holds the writer mutex).
const EXPORT_CHUNK: usize = 256;
/// Tickets written per batch by import and repair.
const BULK_CHUNK: usize = 1000;

/// The sled trees; see [`keys`] for their layouts.
pub(crate) struct Trees {
    pub db: sled::Db,
    pub tickets: Tree,
    pub events: Tree,
    pub index: Tree,
    pub meta: Tree,
    pub preimages: Tree,
}

/// State owned by the writer mutex.
struct Writer {
    next_id: u64,
    /// Running exports: snapshot id -> highest ticket id it covers.
    snapshots: BTreeMap<u64, u64>,
    next_snapshot: u64,
}

/// Derived in-memory state, changed only by a writer holding the writer mutex *and* this
/// mutex across its commit, and read by `stats` under this mutex alone.
struct Derived {
    counters: Counters,
    breach: BreachCache,
}

/// Number of deadline-index entries due before `watermark`, advanced lazily: reading it
/// at time `now` only counts the entries that fell due since the last read, so `stats` is
/// O(new breaches), not O(tickets).
struct BreachCache {
    watermark: Timestamp,
    count: u64,
}

impl BreachCache {
    fn count_due(index: &Tree, from: Timestamp, to: Timestamp) -> Result<u64> {
        let lo = keys::deadline_key(from, TicketId(0));
        let hi = keys::deadline_key(to, TicketId(0));
        let mut n = 0;
        for kv in index.range(lo..hi) {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    fn new(index: &Tree, now: Timestamp) -> Result<Self> {
        Ok(BreachCache { watermark: now, count: Self::count_due(index, Timestamp::EPOCH, now)? })
    }

    /// Moves the watermark to `now`.
    fn advance(&mut self, index: &Tree, now: Timestamp) -> Result<()> {
        if now > self.watermark {
            self.count += Self::count_due(index, self.watermark, now)?;
        } else if now < self.watermark {
            // The clock went back: recount rather than guess.
            self.count = Self::count_due(index, Timestamp::EPOCH, now)?;
        }
        self.watermark = now;
        Ok(())
    }

    /// Accounts for a ticket's deadline entry moving from `old` to `new`.
    fn on_change(&mut self, old: Option<Timestamp>, new: Option<Timestamp>) {
        if old.is_some_and(|d| d < self.watermark) {
            self.count = self.count.saturating_sub(1);
        }
        if new.is_some_and(|d| d < self.watermark) {
            self.count += 1;
        }
    }
}

/// The store: a handle to [`Shared`] (which it derefs to) plus the writer thread that
/// applies queued asynchronous writes (see [`Shared::submit_async`]).
pub(crate) struct SledStore {
    shared: Arc<Shared>,
    writer_thread: Option<JoinHandle<()>>,
}

impl SledStore {
    pub(crate) fn open(path: Option<&Path>, config: &Config, now: Timestamp) -> Result<Self> {
        let shared = Arc::new(Shared::open(path, config, now)?);
        let s = shared.clone();
        let writer_thread = std::thread::Builder::new()
            .name("helpdesk-writer".into())
            .spawn(move || s.writer_loop())
            .map_err(|e| Error::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(SledStore { shared, writer_thread: Some(writer_thread) })
    }
}

impl std::ops::Deref for SledStore {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // The writer thread applies what is still queued, then exits; the last reference
        // to `Shared` then closes the database (see its `Drop`).
        {
            let mut q = lock(&self.shared.queue);
            q.stop = true;
            self.shared.queued.notify_all();
        }
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes waiting for the next batch.
#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// The writer thread is waiting on `Shared::queued` for work.
    writer_idle: bool,
    /// The store is closing: the writer thread exits once `jobs` is empty.
    stop: bool,
}

pub(crate) struct Shared {
    trees: Trees,
    /// sled's log file, opened to `fdatasync` it (see [`super::commit`]); `None` for
    /// temporary databases.
    log: Option<std::fs::File>,
    writer: Mutex<Writer>,
    /// Writes waiting for the next batch (see `submit` and `submit_async`).
    queue: Mutex<Queue>,
    /// Wakes the writer thread when an asynchronous write is queued.
    queued: Condvar,
    derived: Mutex<Derived>,
    commit: Option<GroupCommit>,
    schema_version: u32,
}

type TxResult = std::result::Result<(), TransactionError<()>>;

fn tx_err(e: TransactionError<()>) -> Error {
    match e {
        TransactionError::Storage(s) => s.into(),
        TransactionError::Abort(()) => Error::Storage("transaction aborted".into()),
    }
}

impl Shared {
    fn open(path: Option<&Path>, config: &Config, now: Timestamp) -> Result<Self> {
        let sled_config = sled::Config::new()
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(config.flush_every_ms.max(1)));
        let sled_config = match path {
            Some(p) => sled_config.path(p),
            None => sled_config.temporary(true),
        };
        let db = sled_config.open().map_err(|e| open_error(e, path))?;
        let trees = Trees {
            tickets: db.open_tree(keys::TICKETS)?,
            events: db.open_tree(keys::EVENTS)?,
            index: db.open_tree(keys::INDEX)?,
            meta: db.open_tree(keys::META)?,
            preimages: db.open_tree(keys::PREIMAGES)?,
            db,
        };
        if trees.meta.contains_key(keys::IMPORT_IN_PROGRESS)? {
            return Err(Error::IncompleteImport);
        }
        let schema_version = migrate::migrate(&trees)?;
        // Pre-images belong to exports of a previous process; none of them is running now.
        trees.preimages.clear()?;
        let next_id = match trees.meta.get(keys::NEXT_TICKET_ID)? {
            Some(v) => keys::u64_of(&v)
                .ok_or_else(|| Error::corrupt(keys::describe(keys::META, keys::NEXT_TICKET_ID), "not a u64"))?,
            None => 1,
        };
        let counters = load_counters(&trees.meta)?;
        let breach = BreachCache::new(&trees.index, now)?;
        // sled keeps its log in `<dir>/db`; any descriptor of the file can fsync it.
        let log = path
            .map(|p| {
                let file = p.join("db");
                std::fs::File::open(&file)
                    .map_err(|e| Error::Storage(format!("cannot open {} for syncing: {e}", file.display())))
            })
            .transpose()?;
        let flusher_log = log
            .as_ref()
            .map(std::fs::File::try_clone)
            .transpose()
            .map_err(|e| Error::Storage(format!("cannot duplicate the log descriptor: {e}")))?;
        let commit = match config.durability {
            Durability::Durable => {
                Some(GroupCommit::start(trees.db.clone(), flusher_log, config.flush_observer.clone())?)
            }
            Durability::Relaxed => None,
        };
        Ok(Shared {
            trees,
            log,
            writer: Mutex::new(Writer { next_id, snapshots: BTreeMap::new(), next_snapshot: 1 }),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            derived: Mutex::new(Derived { counters, breach }),
            commit,
            schema_version,
        })
    }

    pub(crate) fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// Waits for durability when the store is durable.
    fn durable(&self) -> Result<()> {
        match &self.commit {
            Some(c) => c.wait(),
            None => Ok(()),
        }
    }

    /// Flushes everything written so far, whatever the durability mode.
    pub(crate) fn flush(&self) -> Result<()> {
        match &self.commit {
            Some(c) => c.wait(),
            None => flush_to_disk(&self.trees.db, self.log.as_ref()),
        }
    }

    pub(crate) fn size_on_disk(&self) -> Result<u64> {
        Ok(self.trees.db.size_on_disk()?)
    }

    /// Proves the database takes durable writes: writes a heartbeat and flushes it.
    pub(crate) fn heartbeat(&self, now: Timestamp) -> Result<()> {
        {
            let _w = lock(&self.writer);
            self.trees.meta.insert(keys::HEARTBEAT, &now.as_millis().to_be_bytes())?;
        }
        self.flush()
    }

    // ---- reads -------------------------------------------------------------------------

    pub(crate) fn get(&self, id: TicketId) -> Result<Option<Ticket>> {
        let key = keys::ticket_key(id);
        match self.trees.tickets.get(key)? {
            Some(v) => decode(keys::TICKETS, &key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn get_existing(&self, id: TicketId) -> Result<Ticket> {
        self.get(id)?.ok_or(Error::NotFound(id))
    }

    /// The events of a ticket, oldest first.
    pub(crate) fn history(&self, id: TicketId) -> Result<Vec<Event>> {
        let ticket = self.get_existing(id)?;
        self.events_upto(id, ticket.version)
    }

    fn events_upto(&self, id: TicketId, version: u64) -> Result<Vec<Event>> {
        let range = keys::event_key(id, 1)..=keys::event_key(id, version);
        self.trees
            .events
            .range(range)
            .map(|kv| {
                let (k, v) = kv?;
                decode(keys::EVENTS, &k, &v)
            })
            .collect()
    }

    /// A page of tickets, newest first: a merge join over one index per filter.
    pub(crate) fn list(&self, q: &ListQuery) -> Result<Page> {
        let prefixes = keys::filter_prefixes(&q.filter);
        // Suffixes are (inverted created, inverted id) as one big-endian u128, so "newer"
        // is "smaller"; the page walks [lo, hi].
        let mut lo: u128 = 0;
        if let Some(before) = q.filter.created_before {
            let Some(newest) = before.as_millis().checked_sub(1) else {
                return Ok(Page { tickets: Vec::new(), next_cursor: None });
            };
            lo = lo.max(suffix_u128(&keys::suffix(Timestamp::from_millis(newest), TicketId(u64::MAX))));
        }
        if let Some(c) = &q.cursor {
            match suffix_u128(&keys::cursor_suffix(c)).checked_add(1) {
                Some(after) => lo = lo.max(after),
                None => return Ok(Page { tickets: Vec::new(), next_cursor: None }),
            }
        }
        let hi: u128 = match q.filter.created_from {
            Some(from) => suffix_u128(&keys::suffix(from, TicketId(0))),
            None => u128::MAX,
        };
        let mut tickets = Vec::with_capacity(q.limit + 1);
        let mut examined = 0;
        while tickets.len() <= q.limit {
            let Some(found) = self.next_match(&prefixes, lo, hi)? else { break };
            let (created, id) = keys::parse_suffix(&found.to_be_bytes()).unwrap_or((Timestamp::EPOCH, TicketId(0)));
            match self.get(id)? {
                Some(t) if q.filter.matches(&t) => tickets.push(t),
                // Changed since the index was read, rejected by the text condition, or an
                // index entry that disagrees with its ticket (which `verify` reports).
                _ => {}
            }
            examined += 1;
            if examined >= SCAN_BUDGET && tickets.len() < q.limit {
                // A text search that found little: stop here, let the caller continue.
                return Ok(Page { tickets, next_cursor: Some(Cursor::at(created, id)) });
            }
            match found.checked_add(1) {
                Some(next) => lo = next,
                None => break,
            }
        }
        let next_cursor = if tickets.len() > q.limit {
            tickets.truncate(q.limit);
            tickets.last().map(Cursor::after)
        } else {
            None
        };
        Ok(Page { tickets, next_cursor })
    }

    /// The smallest suffix in `[lo, hi]` present under every prefix (zig-zag join: each
    /// index seeks to the largest position any other index has reached).
    fn next_match(&self, prefixes: &[Vec<u8>], mut lo: u128, hi: u128) -> Result<Option<u128>> {
        let mut start = Vec::with_capacity(prefixes.iter().map(Vec::len).max().unwrap_or(0) + keys::SUFFIX_LEN);
        loop {
            let mut agreed = true;
            for p in prefixes {
                start.clear();
                start.extend_from_slice(p);
                start.extend_from_slice(&lo.to_be_bytes());
                let Some(kv) = self.trees.index.range(start.as_slice()..).next() else { return Ok(None) };
                let (k, _) = kv?;
                if !k.starts_with(p) || k.len() != p.len() + keys::SUFFIX_LEN {
                    return Ok(None);
                }
                let s = suffix_u128(&k[p.len()..]);
                if s > hi {
                    return Ok(None);
                }
                if s != lo {
                    lo = s;
                    agreed = false;
                }
            }
            if agreed {
                return Ok(Some(lo));
            }
        }
    }

    pub(crate) fn stats(&self, now: Timestamp) -> Result<Stats> {
        let mut d = lock(&self.derived);
        d.breach.advance(&self.trees.index, now)?;
        Ok(d.counters.report(d.breach.count, now))
    }

    /// Unresolved tickets whose next deadline lies in `[from, to)`, soonest first.
    pub(crate) fn by_deadline(&self, from: Timestamp, to: Timestamp, limit: usize) -> Result<Vec<Ticket>> {
        let range = keys::deadline_key(from, TicketId(0))..keys::deadline_key(to, TicketId(0));
        let mut out = Vec::new();
        for kv in self.trees.index.range(range) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let Some((due, id)) = keys::parse_deadline_key(&k) else { continue };
            if let Some(t) = self.get(id)? {
                if t.next_deadline() == Some(due) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    // ---- writes ------------------------------------------------------------------------

    /// Creates a ticket with the next id; `build` turns the id into the ticket and its
    /// creation event. With an idempotency `(key, request fingerprint)`, a key seen before
    /// returns the ticket it created (`false`: not created now) if the fingerprint matches,
    /// and [`Error::IdempotencyConflict`] if not; a new key is stored in the same
    /// transaction as the ticket.
    pub(crate) fn create(
        &self,
        idempotency: Option<(&str, [u8; 32])>,
        build: impl FnOnce(TicketId) -> (Ticket, Event) + Send + 'static,
    ) -> Result<(Ticket, bool)> {
        let outcome = self.submit(Op::create(idempotency, build))?;
        if outcome.needs_flush() {
            self.durable()?;
        }
        outcome.created()
    }

    /// Changes a ticket: `change` gets the current version and returns the next one with
    /// its event, or `None` for "nothing to change". Returns the ticket as it now is and
    /// the event, if one was written.
    pub(crate) fn modify(
        &self,
        id: TicketId,
        change: impl FnOnce(&Ticket) -> Result<Option<(Ticket, Event)>> + Send + 'static,
    ) -> Result<(Ticket, Option<Event>)> {
        let outcome = self.submit(Op::Modify { id, change: Box::new(change) })?;
        if outcome.needs_flush() {
            self.durable()?;
        }
        outcome.modified()
    }

    /// Creates a ticket like [`Self::create`], without blocking: the write is queued for
    /// the writer thread, and the future resolves once it is applied and (when durable)
    /// flushed. Dropping the future does not cancel the write.
    pub(crate) async fn create_async(
        &self,
        idempotency: Option<(&str, [u8; 32])>,
        build: impl FnOnce(TicketId) -> (Ticket, Event) + Send + 'static,
    ) -> Result<(Ticket, bool)> {
        self.submit_async(Op::create(idempotency, build)).await?.created()
    }

    /// Changes a ticket like [`Self::modify`], without blocking (see [`Self::create_async`]).
    pub(crate) async fn modify_async(
        &self,
        id: TicketId,
        change: impl FnOnce(&Ticket) -> Result<Option<(Ticket, Event)>> + Send + 'static,
    ) -> Result<(Ticket, Option<Event>)> {
        self.submit_async(Op::Modify { id, change: Box::new(change) }).await?.modified()
    }

    /// Combining commit: queue the change, then take the writer mutex. Whoever holds it
    /// applies *every* queued change in one transaction; a writer that gets the mutex and
    /// finds its change already applied by an earlier holder (or the writer thread) just
    /// takes its result. Under load one transaction (and one flush) carries many writes
    /// instead of one each.
    fn submit(&self, op: Op) -> Result<Outcome> {
        let slot: Slot = Arc::new(Mutex::new(None));
        lock(&self.queue).jobs.push(Job { op, reply: Reply::Blocking(slot.clone()) });
        let mut w = lock(&self.writer);
        if let Some(done) = lock(&slot).take() {
            return done;
        }
        let jobs = self.take_batch();
        self.run_batch(&mut w, jobs);
        drop(w);
        // Our job was queued before we took the mutex and batches drain from the front,
        // so this batch (or an earlier one) has answered it.
        let done = lock(&slot).take();
        done.unwrap_or_else(|| Err(Error::Storage("queued write was not processed".into())))
    }

    /// Queues the change for the writer thread and waits, without blocking a thread, for
    /// its answer. The batch that carries it hands durable answers to the flusher, which
    /// sends them once their flush is done: the caller wakes up once, with a durable result.
    async fn submit_async(&self, op: Op) -> Result<Outcome> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            // `stop` cannot be set here: only the store's `Drop` sets it, and this call
            // borrows the store.
            let mut q = lock(&self.queue);
            q.jobs.push(Job { op, reply: Reply::Async(tx) });
            if q.writer_idle {
                q.writer_idle = false;
                self.queued.notify_one();
            }
        }
        rx.await.unwrap_or_else(|_| Err(Error::Storage("queued write was dropped unanswered".into())))
    }

    /// The writer thread: applies queued writes, a batch at a time, until the store closes
    /// and the queue is empty. Blocking writers may take batches too (see `submit`).
    fn writer_loop(&self) {
        loop {
            {
                let mut q = lock(&self.queue);
                while q.jobs.is_empty() {
                    if q.stop {
                        return;
                    }
                    q.writer_idle = true;
                    q = self.queued.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.writer_idle = false;
            }
            let mut w = lock(&self.writer);
            let jobs = self.take_batch();
            if jobs.is_empty() {
                continue;
            }
            // A panic (a bug) fails this batch's callers, whose senders are dropped, but
            // must not end the thread every later async write depends on. Nothing of the
            // batch was committed unless `commit_writes` returned, and the state it
            // touches is only updated after that.
            let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_batch(&mut w, jobs)));
            if applied.is_err() {
                tracing::error!("a write batch panicked; its writes failed");
            }
        }
    }

    /// Up to [`MAX_BATCH`] queued jobs, oldest first.
    fn take_batch(&self) -> Vec<Job> {
        let mut q = lock(&self.queue);
        let n = q.jobs.len().min(MAX_BATCH);
        q.jobs.drain(..n).collect()
    }

    /// Applies a batch of jobs in one transaction and answers each. The caller holds the
    /// writer mutex.
    fn run_batch(&self, w: &mut Writer, jobs: Vec<Job>) {
        let mut d = lock(&self.derived);
        let mut b = BatchState::new(self, w, d.counters.clone());
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let r = match job.op {
                Op::Create { idempotency, build } => b.create(idempotency, build),
                Op::Modify { id, change } => b.modify(id, change),
            };
            results.push((job.reply, r));
        }
        let committed = if b.is_empty() { Ok(()) } else { b.commit_writes() };
        // Durable answers for async callers, sent by the flusher (blocking callers wait
        // for the flush themselves, in `create`/`modify`).
        let mut after_flush = Vec::new();
        match committed {
            Ok(()) => {
                w.next_id = b.next_id;
                for (old, new) in &b.breach {
                    d.breach.on_change(*old, *new);
                }
                d.counters = b.counters;
                drop(d);
                for (reply, r) in results {
                    match reply {
                        Reply::Async(tx) if self.commit.is_some() && r.as_ref().is_ok_and(Outcome::needs_flush) => {
                            after_flush.push((tx, r));
                        }
                        reply => reply.send(r),
                    }
                }
            }
            Err(e) => {
                // Nothing of the batch was written: every write in it fails.
                let why = e.to_string();
                for (reply, r) in results {
                    reply.send(r.and(Err(Error::Storage(why.clone()))));
                }
            }
        }
        if let Some(commit) = self.commit.as_ref().filter(|_| !after_flush.is_empty()) {
            commit.after_flush(Box::new(move |broken: Option<&str>| {
                for (tx, r) in after_flush {
                    let _ = tx.send(match broken {
                        None => r,
                        Some(why) => Err(commit::broken(why)),
                    });
                }
            }));
        }
    }

    // ---- snapshots ---------------------------------------------------------------------

    /// Streams a point-in-time snapshot of every ticket and event to `out`.
    pub(crate) fn export<W: Write>(&self, out: W, now: Timestamp) -> Result<SnapshotSummary> {
        let (snapshot, max_id, next_id) = {
            let mut w = lock(&self.writer);
            let snapshot = w.next_snapshot;
            w.next_snapshot += 1;
            let max_id = w.next_id - 1;
            w.snapshots.insert(snapshot, max_id);
            (snapshot, max_id, w.next_id)
        };
        let _registration = ExportRegistration { store: self, snapshot };
        let header = Header {
            format: SNAPSHOT_FORMAT.into(),
            format_version: snapshot::SNAPSHOT_VERSION,
            schema_version: self.schema_version,
            created_at: now,
            next_ticket_id: next_id,
            producer: concat!("helpdesk-core ", env!("CARGO_PKG_VERSION")).into(),
        };
        let mut writer = SnapshotWriter::new(out, header)?;
        let mut from = 1u64;
        while from <= max_id {
            let chunk = self.export_chunk(snapshot, from, max_id)?;
            let Some(last) = chunk.last() else { break };
            from = last.id.0 + 1;
            // Events are immutable once written, so they are read without the mutex.
            for t in &chunk {
                writer.ticket(t)?;
                let events = self.events_upto(t.id, t.version)?;
                if events.len() as u64 != t.version {
                    return Err(Error::corrupt(
                        keys::describe(keys::TICKETS, &keys::ticket_key(t.id)),
                        format!("ticket at version {} has {} events", t.version, events.len()),
                    ));
                }
                for e in &events {
                    writer.event(e)?;
                }
            }
        }
        writer.finish()
    }

    /// Up to [`EXPORT_CHUNK`] tickets from `from`, as of the snapshot's start.
    fn export_chunk(&self, snapshot: u64, from: u64, max_id: u64) -> Result<Vec<Ticket>> {
        let _w = lock(&self.writer);
        let range = keys::ticket_key(TicketId(from))..=keys::ticket_key(TicketId(max_id));
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
        for kv in self.trees.tickets.range(range).take(EXPORT_CHUNK) {
            let (k, v) = kv?;
            let id = TicketId(keys::u64_of(&k).unwrap_or_default());
            let pk = keys::preimage_key(snapshot, id);
            let t = match self.trees.preimages.get(pk)? {
                Some(pre) => decode(keys::PREIMAGES, &pk, &pre)?,
                None => decode(keys::TICKETS, &k, &v)?,
            };
            chunk.push(t);
        }
        Ok(chunk)
    }

    /// Loads a snapshot into this (empty) database. On any error the database is left
    /// empty again.
    pub(crate) fn import<R: BufRead>(&self, input: R, now: Timestamp) -> Result<SnapshotSummary> {
        let mut w = lock(&self.writer);
        let tickets = self.trees.tickets.len() as u64;
        if tickets > 0 {
            return Err(Error::NotEmpty { tickets });
        }
        self.trees.meta.insert(keys::IMPORT_IN_PROGRESS, &[])?;
        flush_to_disk(&self.trees.db, self.log.as_ref())?;
        match self.import_records(input) {
            Ok((summary, next_id, counters)) => {
                self.trees.meta.remove(keys::IMPORT_IN_PROGRESS)?;
                flush_to_disk(&self.trees.db, self.log.as_ref())?;
                w.next_id = next_id;
                let mut d = lock(&self.derived);
                d.counters = counters;
                d.breach = BreachCache::new(&self.trees.index, now)?;
                drop(d);
                Ok(summary)
            }
            Err(e) => {
                for tree in [&self.trees.tickets, &self.trees.events, &self.trees.index, &self.trees.meta] {
                    tree.clear()?;
                }
                self.trees.meta.insert(keys::SCHEMA_VERSION, &self.schema_version.to_be_bytes())?;
                self.trees.meta.insert(keys::NEXT_TICKET_ID, &1u64.to_be_bytes())?;
                flush_to_disk(&self.trees.db, self.log.as_ref())?;
                w.next_id = 1;
                lock(&self.derived).counters = Counters::default();
                Err(e)
            }
        }
    }

    fn import_records<R: BufRead>(&self, input: R) -> Result<(SnapshotSummary, u64, Counters)> {
        let mut reader = SnapshotReader::new(input);
        let header = match reader.next()? {
            Some(Record::Header(h)) => h,
            Some(_) => return Err(snapshot::invalid(1, "the first record must be the header")),
            None => return Err(Error::InvalidSnapshot("empty stream".into())),
        };
        if header.format != SNAPSHOT_FORMAT {
            return Err(snapshot::invalid(1, format!("format {:?} is not {SNAPSHOT_FORMAT:?}", header.format)));
        }
        if header.format_version != snapshot::SNAPSHOT_VERSION {
            return Err(snapshot::invalid(
                1,
                format!(
                    "snapshot format version {} is not supported (this release reads version {})",
                    header.format_version,
                    snapshot::SNAPSHOT_VERSION
                ),
            ));
        }
        let mut bulk = Bulk::default();
        let mut current: Option<(TicketId, u64, u64)> = None; // (id, version, events seen)
        let mut events = 0u64;
        let finish_ticket = |current: &Option<(TicketId, u64, u64)>, line: u64| match current {
            Some((id, version, seen)) if seen != version => {
                Err(snapshot::invalid(line, format!("ticket {id} is at version {version} but has {seen} events")))
            }
            _ => Ok(()),
        };
        loop {
            let record = reader.next()?;
            let line = reader.line_no();
            match record {
                None => return Err(snapshot::invalid(line, "truncated: the stream ends without its end record")),
                Some(Record::Header(_)) => return Err(snapshot::invalid(line, "a second header")),
                Some(Record::Ticket(t)) => {
                    finish_ticket(&current, line)?;
                    if let Some((prev, ..)) = current {
                        if t.id <= prev {
                            return Err(snapshot::invalid(line, format!("ticket {} after ticket {prev}", t.id)));
                        }
                    }
                    if t.id.0 == 0 || t.id.0 >= header.next_ticket_id {
                        return Err(snapshot::invalid(line, format!("ticket id {} out of range", t.id)));
                    }
                    check_ticket(&t).map_err(|why| snapshot::invalid(line, why))?;
                    current = Some((t.id, t.version, 0));
                    bulk.ticket(&t)?;
                }
                Some(Record::Event(e)) => {
                    let Some((id, _, seen)) = current.as_mut() else {
                        return Err(snapshot::invalid(line, "an event before any ticket"));
                    };
                    if e.ticket_id != *id || e.version != *seen + 1 {
                        return Err(snapshot::invalid(
                            line,
                            format!("event {}/{} out of order (expected {id}/{})", e.ticket_id, e.version, *seen + 1),
                        ));
                    }
                    *seen += 1;
                    events += 1;
                    bulk.event(&e)?;
                }
                Some(Record::End(trailer)) => {
                    finish_ticket(&current, line)?;
                    let digest = reader.digest();
                    if trailer.sha256 != digest {
                        return Err(snapshot::invalid(
                            line,
                            format!("checksum mismatch: trailer says {}, content hashes to {digest}", trailer.sha256),
                        ));
                    }
                    if trailer.tickets != bulk.tickets || trailer.events != events {
                        return Err(snapshot::invalid(
                            line,
                            format!(
                                "trailer counts {} tickets and {} events, stream has {} and {events}",
                                trailer.tickets, trailer.events, bulk.tickets
                            ),
                        ));
                    }
                    if reader.next()?.is_some() {
                        return Err(snapshot::invalid(reader.line_no(), "data after the end record"));
                    }
                    break;
                }
            }
            if bulk.pending >= BULK_CHUNK {
                bulk.apply(&self.trees)?;
            }
        }
        bulk.apply(&self.trees)?;
        write_counters(&self.trees.meta, &bulk.counters)?;
        self.trees.meta.insert(keys::NEXT_TICKET_ID, &header.next_ticket_id.to_be_bytes())?;
        let summary = SnapshotSummary {
            created_at: header.created_at,
            schema_version: header.schema_version,
            tickets: bulk.tickets,
            events,
            bytes: reader.bytes(),
            sha256: reader.digest(),
        };
        Ok((summary, header.next_ticket_id, bulk.counters))
    }

    // ---- verify / repair ---------------------------------------------------------------

    /// Recomputes indexes and counters from the tickets and reports every disagreement.
    /// Holds the writer mutex throughout, so it sees one consistent state.
    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let w = lock(&self.writer);
        let mut report = VerifyReport::default();
        let mut expected = Counters::default();
        let mut expected_events = 0u64;
        let mut max_id = 0u64;
        for kv in self.trees.tickets.iter() {
            let (k, v) = kv?;
            report.tickets += 1;
            let key = keys::describe(keys::TICKETS, &k);
            let t: Ticket = match decode(keys::TICKETS, &k, &v) {
                Ok(t) => t,
                Err(e) => {
                    report.push(ProblemKind::CorruptValue, key, e.to_string());
                    continue;
                }
            };
            max_id = max_id.max(t.id.0);
            expected.add(&t);
            for ik in keys::index_keys(&t) {
                if !self.trees.index.contains_key(&ik)? {
                    report.push(
                        ProblemKind::MissingIndexEntry,
                        keys::describe(keys::INDEX, &ik),
                        format!("ticket {} has no such index entry", t.id),
                    );
                }
            }
            expected_events += t.version;
            for version in 1..=t.version {
                let ek = keys::event_key(t.id, version);
                match self.trees.events.get(ek)? {
                    None => report.push(
                        ProblemKind::MissingEvent,
                        keys::describe(keys::EVENTS, &ek),
                        format!("ticket {} is at version {} but event {version} is missing", t.id, t.version),
                    ),
                    Some(ev) => match decode::<Event>(keys::EVENTS, &ek, &ev) {
                        Err(e) => {
                            report.push(ProblemKind::CorruptValue, keys::describe(keys::EVENTS, &ek), e.to_string())
                        }
                        Ok(e) if e.ticket_id != t.id || e.version != version => report.push(
                            ProblemKind::CorruptValue,
                            keys::describe(keys::EVENTS, &ek),
                            format!("holds event {}/{}", e.ticket_id, e.version),
                        ),
                        Ok(_) => {}
                    },
                }
            }
        }
        // Index entries no ticket accounts for. Each ticket's own entries were checked
        // above, so this pass only needs the tickets the entries name.
        for kv in self.trees.index.iter() {
            let (k, _) = kv?;
            report.index_entries += 1;
            let stale = match keys::index_key_ticket(&k) {
                None => Some("not a valid index key".to_string()),
                Some(id) => match self.get(id) {
                    Ok(Some(t)) if keys::index_keys(&t).iter().any(|e| e[..] == k[..]) => None,
                    Ok(Some(_)) => Some(format!("ticket {id} does not have this entry")),
                    Ok(None) => Some(format!("ticket {id} does not exist")),
                    Err(_) => None, // the corrupt ticket is already reported
                },
            };
            if let Some(why) = stale {
                report.push(ProblemKind::StaleIndexEntry, keys::describe(keys::INDEX, &k), why);
            }
        }
        report.events = self.trees.events.len() as u64;
        if report.events != expected_events {
            for kv in self.trees.events.iter() {
                let (k, _) = kv?;
                let id = TicketId(keys::u64_of(&k[..8.min(k.len())]).unwrap_or_default());
                let version = k.get(8..).and_then(keys::u64_of).unwrap_or_default();
                let orphan = match self.get(id) {
                    Ok(Some(t)) => version == 0 || version > t.version,
                    Ok(None) => true,
                    Err(_) => false,
                };
                if orphan {
                    report.push(
                        ProblemKind::OrphanEvent,
                        keys::describe(keys::EVENTS, &k),
                        "no ticket version accounts for this event",
                    );
                }
            }
        }
        let stored = load_counters(&self.trees.meta)?;
        for (name, stored, want) in stored.differences(&expected) {
            report.push(
                ProblemKind::CounterMismatch,
                format!("{}/count/{name}", keys::META),
                format!("stored {stored}, tickets give {want}"),
            );
        }
        let in_memory = lock(&self.derived).counters.clone();
        if in_memory != stored {
            report.push(ProblemKind::CounterMismatch, "memory/counters", "in-memory counters differ from stored ones");
        }
        if w.next_id <= max_id {
            report.push(
                ProblemKind::IdAllocatorBehind,
                keys::describe(keys::META, keys::NEXT_TICKET_ID),
                format!("next id {} but ticket {max_id} exists", w.next_id),
            );
        }
        Ok(report)
    }

    /// Rebuilds every index entry and counter from the tickets.
    pub(crate) fn repair(&self, now: Timestamp) -> Result<RepairReport> {
        let mut w = lock(&self.writer);
        let mut d = lock(&self.derived);
        let mut report = RepairReport::default();
        self.trees.index.clear()?;
        let mut bulk = Bulk::default();
        let mut max_id = 0;
        for kv in self.trees.tickets.iter() {
            let (k, v) = kv?;
            let t: Ticket = match decode(keys::TICKETS, &k, &v) {
                Ok(t) => t,
                Err(e) => {
                    report.unrepairable.push(crate::verify::Problem {
                        kind: ProblemKind::CorruptValue,
                        key: keys::describe(keys::TICKETS, &k),
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            max_id = max_id.max(t.id.0);
            report.tickets += 1;
            report.index_entries += bulk.index_only(&t) as u64;
            if bulk.pending >= BULK_CHUNK {
                bulk.apply(&self.trees)?;
            }
        }
        bulk.apply(&self.trees)?;
        write_counters(&self.trees.meta, &bulk.counters)?;
        if w.next_id <= max_id {
            w.next_id = max_id + 1;
            self.trees.meta.insert(keys::NEXT_TICKET_ID, &w.next_id.to_be_bytes())?;
        }
        flush_to_disk(&self.trees.db, self.log.as_ref())?;
        d.counters = bulk.counters;
        d.breach = BreachCache::new(&self.trees.index, now)?;
        drop(d);
        drop(w);
        let check = self.verify()?;
        report.unrepairable.extend(check.problems.into_iter().filter(|p| p.kind != ProblemKind::CounterMismatch));
        Ok(report)
    }
}

/// Most jobs one transaction carries.
const MAX_BATCH: usize = 1024;

type BuildFn = Box<dyn FnOnce(TicketId) -> (Ticket, Event) + Send>;
type ChangeFn = Box<dyn FnOnce(&Ticket) -> Result<Option<(Ticket, Event)>> + Send>;

/// A queued write.
enum Op {
    Create { idempotency: Option<(String, [u8; 32])>, build: BuildFn },
    Modify { id: TicketId, change: ChangeFn },
}

/// What a write produced.
enum Outcome {
    Created(Ticket, bool),
    Modified(Ticket, Option<Event>),
}

impl Op {
    fn create(
        idempotency: Option<(&str, [u8; 32])>,
        build: impl FnOnce(TicketId) -> (Ticket, Event) + Send + 'static,
    ) -> Op {
        Op::Create { idempotency: idempotency.map(|(k, f)| (k.to_owned(), f)), build: Box::new(build) }
    }
}

impl Outcome {
    /// Whether, in durable mode, the caller may only be answered after a flush: every
    /// creation (a replayed key too: the first request may not be on disk yet) and every
    /// change that wrote an event. The one rule for blocking and async callers.
    fn needs_flush(&self) -> bool {
        matches!(self, Outcome::Created(..) | Outcome::Modified(_, Some(_)))
    }

    fn created(self) -> Result<(Ticket, bool)> {
        match self {
            Outcome::Created(t, created) => Ok((t, created)),
            Outcome::Modified(..) => Err(Error::Storage("create produced another outcome".into())),
        }
    }

    fn modified(self) -> Result<(Ticket, Option<Event>)> {
        match self {
            Outcome::Modified(t, event) => Ok((t, event)),
            Outcome::Created(..) => Err(Error::Storage("modify produced another outcome".into())),
        }
    }
}

type Slot = Arc<Mutex<Option<Result<Outcome>>>>;

/// Where a job's result goes.
enum Reply {
    /// A thread in [`Shared::submit`]: it waits for the writer mutex and reads the slot.
    Blocking(Slot),
    /// A task in [`Shared::submit_async`]; durable results are sent after their flush.
    Async(tokio::sync::oneshot::Sender<Result<Outcome>>),
}

impl Reply {
    fn send(self, r: Result<Outcome>) {
        match self {
            Reply::Blocking(slot) => *lock(&slot) = Some(r),
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct Job {
    op: Op,
    reply: Reply,
}

/// The writes of one batch, accumulated in memory: later jobs see earlier jobs' tickets
/// through `overlay`, and the whole set goes to sled in one transaction.
struct BatchState<'a> {
    store: &'a Shared,
    snapshots: BTreeMap<u64, u64>,
    counters: Counters,
    initial_counters: Counters,
    next_id: u64,
    overlay: HashMap<TicketId, Ticket>,
    /// Tickets whose pre-images (for running exports) this batch has dealt with.
    preimaged: HashSet<TicketId>,
    idempotency: HashMap<String, (TicketId, [u8; 32])>,
    tickets: BTreeMap<[u8; 8], Vec<u8>>,
    events: Vec<([u8; 16], Vec<u8>)>,
    /// Final presence of each index key the batch touches.
    index: BTreeMap<Vec<u8>, bool>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    preimages: Vec<([u8; 16], sled::IVec)>,
    breach: Vec<(Option<Timestamp>, Option<Timestamp>)>,
}

impl<'a> BatchState<'a> {
    fn new(store: &'a Shared, w: &Writer, counters: Counters) -> Self {
        BatchState {
            store,
            snapshots: w.snapshots.clone(),
            initial_counters: counters.clone(),
            counters,
            next_id: w.next_id,
            overlay: HashMap::new(),
            preimaged: HashSet::new(),
            idempotency: HashMap::new(),
            tickets: BTreeMap::new(),
            events: Vec::new(),
            index: BTreeMap::new(),
            meta: BTreeMap::new(),
            preimages: Vec::new(),
            breach: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// The ticket as this batch sees it: its latest version in the batch, or the stored one.
    fn current(&mut self, id: TicketId) -> Result<Ticket> {
        if let Some(t) = self.overlay.get(&id) {
            return Ok(t.clone());
        }
        let key = keys::ticket_key(id);
        let bytes = self.store.trees.tickets.get(key)?.ok_or(Error::NotFound(id))?;
        let t: Ticket = decode(keys::TICKETS, &key, &bytes)?;
        // The first time a batch reads a stored ticket, running exports that cover it need
        // its value as it is now (unless an earlier batch saved it already).
        if self.preimaged.insert(id) {
            for (&snapshot, &max_id) in &self.snapshots {
                let k = keys::preimage_key(snapshot, id);
                if id.0 <= max_id && !self.store.trees.preimages.contains_key(k)? {
                    self.preimages.push((k, bytes.clone()));
                }
            }
        }
        Ok(t)
    }

    fn create(&mut self, idempotency: Option<(String, [u8; 32])>, build: BuildFn) -> Result<Outcome> {
        if let Some((key, fingerprint)) = &idempotency {
            let seen = match self.idempotency.get(key) {
                Some(seen) => Some(*seen),
                None => self.stored_idempotency(key)?,
            };
            if let Some((id, seen)) = seen {
                if seen != *fingerprint {
                    return Err(Error::IdempotencyConflict { key: key.clone() });
                }
                return Ok(Outcome::Created(self.current(id)?, false));
            }
        }
        let id = TicketId(self.next_id);
        let (ticket, event) = build(id);
        self.record(None, &ticket, &event)?;
        self.next_id += 1;
        self.meta.insert(keys::NEXT_TICKET_ID.to_vec(), self.next_id.to_be_bytes().to_vec());
        if let Some((key, fingerprint)) = idempotency {
            self.meta.insert(keys::idempotency_key(&key), [&id.0.to_be_bytes()[..], &fingerprint[..]].concat());
            self.idempotency.insert(key, (id, fingerprint));
        }
        // New tickets are beyond every running export.
        self.preimaged.insert(id);
        Ok(Outcome::Created(ticket, true))
    }

    fn stored_idempotency(&self, key: &str) -> Result<Option<(TicketId, [u8; 32])>> {
        let k = keys::idempotency_key(key);
        let Some(v) = self.store.trees.meta.get(&k)? else { return Ok(None) };
        let id = v.get(..8).and_then(keys::u64_of).map(TicketId);
        let fingerprint: Option<[u8; 32]> = v.get(8..).and_then(|f| f.try_into().ok());
        match (id, fingerprint) {
            (Some(id), Some(fp)) => Ok(Some((id, fp))),
            _ => Err(Error::corrupt(keys::describe(keys::META, &k), "malformed idempotency record")),
        }
    }

    fn modify(&mut self, id: TicketId, change: ChangeFn) -> Result<Outcome> {
        let old = self.current(id)?;
        match change(&old)? {
            None => Ok(Outcome::Modified(old, None)),
            Some((new, event)) => {
                self.record(Some(&old), &new, &event)?;
                Ok(Outcome::Modified(new, Some(event)))
            }
        }
    }

    /// Adds one ticket version with its event, index changes and counter changes.
    fn record(&mut self, old: Option<&Ticket>, new: &Ticket, event: &Event) -> Result<()> {
        // Encode first: a failure must leave the batch untouched.
        let ticket_bytes = encode(new)?;
        let event_bytes = encode(event)?;
        let old_keys = old.map(keys::index_keys).unwrap_or_default();
        let new_keys = keys::index_keys(new);
        for k in old_keys.iter().filter(|k| new_keys.binary_search(k).is_err()) {
            self.index.insert(k.clone(), false);
        }
        for k in new_keys.iter().filter(|k| old_keys.binary_search(k).is_err()) {
            self.index.insert(k.clone(), true);
        }
        self.tickets.insert(keys::ticket_key(new.id), ticket_bytes);
        self.events.push((keys::event_key(new.id, event.version), event_bytes));
        self.counters.replace(old, new);
        self.breach.push((old.and_then(Ticket::next_deadline), new.next_deadline()));
        self.overlay.insert(new.id, new.clone());
        Ok(())
    }

    /// Writes the whole batch in one transaction.
    fn commit_writes(&mut self) -> Result<()> {
        for c in Counter::all() {
            if self.counters.get(c) != self.initial_counters.get(c) {
                self.meta.insert(keys::counter_key(c), self.counters.get(c).to_be_bytes().to_vec());
            }
        }
        let t = &self.store.trees;
        let result: TxResult = (&t.tickets, &t.events, &t.index, &t.meta, &t.preimages).transaction(
            |(tickets, events, index, meta, pre)| {
                for (k, v) in &self.tickets {
                    tickets.insert(&k[..], v.as_slice())?;
                }
                for (k, v) in &self.events {
                    events.insert(&k[..], v.as_slice())?;
                }
                for (k, present) in &self.index {
                    if *present {
                        index.insert(k.as_slice(), &[])?;
                    } else {
                        index.remove(k.as_slice())?;
                    }
                }
                for (k, v) in &self.meta {
                    meta.insert(k.as_slice(), v.as_slice())?;
                }
                for (k, v) in &self.preimages {
                    pre.insert(&k[..], v.clone())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            },
        );
        result.map_err(tx_err)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Stop the flusher first (it flushes what is pending), then flush whatever a
        // relaxed writer left in memory.
        self.commit.take();
        if let Err(e) = flush_to_disk(&self.trees.db, self.log.as_ref()) {
            tracing::error!(error = %e, "final flush on close failed");
        }
    }
}

/// Unregisters an export and drops its pre-images, whether it finished or failed.
struct ExportRegistration<'a> {
    store: &'a Shared,
    snapshot: u64,
}

impl Drop for ExportRegistration<'_> {
    fn drop(&mut self) {
        lock(&self.store.writer).snapshots.remove(&self.snapshot);
        let prefix = self.snapshot.to_be_bytes();
        for k in self.store.trees.preimages.scan_prefix(prefix).keys().flatten() {
            let _ = self.store.trees.preimages.remove(k);
        }
    }
}

/// Batched writes for import and repair (atomicity is provided by their callers: import
/// marks the database and wipes it on failure; repair can simply run again).
#[derive(Default)]
struct Bulk {
    tickets_batch: Batch,
    events_batch: Batch,
    index_batch: Batch,
    counters: Counters,
    tickets: u64,
    pending: usize,
}

impl Bulk {
    fn ticket(&mut self, t: &Ticket) -> Result<()> {
        self.tickets_batch.insert(&keys::ticket_key(t.id), encode(t)?);
        self.tickets += 1;
        self.index_only(t);
        Ok(())
    }

    /// Index entries and counters of `t`; returns the number of entries.
    fn index_only(&mut self, t: &Ticket) -> usize {
        let ks = keys::index_keys(t);
        let n = ks.len();
        for k in ks {
            self.index_batch.insert(k, &[]);
        }
        self.counters.add(t);
        self.pending += 1;
        n
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        self.events_batch.insert(&keys::event_key(e.ticket_id, e.version), encode(e)?);
        Ok(())
    }

    fn apply(&mut self, trees: &Trees) -> Result<()> {
        trees.tickets.apply_batch(std::mem::take(&mut self.tickets_batch))?;
        trees.events.apply_batch(std::mem::take(&mut self.events_batch))?;
        trees.index.apply_batch(std::mem::take(&mut self.index_batch))?;
        self.pending = 0;
        Ok(())
    }
}

fn suffix_u128(s: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&s[..16]);
    u128::from_be_bytes(b)
}

/// Structural checks on an imported ticket (a snapshot is checksummed, but may be
/// hand-made).
fn check_ticket(t: &Ticket) -> std::result::Result<(), String> {
    if t.version == 0 {
        return Err(format!("ticket {} has version 0", t.id));
    }
    if t.title.trim().is_empty() || t.description.trim().is_empty() || t.submitter_email.contains('\0') {
        return Err(format!("ticket {} has an empty title or description", t.id));
    }
    if !t.status.is_unresolved() && t.resolved_at.is_none() {
        return Err(format!("ticket {} is {} without resolved_at", t.id, t.status));
    }
    let has_nul = |s: &str| s.contains('\0');
    if t.tags.iter().any(|g| has_nul(g)) || t.assigned_to.as_deref().is_some_and(has_nul) {
        return Err(format!("ticket {} has a NUL byte in a tag or assignee", t.id));
    }
    Ok(())
}

fn load_counters(meta: &Tree) -> Result<Counters> {
    let mut counters = Counters::default();
    for kv in meta.scan_prefix(keys::COUNTER_PREFIX) {
        let (k, v) = kv?;
        let name = String::from_utf8_lossy(&k[keys::COUNTER_PREFIX.len()..]).into_owned();
        let counter = Counter::from_name(&name)
            .ok_or_else(|| Error::corrupt(keys::describe(keys::META, &k), "unknown counter"))?;
        let value = keys::u64_of(&v).ok_or_else(|| Error::corrupt(keys::describe(keys::META, &k), "not a u64"))?;
        counters.set(counter, value);
    }
    Ok(counters)
}

fn write_counters(meta: &Tree, counters: &Counters) -> Result<()> {
    let mut batch = Batch::default();
    for k in meta.scan_prefix(keys::COUNTER_PREFIX).keys() {
        batch.remove(k?);
    }
    for c in Counter::all() {
        batch.insert(keys::counter_key(c), &counters.get(c).to_be_bytes());
    }
    meta.apply_batch(batch)?;
    Ok(())
}

fn open_error(e: sled::Error, path: Option<&Path>) -> Error {
    if let sled::Error::Io(io) = &e {
        let msg = io.to_string();
        if io.kind() == std::io::ErrorKind::WouldBlock || msg.contains("lock") {
            return Error::Locked { path: path.map(PathBuf::from).unwrap_or_default() };
        }
    }
    e.into()
}
