//! Export/import: exact round trips, consistency under concurrent writers, and refusal
//! of damaged streams without leaving anything behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{agent, clock, desk, new_ticket, requester};
use helpdesk_core::{Config, Error, Filter, Helpdesk, ListQuery, NewComment, Priority, Status, TicketId, TicketUpdate};

fn varied(desk: &Helpdesk, n: u64) {
    for i in 0..n {
        let t = desk
            .create(new_ticket(&format!("t{i}")).priority(Priority::ALL[i as usize % 4]).tags(["x"]), &requester())
            .unwrap();
        if i % 2 == 0 {
            desk.comment(t.id, NewComment::internal("note"), &agent()).unwrap();
        }
        if i % 3 == 0 {
            desk.transition(t.id, Status::Resolved, Some("ok".into()), &agent()).unwrap();
        }
    }
}

fn export(desk: &Helpdesk) -> Vec<u8> {
    let mut out = Vec::new();
    desk.export(&mut out).unwrap();
    out
}

fn assert_identical(a: &Helpdesk, b: &Helpdesk) {
    let sa = a.stats().unwrap();
    let sb = b.stats().unwrap();
    assert_eq!((sa.total, &sa.by_status, sa.mttr_seconds), (sb.total, &sb.by_status, sb.mttr_seconds));
    for id in 1..=sa.total {
        let id = TicketId(id);
        assert_eq!(a.get(id).unwrap(), b.get(id).unwrap());
        assert_eq!(a.history(id).unwrap(), b.history(id).unwrap());
    }
}

#[test]
fn export_then_import_reproduces_the_database_exactly() {
    let clock = clock();
    let src = desk(&clock);
    varied(&src, 40);
    let bytes = export(&src);
    let dst = desk(&clock);
    let summary = dst.import(&bytes[..]).unwrap();
    assert_eq!((summary.tickets, summary.bytes), (40, bytes.len() as u64));
    assert_eq!(summary.events, 40 + 20 + 14);
    assert_identical(&src, &dst);
    assert!(dst.verify().unwrap().is_clean());
    let open = Filter { status: Some(Status::Open), ..Filter::default() };
    assert_eq!(src.list(&ListQuery::new(open.clone())).unwrap(), dst.list(&ListQuery::new(open)).unwrap());
    // Ids continue where the source left off, never reusing one.
    assert_eq!(dst.create(new_ticket("next"), &requester()).unwrap().id, TicketId(41));
    // Exporting the import gives the same content (same checksum, same bytes but the header time).
    let again = export(&desk_from(&clock, &bytes));
    assert_eq!(tail(&again), tail(&bytes));
}

fn desk_from(clock: &common::ManualClockRef, bytes: &[u8]) -> Helpdesk {
    let d = desk(clock);
    d.import(bytes).unwrap();
    d
}

/// Everything after the header line.
fn tail(bytes: &[u8]) -> &[u8] {
    let nl = bytes.iter().position(|b| *b == b'\n').unwrap();
    &bytes[nl..]
}

#[test]
fn an_empty_database_round_trips() {
    let clock = clock();
    let bytes = export(&desk(&clock));
    let dst = desk(&clock);
    assert_eq!(dst.import(&bytes[..]).unwrap().tickets, 0);
    assert_eq!(dst.create(new_ticket("first"), &requester()).unwrap().id, TicketId(1));
}

#[test]
fn import_refuses_a_database_that_is_not_empty() {
    let clock = clock();
    let src = desk(&clock);
    varied(&src, 3);
    let bytes = export(&src);
    let dst = desk(&clock);
    dst.create(new_ticket("mine"), &requester()).unwrap();
    assert!(matches!(dst.import(&bytes[..]), Err(Error::NotEmpty { tickets: 1 })));
    assert_eq!(dst.get(TicketId(1)).unwrap().title, "mine");
}

/// Imports `bytes` into a fresh database, expecting an `InvalidSnapshot` error whose
/// message contains `why`, and checks the database is left empty and usable.
fn refused(clock: &common::ManualClockRef, bytes: &[u8], why: &str) {
    let dst = desk(clock);
    match dst.import(bytes) {
        Err(Error::InvalidSnapshot(msg)) => assert!(msg.contains(why), "{msg:?} should mention {why:?}"),
        other => panic!("expected InvalidSnapshot({why}), got {other:?}"),
    }
    assert_eq!(dst.stats().unwrap().total, 0);
    assert!(dst.list(&ListQuery::default()).unwrap().tickets.is_empty());
    assert!(dst.verify().unwrap().is_clean());
    assert_eq!(dst.create(new_ticket("after"), &requester()).unwrap().id, TicketId(1));
}

#[test]
fn damaged_streams_are_refused_and_leave_nothing_behind() {
    let clock = clock();
    let src = desk(&clock);
    varied(&src, 30);
    let good = export(&src);
    let text = String::from_utf8(good.clone()).unwrap();

    // A changed letter inside a title: valid JSON, wrong checksum.
    let flipped = text.replacen("\"title\":\"t1", "\"title\":\"T1", 1);
    assert_ne!(flipped, text);
    refused(&clock, flipped.as_bytes(), "checksum mismatch");

    // Truncated: no end record, or cut mid-line.
    let no_end = &good[..good.len() - text.lines().last().unwrap().len() - 1];
    refused(&clock, no_end, "truncated");
    refused(&clock, &good[..good.len() / 2], "line");

    // Garbage, an empty stream, a wrong format, data after the end.
    refused(&clock, b"hello\n", "line 1");
    refused(&clock, b"", "empty");
    let v2 = text.replacen("\"format_version\":1", "\"format_version\":2", 1);
    refused(&clock, v2.as_bytes(), "format version 2 is not supported");
    let extra = format!("{text}{}\n", text.lines().nth(1).unwrap());
    refused(&clock, extra.as_bytes(), "after the end");

    // A missing event line: structure check catches it before the checksum does.
    let lines: Vec<&str> = text.lines().collect();
    let event_line = lines.iter().position(|l| l.starts_with("{\"event\"")).unwrap();
    let dropped: String =
        lines.iter().enumerate().filter(|(i, _)| *i != event_line).map(|(_, l)| format!("{l}\n")).collect();
    refused(&clock, dropped.as_bytes(), "event");

    // Flipping any single byte is always detected (structure, JSON or checksum).
    for offset in (0..good.len()).step_by(good.len() / 23) {
        let mut bad = good.clone();
        bad[offset] ^= 0x01;
        let dst = desk(&clock);
        assert!(dst.import(&bad[..]).is_err(), "flip at {offset} was accepted");
        assert_eq!(dst.stats().unwrap().total, 0);
    }
}

/// Writers create, update and comment while an export runs. The export must contain every
/// change acknowledged before it began, be internally consistent, and import cleanly.
#[test]
fn export_under_concurrent_writers_is_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Helpdesk::open(dir.path(), Config::default()).unwrap();
    varied(&desk, 200);
    let acked: Arc<Mutex<HashMap<u64, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (desk, acked, stop) = (desk.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = if n.is_multiple_of(2) {
                        desk.create(new_ticket(&format!("w{w}-{n}")), &requester()).unwrap()
                    } else {
                        // Update an old ticket the export will have to take as it was.
                        let id = TicketId(1 + (n * 7 + w) % 200);
                        let upd = TicketUpdate { title: Some(format!("edited {n}")), ..Default::default() };
                        match desk.update(id, upd, &agent()) {
                            Ok(t) => t,
                            Err(Error::TicketClosed(_)) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    };
                    let mut a = acked.lock().unwrap();
                    let v = a.entry(t.id.0).or_default();
                    *v = (*v).max(t.version);
                }
            })
        })
        .collect();
    // Let the writers get going (wait for acknowledgements, not for time).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acked.lock().unwrap().len() < 50 {
        assert!(std::time::Instant::now() < deadline, "writers made no progress");
        std::thread::yield_now();
    }
    let before: HashMap<u64, u64> = acked.lock().unwrap().clone();
    let mut bytes = Vec::new();
    let summary = desk.export(&mut bytes).unwrap();
    let during = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(during > before.len(), "writers should have kept acknowledging during the export");

    let clock = clock();
    let restored = common::desk(&clock);
    let s = restored.import(&bytes[..]).unwrap();
    assert_eq!(s.tickets, summary.tickets);
    let report = restored.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    for (id, version) in &before {
        let t = restored.get(TicketId(*id)).unwrap_or_else(|e| panic!("ticket {id} acknowledged before export: {e}"));
        assert!(t.version >= *version, "ticket {id}: version {} < acknowledged {version}", t.version);
        assert_eq!(restored.history(t.id).unwrap().len() as u64, t.version);
    }
    println!(
        "export of {} tickets / {} events while {} writes were acknowledged",
        summary.tickets,
        summary.events,
        during - before.len()
    );
}

/// A sink that, the first time it is written to (the header, after the export has
/// registered), changes the database: an update to a ticket not yet exported, a
/// comment, and a new ticket.
struct MeddlingSink {
    desk: Helpdesk,
    out: Vec<u8>,
    meddled: bool,
}

impl std::io::Write for MeddlingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.meddled {
            self.meddled = true;
            let upd = TicketUpdate { title: Some("changed during export".into()), ..Default::default() };
            self.desk.update(TicketId(20), upd, &agent()).unwrap();
            self.desk.comment(TicketId(21), NewComment::public("during"), &agent()).unwrap();
            self.desk.create(new_ticket("born during export"), &requester()).unwrap();
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn changes_made_while_exporting_are_not_in_the_export() {
    let clock = clock();
    let src = desk(&clock);
    varied(&src, 25);
    let before_20 = src.get(TicketId(20)).unwrap();
    let before_21 = src.get(TicketId(21)).unwrap();
    let mut sink = MeddlingSink { desk: src.clone(), out: Vec::new(), meddled: false };
    let summary = src.export(&mut sink).unwrap();
    assert!(sink.meddled);
    assert_eq!(summary.tickets, 25);
    assert_eq!(src.get(TicketId(20)).unwrap().title, "changed during export");

    let dst = desk(&clock);
    dst.import(&sink.out[..]).unwrap();
    assert_eq!(dst.get(TicketId(20)).unwrap(), before_20);
    assert_eq!(dst.get(TicketId(21)).unwrap(), before_21);
    assert_eq!(dst.history(TicketId(21)).unwrap().len() as u64, before_21.version);
    assert!(matches!(dst.get(TicketId(26)), Err(Error::NotFound(_))));
    assert!(dst.verify().unwrap().is_clean());
    // The source is unaffected by the export's bookkeeping.
    assert!(src.verify().unwrap().is_clean());
}
