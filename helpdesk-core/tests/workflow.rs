//! Status workflow, validation, optimistic concurrency and history, through the public API.
#![allow(clippy::unwrap_used)]

mod common;

use common::{agent, clock, desk, new_ticket, requester};
use helpdesk_core::{
    workflow, Actor, Category, Error, EventKind, Helpdesk, NewComment, NewTicket, Priority, Status, Ticket, TicketId,
    TicketUpdate, Visibility,
};
use serde_json::json;

/// A fresh ticket brought to `status` along a legal path.
fn ticket_in(desk: &Helpdesk, status: Status) -> Ticket {
    let t = desk.create(new_ticket("VPN down"), &requester()).unwrap();
    let path: &[Status] = match status {
        Status::Open => &[],
        Status::InProgress => &[Status::InProgress],
        Status::Waiting => &[Status::InProgress, Status::Waiting],
        Status::Resolved => &[Status::Resolved],
        Status::Closed => &[Status::Resolved, Status::Closed],
    };
    let mut t = t;
    for s in path {
        let notes = (*s == Status::Resolved).then(|| "fixed".to_string());
        t = desk.transition(t.id, *s, notes, &agent()).unwrap();
    }
    assert_eq!(t.status, status);
    t
}

const LEGAL: &[(Status, Status)] = &[
    (Status::Open, Status::InProgress),
    (Status::Open, Status::Resolved),
    (Status::InProgress, Status::Open),
    (Status::InProgress, Status::Waiting),
    (Status::InProgress, Status::Resolved),
    (Status::Waiting, Status::InProgress),
    (Status::Waiting, Status::Resolved),
    (Status::Resolved, Status::Open),
    (Status::Resolved, Status::Closed),
];

#[test]
fn every_transition_is_allowed_or_refused_exactly_as_specified() {
    let clock = clock();
    let desk = desk(&clock);
    for &from in Status::ALL {
        for &to in Status::ALL {
            if from == to {
                continue;
            }
            let t = ticket_in(&desk, from);
            let events_before = desk.history(t.id).unwrap().len();
            let result = desk.transition(t.id, to, Some("notes".into()), &agent());
            let legal = LEGAL.contains(&(from, to));
            assert_eq!(workflow::can_transition(from, to), legal, "{from} -> {to}");
            match result {
                Ok(after) => {
                    assert!(legal, "{from} -> {to} was allowed");
                    assert_eq!(after.status, to);
                    assert_eq!(after.version, t.version + 1);
                    let history = desk.history(t.id).unwrap();
                    let change = history.last().unwrap().change("status").unwrap();
                    assert_eq!((change.old.clone(), change.new.clone()), (json!(from), json!(to)));
                }
                Err(e) => {
                    assert!(!legal, "{from} -> {to} was refused: {e}");
                    match e {
                        Error::InvalidTransition { from: f, to: t2, .. } => {
                            assert_eq!((f, t2), (from, to));
                            assert!(e.to_string().contains(&format!("{from} -> {to}")));
                        }
                        Error::TicketClosed(id) => assert_eq!((id, from), (t.id, Status::Closed)),
                        other => panic!("{from} -> {to}: unexpected {other}"),
                    }
                    assert!(e.is_client_error());
                    // Nothing changed.
                    assert_eq!(desk.get(t.id).unwrap(), t);
                    assert_eq!(desk.history(t.id).unwrap().len(), events_before);
                }
            }
        }
    }
    let report = desk.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
}

#[test]
fn asking_for_the_current_status_changes_nothing() {
    let clock = clock();
    let desk = desk(&clock);
    for &s in Status::ALL.iter().filter(|s| **s != Status::Closed) {
        let t = ticket_in(&desk, s);
        let same = desk.transition(t.id, s, None, &agent()).unwrap();
        assert_eq!(same, t);
    }
}

#[test]
fn resolving_requires_notes_and_reopening_clears_them() {
    let clock = clock();
    let desk = desk(&clock);
    let t = ticket_in(&desk, Status::InProgress);
    let err = desk.transition(t.id, Status::Resolved, None, &agent()).unwrap_err();
    assert!(matches!(err, Error::ResolutionNotesRequired(id) if id == t.id), "{err}");
    assert!(err.is_client_error());
    assert_eq!(desk.get(t.id).unwrap(), t);

    let resolved = desk.transition(t.id, Status::Resolved, Some("Replaced cable".into()), &agent()).unwrap();
    assert_eq!(resolved.resolution_notes.as_deref(), Some("Replaced cable"));
    assert!(resolved.resolved_at.is_some());

    let reopened = desk.transition(t.id, Status::Open, None, &requester()).unwrap();
    assert_eq!((reopened.resolution_notes.clone(), reopened.resolved_at), (None, None));
    // The reopen event records the notes that were cleared.
    let last = desk.history(t.id).unwrap().pop().unwrap();
    assert_eq!(last.change("resolution_notes").unwrap().old, json!("Replaced cable"));

    assert!(matches!(desk.transition(t.id, Status::Resolved, None, &agent()), Err(Error::ResolutionNotesRequired(_))));
    // Notes may be drafted first and the resolution made later.
    desk.update(t.id, TicketUpdate { resolution_notes: Some("Draft".into()), ..Default::default() }, &agent()).unwrap();
    assert_eq!(desk.transition(t.id, Status::Resolved, None, &agent()).unwrap().status, Status::Resolved);
}

#[test]
fn closed_tickets_are_read_only() {
    let clock = clock();
    let desk = desk(&clock);
    let t = ticket_in(&desk, Status::Closed);
    assert!(t.closed_at.is_some());
    let upd = TicketUpdate { title: Some("new".into()), ..Default::default() };
    assert!(matches!(desk.update(t.id, upd, &agent()), Err(Error::TicketClosed(id)) if id == t.id));
    assert!(matches!(desk.comment(t.id, NewComment::public("hi"), &agent()), Err(Error::TicketClosed(_))));
    assert!(matches!(desk.assign(t.id, Some("bob".into()), &agent()), Err(Error::TicketClosed(_))));
    assert_eq!(desk.get(t.id).unwrap(), t);
}

#[test]
fn stale_versions_conflict_and_change_nothing() {
    let clock = clock();
    let desk = desk(&clock);
    let t = desk.create(new_ticket("Printer"), &requester()).unwrap();
    let v1 = t.version;
    let t = desk
        .update(
            t.id,
            TicketUpdate { title: Some("Printer jam".into()), version: Some(v1), ..Default::default() },
            &agent(),
        )
        .unwrap();
    assert_eq!(t.version, 2);
    let stale = TicketUpdate { title: Some("Lost update".into()), version: Some(v1), ..Default::default() };
    match desk.update(t.id, stale, &agent()) {
        Err(Error::VersionConflict { id, expected, actual }) => assert_eq!((id, expected, actual), (t.id, 1, 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(desk.get(t.id).unwrap().title, "Printer jam");
}

#[test]
fn missing_tickets_are_not_found_everywhere() {
    let clock = clock();
    let desk = desk(&clock);
    let id = TicketId(404);
    assert!(matches!(desk.get(id), Err(Error::NotFound(i)) if i == id));
    assert!(matches!(desk.history(id), Err(Error::NotFound(_))));
    assert!(matches!(desk.comment(id, NewComment::public("x"), &agent()), Err(Error::NotFound(_))));
    assert!(matches!(desk.transition(id, Status::Resolved, Some("n".into()), &agent()), Err(Error::NotFound(_))));
    assert!(matches!(desk.assign(id, None, &agent()), Err(Error::NotFound(_))));
}

fn create_err(desk: &Helpdesk, new: NewTicket) -> Vec<(String, &'static str)> {
    match desk.create(new, &requester()) {
        Err(Error::Validation(e)) => e.fields().iter().map(|f| (f.field.clone(), f.code)).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn every_validation_rule_names_its_field() {
    let clock = clock();
    let desk = desk(&clock);
    let base = || new_ticket("Title");
    let cases: Vec<(NewTicket, &str, &str)> = vec![
        (NewTicket { title: "   ".into(), ..base() }, "title", "required"),
        (NewTicket { title: "x".repeat(201), ..base() }, "title", "too_long"),
        (NewTicket { title: "two\nlines".into(), ..base() }, "title", "invalid"),
        (NewTicket { description: "".into(), ..base() }, "description", "required"),
        (NewTicket { description: "x".repeat(10_001), ..base() }, "description", "too_long"),
        (NewTicket { description: "nul\0".into(), ..base() }, "description", "invalid"),
        (NewTicket { submitter_email: "".into(), ..base() }, "submitter_email", "required"),
        (NewTicket { submitter_email: "ada.campus.example".into(), ..base() }, "submitter_email", "invalid"),
        (NewTicket { submitter_email: "ada@campus".into(), ..base() }, "submitter_email", "invalid"),
        (NewTicket { submitter_name: " ".into(), ..base() }, "submitter_name", "required"),
        (NewTicket { submitter_name: "n".repeat(101), ..base() }, "submitter_name", "too_long"),
        (NewTicket { assigned_to: Some("".into()), ..base() }, "assigned_to", "required"),
        (NewTicket { assigned_to: Some("a".repeat(101)), ..base() }, "assigned_to", "too_long"),
        (base().tags((0..11).map(|i| format!("t{i}"))), "tags", "too_many"),
        (base().tags(["ok", ""]), "tags[1]", "required"),
        (base().tags(["has space"]), "tags[0]", "invalid"),
        (base().tags(["x".repeat(33)]), "tags[0]", "too_long"),
    ];
    for (new, field, code) in cases {
        let errors = create_err(&desk, new);
        assert!(errors.contains(&(field.to_string(), code)), "{field}/{code} not in {errors:?}");
    }
    // Several bad fields are all reported at once.
    let errors = create_err(&desk, NewTicket { title: "".into(), submitter_email: "bad".into(), ..base().tags(["!"]) });
    let fields: Vec<_> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["title", "submitter_email", "tags[0]"]);
    // Nothing was created by any of them.
    assert_eq!(desk.stats().unwrap().total, 0);
    // Limits are inclusive and counted in characters.
    let t = desk.create(NewTicket { title: "é".repeat(200), ..base().tags(["a"; 10]) }, &requester()).unwrap();
    assert_eq!(t.tags.len(), 1, "duplicate tags collapse");
}

#[test]
fn updates_comments_and_actors_are_validated_too() {
    let clock = clock();
    let desk = desk(&clock);
    let t = desk.create(new_ticket("T"), &requester()).unwrap();
    let bad = |upd: TicketUpdate, field: &str| {
        let Err(Error::Validation(e)) = desk.update(t.id, upd, &agent()) else { panic!("{field}") };
        assert!(e.has(field), "{field}: {e}");
    };
    bad(TicketUpdate::default(), "");
    bad(TicketUpdate { title: Some("".into()), ..Default::default() }, "title");
    bad(TicketUpdate { description: Some("x".repeat(10_001)), ..Default::default() }, "description");
    bad(TicketUpdate { assigned_to: Some(Some(" ".into())), ..Default::default() }, "assigned_to");
    bad(TicketUpdate { resolution_notes: Some("".into()), ..Default::default() }, "resolution_notes");
    bad(TicketUpdate { tags: Some(vec!["BAD TAG".into()]), ..Default::default() }, "tags[0]");
    let Err(Error::Validation(e)) = desk.comment(t.id, NewComment::public(" "), &agent()) else { panic!() };
    assert!(e.has("body"));
    let Err(Error::Validation(e)) = desk.comment(t.id, NewComment::public("x".repeat(10_001)), &agent()) else {
        panic!()
    };
    assert!(e.has("body"));
    let Err(Error::Validation(e)) = desk.create(new_ticket("T"), &Actor::agent("")) else { panic!() };
    assert!(e.has("actor.name"));
    assert_eq!(desk.get(t.id).unwrap(), t);
}

#[test]
fn history_records_who_when_and_old_and_new_values() {
    let clock = clock();
    let desk = desk(&clock);
    let t = desk.create(new_ticket("Wi-Fi slow").priority(Priority::Low).tags(["wifi"]), &requester()).unwrap();
    clock.advance(std::time::Duration::from_secs(60));
    let upd = TicketUpdate {
        title: Some("Wi-Fi slow in library".into()),
        priority: Some(Priority::High),
        category: Some(Category::Network),
        ..Default::default()
    };
    desk.update(t.id, upd, &agent()).unwrap();
    desk.assign(t.id, Some("bob".into()), &agent()).unwrap();
    desk.comment(t.id, NewComment::internal("AP firmware"), &agent()).unwrap();
    desk.assign(t.id, None, &agent()).unwrap();

    let h = desk.history(t.id).unwrap();
    assert_eq!(h.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(
        h.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Created, EventKind::Updated, EventKind::Updated, EventKind::Commented, EventKind::Updated]
    );
    assert_eq!(h[0].actor, requester());
    assert_eq!(h[0].at, common::T0);
    assert_eq!(h[0].change("title").unwrap().new, json!("Wi-Fi slow"));
    assert_eq!(h[0].change("tags").unwrap().new, json!(["wifi"]));

    assert_eq!(h[1].actor, agent());
    assert_eq!(h[1].at, common::T0.saturating_add(std::time::Duration::from_secs(60)));
    let title = h[1].change("title").unwrap();
    assert_eq!((&title.old, &title.new), (&json!("Wi-Fi slow"), &json!("Wi-Fi slow in library")));
    let prio = h[1].change("priority").unwrap();
    assert_eq!((&prio.old, &prio.new), (&json!("low"), &json!("high")));
    assert!(h[1].change("resolution_due").is_some(), "priority change moves the SLA due times");
    assert!(h[1].change("category").is_none(), "unchanged fields are not recorded");

    assert_eq!(h[2].change("assigned_to").unwrap().new, json!("bob"));
    assert!(h[3].is_internal());
    assert_eq!(h[3].comment.as_ref().unwrap().visibility, Visibility::Internal);
    assert!(h[3].change("first_response_at").is_none(), "internal comments are not a response");
    let unassign = h[4].change("assigned_to").unwrap();
    assert_eq!((&unassign.old, &unassign.new), (&json!("bob"), &serde_json::Value::Null));
    assert_eq!(desk.get(t.id).unwrap().version, 5);
}

#[test]
fn first_response_is_an_agents_public_comment_or_status_change() {
    let clock = clock();
    let desk = desk(&clock);
    let t = desk.create(new_ticket("T"), &requester()).unwrap();
    desk.comment(t.id, NewComment::public("any news?"), &requester()).unwrap();
    desk.comment(t.id, NewComment::internal("looking"), &agent()).unwrap();
    assert_eq!(desk.get(t.id).unwrap().first_response_at, None);
    clock.advance(std::time::Duration::from_secs(5));
    let (t2, e) = desk.comment(t.id, NewComment::public("On it"), &agent()).unwrap();
    assert_eq!(t2.first_response_at, Some(clock_now(&clock)));
    assert!(e.change("first_response_at").is_some());
    // A later response does not move it.
    clock.advance(std::time::Duration::from_secs(5));
    let t3 = desk.transition(t.id, Status::InProgress, None, &agent()).unwrap();
    assert_eq!(t3.first_response_at, t2.first_response_at);
}

fn clock_now(c: &common::ManualClockRef) -> helpdesk_core::Timestamp {
    use helpdesk_core::Clock;
    c.now()
}
