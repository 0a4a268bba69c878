//! Admission of new tickets, off the matching lock.
//!
//! `POST /v1/tickets` validates its request before any lock ([`super::submit::prepare`]), then
//! decides here — under this index's own small lock, never the state lock a matching round
//! holds — whether the request is new, an idempotent retry, or a conflict (a reused key, a
//! player with a live ticket). A new ticket is recorded in the store and queued in the inbox in
//! the same critical section, so a retry racing it always finds it. Whoever takes the state lock
//! next (the submitter itself when matching is idle, or the round's next slice) moves the inbox
//! into the state and matches the arrivals.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use super::submit::PreparedTicket;
use crate::Error;
use crate::engine::Millis;
use crate::store::{Change, StoredTicket, TicketStore};
use crate::ticket::{Player, Ticket, TicketState};

/// A ticket admitted but not yet in the state.
#[derive(Debug)]
pub struct Admitted {
    /// Its id.
    pub id: Uuid,
    /// The validated request.
    pub prepared: PreparedTicket,
    /// Its view as created (state `searching`).
    pub view: Ticket,
    /// When it was admitted.
    pub now: Millis,
    /// When it times out.
    pub deadline: Millis,
}

impl Admitted {
    /// A new searching ticket for `prepared`, admitted at `now`, timing out at `deadline`.
    pub fn new(prepared: PreparedTicket, now: Millis, deadline: Millis) -> Self {
        let id = Uuid::new_v4();
        let stamp = jiff::Timestamp::now().to_string();
        let view = Ticket {
            id: id.to_string(),
            queue: prepared.request.queue.clone(),
            state: TicketState::Searching,
            players: prepared.request.players.clone(),
            idempotency_key: prepared.request.idempotency_key.clone(),
            created_at: stamp.clone(),
            updated_at: stamp,
            match_info: None,
            assignment: None,
            reason: None,
        };
        Self { id, prepared, view, now, deadline }
    }
}

/// What admission decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// A new ticket, now in the inbox.
    New,
    /// A retry of the ticket with this id (same idempotency key, same request).
    Existing(Uuid),
}

#[derive(Debug, Default)]
struct Index {
    /// Idempotency key → (request fingerprint, ticket).
    idempotency: HashMap<String, (u64, Uuid)>,
    /// Player id → the live ticket holding them.
    live_players: HashMap<String, Uuid>,
}

/// Idempotency keys and live players, and the inbox of admitted tickets.
#[derive(Debug, Default)]
pub struct Admission {
    index: Mutex<Index>,
    inbox: Mutex<Vec<Admitted>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the maps consistent, so a panic elsewhere does not poison them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    /// Admits `ticket`: an idempotent retry returns the earlier ticket's id; a reused key with
    /// a different request, or a player with a live ticket, is a conflict; otherwise the ticket
    /// takes its key and players, is recorded in `store` and waits in the inbox.
    pub fn admit(&self, ticket: Admitted, store: &dyn TicketStore) -> Result<Admit, Error> {
        let mut index = lock(&self.index);
        let request = &ticket.prepared.request;
        if let Some(key) = &request.idempotency_key
            && let Some(&(fingerprint, id)) = index.idempotency.get(key)
        {
            if fingerprint != ticket.prepared.fingerprint {
                return Err(Error::Conflict {
                    message: format!("idempotency key `{key}` was used for a different ticket ({id})"),
                    field: Some("idempotencyKey".to_owned()),
                });
            }
            return Ok(Admit::Existing(id));
        }
        for (i, player) in request.players.iter().enumerate() {
            if let Some(other) = index.live_players.get(&player.id) {
                return Err(Error::Conflict {
                    message: format!("player `{}` already has a live ticket {other}", player.id),
                    field: Some(format!("players[{i}].id")),
                });
            }
        }
        for player in &request.players {
            index.live_players.insert(player.id.clone(), ticket.id);
        }
        if let Some(key) = &request.idempotency_key {
            index.idempotency.insert(key.clone(), (ticket.prepared.fingerprint, ticket.id));
        }
        if store.keeps_changes() {
            store.record(Change::Ticket(Box::new(StoredTicket {
                ticket: ticket.view.clone(),
                enqueued_at: ticket.now,
                deadline: ticket.deadline,
                forget_at: None,
                match_id: None,
            })));
        }
        lock(&self.inbox).push(ticket);
        Ok(Admit::New)
    }

    /// Takes every ticket admitted since the last call, oldest first.
    pub fn take_inbox(&self) -> Vec<Admitted> {
        std::mem::take(&mut *lock(&self.inbox))
    }

    /// Ticket `id` reached a final state: its players may join again.
    pub fn release_players(&self, players: &[Player], id: Uuid) {
        let mut index = lock(&self.index);
        for player in players {
            if index.live_players.get(&player.id) == Some(&id) {
                index.live_players.remove(&player.id);
            }
        }
    }

    /// Ticket `id` is forgotten: its idempotency key may name a new ticket.
    pub fn forget_key(&self, key: &str, id: Uuid) {
        let mut index = lock(&self.index);
        if index.idempotency.get(key).is_some_and(|(_, holder)| *holder == id) {
            index.idempotency.remove(key);
        }
    }

    /// Restores what a stored ticket held: its key always, its players while it is live.
    pub fn restore(&self, ticket: &Ticket, id: Uuid, fingerprint: u64) {
        let mut index = lock(&self.index);
        if let Some(key) = &ticket.idempotency_key {
            index.idempotency.insert(key.clone(), (fingerprint, id));
        }
        if !ticket.state.is_terminal() {
            for player in &ticket.players {
                index.live_players.insert(player.id.clone(), id);
            }
        }
    }
}
