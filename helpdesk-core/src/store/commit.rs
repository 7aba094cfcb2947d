//! Group commit: many writers, one flush.
//!
//! A durable write commits its transaction, then waits here until a flush that *started
//! after its commit* has finished. One flusher thread runs flushes back to back; every
//! writer that arrived while a flush ran is covered by the next one, so with N concurrent
//! writers the cost of an fsync is shared by up to N writes.
//!
//! A flush is sled's `flush()` followed by `fdatasync` of sled's log file: on Linux sled
//! 0.34 writes its buffers with `sync_file_range`, which reaches the device but neither
//! flushes the drive's write cache nor the file's size, so on its own it survives a
//! process kill but not a power cut. The extra sync is one per group, not per write.
//!
//! If a flush fails the store is marked broken: the failed write and every later durable
//! write return an error, since after a failed fsync the kernel may have dropped the dirty
//! pages and nothing can be promised any more (the PostgreSQL "fsyncgate" lesson).

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::lock;
use crate::config::FlushObserver;
use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    /// Number of waits requested so far; a wait's ticket is the value after its increment.
    requested: u64,
    /// Every ticket up to this one is covered by a finished flush.
    completed: u64,
    broken: Option<String>,
    shutdown: bool,
    /// Callbacks waiting for the flush that covers their ticket, in ticket order.
    callbacks: Vec<(u64, AfterFlush)>,
}

/// Run by the flusher once a flush covering the writes before [`GroupCommit::after_flush`]
/// has finished, with `Some(reason)` if flushing failed (nothing is durable then).
pub(crate) type AfterFlush = Box<dyn FnOnce(Option<&str>) + Send>;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher.
    work: Condvar,
    /// Wakes waiters.
    done: Condvar,
}

pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(crate) fn start(db: ::sled::Db, log: Option<File>, observer: Option<FlushObserver>) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("helpdesk-flush".into())
            .spawn(move || flusher(&s, &db, log.as_ref(), observer))
            .map_err(|e| Error::Storage(format!("cannot start the flusher thread: {e}")))?;
        Ok(GroupCommit { shared, thread: Some(thread) })
    }

    /// Runs `callback` on the flusher thread once everything committed before this call is
    /// on disk (or at once, here, if the store is already broken). It must not block.
    pub(crate) fn after_flush(&self, callback: AfterFlush) {
        let mut s = lock(&self.shared.state);
        if let Some(why) = s.broken.clone() {
            drop(s);
            callback(Some(&why));
            return;
        }
        s.requested += 1;
        let ticket = s.requested;
        s.callbacks.push((ticket, callback));
        self.shared.work.notify_one();
    }

    /// Blocks until everything committed before the call is on disk.
    pub(crate) fn wait(&self) -> Result<()> {
        let mut s = lock(&self.shared.state);
        if let Some(why) = &s.broken {
            return Err(broken(why));
        }
        s.requested += 1;
        let ticket = s.requested;
        self.shared.work.notify_one();
        while s.completed < ticket && s.broken.is_none() {
            s = self.shared.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        match &s.broken {
            Some(why) => Err(broken(why)),
            None => Ok(()),
        }
    }
}

pub(crate) fn broken(why: &str) -> Error {
    Error::Storage(format!("flushing to disk failed ({why}); writes are no longer durable, restart the process"))
}

/// Makes everything sled has accepted durable: its own flush, then an `fdatasync` of its
/// log file (`log` is `None` for temporary databases).
pub(crate) fn flush_to_disk(db: &::sled::Db, log: Option<&File>) -> Result<()> {
    db.flush()?;
    if let Some(f) = log {
        f.sync_data().map_err(|e| Error::Storage(format!("fdatasync of the database log failed: {e}")))?;
    }
    Ok(())
}

fn flusher(shared: &Shared, db: &::sled::Db, log: Option<&File>, observer: Option<FlushObserver>) {
    let mut s = lock(&shared.state);
    loop {
        while s.requested == s.completed && !s.shutdown {
            s = shared.work.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.requested == s.completed {
            return; // shut down with nothing pending
        }
        let target = s.requested;
        drop(s);
        let started = Instant::now();
        let result = flush_to_disk(db, log);
        let took: Duration = started.elapsed();
        if let Some(observe) = &observer {
            observe.observe(took);
        }
        s = lock(&shared.state);
        if let Err(e) = result {
            tracing::error!(error = %e, "flush failed; durable writes are refused from now on");
            s.broken = Some(e.to_string());
        }
        s.completed = target;
        let due = s.callbacks.iter().take_while(|(ticket, _)| *ticket <= target).count();
        let callbacks: Vec<_> = s.callbacks.drain(..due).collect();
        shared.done.notify_all();
        if !callbacks.is_empty() {
            let broken = s.broken.clone();
            drop(s);
            for (_, callback) in callbacks {
                callback(broken.as_deref());
            }
            s = lock(&shared.state);
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
