//! The database on disk: persistence across reopen, schema versions, locking, corruption,
//! and verify/repair against deliberate tampering (through sled directly).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{agent, new_ticket, open_retry, raw_sled, requester, try_open};
use helpdesk_core::{
    Config, Durability, Error, Filter, Helpdesk, ListQuery, ProblemKind, Status, TicketId, SCHEMA_VERSION,
};

// Tree names and key layouts (see src/store/keys.rs). Tests tamper at this level on purpose.
const TICKETS: &str = "ticket_id";
const EVENTS: &str = "ticketid_version";
const INDEX: &str = "index";
const META: &str = "meta";

fn seeded(path: &Path) {
    let desk = Helpdesk::open(path, Config::default()).unwrap();
    for i in 0..5 {
        let t = desk.create(new_ticket(&format!("t{i}")).tags(["lab"]), &requester()).unwrap();
        if i % 2 == 0 {
            desk.transition(t.id, Status::InProgress, None, &agent()).unwrap();
        }
    }
}

fn tamper(path: &Path, f: impl FnOnce(&sled::Db)) {
    let db = raw_sled(path);
    f(&db);
    db.flush().unwrap();
}

#[test]
fn durable_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    let desk = open_retry(dir.path(), Config::default());
    assert_eq!(desk.stats().unwrap().total, 5);
    assert_eq!(desk.get(TicketId(1)).unwrap().status, Status::InProgress);
    assert_eq!(desk.history(TicketId(1)).unwrap().len(), 2);
    assert_eq!(desk.create(new_ticket("six"), &requester()).unwrap().id, TicketId(6));
    assert_eq!(desk.schema_version(), SCHEMA_VERSION);
    assert!(desk.verify().unwrap().is_clean());
    desk.check_writable().unwrap();
    assert!(desk.size_on_disk().unwrap() > 0);
}

#[test]
fn relaxed_writes_are_on_disk_after_flush_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    {
        let desk = Helpdesk::open(dir.path(), Config::default().durability(Durability::Relaxed)).unwrap();
        desk.create(new_ticket("a"), &requester()).unwrap();
        desk.flush().unwrap();
        desk.create(new_ticket("b"), &requester()).unwrap();
    }
    let desk = open_retry(dir.path(), Config::default());
    assert_eq!(desk.stats().unwrap().total, 2);
}

#[test]
fn a_second_process_cannot_open_a_live_database() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Helpdesk::open(dir.path(), Config::default()).unwrap();
    match Helpdesk::open(dir.path(), Config::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    tamper(dir.path(), |db| {
        db.open_tree(META).unwrap().insert("schema_version", &99u32.to_be_bytes()).unwrap();
    });
    match try_open(dir.path(), Config::default()) {
        Err(e @ Error::UnsupportedSchema { found: 99, supported: SCHEMA_VERSION }) => {
            assert!(e.to_string().contains("99"), "{e}");
        }
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
}

#[test]
fn an_interrupted_import_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    tamper(dir.path(), |db| {
        db.open_tree(META).unwrap().insert("import_in_progress", &[]).unwrap();
    });
    assert!(matches!(try_open(dir.path(), Config::default()), Err(Error::IncompleteImport)));
}

#[test]
fn corrupt_values_are_errors_naming_the_key_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    tamper(dir.path(), |db| {
        let tickets = db.open_tree(TICKETS).unwrap();
        tickets.insert(3u64.to_be_bytes(), &b"\x01{not json"[..]).unwrap();
        tickets.insert(4u64.to_be_bytes(), &b"\x09{}"[..]).unwrap();
        let events = db.open_tree(EVENTS).unwrap();
        let mut k = 1u64.to_be_bytes().to_vec();
        k.extend_from_slice(&2u64.to_be_bytes());
        events.insert(k, &b""[..]).unwrap();
    });
    let desk = open_retry(dir.path(), Config::default());
    match desk.get(TicketId(3)) {
        Err(Error::Corrupt { key, .. }) => assert_eq!(key, "ticket_id/3"),
        other => panic!("{other:?}"),
    }
    match desk.get(TicketId(4)) {
        Err(Error::Corrupt { key, reason }) => {
            assert_eq!(key, "ticket_id/4");
            assert!(reason.contains("unknown value format 9"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(desk.history(TicketId(1)), Err(Error::Corrupt { key, .. }) if key == "ticketid_version/1/2"));
    assert!(matches!(desk.list(&ListQuery::default()), Err(Error::Corrupt { .. })));
    let report = desk.verify().unwrap();
    assert_eq!(report.count(ProblemKind::CorruptValue), 3, "{:#?}", report.problems);
    // Repair rebuilds what it can and names what it cannot.
    let repair = desk.repair().unwrap();
    assert_eq!(repair.tickets, 3);
    assert!(repair.unrepairable.iter().any(|p| p.key == "ticket_id/3"));
}

#[test]
fn verify_reports_every_disagreement_and_repair_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    seeded(dir.path());
    tamper(dir.path(), |db| {
        let index = db.open_tree(INDEX).unwrap();
        // Drop ticket 2's status entry (tag 2) and invent one for a ticket that is not
        // in_progress, and one for a ticket that does not exist.
        let status_keys: Vec<_> = index.scan_prefix([2u8]).keys().map(|k| k.unwrap()).collect();
        let mine =
            status_keys.iter().find(|k| u64::MAX - u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap()) == 2);
        index.remove(mine.unwrap()).unwrap();
        let mut bogus = vec![2u8, 2u8];
        bogus.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
        bogus.extend_from_slice(&(u64::MAX - 2).to_be_bytes());
        index.insert(bogus, &[]).unwrap();
        let mut ghost = vec![1u8];
        ghost.extend_from_slice(&0u64.to_be_bytes());
        ghost.extend_from_slice(&(u64::MAX - 99).to_be_bytes());
        index.insert(ghost, &[]).unwrap();
        db.open_tree(META).unwrap().insert("count/status/open", &77u64.to_be_bytes()).unwrap();
        let mut orphan = 99u64.to_be_bytes().to_vec();
        orphan.extend_from_slice(&1u64.to_be_bytes());
        db.open_tree(EVENTS).unwrap().insert(orphan, &b"\x01{}"[..]).unwrap();
    });
    let desk = open_retry(dir.path(), Config::default());
    let report = desk.verify().unwrap();
    assert_eq!(report.count(ProblemKind::MissingIndexEntry), 1, "{:#?}", report.problems);
    assert_eq!(report.count(ProblemKind::StaleIndexEntry), 2, "{:#?}", report.problems);
    assert_eq!(report.count(ProblemKind::CounterMismatch), 1, "{:#?}", report.problems);
    assert_eq!(report.count(ProblemKind::OrphanEvent), 1, "{:#?}", report.problems);
    let counter = report.problems.iter().find(|p| p.kind == ProblemKind::CounterMismatch).unwrap();
    assert_eq!(counter.key, "meta/count/status/open");
    assert!(counter.detail.contains("stored 77"));
    // The wrong counter is what stats report until repaired; listings re-check tickets.
    assert_eq!(desk.stats().unwrap().by_status[&Status::Open], 77);
    let open = desk.list(&ListQuery::new(Filter { status: Some(Status::Open), ..Filter::default() })).unwrap();
    assert!(open.tickets.iter().all(|t| t.status == Status::Open));

    let repair = desk.repair().unwrap();
    assert_eq!(repair.tickets, 5);
    // The orphan event is not something a rebuild of derived data can fix; it is named.
    assert_eq!(repair.unrepairable.len(), 1, "{:#?}", repair.unrepairable);
    assert_eq!(repair.unrepairable[0].kind, ProblemKind::OrphanEvent);
    let after = desk.verify().unwrap();
    assert_eq!(after.problem_count, 1);
    assert_eq!(desk.stats().unwrap().by_status[&Status::Open], 2);
    let in_progress = desk.list(&ListQuery::new(Filter { status: Some(Status::InProgress), ..Filter::default() }));
    assert_eq!(in_progress.unwrap().tickets.len(), 3);
}
