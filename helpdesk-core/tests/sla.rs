//! SLA due times, breaches, at-risk queries and the statistics built on them, on a manual
//! clock so every boundary is exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{agent, clock, desk, new_ticket, requester, T0};
use helpdesk_core::{
    Clock, Config, Durability, Error, Helpdesk, Priority, SlaPolicy, SlaTarget, Status, TicketId, TicketUpdate,
};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn ids(ts: &[helpdesk_core::Ticket]) -> Vec<TicketId> {
    ts.iter().map(|t| t.id).collect()
}

#[test]
fn due_times_follow_the_policy_for_each_priority() {
    let clock = clock();
    let desk = desk(&clock);
    let expect =
        [(Priority::Critical, 1, 4), (Priority::High, 4, 24), (Priority::Medium, 24, 72), (Priority::Low, 72, 168)];
    for (p, first, resolve) in expect {
        let t = desk.create(new_ticket("T").priority(p), &requester()).unwrap();
        assert_eq!(t.first_response_due, T0.saturating_add(HOUR * first), "{p}");
        assert_eq!(t.resolution_due, T0.saturating_add(HOUR * resolve), "{p}");
    }
    // Medium is the default priority.
    assert_eq!(desk.create(new_ticket("T"), &requester()).unwrap().priority, Priority::Medium);
}

#[test]
fn a_custom_policy_applies_and_a_nonsensical_one_is_refused() {
    let clock = clock();
    let mut sla =
        SlaPolicy { critical: SlaTarget { first_response: 15 * MIN, resolution: 2 * HOUR }, ..SlaPolicy::default() };
    let config = Config::default().durability(Durability::Relaxed).clock(clock.clone()).sla(sla);
    let desk = Helpdesk::temporary(config.clone()).unwrap();
    let t = desk.create(new_ticket("T").priority(Priority::Critical), &requester()).unwrap();
    assert_eq!(t.first_response_due, T0.saturating_add(15 * MIN));
    assert_eq!(t.resolution_due, T0.saturating_add(2 * HOUR));

    sla.low.resolution = Duration::ZERO;
    let Err(Error::Validation(e)) = Helpdesk::temporary(config.sla(sla)) else { panic!() };
    assert!(e.has("sla.low.resolution"));
}

#[test]
fn reprioritising_recomputes_due_times_from_creation() {
    let clock = clock();
    let desk = desk(&clock);
    let t = desk.create(new_ticket("T").priority(Priority::Low), &requester()).unwrap();
    clock.advance(30 * MIN);
    let t =
        desk.update(t.id, TicketUpdate { priority: Some(Priority::Critical), ..Default::default() }, &agent()).unwrap();
    assert_eq!(t.first_response_due, T0.saturating_add(HOUR));
    assert_eq!(t.resolution_due, T0.saturating_add(4 * HOUR));
}

#[test]
fn breach_and_at_risk_move_with_the_clock_and_the_workflow() {
    let clock = clock();
    let desk = desk(&clock);
    let crit = desk.create(new_ticket("core switch down").priority(Priority::Critical), &requester()).unwrap();
    let low = desk.create(new_ticket("mouse").priority(Priority::Low), &requester()).unwrap();

    // 59 minutes in: nothing breached, the critical ticket is at risk within 5 minutes.
    clock.set(T0.saturating_add(59 * MIN));
    assert!(desk.sla_breached(10).unwrap().is_empty());
    assert_eq!(ids(&desk.sla_at_risk(5 * MIN, 10).unwrap()), [crit.id]);
    assert!(desk.sla_at_risk(30 * 1000 * Duration::from_millis(1), 10).unwrap().is_empty());
    assert_eq!(desk.stats().unwrap().sla_breached, 0);

    // Exactly at the due time it is not yet breached; one millisecond later it is.
    clock.set(crit.first_response_due);
    assert_eq!(desk.stats().unwrap().sla_breached, 0);
    clock.set(crit.first_response_due.saturating_add(Duration::from_millis(1)));
    assert_eq!(ids(&desk.sla_breached(10).unwrap()), [crit.id]);
    assert_eq!(desk.stats().unwrap().sla_breached, 1);
    let breaches = desk.get(crit.id).unwrap().sla_breaches(clock.now());
    assert!(breaches.first_response && !breaches.resolution);

    // A late first response is recorded as breached but the ticket's next deadline is
    // now the resolution due time, 4 h after creation.
    clock.set(T0.saturating_add(61 * MIN));
    let taken = desk.transition(crit.id, Status::InProgress, None, &agent()).unwrap();
    assert!(taken.sla_breaches(clock.now()).first_response);
    assert_eq!(taken.next_deadline(), Some(taken.resolution_due));
    assert_eq!(desk.stats().unwrap().sla_breached, 0);
    assert!(desk.sla_breached(10).unwrap().is_empty());

    // Five hours in the resolution target is missed.
    clock.set(T0.saturating_add(5 * HOUR));
    assert_eq!(ids(&desk.sla_breached(10).unwrap()), [crit.id]);
    assert_eq!(desk.stats().unwrap().sla_breached, 1);

    // Four days in, the low ticket has missed its first response too: most overdue first.
    clock.set(T0.saturating_add(96 * HOUR));
    assert_eq!(ids(&desk.sla_breached(10).unwrap()), [crit.id, low.id]);
    assert_eq!(ids(&desk.sla_breached(1).unwrap()), [crit.id]);
    assert_eq!(desk.stats().unwrap().sla_breached, 2);

    // Resolving removes a ticket from the breach count; its breach stays visible on it.
    let done = desk.transition(crit.id, Status::Resolved, Some("replaced PSU".into()), &agent()).unwrap();
    assert!(done.sla_breaches(clock.now()).resolution);
    assert_eq!(done.next_deadline(), None);
    assert_eq!(desk.stats().unwrap().sla_breached, 1);

    // Reopening puts it back.
    desk.transition(crit.id, Status::Open, None, &requester()).unwrap();
    assert_eq!(desk.stats().unwrap().sla_breached, 2);

    // The clock going back is handled (recount, not drift).
    clock.set(T0);
    assert_eq!(desk.stats().unwrap().sla_breached, 0);
    clock.set(T0.saturating_add(96 * HOUR));
    assert_eq!(desk.stats().unwrap().sla_breached, 2);
    assert!(desk.verify().unwrap().is_clean());
}

#[test]
fn breach_count_survives_a_reopen_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let config = Config::default().clock(clock.clone());
    {
        let desk = Helpdesk::open(dir.path(), config.clone()).unwrap();
        desk.create(new_ticket("T").priority(Priority::Critical), &requester()).unwrap();
        desk.create(new_ticket("T").priority(Priority::Low), &requester()).unwrap();
    }
    clock.set(T0.saturating_add(2 * HOUR));
    let desk = common::open_retry(dir.path(), config);
    assert_eq!(desk.stats().unwrap().sla_breached, 1);
}

#[test]
fn mean_time_to_resolve_counts_resolved_and_closed_tickets_only() {
    let clock = clock();
    let desk = desk(&clock);
    let a = desk.create(new_ticket("a"), &requester()).unwrap();
    let b = desk.create(new_ticket("b"), &requester()).unwrap();
    desk.create(new_ticket("c"), &requester()).unwrap();
    assert_eq!(desk.stats().unwrap().mttr_seconds, None);

    clock.set(T0.saturating_add(2 * HOUR));
    desk.transition(a.id, Status::Resolved, Some("x".into()), &agent()).unwrap();
    assert_eq!(desk.stats().unwrap().mttr_seconds, Some(7200.0));

    clock.set(T0.saturating_add(4 * HOUR));
    desk.transition(b.id, Status::Resolved, Some("y".into()), &agent()).unwrap();
    desk.transition(b.id, Status::Closed, None, &agent()).unwrap();
    let s = desk.stats().unwrap();
    assert_eq!((s.resolved, s.mttr_seconds), (2, Some(10_800.0)));
    assert_eq!((s.open_backlog, s.by_status[&Status::Closed], s.by_status[&Status::Resolved]), (1, 1, 1));

    // Reopening takes a ticket out of the mean until it is resolved again.
    desk.transition(a.id, Status::Open, None, &requester()).unwrap();
    let s = desk.stats().unwrap();
    assert_eq!((s.resolved, s.mttr_seconds), (1, Some(14_400.0)));
}
