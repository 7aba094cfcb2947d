//! Embedding the ticket engine in another application: a tiny campus kiosk that files
//! tickets, lets an agent work them, and prints the backlog, SLA and history.
//!
//! Run with `cargo run -p helpdesk-core --example embed [DATA_DIR]`; without a directory it
//! uses a temporary database.

use std::error::Error;

use helpdesk_core::{
    Actor, Category, Config, Filter, Helpdesk, ListQuery, NewComment, NewTicket, Priority, Status, TicketUpdate,
};

fn main() -> Result<(), Box<dyn Error>> {
    // One handle per process; clone it into every thread or request handler.
    let desk = match std::env::args().nth(1) {
        Some(dir) => Helpdesk::open(dir, Config::default())?,
        None => Helpdesk::temporary(Config::default())?,
    };

    let kiosk = Actor::requester("kiosk-library-2");
    let reports = [
        ("Wi-Fi drops in the library", Category::Network, Priority::High, "wifi"),
        ("Cannot print from lab B", Category::Hardware, Priority::Medium, "printing"),
        ("Mailbox full warning", Category::Email, Priority::Low, "quota"),
    ];
    let mut ids = Vec::new();
    for (title, category, priority, tag) in reports {
        let new = NewTicket::new(
            title,
            format!("Reported at the kiosk: {title}."),
            category,
            "student@campus.example",
            "A Student",
        )
        .priority(priority)
        .tags([tag]);
        let t = desk.create(new, &kiosk)?;
        println!("filed #{} {:?} due {}", t.id, t.title, t.resolution_due);
        ids.push(t.id);
    }

    // Bad input is a typed error naming the field, and changes nothing.
    let bad = NewTicket::new("", "x", Category::Other, "not-an-address", "Someone");
    if let Err(helpdesk_core::Error::Validation(fields)) = desk.create(bad, &kiosk) {
        println!("rejected: {fields}");
    }

    // An agent takes the Wi-Fi ticket, talks to the requester, then resolves it.
    let agent = Actor::agent("grace");
    let t = desk.assign(ids[0], Some("grace".into()), &agent)?;
    let t = desk.update(
        t.id,
        TicketUpdate { status: Some(Status::InProgress), version: Some(t.version), ..Default::default() },
        &agent,
    )?;
    desk.comment(t.id, NewComment::public("Access point 3 restarted, does it work now?"), &agent)?;
    desk.comment(t.id, NewComment::internal("AP3 firmware is old, schedule an upgrade."), &agent)?;
    desk.transition(t.id, Status::Resolved, Some("Restarted AP3; firmware upgrade planned.".into()), &agent)?;

    let open = desk.list(&ListQuery::new(Filter { status: Some(Status::Open), ..Filter::default() }))?;
    println!("open tickets: {:?}", open.tickets.iter().map(|t| t.id.0).collect::<Vec<_>>());

    let stats = desk.stats()?;
    println!(
        "total {} backlog {} resolved {} mttr {:?}s breached {}",
        stats.total, stats.open_backlog, stats.resolved, stats.mttr_seconds, stats.sla_breached
    );
    for e in desk.history(ids[0])? {
        let fields: Vec<_> = e.changes.iter().map(|c| c.field.as_str()).collect();
        println!(
            "  v{} {:?} by {} {:?}{}",
            e.version,
            e.kind,
            e.actor.name,
            fields,
            if e.is_internal() { " (internal)" } else { "" }
        );
    }

    let report = desk.verify()?;
    println!("verify: {} tickets, {} events, clean: {}", report.tickets, report.events, report.is_clean());
    Ok(())
}
