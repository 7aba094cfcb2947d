//! Many writers at once: writes are combined into shared transactions, so changes to the
//! same ticket inside one batch must compose exactly as if they ran one after another.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{new_ticket, requester};
use helpdesk_core::{Actor, Config, Error, Helpdesk, NewComment, TicketId, TicketUpdate};

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
