//! [`Helpdesk`]: the handle embedders use. It validates input, applies the domain rules
//! of [`crate::workflow`] and hands the result to the store.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::config::Config;
use crate::error::{Error, Result, ValidationErrors};
use crate::history::Event;
use crate::query::{ListQuery, Page, MAX_LIMIT};
use crate::snapshot::SnapshotSummary;
use crate::stats::Stats;
use crate::store::sled::SledStore;
use crate::ticket::{Actor, NewComment, NewTicket, Status, Ticket, TicketId, TicketUpdate};
use crate::verify::{RepairReport, VerifyReport};
use crate::workflow;

/// A ticket database. Cheap to clone (an `Arc`), `Send + Sync`: share one handle between
/// threads. The database is closed (and flushed) when the last clone is dropped.
///
/// Every method is blocking; from async code call them in `spawn_blocking`, or use the
/// writes' `*_async` variants ([`Self::create_async`], [`Self::create_idempotent_async`],
/// [`Self::update_async`], [`Self::comment_async`]), which wait without a thread.
///
/// ```
/// use helpdesk_core::{Actor, Category, Config, Helpdesk, NewTicket, Status, TicketUpdate};
///
/// let desk = Helpdesk::temporary(Config::default())?;
/// let ada = Actor::requester("Ada");
/// let t = desk.create(
///     NewTicket::new("Cannot log in", "Password rejected since this morning",
///                    Category::Account, "ada@campus.example", "Ada"),
///     &ada,
/// )?;
/// assert_eq!(t.status, Status::Open);
///
/// let bob = Actor::agent("bob");
/// let t = desk.transition(t.id, Status::InProgress, None, &bob)?;
/// assert!(t.first_response_at.is_some());
/// let t = desk.transition(t.id, Status::Resolved, Some("Account unlocked".into()), &bob)?;
/// assert_eq!(desk.history(t.id)?.len(), 3);
/// assert_eq!(desk.stats()?.resolved, 1);
/// # Ok::<(), helpdesk_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Helpdesk {
    inner: Arc<Inner>,
}

struct Inner {
    store: SledStore,
    config: Config,
}

impl std::fmt::Debug for Helpdesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helpdesk")
            .field("schema_version", &self.inner.store.schema_version())
            .field("durability", &self.inner.config.durability)
            .finish_non_exhaustive()
    }
}

impl Helpdesk {
    /// Opens (or creates) the database in directory `path`.
    ///
    /// Fails with [`Error::Locked`] if another process has it open,
    /// [`Error::UnsupportedSchema`] if a newer release wrote it, and
    /// [`Error::IncompleteImport`] if an import into it was interrupted.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Self> {
        Self::open_inner(Some(path.as_ref()), config)
    }

    /// A database in a temporary file, deleted when the handle is dropped: for tests.
    pub fn temporary(config: Config) -> Result<Self> {
        Self::open_inner(None, config)
    }

    fn open_inner(path: Option<&Path>, config: Config) -> Result<Self> {
        config.sla.validate()?;
        let store = SledStore::open(path, &config, config.clock.now())?;
        Ok(Helpdesk { inner: Arc::new(Inner { store, config }) })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> u32 {
        self.inner.store.schema_version()
    }

    fn now(&self) -> Timestamp {
        self.inner.config.clock.now()
    }

    fn store(&self) -> &SledStore {
        &self.inner.store
    }

    /// Creates a ticket (status `open`, version 1) and records its creation event.
    pub fn create(&self, new: NewTicket, actor: &Actor) -> Result<Ticket> {
        let build = self.creation(new, actor)?;
        Ok(self.store().create(None, build)?.0)
    }

    /// [`Self::create`] for async code: it never blocks the calling thread. The write is
    /// queued for the database's writer thread and the future resolves when it is applied
    /// and, if durable, on disk. Dropping the future does not cancel the write. Needs no
    /// particular async runtime.
    ///
    /// ```
    /// # use helpdesk_core::{Actor, Category, Config, Helpdesk, NewTicket};
    /// # let desk = Helpdesk::temporary(Config::default())?;
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let new = NewTicket::new("VPN drops", "Every 10 minutes", Category::Network, "kim@campus.example", "Kim");
    /// let t = rt.block_on(desk.create_async(new, &Actor::requester("kim")))?;
    /// assert_eq!(desk.get(t.id)?, t);
    /// # Ok::<(), helpdesk_core::Error>(())
    /// ```
    pub async fn create_async(&self, new: NewTicket, actor: &Actor) -> Result<Ticket> {
        let build = self.creation(new, actor)?;
        Ok(self.store().create_async(None, build).await?.0)
    }

    /// Validates a creation and returns what builds the ticket once its id is known.
    fn creation(
        &self,
        new: NewTicket,
        actor: &Actor,
    ) -> Result<impl FnOnce(TicketId) -> (Ticket, Event) + Send + 'static> {
        actor.validate()?;
        Ok(self.builder(new.validate()?, actor))
    }

    /// What builds the ticket for a validated `new` once its id is known, as of now.
    fn builder(&self, new: NewTicket, actor: &Actor) -> impl FnOnce(TicketId) -> (Ticket, Event) + Send + 'static {
        let now = self.now();
        let sla = self.inner.config.sla;
        let actor = actor.clone();
        move |id| workflow::create(id, new, &actor, now, &sla)
    }

    /// Creates a ticket at most once per `key` (e.g. an HTTP `Idempotency-Key`): repeating
    /// the same request with the same key returns the ticket the first one created (in its
    /// current state) and `false`; the same key with a different request (other fields or
    /// another actor) is [`Error::IdempotencyConflict`]. Keys are kept in the database
    /// (not in snapshots); they are 1–255 printable ASCII characters.
    ///
    /// ```
    /// use helpdesk_core::{Actor, Category, Config, Helpdesk, NewTicket};
    /// let desk = Helpdesk::temporary(Config::default())?;
    /// let new = NewTicket::new("No sound in room 4", "Projector audio", Category::Hardware,
    ///                          "lecturer@campus.example", "Lee");
    /// let who = Actor::requester("lee");
    /// let (first, created) = desk.create_idempotent("req-7f3a", new.clone(), &who)?;
    /// let (again, created_again) = desk.create_idempotent("req-7f3a", new, &who)?;
    /// assert!(created && !created_again);
    /// assert_eq!(first.id, again.id);
    /// # Ok::<(), helpdesk_core::Error>(())
    /// ```
    pub fn create_idempotent(&self, key: &str, new: NewTicket, actor: &Actor) -> Result<(Ticket, bool)> {
        let (fingerprint, build) = self.idempotent_creation(key, new, actor)?;
        self.store().create(Some((key, fingerprint)), build)
    }

    /// [`Self::create_idempotent`] for async code (see [`Self::create_async`]).
    pub async fn create_idempotent_async(&self, key: &str, new: NewTicket, actor: &Actor) -> Result<(Ticket, bool)> {
        let (fingerprint, build) = self.idempotent_creation(key, new, actor)?;
        self.store().create_async(Some((key, fingerprint)), build).await
    }

    /// Validates an idempotent creation: the request's fingerprint and the builder.
    #[allow(clippy::type_complexity)]
    fn idempotent_creation(
        &self,
        key: &str,
        new: NewTicket,
        actor: &Actor,
    ) -> Result<([u8; 32], impl FnOnce(TicketId) -> (Ticket, Event) + Send + 'static)> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationErrors::single(
                "idempotency_key",
                "invalid",
                "an idempotency key is 1 to 255 printable ASCII characters",
            ));
        }
        actor.validate()?;
        let new = new.validate()?;
        let fingerprint: [u8; 32] = Sha256::digest(
            serde_json::to_vec(&(&new, actor)).map_err(|e| Error::Storage(format!("cannot encode request: {e}")))?,
        )
        .into();
        Ok((fingerprint, self.builder(new, actor)))
    }

    /// The ticket with this id.
    pub fn get(&self, id: TicketId) -> Result<Ticket> {
        self.store().get(id)?.ok_or(Error::NotFound(id))
    }

    /// Applies an update (fields, status, assignment; see [`TicketUpdate`]). An update
    /// that changes nothing returns the ticket unchanged, without a new version.
    pub fn update(&self, id: TicketId, update: TicketUpdate, actor: &Actor) -> Result<Ticket> {
        let change = self.updating(update, actor)?;
        Ok(self.store().modify(id, change)?.0)
    }

    /// [`Self::update`] for async code (see [`Self::create_async`]).
    pub async fn update_async(&self, id: TicketId, update: TicketUpdate, actor: &Actor) -> Result<Ticket> {
        let change = self.updating(update, actor)?;
        Ok(self.store().modify_async(id, change).await?.0)
    }

    fn updating(
        &self,
        update: TicketUpdate,
        actor: &Actor,
    ) -> Result<impl FnOnce(&Ticket) -> ChangeResult + Send + 'static> {
        actor.validate()?;
        let update = update.validate()?;
        let now = self.now();
        let sla = self.inner.config.sla;
        let actor = actor.clone();
        Ok(move |old: &Ticket| workflow::update(old, update, &actor, now, &sla))
    }

    /// Moves a ticket to `to`. Resolving needs `resolution_notes`.
    pub fn transition(
        &self,
        id: TicketId,
        to: Status,
        resolution_notes: Option<String>,
        actor: &Actor,
    ) -> Result<Ticket> {
        let update = TicketUpdate { status: Some(to), resolution_notes, ..TicketUpdate::default() };
        self.update(id, update, actor)
    }

    /// Assigns the ticket to `agent`, or unassigns it with `None`.
    pub fn assign(&self, id: TicketId, agent: Option<String>, actor: &Actor) -> Result<Ticket> {
        self.update(id, TicketUpdate { assigned_to: Some(agent), ..TicketUpdate::default() }, actor)
    }

    /// Adds a comment; returns the ticket's new version and the comment's event.
    pub fn comment(&self, id: TicketId, comment: NewComment, actor: &Actor) -> Result<(Ticket, Event)> {
        let change = self.commenting(comment, actor)?;
        commented(self.store().modify(id, change)?)
    }

    /// [`Self::comment`] for async code (see [`Self::create_async`]).
    pub async fn comment_async(&self, id: TicketId, comment: NewComment, actor: &Actor) -> Result<(Ticket, Event)> {
        let change = self.commenting(comment, actor)?;
        commented(self.store().modify_async(id, change).await?)
    }

    fn commenting(
        &self,
        comment: NewComment,
        actor: &Actor,
    ) -> Result<impl FnOnce(&Ticket) -> ChangeResult + Send + 'static> {
        actor.validate()?;
        let comment = comment.validate()?;
        let now = self.now();
        let actor = actor.clone();
        Ok(move |old: &Ticket| workflow::comment(old, comment, &actor, now).map(Some))
    }

    /// Every event of a ticket, oldest first (internal comments included; see
    /// [`Event::is_internal`] to hide them from requesters).
    pub fn history(&self, id: TicketId) -> Result<Vec<Event>> {
        self.store().history(id)
    }

    /// A page of tickets matching the query, newest first. Costs O(limit) index seeks per
    /// filter, whatever the number of tickets.
    pub fn list(&self, query: &ListQuery) -> Result<Page> {
        query.validate()?;
        self.store().list(query)
    }

    /// Statistics, in O(1) (plus the tickets that fell past due since the last call).
    pub fn stats(&self) -> Result<Stats> {
        self.store().stats(self.now())
    }

    /// Unresolved tickets already past an SLA deadline, most overdue first.
    pub fn sla_breached(&self, limit: usize) -> Result<Vec<Ticket>> {
        check_limit(limit)?;
        self.store().by_deadline(Timestamp::EPOCH, self.now(), limit)
    }

    /// Unresolved tickets whose next SLA deadline falls within `window` from now, soonest
    /// first (not yet breached).
    pub fn sla_at_risk(&self, window: Duration, limit: usize) -> Result<Vec<Ticket>> {
        check_limit(limit)?;
        let now = self.now();
        self.store().by_deadline(now, now.saturating_add(window).saturating_add(Duration::from_millis(1)), limit)
    }

    /// Writes a consistent point-in-time snapshot of the whole database to `out` (see
    /// [`crate::snapshot`] for the format). Writers keep running meanwhile; the snapshot
    /// holds every change acknowledged before the call and none made after it started.
    pub fn export<W: Write>(&self, out: W) -> Result<SnapshotSummary> {
        self.store().export(out, self.now())
    }

    /// Loads a snapshot into this database, which must be empty. Checks the checksum and
    /// structure; on any error nothing stays imported. Rebuilds indexes and counters.
    pub fn import<R: Read>(&self, input: R) -> Result<SnapshotSummary> {
        let summary = self.store().import(BufReader::with_capacity(1 << 16, input), self.now())?;
        self.store().flush()?;
        Ok(summary)
    }

    /// Recomputes indexes and counters from the tickets and reports every disagreement
    /// (fsck). Writes wait while it runs.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.store().verify()
    }

    /// Rebuilds all indexes and counters from the tickets, then verifies. Writes wait
    /// while it runs.
    pub fn repair(&self) -> Result<RepairReport> {
        self.store().repair(self.now())
    }

    /// Makes every write so far durable (useful in relaxed mode, and before shutdown).
    pub fn flush(&self) -> Result<()> {
        self.store().flush()
    }

    /// Writes and flushes a heartbeat: succeeds only if the database accepts durable
    /// writes right now (a readiness check).
    pub fn check_writable(&self) -> Result<()> {
        self.store().heartbeat(self.now())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.store().size_on_disk()
    }
}

/// What a change to a ticket produces: the next version and its event, or nothing.
type ChangeResult = Result<Option<(Ticket, Event)>>;

fn commented((t, e): (Ticket, Option<Event>)) -> Result<(Ticket, Event)> {
    let e = e.ok_or_else(|| Error::Storage("comment produced no event".into()))?;
    Ok((t, e))
}

fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ValidationErrors::single("limit", "invalid", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    Ok(())
}
