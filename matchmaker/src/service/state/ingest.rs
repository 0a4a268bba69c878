//! Admitted tickets entering the state: whoever holds the state lock moves the inbox in.

use std::sync::Arc;

use super::{Record, State};
use crate::engine::{EngineTicket, RegionId};
use crate::service::admission::{Admission, Admitted};
use crate::ticket::TicketState;

impl State {
    /// The admission index and inbox this state takes its new tickets from.
    pub fn admission(&self) -> Arc<Admission> {
        self.admission.clone()
    }

    /// Moves every admitted ticket into the state and matches each on arrival. Cheap when the
    /// inbox is empty, so every holder of the state lock calls it first.
    pub fn drain_inbox(&mut self) {
        for admitted in self.admission.take_inbox() {
            self.insert(admitted);
        }
    }

    /// A searching ticket from admission (already recorded in the store): into its queue's
    /// pool, then into a running match or a new one if it completes one now.
    fn insert(&mut self, admitted: Admitted) {
        let Admitted { id, view, size, skill, latencies, now, deadline, .. } = admitted;
        if self.by_id.contains_key(&id) {
            // Already loaded with the store's tickets (the state was rebuilt meanwhile).
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let mut latencies: Vec<(RegionId, f64)> =
            latencies.iter().map(|(name, ms)| (self.intern_region(name), *ms)).collect();
        latencies.sort_by_key(|(r, _)| *r);
        let engine = EngineTicket { key, enqueued_at: now, size, skill, latencies };
        let queue = view.queue.clone();
        self.deadlines.insert((deadline, key));
        self.by_id.insert(id, key);
        self.metrics.ticket_state(&queue, None, Some(TicketState::Searching));
        tracing::debug!(ticket = %id, queue = %queue, players = view.players.len(), "ticket created");
        let record = Record { view, enqueued_at: now, deadline, match_id: None, forget_at: None, events: None };
        self.tickets.insert(key, record);
        if !self.matching {
            // A follower mirrors it; the replica that matches took it from the store.
            return;
        }
        let queued = self.queues.get_mut(&queue).is_some_and(|q| q.pool.insert(engine));
        if !queued {
            // A reload removed its queue between admission and now.
            let reason = format!("queue `{queue}` was removed from the configuration");
            self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
            return;
        }
        self.after_queued(key, &queue, now);
    }

    /// Admits and inserts at once (what a submission does when matching is idle).
    #[cfg(test)]
    pub fn submit(
        &mut self,
        prepared: crate::service::submit::PreparedTicket,
        now: crate::engine::Millis,
    ) -> Result<(crate::ticket::Ticket, bool), crate::Error> {
        use crate::service::admission::Admit;
        let timeout = self.queues.get(&prepared.request.queue).map_or(0, |q| q.config.ticket_timeout.as_millis());
        let admitted = Admitted::new(prepared, now, now + timeout as crate::engine::Millis);
        let id = admitted.id;
        let store = self.store.clone();
        match self.admission.admit(admitted, store.as_ref())? {
            Admit::Existing(existing) => Ok((self.ticket(&existing.to_string())?, false)),
            Admit::New => {
                self.drain_inbox();
                Ok((self.ticket(&id.to_string())?, true))
            }
        }
    }
}
