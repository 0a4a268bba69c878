//! The service on a store shared by several replicas (Redis): any replica creates tickets and
//! answers reads and event streams; the one holding the store's lease matches. See
//! [`state::follow`](super::state) for what a follower's state mirrors.
//!
//! - A new ticket is validated and admitted here as on a single replica, then written at once
//!   by [`TicketStore::create`], which takes its idempotency key for every replica: the same
//!   key sent to two replicas names one ticket.
//! - A follower forwards a cancellation to the replica that matches (through the store) and
//!   answers with what that replica decided, so a ticket is cancelled or matched under one
//!   lock, never both.
//! - When the lease changes hands the state is rebuilt from the store
//!   ([`StoreEvent::Reset`]): a new matcher resumes the waiting matches as after a restart
//!   (adopting the server labelled with the match, or allocating one), a demoted one stops
//!   its allocations and follows. Open event streams carry on across the rebuild.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::admission::{self, Admit, Admitted};
use super::{Matchmaker, allocation, state, submit};
use crate::Error;
use crate::engine::Millis;
use crate::store::{Created, StoreError, StoreEvent, Stored};
use crate::ticket::{Ticket, TicketState};

/// How long a replica waits for a ticket another replica created, or for the answer to a
/// cancellation it forwarded.
const REMOTE_WAIT: Duration = Duration::from_secs(5);

impl Matchmaker {
    /// [`Matchmaker::submit`] on a shared store.
    pub(super) async fn submit_shared(&self, admitted: Admitted) -> Result<(Ticket, bool), Error> {
        let fingerprint = admitted.fingerprint;
        let id = admitted.id;
        let mut view = admitted.view.clone();
        if let Admit::Existing(existing) = self.inner.admission.reserve(&admitted)? {
            return Ok((self.await_ticket(existing).await?, false));
        }
        let stored = admitted.stored();
        let created = match self.inner.store.create(&stored) {
            Some(creation) => creation.await,
            None => Err(StoreError::new(self.inner.store.describe(), "this store does not create tickets")),
        };
        match created {
            Ok(Created::New) => {
                self.inner.admission.enqueue(admitted);
                if let Some(current) = self.match_if_idle(id) {
                    view = current;
                }
                Ok((view, true))
            }
            Ok(Created::Existing(existing)) => {
                // Another replica holds the key: its ticket is the answer.
                self.inner.admission.unreserve(&admitted);
                let ticket = self.await_ticket(existing).await?;
                let key = admitted.view.idempotency_key.as_deref().unwrap_or_default();
                if submit::fingerprint(&ticket.queue, &ticket.players) != fingerprint {
                    return Err(admission::reused_key(key, existing));
                }
                Ok((ticket, false))
            }
            Err(error) => {
                self.inner.admission.unreserve(&admitted);
                Err(Error::Store(error))
            }
        }
    }

    /// Ticket `id` once this replica's state has it (another replica may just have created it).
    async fn await_ticket(&self, id: Uuid) -> Result<Ticket, Error> {
        let deadline = Instant::now() + REMOTE_WAIT;
        loop {
            match self.ticket(&id.to_string()) {
                Ok(ticket) => return Ok(ticket),
                Err(Error::NotFound(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(Error::NotFound(_)) => {
                    return Err(Error::Store(StoreError::new(
                        self.inner.store.describe(),
                        format!("ticket {id} (named by this idempotency key) has not reached this replica yet; retry"),
                    )));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// [`Matchmaker::cancel`] on a follower: asks the replica that matches and waits for its
    /// answer in this replica's state.
    pub(super) async fn cancel_forwarded(&self, id: &str) -> Result<Ticket, Error> {
        let ticket = self.ticket(id)?;
        if let Some(done) = cancel_answer(&ticket) {
            return done;
        }
        let uuid = Uuid::parse_str(id).map_err(|_| Error::NotFound(format!("ticket `{id}`")))?;
        let mut events = self.watch(id)?;
        if let Some(request) = self.inner.store.request_cancel(uuid) {
            request.await?;
        }
        let deadline = Instant::now() + REMOTE_WAIT;
        loop {
            let current = events.borrow_and_update().clone();
            if let Some(done) = cancel_answer(&current) {
                return done;
            }
            match tokio::time::timeout_at(deadline, events.changed()).await {
                Ok(Ok(())) => {}
                // Forgotten meanwhile.
                Ok(Err(_)) => return Err(Error::NotFound(format!("ticket `{id}`"))),
                Err(_) => {
                    return Err(Error::Store(StoreError::new(
                        self.inner.store.describe(),
                        "no replica that matches answered the cancellation in time (the matching lease may be changing hands); retry",
                    )));
                }
            }
        }
    }

    /// Applies one event from the shared store; a reset rebuilds the state (after stopping
    /// every allocation in flight, and dropping those not started) and starts the resumed
    /// matches' allocations on `tasks`.
    pub(super) async fn on_store_event(
        &self,
        event: StoreEvent,
        tasks: &mut JoinSet<()>,
        arrivals: &mut mpsc::UnboundedReceiver<state::Job>,
    ) {
        match event {
            StoreEvent::Reset { term, stored } => {
                tasks.shutdown().await;
                while arrivals.try_recv().is_ok() {}
                for job in self.reset(term, stored) {
                    tasks.spawn(allocation::run(self.clone(), job));
                }
            }
            event => {
                let now = self.now();
                self.with_state(|state| state.apply_remote(event, now));
            }
        }
    }

    /// Replaces the state with one loaded from `stored`, matching in `term` or following.
    fn reset(&self, term: Option<String>, stored: Stored) -> Vec<state::Job> {
        let config = self.config();
        let retention = config.assigned_retention.as_millis() as Millis;
        let now = self.now();
        let mut fresh =
            state::State::new(&config.queues, retention, self.inner.metrics.clone(), self.inner.store.clone());
        fresh.set_matching(term.is_some());
        let mut guard = self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let watchers = guard.retire();
        fresh.use_admission(self.inner.admission.clone());
        self.inner.store.begin_term(term.as_deref());
        let mut jobs: Vec<state::Job> = fresh.restore(stored, now);
        fresh.adopt_watchers(watchers);
        // Tickets this replica created since the store was read.
        fresh.drain_inbox();
        jobs.extend(fresh.take_arrivals());
        tracing::info!(
            matching = fresh.is_matching(),
            resumed = jobs.len(),
            "matchmaker state rebuilt from the shared store"
        );
        *guard = fresh;
        jobs
    }

    /// Whether this replica matches now.
    pub fn is_matching(&self) -> bool {
        self.with_state(|state| state.is_matching())
    }
}

/// What a cancellation of `ticket` answers now, if its state decides it.
fn cancel_answer(ticket: &Ticket) -> Option<Result<Ticket, Error>> {
    match ticket.state {
        TicketState::Cancelled => Some(Ok(ticket.clone())),
        TicketState::Searching | TicketState::Matched => None,
        state => Some(Err(Error::Conflict {
            message: format!("ticket `{}` is already {} and cannot be cancelled", ticket.id, state.as_str()),
            field: None,
        })),
    }
}
