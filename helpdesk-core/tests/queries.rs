//! Listing: every filter alone and in combination, paged with cursors, compared with a
//! brute-force scan of all tickets.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{agent, clock, desk, requester, T0};
use helpdesk_core::{
    Category, Cursor, Error, Filter, Helpdesk, ListQuery, NewTicket, Priority, Status, Ticket, TicketUpdate, Timestamp,
};

const ASSIGNEES: [Option<&str>; 4] = [None, Some("grace"), Some("bob"), Some("bobby")];
const SUBMITTERS: [&str; 3] = ["ada@campus.example", "Sam@Campus.Example", "lin@dorm.campus.example"];
const TAGS: [&str; 4] = ["wifi", "lab-b", "printer", "vip"];

/// 150 varied tickets; several share a creation millisecond so ties are ordered by id.
fn populate(desk: &Helpdesk, clock: &common::ManualClockRef) -> Vec<Ticket> {
    let mut out = Vec::new();
    for i in 0..150usize {
        if i % 3 != 0 {
            clock.advance(Duration::from_millis(250));
        }
        let mut new = NewTicket::new(
            format!("ticket {i}"),
            "details",
            Category::ALL[i % Category::ALL.len()],
            SUBMITTERS[i % SUBMITTERS.len()],
            "Someone",
        )
        .priority(Priority::ALL[(i / 2) % Priority::ALL.len()])
        .tags(TAGS.iter().enumerate().filter(|(k, _)| (i >> k) & 1 == 1).map(|(_, t)| *t));
        if let Some(a) = ASSIGNEES[i % ASSIGNEES.len()] {
            new = new.assigned_to(a);
        }
        let t = desk.create(new, &requester()).unwrap();
        let t = match i % 5 {
            0 => desk.transition(t.id, Status::InProgress, None, &agent()).unwrap(),
            1 => desk.transition(t.id, Status::Resolved, Some("done".into()), &agent()).unwrap(),
            2 => {
                let t = desk.transition(t.id, Status::InProgress, None, &agent()).unwrap();
                desk.transition(t.id, Status::Waiting, None, &agent()).unwrap()
            }
            _ => t,
        };
        out.push(t);
    }
    out
}

/// What a listing must return: all matching tickets, newest first, ties by higher id.
fn expected(all: &[Ticket], f: &Filter) -> Vec<u64> {
    let mut m: Vec<&Ticket> = all.iter().filter(|t| f.matches(t)).collect();
    m.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
    m.iter().map(|t| t.id.0).collect()
}

/// Pages through a filter with page size `limit`, checking each page's invariants.
fn page_through(desk: &Helpdesk, f: &Filter, limit: usize) -> Vec<u64> {
    let mut got = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..1000 {
        let page = desk.list(&ListQuery::new(f.clone()).limit(limit).after(cursor)).unwrap();
        assert!(page.tickets.len() <= limit);
        assert!(page.tickets.iter().all(|t| f.matches(t)));
        got.extend(page.tickets.iter().map(|t| t.id.0));
        match page.next_cursor {
            None => return got,
            Some(c) => {
                assert_eq!(page.tickets.len(), limit, "a page before the last is full");
                // Cursors survive a round trip through text (e.g. a URL).
                cursor = Some(c.to_string().parse().unwrap());
            }
        }
    }
    panic!("pagination did not terminate")
}

fn all_tickets(desk: &Helpdesk, n: usize) -> Vec<Ticket> {
    (1..=n as u64).map(|id| desk.get(helpdesk_core::TicketId(id)).unwrap()).collect()
}

#[test]
fn each_filter_alone_pages_exactly_like_a_full_scan() {
    let clock = clock();
    let desk = desk(&clock);
    populate(&desk, &clock);
    let all = all_tickets(&desk, 150);
    let mut filters = vec![Filter::default(), Filter { unassigned: true, ..Filter::default() }];
    filters.extend(Status::ALL.iter().map(|s| Filter { status: Some(*s), ..Filter::default() }));
    filters.extend(Category::ALL.iter().map(|c| Filter { category: Some(*c), ..Filter::default() }));
    filters.extend(Priority::ALL.iter().map(|p| Filter { priority: Some(*p), ..Filter::default() }));
    filters
        .extend(ASSIGNEES.iter().flatten().map(|a| Filter { assigned_to: Some(a.to_string()), ..Filter::default() }));
    filters.extend(SUBMITTERS.iter().map(|s| Filter { submitter_email: Some(s.to_string()), ..Filter::default() }));
    filters.extend(TAGS.iter().map(|t| Filter { tag: Some(t.to_string()), ..Filter::default() }));
    for f in &filters {
        let want = expected(&all, f);
        for limit in [1, 7, 50, 1000] {
            assert_eq!(page_through(&desk, f, limit), want, "{f:?} limit {limit}");
        }
    }
    // "bob" must not match "bobby" (string keys are terminated).
    let bob = Filter { assigned_to: Some("bob".into()), ..Filter::default() };
    assert!(page_through(&desk, &bob, 50).iter().all(|id| all[*id as usize - 1].assigned_to.as_deref() == Some("bob")));
}

#[test]
fn combined_filters_and_time_ranges_intersect_correctly() {
    let clock = clock();
    let desk = desk(&clock);
    let created = populate(&desk, &clock);
    let all = all_tickets(&desk, 150);
    let mid = created[60].created_at;
    let late = created[120].created_at;
    let filters = [
        Filter { status: Some(Status::Open), category: Some(Category::Network), ..Filter::default() },
        Filter {
            status: Some(Status::InProgress),
            priority: Some(Priority::High),
            tag: Some("wifi".into()),
            ..Filter::default()
        },
        Filter { tag: Some("vip".into()), submitter_email: Some("sam@campus.example".into()), ..Filter::default() },
        Filter { unassigned: true, status: Some(Status::Waiting), ..Filter::default() },
        Filter {
            assigned_to: Some("grace".into()),
            tag: Some("lab-b".into()),
            priority: Some(Priority::Low),
            ..Filter::default()
        },
        Filter { created_from: Some(mid), ..Filter::default() },
        Filter { created_before: Some(mid), ..Filter::default() },
        Filter { created_from: Some(mid), created_before: Some(late), ..Filter::default() },
        Filter {
            created_from: Some(mid),
            created_before: Some(late),
            tag: Some("printer".into()),
            ..Filter::default()
        },
        Filter { created_from: Some(late), created_before: Some(mid), ..Filter::default() },
        Filter { created_before: Some(Timestamp::EPOCH), ..Filter::default() },
        Filter { created_from: Some(T0.saturating_add(Duration::from_secs(86_400))), ..Filter::default() },
        Filter { status: Some(Status::Closed), ..Filter::default() },
    ];
    for f in &filters {
        let want = expected(&all, f);
        for limit in [1, 4, 1000] {
            assert_eq!(page_through(&desk, f, limit), want, "{f:?} limit {limit}");
        }
    }
    // Sanity: the combinations above are not all trivially empty.
    assert!(filters.iter().filter(|f| !expected(&all, f).is_empty()).count() >= 8);
}

#[test]
fn changed_tickets_move_between_indexes() {
    let clock = clock();
    let desk = desk(&clock);
    populate(&desk, &clock);
    // Move every open network ticket to in_progress and retag it.
    let open_net = Filter { status: Some(Status::Open), category: Some(Category::Network), ..Filter::default() };
    let moved = page_through(&desk, &open_net, 1000);
    assert!(!moved.is_empty());
    for id in &moved {
        let upd = TicketUpdate {
            status: Some(Status::InProgress),
            tags: Some(vec!["moved".into()]),
            assigned_to: Some(None),
            ..Default::default()
        };
        desk.update(helpdesk_core::TicketId(*id), upd, &agent()).unwrap();
    }
    assert!(page_through(&desk, &open_net, 10).is_empty());
    let all = all_tickets(&desk, 150);
    for f in [
        Filter { tag: Some("moved".into()), ..Filter::default() },
        Filter { status: Some(Status::InProgress), ..Filter::default() },
        Filter { unassigned: true, ..Filter::default() },
        Filter { tag: Some("wifi".into()), ..Filter::default() },
    ] {
        assert_eq!(page_through(&desk, &f, 9), expected(&all, &f), "{f:?}");
    }
    assert!(desk.verify().unwrap().is_clean());
}

#[test]
fn bad_cursors_and_limits_are_typed_errors() {
    let clock = clock();
    let desk = desk(&clock);
    assert!(matches!("not-a-cursor".parse::<Cursor>(), Err(Error::InvalidCursor(_))));
    let Err(Error::Validation(e)) = desk.list(&ListQuery::default().limit(0)) else { panic!() };
    assert!(e.has("limit"));
    let Err(Error::Validation(e)) = desk.list(&ListQuery::default().limit(1001)) else { panic!() };
    assert!(e.has("limit"));
    let empty = desk.list(&ListQuery::default()).unwrap();
    assert!(empty.tickets.is_empty() && empty.next_cursor.is_none());
}

#[test]
fn a_cursor_from_the_very_end_yields_an_empty_last_page() {
    let clock = clock();
    let desk = desk(&clock);
    clock.set(T0);
    let t = desk.create(common::new_ticket("only"), &requester()).unwrap();
    let page = desk.list(&ListQuery::default().limit(1)).unwrap();
    assert_eq!(page.tickets[0].id, t.id);
    assert!(page.next_cursor.is_none(), "exactly one ticket fits one page of one");
}

#[test]
fn text_search_is_case_insensitive_and_combines_with_filters() {
    let clock = clock();
    let desk = desk(&clock);
    populate(&desk, &clock);
    let upd = |id: u64, title: &str| {
        let u = TicketUpdate { title: Some(title.into()), ..Default::default() };
        desk.update(helpdesk_core::TicketId(id), u, &agent()).unwrap();
    };
    upd(10, "Eduroam keeps DROPPING");
    upd(70, "eduroam login loop");
    upd(140, "Printer on floor 2");
    let all = all_tickets(&desk, 150);
    for f in [
        Filter { text: Some("EDUROAM".into()), ..Filter::default() },
        Filter { text: Some("eduroam".into()), status: Some(Status::Open), ..Filter::default() },
        Filter { text: Some("details".into()), tag: Some("vip".into()), ..Filter::default() },
        Filter { text: Some("no such words".into()), ..Filter::default() },
    ] {
        assert_eq!(page_through(&desk, &f, 2), expected(&all, &f), "{f:?}");
    }
    let long = Filter { text: Some("x".repeat(201)), ..Filter::default() };
    let Err(Error::Validation(e)) = desk.list(&ListQuery::new(long)) else { panic!() };
    assert!(e.has("text"));
}

/// A text search that matches only very old tickets stops after `SCAN_BUDGET` entries
/// with a short page and a cursor, instead of scanning the whole database in one call.
#[test]
fn a_sparse_text_search_returns_short_pages_with_a_cursor() {
    let clock = clock();
    let desk = desk(&clock);
    desk.create(NewTicket::new("needle", "old", Category::Other, "a@campus.example", "A"), &requester()).unwrap();
    for i in 0..helpdesk_core::query::SCAN_BUDGET + 10 {
        clock.advance(Duration::from_millis(1));
        desk.create(common::new_ticket(&format!("hay {i}")), &requester()).unwrap();
    }
    let f = Filter { text: Some("needle".into()), ..Filter::default() };
    let first = desk.list(&ListQuery::new(f.clone()).limit(10)).unwrap();
    assert!(first.tickets.is_empty());
    let cursor = first.next_cursor.expect("a short page still has a cursor");
    let second = desk.list(&ListQuery::new(f).limit(10).after(Some(cursor))).unwrap();
    assert_eq!(second.tickets.len(), 1);
    assert_eq!(second.tickets[0].title, "needle");
    assert!(second.next_cursor.is_none());
}
