//! What must survive a restart, behind one trait: tickets (their state, assignment and
//! idempotency key) and the matches waiting for a server.
//!
//! The engine's pools are not stored: they are rebuilt from the searching tickets on start.
//! The service calls [`TicketStore::record`] for every change while it holds its state lock, so
//! changes reach the store in the order they happened, and awaits [`TicketStore::persisted`]
//! before it acknowledges a change to a caller (a created or cancelled ticket) or starts an
//! allocation (so a server is never taken for a match the store does not know).
//!
//! - [`MemoryStore`]: nothing survives the process (the default).
//! - [`JournalStore`]: an append-only journal in a folder (`--state-dir`), compacted into a
//!   snapshot on open and whenever it has grown well past the live data.
//! - [`RedisStore`]: two Redis hashes (`--redis-url`), written in fenced batches under a lease,
//!   shared by several replicas: one matches (it holds the lease), the others follow a change
//!   stream (see [`StoreEvent`]) and create tickets with [`TicketStore::create`].

mod journal;
mod redis;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::Millis;
use crate::ticket::{MatchInfo, Ticket};

pub use self::redis::{KEY_PREFIX, LEASE_TTL, RedisStore, redacted};
pub use journal::JournalStore;

/// What [`TicketStore::persisted`] resolves to.
pub type Persisted = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// What [`TicketStore::create`] resolves to.
pub type Creation = Pin<Box<dyn Future<Output = Result<Created, StoreError>> + Send>>;

/// The outcome of [`TicketStore::create`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The ticket is stored.
    New,
    /// Its idempotency key already names this ticket (created by any replica); nothing written.
    Existing(Uuid),
}

/// What a store shared by several replicas tells the service, in order.
#[derive(Debug)]
pub enum StoreEvent {
    /// Start over from `stored`: with `term` (the fencing token) this replica now holds the
    /// matching lease; without, it follows the replica that does.
    Reset {
        /// The lease's token while this replica matches.
        term: Option<String>,
        /// Everything the store holds now.
        stored: Stored,
    },
    /// Another replica made this change.
    Change(Change),
    /// A follower asks the replica that matches to cancel this ticket.
    Cancel(Uuid),
}

/// A store failed to read or write its data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ticket store {location}: {message}")]
pub struct StoreError {
    /// Which store or file.
    pub location: String,
    /// What went wrong.
    pub message: String,
}

impl StoreError {
    pub(crate) fn new(location: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        Self { location: location.to_string(), message: message.to_string() }
    }
}

/// One ticket as stored: its API view and the times the service schedules it by
/// (milliseconds since the Unix epoch, so they mean the same after a restart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTicket {
    /// The ticket as the API reports it.
    pub ticket: Ticket,
    /// When it started searching (its wait widens the match rules).
    pub enqueued_at: Millis,
    /// When it times out unless assigned.
    pub deadline: Millis,
    /// When a ticket in a final state is forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_at: Option<Millis>,
    /// The match a `matched` ticket waits in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_id: Option<Uuid>,
}

/// A match formed and waiting for (or in the middle of) its allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMatch {
    /// Match id (also the `stadion.dev/match-id` label its server gets).
    pub id: Uuid,
    /// Its queue.
    pub queue: String,
    /// Its tickets' ids.
    pub tickets: Vec<Uuid>,
    /// Teams, region and formation time.
    pub info: MatchInfo,
    /// Set once the match runs on its server and takes late joiners (a backfill queue's
    /// match): it is then kept until it closes, so a restart reopens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<StoredOpen>,
}

/// A running match open to late joiners, as its server last confirmed it: the players placed
/// and seated (those on their way in are stored as `matched` tickets naming the match, and
/// placed again on restart), and the seats its server reported free.
///
/// A match that closed (its server full or gone) while tickets were still on their way in is
/// kept, with `room` 0, until they have their answers: a restart never reopens it, but asks
/// for each such ticket whether its players are on the server already.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredOpen {
    /// Where its server is (the allocation requests' namespace).
    pub namespace: String,
    /// Lowest ticket skill in it.
    pub skill_low: f64,
    /// Highest ticket skill in it.
    pub skill_high: f64,
    /// The widest skill range its tickets accepted when it formed (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
    /// Seats free on its server (0: closed to late joiners).
    pub room: u32,
}

impl StoredOpen {
    /// A match closed to late joiners, in `namespace`: no room, and so no skill window either.
    pub fn closed(namespace: String) -> Self {
        Self { namespace, skill_low: 0.0, skill_high: 0.0, spread: None, room: 0 }
    }
}

/// One change, in the order the service made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "v", rename_all = "camelCase")]
pub enum Change {
    /// A ticket was created or changed: its whole stored form.
    Ticket(Box<StoredTicket>),
    /// A ticket's retention ended.
    Forget(Uuid),
    /// A match formed, or a running match opened to late joiners or changed.
    Match(Box<StoredMatch>),
    /// A match was assigned, dissolved or failed, or a running match closed to late joiners.
    MatchDone(Uuid),
}

/// Everything a store held when it opened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    /// Every ticket not yet forgotten.
    pub tickets: Vec<StoredTicket>,
    /// Every match still waiting for its server, and every running match still open.
    pub matches: Vec<StoredMatch>,
}

impl Stored {
    /// Whether nothing was stored.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty() && self.matches.is_empty()
    }
}

/// Where tickets and waiting matches are kept.
pub trait TicketStore: Send + Sync + 'static {
    /// Everything the store held when it opened, for the service to resume from. Called once.
    fn load(&self) -> Result<Stored, StoreError>;

    /// Records a change. Called under the service's state lock, in order; must not wait for
    /// I/O (a durable store queues the change and writes it in its next batch).
    fn record(&self, change: Change);

    /// Resolves once every change recorded before the call is durable (at once for a store
    /// that keeps nothing).
    fn persisted(&self) -> Persisted;

    /// A short description for logs (`memory`, `journal in /var/lib/stadion`).
    fn describe(&self) -> String;

    /// Whether it keeps changes at all; `false` lets the service skip building them.
    fn keeps_changes(&self) -> bool {
        true
    }

    /// The term this replica starts in: `Some` (the lease's token, empty for a store nobody
    /// shares) when it matches, `None` when another replica does and this one follows.
    fn term(&self) -> Option<String> {
        Some(String::new())
    }

    /// The service now runs in `term` (see [`StoreEvent::Reset`]): changes recorded from now
    /// on are written under it, and dropped when it is no longer the lease's.
    fn begin_term(&self, _term: Option<&str>) {}

    /// For a store shared by several replicas: writes a new searching ticket at once, taking its
    /// idempotency key for every replica (`None`: record it as any other change).
    fn create(&self, _ticket: &StoredTicket) -> Option<Creation> {
        None
    }

    /// For a store shared by several replicas: asks the replica that matches to cancel ticket
    /// `id` (resolves once the request is stored).
    fn request_cancel(&self, _id: Uuid) -> Option<Persisted> {
        None
    }

    /// For a store shared by several replicas: what other replicas change, taken once by the
    /// service's loop.
    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<StoreEvent>> {
        None
    }
}

/// Keeps nothing: tickets live only in the service's memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryStore;

impl TicketStore for MemoryStore {
    fn load(&self) -> Result<Stored, StoreError> {
        Ok(Stored::default())
    }

    fn record(&self, _change: Change) {}

    fn persisted(&self) -> Persisted {
        Box::pin(std::future::ready(Ok(())))
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn keeps_changes(&self) -> bool {
        false
    }
}

/// Folds changes into the live tickets and matches (what a compaction keeps).
#[derive(Debug, Default)]
struct Fold {
    tickets: std::collections::HashMap<Uuid, StoredTicket>,
    matches: std::collections::HashMap<Uuid, StoredMatch>,
}

impl Fold {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Ticket(ticket) => {
                if let Ok(id) = Uuid::parse_str(&ticket.ticket.id) {
                    self.tickets.insert(id, *ticket);
                }
            }
            Change::Forget(id) => {
                self.tickets.remove(&id);
            }
            Change::Match(m) => {
                self.matches.insert(m.id, *m);
            }
            Change::MatchDone(id) => {
                self.matches.remove(&id);
            }
        }
    }

    /// The live data, oldest tickets first (the order they were created in).
    fn into_stored(self) -> Stored {
        let mut tickets: Vec<StoredTicket> = self.tickets.into_values().collect();
        tickets.sort_by(|a, b| (a.enqueued_at, &a.ticket.id).cmp(&(b.enqueued_at, &b.ticket.id)));
        let mut matches: Vec<StoredMatch> = self.matches.into_values().collect();
        matches.sort_by(|a, b| (&a.info.formed_at, a.id).cmp(&(&b.info.formed_at, b.id)));
        Stored { tickets, matches }
    }
}

#[cfg(test)]
mod tests;
