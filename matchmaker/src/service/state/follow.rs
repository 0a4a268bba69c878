//! Several replicas on one shared store: the replica holding the store's lease matches; the
//! others follow. A follower's state mirrors the store (loaded, then kept current from the
//! changes other replicas make), so it answers reads and event streams, but it never pools,
//! times out or matches a ticket. The replica that matches takes the tickets followers create
//! into its pools as they arrive, and the cancellations they ask for.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use super::State;
use crate::engine::Millis;
use crate::service::admission::Admission;
use crate::store::{Change, StoreEvent, StoredTicket};
use crate::ticket::{Ticket, TicketState};

/// The open event streams of a state being replaced, by ticket id.
pub type Watchers = HashMap<Uuid, watch::Sender<Arc<Ticket>>>;

impl State {
    /// This state follows (`false`) or matches (`true`); set before it is restored.
    pub fn set_matching(&mut self, matching: bool) {
        self.matching = matching;
    }

    /// Whether this state matches.
    pub fn is_matching(&self) -> bool {
        self.matching
    }

    /// Shares `admission` (cleared first), so the service's handle stays valid when the state
    /// is replaced.
    pub fn use_admission(&mut self, admission: Arc<Admission>) {
        admission.clear();
        self.admission = admission;
    }

    /// Gives up every open event stream (to [`State::adopt_watchers`] of the next state) and
    /// takes this state's tickets off the metrics.
    pub fn retire(&mut self) -> Watchers {
        let mut watchers = Watchers::new();
        for record in self.tickets.values_mut() {
            self.metrics.ticket_state(&record.view.queue, Some(record.view.state), None);
            if let (Some(events), Ok(id)) = (record.events.take(), Uuid::parse_str(&record.view.id)) {
                watchers.insert(id, events);
            }
        }
        self.tickets.clear();
        self.by_id.clear();
        watchers
    }

    /// Takes over the event streams of the state this one replaces, each told the ticket's
    /// current state; a stream of a ticket this state does not have ends (it was forgotten).
    pub fn adopt_watchers(&mut self, watchers: Watchers) {
        for (id, events) in watchers {
            let Some(record) = self.by_id.get(&id).and_then(|key| self.tickets.get_mut(key)) else { continue };
            if *events.borrow().as_ref() != record.view {
                events.send_replace(Arc::new(record.view.clone()));
            }
            record.events = Some(events);
        }
    }

    /// Applies what another replica did (see [`StoreEvent`]; a reset is the service's).
    pub fn apply_remote(&mut self, event: StoreEvent, now: Millis) {
        match (event, self.matching) {
            (StoreEvent::Change(Change::Ticket(ticket)), false) => self.mirror(*ticket, now),
            (StoreEvent::Change(Change::Forget(id)), false) => self.mirror_forget(id),
            // A ticket a follower created: into its pool, matched on arrival.
            (StoreEvent::Change(Change::Ticket(ticket)), true) => {
                if ticket.ticket.state != TicketState::Searching {
                    return;
                }
                let queue = ticket.ticket.queue.clone();
                if let Some((_, key)) = self.restore_ticket(*ticket, now)
                    && self.tickets.get(&key).is_some_and(|r| r.view.state == TicketState::Searching)
                {
                    self.after_queued(key, &queue, now);
                }
            }
            (StoreEvent::Cancel(id), true) => {
                if let Err(error) = self.cancel(&id.to_string(), now) {
                    tracing::debug!(ticket = %id, %error, "cancellation asked by a follower not done");
                }
            }
            _ => {}
        }
    }

    /// A follower takes a ticket's new form.
    fn mirror(&mut self, stored: StoredTicket, now: Millis) {
        let Ok(id) = Uuid::parse_str(&stored.ticket.id) else { return };
        let Some(&key) = self.by_id.get(&id) else {
            self.restore_ticket(stored, now);
            return;
        };
        let Some(record) = self.tickets.get_mut(&key) else { return };
        let (from, to) = (record.view.state, stored.ticket.state);
        self.metrics.ticket_state(&record.view.queue, Some(from), Some(to));
        if to.is_terminal() && !from.is_terminal() {
            self.admission.release_players(&record.view.players, id);
        }
        record.view = stored.ticket;
        record.enqueued_at = stored.enqueued_at;
        record.deadline = stored.deadline;
        record.forget_at = stored.forget_at;
        record.match_id = stored.match_id;
        if let Some(events) = &record.events {
            if events.receiver_count() == 0 {
                record.events = None;
            } else {
                events.send_replace(Arc::new(record.view.clone()));
            }
        }
    }

    /// A follower forgets a ticket whose retention ended.
    fn mirror_forget(&mut self, id: Uuid) {
        let Some(key) = self.by_id.remove(&id) else { return };
        let Some(record) = self.tickets.remove(&key) else { return };
        self.metrics.ticket_state(&record.view.queue, Some(record.view.state), None);
        self.admission.release_players(&record.view.players, id);
        if let Some(idem) = &record.view.idempotency_key {
            self.admission.forget_key(idem, id);
        }
    }
}
