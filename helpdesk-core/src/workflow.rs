//! The rules of change: which status transitions are legal, and how a creation, an update
//! or a comment turns into the next version of a ticket plus the [`Event`] that records it.
//!
//! Everything here is a pure function of its inputs (the current ticket, the validated
//! change, the actor, the time and the SLA policy), so the storage layer can call it while
//! holding its write lock without these rules knowing anything about storage.
//!
//! ```text
//! open        -> in_progress | resolved
//! in_progress -> open | waiting | resolved      (waiting = on the requester)
//! waiting     -> in_progress | resolved
//! resolved    -> open (reopen) | closed
//! closed      -> nothing (terminal)
//! ```

use serde::Serialize;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::history::{Comment, Event, EventKind, FieldChange};
use crate::sla::SlaPolicy;
use crate::ticket::{Actor, ActorKind, NewComment, NewTicket, Status, Ticket, TicketId, TicketUpdate, Visibility};

/// The statuses a ticket in `from` may move to.
///
/// ```
/// use helpdesk_core::{workflow, Status};
/// assert_eq!(workflow::allowed_from(Status::Resolved), &[Status::Open, Status::Closed]);
/// assert!(workflow::allowed_from(Status::Closed).is_empty());
/// ```
pub const fn allowed_from(from: Status) -> &'static [Status] {
    match from {
        Status::Open => &[Status::InProgress, Status::Resolved],
        Status::InProgress => &[Status::Open, Status::Waiting, Status::Resolved],
        Status::Waiting => &[Status::InProgress, Status::Resolved],
        Status::Resolved => &[Status::Open, Status::Closed],
        Status::Closed => &[],
    }
}

/// Whether `from -> to` is a legal transition.
pub fn can_transition(from: Status, to: Status) -> bool {
    allowed_from(from).contains(&to)
}

fn check_transition(id: TicketId, from: Status, to: Status) -> Result<()> {
    if can_transition(from, to) {
        return Ok(());
    }
    if from == Status::Closed {
        return Err(Error::TicketClosed(id));
    }
    let allowed = allowed_from(from).iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    Err(Error::InvalidTransition { id, from, to, allowed })
}

/// The first version of a ticket and its `created` event. `new` must be validated.
pub(crate) fn create(
    id: TicketId,
    new: NewTicket,
    actor: &Actor,
    now: Timestamp,
    policy: &SlaPolicy,
) -> (Ticket, Event) {
    let priority = new.priority.unwrap_or_default();
    let (first_response_due, resolution_due) = policy.due_times(priority, now);
    let ticket = Ticket {
        id,
        title: new.title,
        description: new.description,
        category: new.category,
        priority,
        status: Status::Open,
        submitter_email: new.submitter_email,
        submitter_name: new.submitter_name,
        assigned_to: new.assigned_to,
        resolution_notes: None,
        tags: new.tags.into_iter().collect(),
        created_at: now,
        updated_at: now,
        first_response_at: None,
        resolved_at: None,
        closed_at: None,
        first_response_due,
        resolution_due,
        version: 1,
    };
    let blank = Ticket {
        title: String::new(),
        description: String::new(),
        submitter_email: String::new(),
        submitter_name: String::new(),
        assigned_to: None,
        tags: Default::default(),
        first_response_due: Timestamp::EPOCH,
        resolution_due: Timestamp::EPOCH,
        ..ticket.clone()
    };
    let mut changes = diff(&blank, &ticket);
    // Category, priority and status have no "blank" value; record them explicitly.
    let fixed =
        [("category", json(&ticket.category)), ("priority", json(&ticket.priority)), ("status", json(&ticket.status))];
    changes.splice(0..0, fixed.map(|(field, new)| FieldChange { field: field.into(), old: Value::Null, new }));
    for c in &mut changes {
        c.old = Value::Null;
    }
    let event = Event {
        ticket_id: id,
        version: 1,
        at: now,
        actor: actor.clone(),
        kind: EventKind::Created,
        changes,
        comment: None,
    };
    (ticket, event)
}

/// Applies a validated update. Returns `None` when it would change nothing (so no new
/// version and no event).
pub(crate) fn update(
    old: &Ticket,
    upd: TicketUpdate,
    actor: &Actor,
    now: Timestamp,
    policy: &SlaPolicy,
) -> Result<Option<(Ticket, Event)>> {
    check_version(old, upd.version)?;
    if old.status == Status::Closed {
        return Err(Error::TicketClosed(old.id));
    }
    let mut t = old.clone();
    if let Some(title) = upd.title {
        t.title = title;
    }
    if let Some(description) = upd.description {
        t.description = description;
    }
    if let Some(category) = upd.category {
        t.category = category;
    }
    if let Some(tags) = upd.tags {
        t.tags = tags.into_iter().collect();
    }
    if let Some(assignee) = upd.assigned_to {
        t.assigned_to = assignee;
    }
    if let Some(priority) = upd.priority {
        if priority != t.priority {
            t.priority = priority;
            (t.first_response_due, t.resolution_due) = policy.due_times(priority, t.created_at);
        }
    }
    if let Some(notes) = upd.resolution_notes {
        t.resolution_notes = Some(notes);
    }
    // Asking for the status the ticket already has is not a transition (a PUT carries the
    // whole representation), so it is simply no change.
    if let Some(to) = upd.status.filter(|to| *to != old.status) {
        check_transition(old.id, old.status, to)?;
        t.status = to;
        match to {
            Status::Resolved => {
                if t.resolution_notes.is_none() {
                    return Err(Error::ResolutionNotesRequired(old.id));
                }
                t.resolved_at = Some(now);
            }
            Status::Closed => t.closed_at = Some(now),
            Status::Open if old.status == Status::Resolved => {
                // A reopened ticket is unresolved again: its next resolution needs new notes.
                t.resolved_at = None;
                t.resolution_notes = None;
            }
            _ => {}
        }
        mark_first_response(&mut t, actor, now);
    }
    let changes = diff(old, &t);
    if changes.is_empty() {
        return Ok(None);
    }
    t.version += 1;
    t.updated_at = now;
    let event = Event {
        ticket_id: t.id,
        version: t.version,
        at: now,
        actor: actor.clone(),
        kind: EventKind::Updated,
        changes,
        comment: None,
    };
    Ok(Some((t, event)))
}

/// Adds a validated comment.
pub(crate) fn comment(old: &Ticket, c: NewComment, actor: &Actor, now: Timestamp) -> Result<(Ticket, Event)> {
    if old.status == Status::Closed {
        return Err(Error::TicketClosed(old.id));
    }
    let mut t = old.clone();
    if c.visibility == Visibility::Public {
        mark_first_response(&mut t, actor, now);
    }
    let changes = diff(old, &t);
    t.version += 1;
    t.updated_at = now;
    let event = Event {
        ticket_id: t.id,
        version: t.version,
        at: now,
        actor: actor.clone(),
        kind: EventKind::Commented,
        changes,
        comment: Some(Comment { body: c.body, visibility: c.visibility }),
    };
    Ok((t, event))
}

pub(crate) fn check_version(t: &Ticket, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(expected) if expected != t.version => {
            Err(Error::VersionConflict { id: t.id, expected, actual: t.version })
        }
        _ => Ok(()),
    }
}

/// An agent's first status change or public comment is the ticket's first response.
fn mark_first_response(t: &mut Ticket, actor: &Actor, now: Timestamp) {
    if actor.kind == ActorKind::Agent && t.first_response_at.is_none() {
        t.first_response_at = Some(now);
    }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Every user-visible field that differs between `a` and `b`, with old and new values.
fn diff(a: &Ticket, b: &Ticket) -> Vec<FieldChange> {
    let mut out = Vec::new();
    macro_rules! field {
        ($($name:ident),+) => {$(
            if a.$name != b.$name {
                out.push(FieldChange { field: stringify!($name).into(), old: json(&a.$name), new: json(&b.$name) });
            }
        )+};
    }
    field!(
        title,
        description,
        category,
        priority,
        status,
        submitter_email,
        submitter_name,
        assigned_to,
        resolution_notes,
        tags,
        first_response_at,
        resolved_at,
        closed_at,
        first_response_due,
        resolution_due
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::Category;

    fn ticket() -> Ticket {
        let new = NewTicket::new("Printer jams", "Room 101 printer", Category::Hardware, "a@campus.example", "A")
            .validate()
            .unwrap();
        create(TicketId(1), new, &Actor::requester("A"), Timestamp::from_millis(1_000), &SlaPolicy::default()).0
    }

    #[test]
    fn creation_event_lists_initial_fields_with_null_old_values() {
        let new = NewTicket::new("T", "D", Category::Email, "a@campus.example", "A").tags(["x"]);
        let (t, e) = create(
            TicketId(7),
            new.validate().unwrap(),
            &Actor::requester("A"),
            Timestamp::from_millis(5),
            &SlaPolicy::default(),
        );
        assert_eq!((t.version, e.version, e.kind), (1, 1, EventKind::Created));
        for f in ["title", "description", "category", "priority", "status", "submitter_email", "tags"] {
            let c = e.change(f).unwrap_or_else(|| panic!("{f} missing"));
            assert_eq!(c.old, Value::Null);
        }
        assert_eq!(e.change("status").unwrap().new, Value::from("open"));
        assert!(e.change("assigned_to").is_none());
    }

    #[test]
    fn transition_errors_name_the_transition() {
        let t = ticket();
        let upd = TicketUpdate { status: Some(Status::Waiting), ..Default::default() };
        let err = update(&t, upd, &Actor::agent("B"), Timestamp::from_millis(2), &SlaPolicy::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("open -> waiting"), "{msg}");
        assert!(matches!(err, Error::InvalidTransition { from: Status::Open, to: Status::Waiting, .. }));
    }

    #[test]
    fn same_status_is_no_change_and_produces_no_event() {
        let t = ticket();
        let upd = TicketUpdate { status: Some(Status::Open), ..Default::default() };
        assert!(update(&t, upd, &Actor::agent("B"), Timestamp::from_millis(2), &SlaPolicy::default())
            .unwrap()
            .is_none());
    }
}
