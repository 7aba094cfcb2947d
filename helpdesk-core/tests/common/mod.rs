//! Helpers shared by the integration tests: a manual clock, databases, sample input.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helpdesk_core::{Actor, Category, Config, Durability, Error, Helpdesk, ManualClock, NewTicket, Timestamp};

/// 2026-01-05T09:00:00Z, a Monday morning.
pub const T0: Timestamp = Timestamp::from_millis(1_767_603_600_000);

pub type ManualClockRef = Arc<ManualClock>;

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

/// A temporary, relaxed database on a manual clock.
pub fn desk(clock: &Arc<ManualClock>) -> Helpdesk {
    Helpdesk::temporary(Config::default().durability(Durability::Relaxed).clock(clock.clone())).unwrap()
}

pub fn agent() -> Actor {
    Actor::agent("grace")
}

pub fn requester() -> Actor {
    Actor::requester("ada")
}

pub fn new_ticket(title: &str) -> NewTicket {
    NewTicket::new(title, "Something is broken.", Category::Network, "ada@campus.example", "Ada")
}

/// Opens `path`, waiting (with a deadline) for a previous handle in this process to let
/// go of sled's file lock.
pub fn open_retry(path: &Path, config: Config) -> Helpdesk {
    try_open(path, config).unwrap()
}

/// Like [`open_retry`] but returns the first outcome that is not `Locked`.
pub fn try_open(path: &Path, config: Config) -> Result<Helpdesk, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Helpdesk::open(path, config.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => std::thread::yield_now(),
            other => return other,
        }
    }
}

/// Opens `path` with sled directly (to tamper with it), waiting for the lock like
/// [`open_retry`].
pub fn raw_sled(path: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::yield_now()
            }
            Err(e) => panic!("cannot open {path:?} with sled: {e}"),
        }
    }
}
