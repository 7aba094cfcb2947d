//! Many writers at once: writes are combined into shared transactions, so changes to the
//! same ticket inside one batch must compose exactly as if they ran one after another,
//! whether they come from blocking calls or from the `*_async` writes.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{new_ticket, requester};
use helpdesk_core::{Actor, Config, Durability, Error, Helpdesk, NewComment, TicketId, TicketUpdate};

#[test]
fn concurrent_changes_to_one_ticket_compose_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Helpdesk::open(dir.path(), Config::default()).unwrap();
    let t = desk.create(new_ticket("shared"), &requester()).unwrap();
    let conflicts = AtomicU64::new(0);
    let applied = AtomicU64::new(0);
    std::thread::scope(|s| {
        for w in 0..16 {
            let (desk, conflicts, applied) = (&desk, &conflicts, &applied);
            s.spawn(move || {
                let agent = Actor::agent(format!("agent{w}"));
                for i in 0..40 {
                    if i % 4 == 0 {
                        // Optimistic update based on what we just read: may conflict.
                        let seen = desk.get(t.id).unwrap().version;
                        let upd = TicketUpdate {
                            title: Some(format!("w{w} i{i}")),
                            version: Some(seen),
                            ..Default::default()
                        };
                        match desk.update(t.id, upd, &agent) {
                            Ok(after) => {
                                assert!(after.version > seen);
                                applied.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Error::VersionConflict { .. }) => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        desk.comment(t.id, NewComment::public(format!("w{w} i{i}")), &agent).unwrap();
                        applied.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let after = desk.get(t.id).unwrap();
    assert_eq!(after.version, 1 + applied.load(Ordering::Relaxed));
    let history = desk.history(t.id).unwrap();
    assert_eq!(history.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=after.version).collect::<Vec<_>>());
    let report = desk.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    println!("{} changes applied, {} optimistic conflicts", applied.into_inner(), conflicts.into_inner());
}

#[test]
fn concurrent_creates_get_distinct_consecutive_ids() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Helpdesk::open(dir.path(), Config::default()).unwrap();
    let mut ids: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let desk = &desk;
                s.spawn(move || {
                    (0..25)
                        .map(|j| desk.create(new_ticket(&format!("{i}-{j}")), &requester()).unwrap().id.0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    ids.sort_unstable();
    assert_eq!(ids, (1..=800).collect::<Vec<_>>());
    assert_eq!(desk.stats().unwrap().total, 800);
    for id in [1, 400, 800] {
        assert_eq!(desk.history(TicketId(id)).unwrap().len(), 1);
    }
    assert!(desk.verify().unwrap().is_clean());
}

/// The `*_async` writes and the blocking ones at once, from a multi-threaded runtime and
/// from plain threads: they land in shared batches, every id is handed out once, changes
/// to one ticket compose, and the indexes and counters agree with the tickets.
#[test]
fn async_and_blocking_writers_share_batches() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Helpdesk::open(dir.path(), Config::default()).unwrap();
    let shared = desk.create(new_ticket("shared"), &requester()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut ids: Vec<u64> = std::thread::scope(|s| {
        let blocking: Vec<_> = (0..4)
            .map(|i| {
                let desk = &desk;
                s.spawn(move || {
                    let agent = Actor::agent(format!("blocking{i}"));
                    let mut ids = Vec::new();
                    for j in 0..50 {
                        ids.push(desk.create(new_ticket(&format!("b{i}-{j}")), &requester()).unwrap().id.0);
                        desk.comment(shared.id, NewComment::public(format!("b{i}-{j}")), &agent).unwrap();
                    }
                    ids
                })
            })
            .collect();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let desk = desk.clone();
                rt.spawn(async move {
                    let agent = Actor::agent(format!("async{i}"));
                    let mut ids = Vec::new();
                    for j in 0..10 {
                        let t = desk.create_async(new_ticket(&format!("a{i}-{j}")), &requester()).await.unwrap();
                        let upd = TicketUpdate { title: Some(format!("a{i}-{j} edited")), ..Default::default() };
                        let t2 = desk.update_async(t.id, upd, &agent).await.unwrap();
                        assert_eq!((t2.id, t2.version), (t.id, 2));
                        desk.comment_async(shared.id, NewComment::internal(format!("a{i}-{j}")), &agent).await.unwrap();
                        ids.push(t.id.0);
                    }
                    ids
                })
            })
            .collect();
        let mut ids: Vec<u64> = blocking.into_iter().flat_map(|h| h.join().unwrap()).collect();
        for t in tasks {
            ids.extend(rt.block_on(t).unwrap());
        }
        ids
    });
    ids.sort_unstable();
    assert_eq!(ids, (2..=1 + 4 * 50 + 64 * 10).collect::<Vec<_>>());
    let after = desk.get(shared.id).unwrap();
    assert_eq!(after.version, 1 + 4 * 50 + 64 * 10);
    assert_eq!(desk.history(shared.id).unwrap().len() as u64, after.version);
    assert_eq!(desk.stats().unwrap().total, 1 + 4 * 50 + 64 * 10);
    let report = desk.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
}

/// Async writes report the same typed errors as blocking ones, and a rejected input is
/// never queued: nothing changes.
#[test]
fn async_writes_return_typed_errors_and_change_nothing() {
    let desk = Helpdesk::temporary(Config::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let agent = Actor::agent("eve");
    let t = desk.create(new_ticket("one"), &requester()).unwrap();
    let retitle = TicketUpdate { title: Some("x".into()), ..Default::default() };
    let missing = rt.block_on(desk.update_async(TicketId(99), retitle, &agent));
    assert!(matches!(missing, Err(Error::NotFound(TicketId(99)))), "{missing:?}");
    let stale = TicketUpdate { title: Some("x".into()), version: Some(7), ..Default::default() };
    let conflict = rt.block_on(desk.update_async(t.id, stale, &agent));
    assert!(matches!(conflict, Err(Error::VersionConflict { expected: 7, actual: 1, .. })), "{conflict:?}");
    let invalid = rt.block_on(desk.comment_async(t.id, NewComment::public("   "), &agent));
    assert!(matches!(invalid, Err(Error::Validation(_))), "{invalid:?}");
    let bad_key = rt.block_on(desk.create_idempotent_async("", new_ticket("two"), &requester()));
    assert!(matches!(bad_key, Err(Error::Validation(_))), "{bad_key:?}");
    assert_eq!(desk.get(t.id).unwrap(), t);
    assert_eq!(desk.stats().unwrap().total, 1);
    // Idempotency works the same way as for blocking creates.
    let (first, created) = rt.block_on(desk.create_idempotent_async("k-1", new_ticket("two"), &requester())).unwrap();
    let (again, created_again) = desk.create_idempotent("k-1", new_ticket("two"), &requester()).unwrap();
    assert!(created && !created_again);
    assert_eq!(first.id, again.id);
}

/// A write whose future is dropped after its first poll (e.g. an HTTP client that went
/// away) is still applied: the caller only stops waiting for the answer. In relaxed mode
/// too, where nothing waits for a flush.
#[test]
fn a_dropped_async_write_is_still_applied() {
    for durability in [Durability::Durable, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        let desk = Helpdesk::open(dir.path(), Config { durability, ..Config::default() }).unwrap();
        let who = requester();
        let mut fut = Box::pin(desk.create_async(new_ticket("abandoned"), &who));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // The first poll queues the write (and may even get its answer); then the caller
        // goes away.
        let _ = fut.as_mut().poll(&mut cx);
        drop(fut);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while desk.stats().unwrap().total == 0 {
            assert!(std::time::Instant::now() < deadline, "the abandoned write was never applied ({durability:?})");
            std::thread::yield_now();
        }
        assert_eq!(desk.get(TicketId(1)).unwrap().title, "abandoned");
        // Closing the handle waits for queued writes; reopening finds them.
        drop(desk);
        let desk = Helpdesk::open(dir.path(), Config::default()).unwrap();
        assert_eq!(desk.stats().unwrap().total, 1);
    }
}
