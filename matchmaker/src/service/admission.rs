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
    /// Its view as created (state `searching`): the validated request's queue, players and
    /// idempotency key, moved rather than copied.
    pub view: Ticket,
    /// Players in the party.
    pub size: u32,
    /// Mean skill (0 without a skill rule).
    pub skill: f64,
    /// Worst player latency per region every player reported.
    pub latencies: Vec<(String, f64)>,
    /// Hash of queue and players (see [`PreparedTicket::fingerprint`]).
    pub fingerprint: u64,
    /// When it was admitted.
    pub now: Millis,
    /// When it times out.
    pub deadline: Millis,
}

impl Admitted {
    /// A new searching ticket for `prepared`, admitted at `now`, timing out at `deadline`.
    pub fn new(prepared: PreparedTicket, now: Millis, deadline: Millis) -> Self {
        let PreparedTicket { request, size, skill, latencies, fingerprint } = prepared;
        let id = Uuid::new_v4();
        let stamp = jiff::Timestamp::now().to_string();
        let view = Ticket {
            id: id.to_string(),
            queue: request.queue,
            state: TicketState::Searching,
            players: request.players,
            idempotency_key: request.idempotency_key,
            created_at: stamp.clone(),
            updated_at: stamp,
            match_info: None,
            assignment: None,
            reason: None,
        };
        Self { id, view, size, skill, latencies, fingerprint, now, deadline }
    }

    /// Its stored form (searching, in no match).
    pub fn stored(&self) -> StoredTicket {
        StoredTicket {
            ticket: self.view.clone(),
            enqueued_at: self.now,
            deadline: self.deadline,
            forget_at: None,
            match_id: None,
        }
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

impl Index {
    /// An idempotent retry's earlier ticket; a conflict for a reused key with a different
    /// request or a player with a live ticket; otherwise takes the key and players (`None`).
    fn take(&mut self, ticket: &Admitted) -> Result<Option<Uuid>, Error> {
        let request = &ticket.view;
        if let Some(key) = &request.idempotency_key
            && let Some(&(fingerprint, id)) = self.idempotency.get(key)
        {
            if fingerprint != ticket.fingerprint {
                return Err(reused_key(key, id));
            }
            return Ok(Some(id));
        }
        for (i, player) in request.players.iter().enumerate() {
            if let Some(other) = self.live_players.get(&player.id) {
                return Err(Error::Conflict {
                    message: format!("player `{}` already has a live ticket {other}", player.id),
                    field: Some(format!("players[{i}].id")),
                });
            }
        }
        for player in &request.players {
            self.live_players.insert(player.id.clone(), ticket.id);
        }
        if let Some(key) = &request.idempotency_key {
            self.idempotency.insert(key.clone(), (ticket.fingerprint, ticket.id));
        }
        Ok(None)
    }
}

/// The conflict of an idempotency key used for another ticket, `id`.
pub fn reused_key(key: &str, id: Uuid) -> Error {
    Error::Conflict {
        message: format!("idempotency key `{key}` was used for a different ticket ({id})"),
        field: Some("idempotencyKey".to_owned()),
    }
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
        if let Some(existing) = index.take(&ticket)? {
            return Ok(Admit::Existing(existing));
        }
        if store.keeps_changes() {
            store.record(Change::Ticket(Box::new(ticket.stored())));
        }
        lock(&self.inbox).push(ticket);
        Ok(Admit::New)
    }

    /// [`Admission::admit`] for a store shared by several replicas, in two steps: takes the
    /// ticket's key and players here (or answers as `admit` does), and the caller then writes
    /// it to the store itself and hands it to [`Admission::enqueue`] (or, when the store
    /// refused it, to [`Admission::unreserve`]).
    pub fn reserve(&self, ticket: &Admitted) -> Result<Admit, Error> {
        Ok(match lock(&self.index).take(ticket)? {
            Some(existing) => Admit::Existing(existing),
            None => Admit::New,
        })
    }

    /// A reserved ticket the store holds now: into the inbox.
    pub fn enqueue(&self, ticket: Admitted) {
        lock(&self.inbox).push(ticket);
    }

    /// Frees what [`Admission::reserve`] took for a ticket the store did not take.
    pub fn unreserve(&self, ticket: &Admitted) {
        let mut index = lock(&self.index);
        if let Some(key) = &ticket.view.idempotency_key
            && index.idempotency.get(key).is_some_and(|(_, id)| *id == ticket.id)
        {
            index.idempotency.remove(key);
        }
        for player in &ticket.view.players {
            if index.live_players.get(&player.id) == Some(&ticket.id) {
                index.live_players.remove(&player.id);
            }
        }
    }

    /// Forgets every key and player (the state is being rebuilt from the store).
    pub fn clear(&self) {
        *lock(&self.index) = Index::default();
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
