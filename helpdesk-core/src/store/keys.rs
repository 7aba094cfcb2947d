//! Every sled tree and key layout, in one place. Integers in keys are fixed-width
//! big-endian so that byte order is numeric order; strings in keys are UTF-8 without NUL,
//! terminated by a NUL so that no value is a prefix of another.

use crate::clock::Timestamp;
use crate::query::{Cursor, Filter};
use crate::stats::Counter;
use crate::ticket::{Ticket, TicketId};

/// `ticket_id // TicketId(u64 BE) -> Value(Ticket)`
pub(crate) const TICKETS: &str = "ticket_id";
/// `ticketid_version // TicketId(u64 BE) ++ Version(u64 BE) -> Value(Event)`
pub(crate) const EVENTS: &str = "ticketid_version";
/// `index // IndexTag(u8) ++ ... -> ()` — all secondary indexes, see [`Index`].
pub(crate) const INDEX: &str = "index";
/// `meta // name(ascii) -> value` — schema version, id allocator, counters.
pub(crate) const META: &str = "meta";
/// `snapshotid_ticketid // SnapshotId(u64 BE) ++ TicketId(u64 BE) -> Value(Ticket)` —
/// a ticket's value as it was when a running export began (copy-on-write pre-images).
pub(crate) const PREIMAGES: &str = "snapshotid_ticketid";

/// `meta` key: schema version, `u32 BE`.
pub(crate) const SCHEMA_VERSION: &[u8] = b"schema_version";
/// `meta` key: the next ticket id to hand out, `u64 BE`.
pub(crate) const NEXT_TICKET_ID: &[u8] = b"next_ticket_id";
/// `meta` key: present while an import runs; a database holding it is refused at open.
pub(crate) const IMPORT_IN_PROGRESS: &[u8] = b"import_in_progress";
/// `meta` key: written by readiness probes to prove the database accepts writes.
pub(crate) const HEARTBEAT: &[u8] = b"heartbeat";
/// `meta` key prefix of the counters: `count/<counter name> -> u64 BE`.
pub(crate) const COUNTER_PREFIX: &[u8] = b"count/";
/// `meta` key prefix of idempotency keys:
/// `idem/<key> -> TicketId(u64 BE) ++ RequestSha256([u8; 32])`.
pub(crate) const IDEMPOTENCY_PREFIX: &[u8] = b"idem/";

pub(crate) fn idempotency_key(key: &str) -> Vec<u8> {
    [IDEMPOTENCY_PREFIX, key.as_bytes()].concat()
}

/// Secondary indexes, by the tag byte their keys start with.
///
/// List indexes end in the common 16-byte *suffix*
/// `InvCreated(u64 BE) ++ InvId(u64 BE)` (inverted: `u64::MAX - x`), so a forward scan
/// yields newest first and several indexes can be merge-joined on the suffix:
///
/// ```text
/// created       1 ++ Suffix
/// status        2 ++ Status(u8) ++ Suffix
/// category      3 ++ Category(u8) ++ Suffix
/// priority      4 ++ Priority(u8) ++ Suffix
/// assignee      5 ++ Name(utf8) ++ 0x00 ++ Suffix      (empty name = unassigned)
/// submitter     6 ++ LowercaseEmail(utf8) ++ 0x00 ++ Suffix
/// tag           7 ++ Tag(utf8) ++ 0x00 ++ Suffix
/// deadline      8 ++ Due(u64 BE) ++ TicketId(u64 BE)   (unresolved tickets only; ascending)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Index {
    Created = 1,
    Status = 2,
    Category = 3,
    Priority = 4,
    Assignee = 5,
    Submitter = 6,
    Tag = 7,
    Deadline = 8,
}

pub(crate) const SUFFIX_LEN: usize = 16;

pub(crate) fn ticket_key(id: TicketId) -> [u8; 8] {
    id.0.to_be_bytes()
}

pub(crate) fn event_key(id: TicketId, version: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.0.to_be_bytes());
    k[8..].copy_from_slice(&version.to_be_bytes());
    k
}

pub(crate) fn preimage_key(snapshot: u64, id: TicketId) -> [u8; 16] {
    event_key(TicketId(snapshot), id.0)
}

pub(crate) fn counter_key(c: Counter) -> Vec<u8> {
    [COUNTER_PREFIX, c.name().as_bytes()].concat()
}

pub(crate) fn u64_of(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// The newest-first suffix of a ticket created at `created` with id `id`.
pub(crate) fn suffix(created: Timestamp, id: TicketId) -> [u8; SUFFIX_LEN] {
    let mut s = [0u8; SUFFIX_LEN];
    s[..8].copy_from_slice(&(u64::MAX - created.as_millis()).to_be_bytes());
    s[8..].copy_from_slice(&(u64::MAX - id.0).to_be_bytes());
    s
}

/// The `(created, id)` a suffix encodes.
pub(crate) fn parse_suffix(s: &[u8]) -> Option<(Timestamp, TicketId)> {
    let created = u64::MAX - u64_of(s.get(..8)?)?;
    let id = u64::MAX - u64_of(s.get(8..16)?)?;
    Some((Timestamp::from_millis(created), TicketId(id)))
}

/// The suffix of the ticket a cursor points at.
pub(crate) fn cursor_suffix(c: &Cursor) -> [u8; SUFFIX_LEN] {
    suffix(c.created, c.id)
}

fn tagged(tag: Index, body: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + body.len() + 1 + SUFFIX_LEN);
    k.push(tag as u8);
    k.extend_from_slice(body);
    k
}

fn with_nul(tag: Index, s: &str) -> Vec<u8> {
    let mut k = tagged(tag, s.as_bytes());
    k.push(0);
    k
}

/// Key prefixes of the list indexes a ticket belongs to (each gets the suffix appended).
fn list_prefixes(t: &Ticket) -> Vec<Vec<u8>> {
    let mut p = vec![
        tagged(Index::Created, &[]),
        tagged(Index::Status, &[t.status.code()]),
        tagged(Index::Category, &[t.category.code()]),
        tagged(Index::Priority, &[t.priority.code()]),
        with_nul(Index::Assignee, t.assigned_to.as_deref().unwrap_or("")),
        with_nul(Index::Submitter, &t.submitter_email.to_lowercase()),
    ];
    p.extend(t.tags.iter().map(|tag| with_nul(Index::Tag, tag)));
    p
}

/// Every index key of a ticket, sorted.
pub(crate) fn index_keys(t: &Ticket) -> Vec<Vec<u8>> {
    let s = suffix(t.created_at, t.id);
    let mut keys: Vec<Vec<u8>> = list_prefixes(t)
        .into_iter()
        .map(|mut p| {
            p.extend_from_slice(&s);
            p
        })
        .collect();
    if let Some(due) = t.next_deadline() {
        keys.push(deadline_key(due, t.id).to_vec());
    }
    keys.sort();
    keys
}

pub(crate) fn deadline_key(due: Timestamp, id: TicketId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = Index::Deadline as u8;
    k[1..9].copy_from_slice(&due.as_millis().to_be_bytes());
    k[9..].copy_from_slice(&id.0.to_be_bytes());
    k
}

/// The `(due, id)` of a deadline key.
pub(crate) fn parse_deadline_key(k: &[u8]) -> Option<(Timestamp, TicketId)> {
    if k.len() != 17 || k[0] != Index::Deadline as u8 {
        return None;
    }
    Some((Timestamp::from_millis(u64_of(&k[1..9])?), TicketId(u64_of(&k[9..])?)))
}

/// The ticket id an index key refers to.
pub(crate) fn index_key_ticket(k: &[u8]) -> Option<TicketId> {
    if k.first() == Some(&(Index::Deadline as u8)) {
        return parse_deadline_key(k).map(|(_, id)| id);
    }
    if k.len() < 1 + SUFFIX_LEN {
        return None;
    }
    parse_suffix(&k[k.len() - SUFFIX_LEN..]).map(|(_, id)| id)
}

/// The list-index prefixes a filter must intersect (at least one: `created` if no other).
pub(crate) fn filter_prefixes(f: &Filter) -> Vec<Vec<u8>> {
    let mut p = Vec::new();
    if let Some(s) = f.status {
        p.push(tagged(Index::Status, &[s.code()]));
    }
    if let Some(c) = f.category {
        p.push(tagged(Index::Category, &[c.code()]));
    }
    if let Some(pr) = f.priority {
        p.push(tagged(Index::Priority, &[pr.code()]));
    }
    if let Some(a) = &f.assigned_to {
        p.push(with_nul(Index::Assignee, a.trim()));
    }
    if f.unassigned {
        p.push(with_nul(Index::Assignee, ""));
    }
    if let Some(e) = &f.submitter_email {
        p.push(with_nul(Index::Submitter, &e.trim().to_lowercase()));
    }
    if let Some(t) = &f.tag {
        p.push(with_nul(Index::Tag, &t.trim().to_lowercase()));
    }
    if p.is_empty() {
        p.push(tagged(Index::Created, &[]));
    }
    p
}

/// Human-readable name of a key, for error messages and verify reports.
pub(crate) fn describe(tree: &str, key: &[u8]) -> String {
    match (tree, key.len()) {
        (TICKETS, 8) => format!("{tree}/{}", u64_of(key).unwrap_or_default()),
        (EVENTS | PREIMAGES, 16) => {
            format!("{tree}/{}/{}", u64_of(&key[..8]).unwrap_or_default(), u64_of(&key[8..]).unwrap_or_default())
        }
        (META, _) => format!("{tree}/{}", String::from_utf8_lossy(key)),
        _ => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            match index_key_ticket(key) {
                Some(id) if tree == INDEX => format!("{tree}/{hex} (ticket {id})"),
                _ => format!("{tree}/{hex}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_orders_newest_first_and_round_trips() {
        let older = suffix(Timestamp::from_millis(10), TicketId(1));
        let newer = suffix(Timestamp::from_millis(20), TicketId(2));
        let same_time_higher_id = suffix(Timestamp::from_millis(20), TicketId(3));
        assert!(newer < older);
        assert!(same_time_higher_id < newer);
        assert_eq!(parse_suffix(&newer), Some((Timestamp::from_millis(20), TicketId(2))));
    }

    #[test]
    fn string_keys_do_not_prefix_each_other() {
        // "bob" and "bobby" must land in disjoint key ranges.
        let bob = with_nul(Index::Assignee, "bob");
        let bobby = with_nul(Index::Assignee, "bobby");
        assert!(!bobby.starts_with(&bob));
    }

    #[test]
    fn deadline_keys_round_trip() {
        let k = deadline_key(Timestamp::from_millis(99), TicketId(5));
        assert_eq!(parse_deadline_key(&k), Some((Timestamp::from_millis(99), TicketId(5))));
        assert_eq!(index_key_ticket(&k), Some(TicketId(5)));
        assert_eq!(parse_deadline_key(&k[..16]), None);
    }
}
