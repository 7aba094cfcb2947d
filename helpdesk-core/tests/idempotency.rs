//! Idempotent creation: a repeated request with the same key creates one ticket.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{clock, desk, new_ticket, open_retry, requester};
use helpdesk_core::{Actor, Config, Error, Helpdesk, Priority};

#[test]
fn the_same_key_and_request_returns_the_first_ticket() {
    let clock = clock();
    let desk = desk(&clock);
    let (a, created) = desk.create_idempotent("k-1", new_ticket("VPN"), &requester()).unwrap();
    assert!(created);
    let (b, created) = desk.create_idempotent("k-1", new_ticket("VPN"), &requester()).unwrap();
    assert!(!created);
    assert_eq!(a, b);
    assert_eq!(desk.stats().unwrap().total, 1);
    // Another key is another ticket.
    let (c, created) = desk.create_idempotent("k-2", new_ticket("VPN"), &requester()).unwrap();
    assert!(created && c.id != a.id);
}

#[test]
fn the_same_key_with_another_request_is_a_conflict_that_creates_nothing() {
    let clock = clock();
    let desk = desk(&clock);
    desk.create_idempotent("k", new_ticket("VPN"), &requester()).unwrap();
    for (new, actor) in [
        (new_ticket("VPN").priority(Priority::High), requester()),
        (new_ticket("Other title"), requester()),
        (new_ticket("VPN"), Actor::requester("someone else")),
    ] {
        match desk.create_idempotent("k", new, &actor) {
            Err(e @ Error::IdempotencyConflict { .. }) => assert!(e.is_client_error()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(desk.stats().unwrap().total, 1);
}

#[test]
fn malformed_keys_are_validation_errors() {
    let clock = clock();
    let desk = desk(&clock);
    for key in ["", "has space", "tab\t", &"x".repeat(256), "ünïcode"] {
        let Err(Error::Validation(e)) = desk.create_idempotent(key, new_ticket("T"), &requester()) else {
            panic!("{key:?} accepted")
        };
        assert!(e.has("idempotency_key"));
    }
    assert_eq!(desk.stats().unwrap().total, 0);
}

#[test]
fn concurrent_retries_create_exactly_one_ticket_and_keys_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Helpdesk::open(dir.path(), Config::default()).unwrap();
    let ids: HashSet<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| desk.create_idempotent("retry-me", new_ticket("Wi-Fi"), &requester()).unwrap().0.id.0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), 1);
    drop(desk);
    let desk = open_retry(dir.path(), Config::default());
    let (t, created) = desk.create_idempotent("retry-me", new_ticket("Wi-Fi"), &requester()).unwrap();
    assert!(!created);
    assert!(ids.contains(&t.id.0));
    assert_eq!(desk.stats().unwrap().total, 1);
    assert!(desk.verify().unwrap().is_clean());
}
