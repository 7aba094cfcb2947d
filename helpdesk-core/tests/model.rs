//! Property test: random sequences of operations run against the engine and against a
//! small in-memory model; after every step tickets, counters, listings, the SLA breach
//! count and `verify` must agree with the model.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use helpdesk_core::{
    Actor, Category, Clock, Error, Filter, Helpdesk, ListQuery, NewComment, NewTicket, Priority, Status, TicketId,
    TicketUpdate, Timestamp,
};
use proptest::prelude::*;

const AGENTS: [&str; 3] = ["grace", "bob", "lin"];
const SUBMITTERS: [&str; 3] = ["ada@campus.example", "sam@campus.example", "kim@dorm.campus.example"];
const TAGS: [&str; 3] = ["wifi", "lab", "vip"];

#[derive(Debug, Clone)]
enum Op {
    Create { cat: usize, prio: usize, submitter: usize, assignee: Option<usize>, tags: u8 },
    Update { pick: usize, prio: Option<usize>, cat: Option<usize>, tags: Option<u8>, stale: bool },
    Transition { pick: usize, to: usize, notes: bool },
    Assign { pick: usize, to: Option<usize> },
    Comment { pick: usize, internal: bool },
    Advance { minutes: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6usize, 0..4usize, 0..3usize, proptest::option::of(0..3usize), 0..8u8)
            .prop_map(|(cat, prio, submitter, assignee, tags)| Op::Create { cat, prio, submitter, assignee, tags }),
        2 => (any::<usize>(), proptest::option::of(0..4usize), proptest::option::of(0..6usize),
              proptest::option::of(0..8u8), proptest::bool::weighted(0.2))
            .prop_map(|(pick, prio, cat, tags, stale)| Op::Update { pick, prio, cat, tags, stale }),
        4 => (any::<usize>(), 0..5usize, proptest::bool::weighted(0.8))
            .prop_map(|(pick, to, notes)| Op::Transition { pick, to, notes }),
        1 => (any::<usize>(), proptest::option::of(0..3usize)).prop_map(|(pick, to)| Op::Assign { pick, to }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, internal)| Op::Comment { pick, internal }),
        1 => (1..3000u32).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

/// What the model knows of a ticket.
#[derive(Debug, Clone, PartialEq)]
struct M {
    id: u64,
    status: Status,
    category: Category,
    priority: Priority,
    assignee: Option<String>,
    tags: BTreeSet<String>,
    submitter: String,
    version: u64,
    created: Timestamp,
    has_notes: bool,
}

fn tag_set(bits: u8) -> BTreeSet<String> {
    TAGS.iter().enumerate().filter(|(i, _)| bits >> i & 1 == 1).map(|(_, t)| t.to_string()).collect()
}

fn legal(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Open, InProgress)
            | (Open, Resolved)
            | (InProgress, Open)
            | (InProgress, Waiting)
            | (InProgress, Resolved)
            | (Waiting, InProgress)
            | (Waiting, Resolved)
            | (Resolved, Open)
            | (Resolved, Closed)
    )
}

fn apply(desk: &Helpdesk, clock: &common::ManualClockRef, model: &mut Vec<M>, op: &Op) {
    let agent = Actor::agent("grace");
    let pick = |pick: usize, model: &[M]| (!model.is_empty()).then(|| pick % model.len());
    match *op {
        Op::Create { cat, prio, submitter, assignee, tags } => {
            let mut new = NewTicket::new("t", "d", Category::ALL[cat], SUBMITTERS[submitter], "S")
                .priority(Priority::ALL[prio])
                .tags(tag_set(tags));
            if let Some(a) = assignee {
                new = new.assigned_to(AGENTS[a]);
            }
            let t = desk.create(new, &Actor::requester("S")).unwrap();
            assert_eq!(t.id.0, model.len() as u64 + 1);
            model.push(M {
                id: t.id.0,
                status: Status::Open,
                category: Category::ALL[cat],
                priority: Priority::ALL[prio],
                assignee: assignee.map(|a| AGENTS[a].to_string()),
                tags: tag_set(tags),
                submitter: SUBMITTERS[submitter].to_string(),
                version: 1,
                created: clock.now(),
                has_notes: false,
            });
        }
        Op::Update { pick: p, prio, cat, tags, stale } => {
            let Some(i) = pick(p, model) else { return };
            let m = &mut model[i];
            let upd = TicketUpdate {
                priority: prio.map(|p| Priority::ALL[p]),
                category: cat.map(|c| Category::ALL[c]),
                tags: tags.map(|t| tag_set(t).into_iter().collect()),
                version: Some(if stale { m.version.wrapping_sub(1) } else { m.version }),
                ..Default::default()
            };
            let result = desk.update(TicketId(m.id), upd.clone(), &agent);
            if upd.is_empty() {
                assert!(matches!(result, Err(Error::Validation(_))));
            } else if stale {
                assert!(matches!(result, Err(Error::VersionConflict { .. })), "{result:?}");
            } else if m.status == Status::Closed {
                assert!(matches!(result, Err(Error::TicketClosed(_))), "{result:?}");
            } else {
                let mut next = m.clone();
                next.priority = upd.priority.unwrap_or(m.priority);
                next.category = upd.category.unwrap_or(m.category);
                next.tags = tags.map(tag_set).unwrap_or_else(|| m.tags.clone());
                if next != *m {
                    next.version += 1;
                }
                *m = next;
                assert_eq!(result.unwrap().version, m.version);
            }
        }
        Op::Transition { pick: p, to, notes } => {
            let Some(i) = pick(p, model) else { return };
            let m = &mut model[i];
            let to = Status::ALL[to];
            let result = desk.transition(TicketId(m.id), to, notes.then(|| "n".to_string()), &agent);
            if m.status == Status::Closed {
                assert!(matches!(result, Err(Error::TicketClosed(_))), "{result:?}");
            } else if to == m.status {
                // No transition: only the notes may change.
                if notes && !m.has_notes {
                    m.has_notes = true;
                    m.version += 1;
                }
                assert_eq!(result.unwrap().version, m.version);
            } else if !legal(m.status, to) {
                assert!(matches!(result, Err(Error::InvalidTransition { .. })), "{result:?}");
            } else if to == Status::Resolved && !notes && !m.has_notes {
                assert!(matches!(result, Err(Error::ResolutionNotesRequired(_))), "{result:?}");
            } else {
                let reopen = m.status == Status::Resolved && to == Status::Open;
                m.has_notes = (m.has_notes || notes) && !reopen;
                m.status = to;
                m.version += 1;
                assert_eq!(result.unwrap().status, to);
            }
        }
        Op::Assign { pick: p, to } => {
            let Some(i) = pick(p, model) else { return };
            let m = &mut model[i];
            let to = to.map(|a| AGENTS[a].to_string());
            let result = desk.assign(TicketId(m.id), to.clone(), &agent);
            if m.status == Status::Closed {
                assert!(matches!(result, Err(Error::TicketClosed(_))));
            } else {
                if m.assignee != to {
                    m.assignee = to;
                    m.version += 1;
                }
                assert_eq!(result.unwrap().version, m.version);
            }
        }
        Op::Comment { pick: p, internal } => {
            let Some(i) = pick(p, model) else { return };
            let m = &mut model[i];
            let c = if internal { NewComment::internal("c") } else { NewComment::public("c") };
            let result = desk.comment(TicketId(m.id), c, &agent);
            if m.status == Status::Closed {
                assert!(matches!(result, Err(Error::TicketClosed(_))));
            } else {
                m.version += 1;
                assert!(result.unwrap().1.is_internal() == internal);
            }
        }
        Op::Advance { minutes } => clock.advance(Duration::from_secs(u64::from(minutes) * 60)),
    }
}

fn check(desk: &Helpdesk, clock: &common::ManualClockRef, model: &[M], step: usize) {
    let now = clock.now();
    let mut breached = 0;
    for m in model {
        let t = desk.get(TicketId(m.id)).unwrap();
        let seen = (t.status, t.category, t.priority, t.assigned_to.clone(), t.tags.clone(), t.version);
        let want = (m.status, m.category, m.priority, m.assignee.clone(), m.tags.clone(), m.version);
        assert_eq!(seen, want, "ticket {} after step {step}", m.id);
        assert_eq!(desk.history(t.id).unwrap().len() as u64, t.version);
        if t.next_deadline().is_some_and(|d| d < now) {
            breached += 1;
        }
    }
    let s = desk.stats().unwrap();
    assert_eq!(s.total, model.len() as u64);
    for st in Status::ALL {
        assert_eq!(s.by_status[st], model.iter().filter(|m| m.status == *st).count() as u64, "{st}");
    }
    for c in Category::ALL {
        assert_eq!(s.by_category[c], model.iter().filter(|m| m.category == *c).count() as u64);
    }
    for p in Priority::ALL {
        assert_eq!(s.by_priority[p], model.iter().filter(|m| m.priority == *p).count() as u64);
    }
    assert_eq!(s.open_backlog, model.iter().filter(|m| m.status.is_unresolved()).count() as u64);
    assert_eq!(s.sla_breached, breached, "breach count after step {step}");

    // A few listings, paged, against the model.
    let filters = [
        Filter::default(),
        Filter { status: Some(Status::Open), ..Filter::default() },
        Filter { status: Some(Status::InProgress), tag: Some("wifi".into()), ..Filter::default() },
        Filter { assigned_to: Some("bob".into()), ..Filter::default() },
        Filter { unassigned: true, priority: Some(Priority::High), ..Filter::default() },
        Filter {
            category: Some(Category::Network),
            submitter_email: Some("ADA@campus.example".into()),
            ..Filter::default()
        },
    ];
    for f in filters {
        let mut want: Vec<&M> = model
            .iter()
            .filter(|m| {
                f.status.is_none_or(|s| m.status == s)
                    && f.category.is_none_or(|c| m.category == c)
                    && f.priority.is_none_or(|p| m.priority == p)
                    && f.assigned_to.as_deref().is_none_or(|a| m.assignee.as_deref() == Some(a))
                    && (!f.unassigned || m.assignee.is_none())
                    && f.tag.as_deref().is_none_or(|g| m.tags.contains(g))
                    && f.submitter_email.as_deref().is_none_or(|e| m.submitter.eq_ignore_ascii_case(e))
            })
            .collect();
        want.sort_by_key(|m| std::cmp::Reverse((m.created, m.id)));
        let want: Vec<u64> = want.iter().map(|m| m.id).collect();
        let mut got = Vec::new();
        let mut q = ListQuery::new(f.clone()).limit(3);
        loop {
            let page = desk.list(&q).unwrap();
            got.extend(page.tickets.iter().map(|t| t.id.0));
            match page.next_cursor {
                Some(c) => q = q.after(Some(c)),
                None => break,
            }
        }
        assert_eq!(got, want, "{f:?} after step {step}");
    }
    let report = desk.verify().unwrap();
    assert!(report.is_clean(), "verify after step {step}: {:#?}", report.problems);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let clock = common::clock();
        let desk = common::desk(&clock);
        let mut model = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            apply(&desk, &clock, &mut model, op);
            check(&desk, &clock, &model, step);
        }
    }
}
