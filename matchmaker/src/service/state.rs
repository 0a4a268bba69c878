//! The ticket state machine: every ticket, queue pool and waiting match, behind one lock.
//!
//! All transitions go through [`State::transition`], which keeps the metrics gauge, the event
//! stream and the timeout/retention indexes in step with the ticket, so no path can forget one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use stadion_core::allocator::{AdmittedAllocation, admit_allocation};
use stadion_crds::FieldErrors;
use stadion_crds::allocation::{
    GameServerAllocation, GameServerAllocationSpec, GameServerAllocationStatus, GameServerSelector,
};
use stadion_crds::gameserver::GameServerState;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::admission::Admission;
use crate::Error;
use crate::config::MATCH_ID_LABEL;
use crate::config::{QueueConfig, TemplateVars};
use crate::engine::{FormedMatch, Millis, OpenKey, OpenMatch, OpenMatches, Pool, RegionId, Rules, TicketKey};
use crate::metrics::Metrics;
use crate::store::{Change, StoredMatch, StoredTicket, TicketStore};
use crate::ticket::{Assignment, MatchInfo, Ticket, TicketState};

mod backfill;
mod follow;
mod ingest;
mod reload;
mod restore;
mod round;

pub use backfill::{BackfillAnswer, BackfillJob};
pub use reload::QueueChanges;

/// One queue's config, searching tickets and running matches open to late joiners.
struct QueueRuntime {
    config: Arc<QueueConfig>,
    pool: Pool,
    open: OpenMatches,
}

impl QueueRuntime {
    fn new(config: &QueueConfig) -> Self {
        Self {
            config: Arc::new(config.clone()),
            pool: Pool::new(Rules::from_queue(config)),
            open: OpenMatches::default(),
        }
    }
}

/// One ticket and everything kept about it.
struct Record {
    view: Ticket,
    /// When its wait started; its engine form lives in the pool only, recomputed from the
    /// view when it searches again.
    enqueued_at: Millis,
    deadline: Millis,
    match_id: Option<Uuid>,
    forget_at: Option<Millis>,
    /// The event stream, opened by the first watcher and closed once none is left, so a
    /// ticket nobody watches carries no channel and no second copy of its view.
    events: Option<watch::Sender<Arc<Ticket>>>,
}

/// A match waiting for (or in the middle of) its allocation.
struct PendingMatch {
    queue: String,
    tickets: Vec<TicketKey>,
    info: MatchInfo,
    wake: Arc<Notify>,
    /// The windows it formed with, kept to open it for late joiners once it has a server
    /// (backfill queues only; a match resumed after a restart gets them from its tickets).
    window: Option<OpenMatch>,
}

/// Work for the allocation tasks.
#[derive(Debug)]
pub enum Job {
    /// A new match needs a server.
    Match(MatchJob),
    /// A late ticket joins a running match's server.
    Backfill(BackfillJob),
}

/// A match to allocate, handed to an allocation task.
#[derive(Debug)]
pub struct MatchJob {
    /// Match id.
    pub id: Uuid,
    /// Queue name.
    pub queue: String,
    /// The allocation request, metadata rendered and admitted (or why it could not be).
    pub request: Result<AdmittedAllocation, FieldErrors>,
    /// Notified when the match dissolves, so a waiting task stops at once.
    pub wake: Arc<Notify>,
}

/// What became of a match whose allocation succeeded.
#[derive(Debug, PartialEq, Eq)]
pub enum AssignOutcome {
    /// Every ticket is assigned.
    Assigned,
    /// The match dissolved while the allocation was in flight; the server is not used.
    Dissolved,
}

/// Tickets, pools and waiting matches.
pub struct State {
    queues: HashMap<String, QueueRuntime>,
    region_ids: HashMap<String, RegionId>,
    region_names: Vec<String>,
    tickets: HashMap<TicketKey, Record>,
    by_id: HashMap<Uuid, TicketKey>,
    /// Idempotency keys and live players, shared with ingest (see [`Admission`]).
    admission: Arc<Admission>,
    matches: HashMap<Uuid, PendingMatch>,
    deadlines: BTreeSet<(Millis, TicketKey)>,
    forget: BTreeSet<(Millis, TicketKey)>,
    next_key: TicketKey,
    retention: Millis,
    metrics: Arc<Metrics>,
    store: Arc<dyn TicketStore>,
    /// Matches formed and backfills placed outside a round, for the service to allocate.
    arrivals: Vec<Job>,
    /// Running matches open to late joiners, by their key in their queue's open matches.
    running: HashMap<OpenKey, backfill::RunningMatch>,
    /// Tickets placed into a running match, waiting for its server's answer.
    backfills: HashMap<TicketKey, backfill::PendingBackfill>,
    next_open: OpenKey,
    /// This replica matches (it holds the store's lease, or nobody shares the store); a
    /// follower only mirrors the tickets another replica matches (see [`follow`]).
    matching: bool,
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

impl State {
    /// Empty state for these queues, recording every change in `store`.
    pub fn new(queues: &[QueueConfig], retention: Millis, metrics: Arc<Metrics>, store: Arc<dyn TicketStore>) -> Self {
        let queues = queues.iter().map(|q| (q.name.clone(), QueueRuntime::new(q))).collect();
        Self {
            queues,
            region_ids: HashMap::new(),
            region_names: Vec::new(),
            tickets: HashMap::new(),
            by_id: HashMap::new(),
            admission: Arc::new(Admission::default()),
            matches: HashMap::new(),
            deadlines: BTreeSet::new(),
            forget: BTreeSet::new(),
            next_key: 0,
            retention,
            metrics,
            store,
            arrivals: Vec::new(),
            running: HashMap::new(),
            backfills: HashMap::new(),
            next_open: 0,
            matching: true,
        }
    }

    /// Takes the matches formed and backfills placed outside a round since the last call.
    pub fn take_arrivals(&mut self) -> Vec<Job> {
        std::mem::take(&mut self.arrivals)
    }

    /// Hands the ticket's current form to the store.
    fn persist(&self, key: TicketKey) {
        if !self.store.keeps_changes() {
            return;
        }
        let Some(record) = self.tickets.get(&key) else { return };
        self.store.record(Change::Ticket(Box::new(StoredTicket {
            ticket: record.view.clone(),
            enqueued_at: record.enqueued_at,
            deadline: record.deadline,
            forget_at: record.forget_at,
            match_id: record.match_id,
        })));
    }

    /// A ticket just queued in `queue` joins a running match with room if one fits it, or
    /// else completes a new match if it can: now, not at the next tick.
    fn after_queued(&mut self, key: TicketKey, queue: &str, now: Millis) {
        if !self.matching {
            return;
        }
        if self.backfill_arrival(key, queue, now) {
            return;
        }
        let runtime = self.queues.get_mut(queue);
        if let Some((config, formed)) =
            runtime.and_then(|q| q.pool.match_arrival(key, now).map(|m| (q.config.clone(), m)))
        {
            let job = self.register_match(&config, formed, now);
            self.arrivals.push(Job::Match(job));
        }
    }

    fn intern_region(&mut self, name: &str) -> RegionId {
        if let Some(&id) = self.region_ids.get(name) {
            return id;
        }
        let id = self.region_names.len() as RegionId;
        self.region_names.push(name.to_owned());
        self.region_ids.insert(name.to_owned(), id);
        id
    }

    fn key_of(&self, id: &str) -> Result<TicketKey, Error> {
        Uuid::parse_str(id)
            .ok()
            .and_then(|uuid| self.by_id.get(&uuid).copied())
            .ok_or_else(|| Error::NotFound(format!("ticket `{id}`")))
    }

    /// The ticket with `id`.
    pub fn ticket(&self, id: &str) -> Result<Ticket, Error> {
        let key = self.key_of(id)?;
        Ok(self.tickets[&key].view.clone())
    }

    /// Ticket `id` if it has left `searching` (matched on arrival, or failed), without copying
    /// one that has not.
    pub fn ticket_if_moved_on(&self, id: Uuid) -> Option<Ticket> {
        let record = self.by_id.get(&id).and_then(|key| self.tickets.get(key))?;
        (record.view.state != TicketState::Searching).then(|| record.view.clone())
    }

    /// A stream of the ticket's states, starting with the current one.
    pub fn watch(&mut self, id: &str) -> Result<watch::Receiver<Arc<Ticket>>, Error> {
        let key = self.key_of(id)?;
        let record = self.tickets.get_mut(&key).ok_or_else(|| Error::NotFound(format!("ticket `{id}`")))?;
        let view = &record.view;
        Ok(record.events.get_or_insert_with(|| watch::channel(Arc::new(view.clone())).0).subscribe())
    }

    /// Cancels a ticket that is not assigned; a match it was in dissolves and its match-mates
    /// go back to searching with their original wait.
    pub fn cancel(&mut self, id: &str, now: Millis) -> Result<Ticket, Error> {
        let key = self.key_of(id)?;
        let record = &self.tickets[&key];
        let match_id = record.match_id;
        match record.view.state {
            TicketState::Cancelled => return Ok(record.view.clone()),
            TicketState::Searching => self.take_from_pool(key),
            TicketState::Matched => {}
            state => {
                return Err(Error::Conflict {
                    message: format!("ticket `{id}` is already {} and cannot be cancelled", state.as_str()),
                    field: None,
                });
            }
        }
        self.transition(key, TicketState::Cancelled, now, |t| t.reason = Some("cancelled by the caller".to_owned()));
        if let Some(match_id) = match_id {
            self.dissolve(match_id, now);
        }
        Ok(self.tickets[&key].view.clone())
    }

    fn take_from_pool(&mut self, key: TicketKey) {
        let Some(record) = self.tickets.get(&key) else { return };
        if let Some(queue) = self.queues.get_mut(&record.view.queue) {
            queue.pool.remove(key);
        }
    }

    /// Moves a ticket to `state`, applying `update` to its view, and keeps every index,
    /// the metrics and the event stream in step.
    fn transition(&mut self, key: TicketKey, state: TicketState, now: Millis, update: impl FnOnce(&mut Ticket)) {
        let retention = self.retention;
        let Some(record) = self.tickets.get_mut(&key) else { return };
        let from = record.view.state;
        record.view.state = state;
        record.view.updated_at = now_rfc3339();
        update(&mut record.view);
        self.metrics.ticket_state(&record.view.queue, Some(from), Some(state));
        tracing::debug!(ticket = %record.view.id, queue = %record.view.queue, from = from.as_str(), to = state.as_str(), "ticket state");
        if state.is_terminal() {
            self.deadlines.remove(&(record.deadline, key));
            record.match_id = None;
            if let Ok(id) = Uuid::parse_str(&record.view.id) {
                self.admission.release_players(&record.view.players, id);
            }
            record.forget_at = Some(now + retention);
            self.forget.insert((now + retention, key));
        }
        if let Some(events) = &record.events {
            if events.receiver_count() == 0 {
                record.events = None;
            } else {
                events.send_replace(Arc::new(record.view.clone()));
            }
        }
        self.persist(key);
    }

    /// Dissolves a waiting match: its tickets still `matched` return to searching.
    fn dissolve(&mut self, match_id: Uuid, now: Millis) {
        let Some(pending) = self.matches.remove(&match_id) else { return };
        self.store.record(Change::MatchDone(match_id));
        pending.wake.notify_one();
        tracing::info!(r#match = %match_id, queue = %pending.queue, "match dissolved; its other tickets search again");
        for key in pending.tickets {
            let Some(record) = self.tickets.get_mut(&key) else { continue };
            if record.view.state != TicketState::Matched {
                continue;
            }
            record.match_id = None;
            if self.requeue(key, &pending.queue) {
                self.transition(key, TicketState::Searching, now, |t| t.match_info = None);
                continue;
            }
            // A configuration reload removed or changed the queue while the match waited.
            let reason = match self.queues.contains_key(&pending.queue) {
                true => format!("no longer fits queue `{}` after a configuration change", pending.queue),
                false => format!("queue `{}` was removed from the configuration", pending.queue),
            };
            self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
        }
    }

    /// One whole engine round at `now` (see [`State::step`] for the sliced form the service
    /// runs): time out expired tickets, forget old ones, form matches. Returns the new matches
    /// for allocation.
    #[cfg(test)]
    pub fn tick(&mut self, now: Millis) -> Vec<Job> {
        let mut round = self.begin_round(now);
        let mut jobs = Vec::new();
        while !round.is_done() {
            jobs.extend(self.step(&mut round, usize::MAX));
        }
        jobs
    }

    /// Times out at most `budget` tickets whose deadline passed; `true` when none is left.
    fn expire(&mut self, now: Millis, budget: usize) -> bool {
        for _ in 0..budget {
            let Some(&(deadline, key)) = self.deadlines.first() else { return true };
            if deadline > now {
                return true;
            }
            self.deadlines.pop_first();
            let Some(record) = self.tickets.get(&key) else { continue };
            let (state, match_id) = (record.view.state, record.match_id);
            let reason = match state {
                TicketState::Searching => "no match formed within the queue's ticketTimeout",
                TicketState::Matched => "no game server became available within the queue's ticketTimeout",
                _ => continue,
            };
            if state == TicketState::Searching {
                self.take_from_pool(key);
            }
            self.transition(key, TicketState::TimedOut, now, |t| t.reason = Some(reason.to_owned()));
            if let Some(match_id) = match_id {
                self.dissolve(match_id, now);
            }
        }
        false
    }

    /// Forgets at most `budget` tickets whose retention ended; `true` when none is left.
    fn forget_expired(&mut self, now: Millis, budget: usize) -> bool {
        for _ in 0..budget {
            let Some(&(at, key)) = self.forget.first() else { return true };
            if at > now {
                return true;
            }
            self.forget.pop_first();
            let Some(record) = self.tickets.remove(&key) else { continue };
            self.metrics.ticket_state(&record.view.queue, Some(record.view.state), None);
            if let Ok(uuid) = Uuid::parse_str(&record.view.id) {
                self.by_id.remove(&uuid);
                self.store.record(Change::Forget(uuid));
                if let Some(idem) = &record.view.idempotency_key {
                    self.admission.forget_key(idem, uuid);
                }
            }
        }
        false
    }

    fn register_match(&mut self, config: &QueueConfig, formed: FormedMatch, now: Millis) -> MatchJob {
        let id = Uuid::new_v4();
        let teams: Vec<Vec<String>> = formed
            .teams
            .iter()
            .map(|team| {
                team.iter()
                    .filter_map(|k| self.tickets.get(k))
                    .flat_map(|r| r.view.players.iter().map(|p| p.id.clone()))
                    .collect()
            })
            .collect();
        let region = formed.region.and_then(|r| self.region_names.get(r as usize).cloned());
        let info = MatchInfo { id: id.to_string(), teams, region, formed_at: now_rfc3339() };
        let keys: Vec<TicketKey> = formed.tickets().collect();
        let waits: Vec<f64> = keys
            .iter()
            .filter_map(|k| self.tickets.get(k))
            .map(|r| seconds(now.saturating_sub(r.enqueued_at)))
            .collect();
        self.metrics.matched(&config.name, waits);
        // The match is stored before its tickets name it, so a reader never sees a ticket
        // waiting in a match it does not know.
        self.store.record(Change::Match(Box::new(StoredMatch {
            id,
            queue: config.name.clone(),
            tickets: keys
                .iter()
                .filter_map(|k| self.tickets.get(k))
                .filter_map(|r| Uuid::parse_str(&r.view.id).ok())
                .collect(),
            info: info.clone(),
            open: None,
        })));
        for &key in &keys {
            if let Some(record) = self.tickets.get_mut(&key) {
                record.match_id = Some(id);
            }
            self.transition(key, TicketState::Matched, now, |t| t.match_info = Some(Box::new(info.clone())));
        }
        tracing::info!(r#match = %id, queue = %config.name, tickets = keys.len(), region = ?info.region, "match formed");
        let request = allocation_request(config, &info, false);
        let wake = Arc::new(Notify::new());
        let window = config.backfill.is_some().then(|| OpenMatch::from_formed(&formed, 0));
        let pending = PendingMatch { queue: config.name.clone(), tickets: keys, info, wake: wake.clone(), window };
        self.matches.insert(id, pending);
        MatchJob { id, queue: config.name.clone(), request, wake }
    }

    /// The match still waits for a server (no ticket left it).
    pub fn is_pending(&self, match_id: Uuid) -> bool {
        self.matches.contains_key(&match_id)
    }

    /// Hands every ticket of the match the allocated server.
    pub fn assign(&mut self, match_id: Uuid, status: &GameServerAllocationStatus, now: Millis) -> AssignOutcome {
        let Some(pending) = self.matches.remove(&match_id) else { return AssignOutcome::Dissolved };
        let assignment = Assignment::new(status, match_id.to_string(), pending.info.teams.clone());
        let waits: Vec<f64> = pending
            .tickets
            .iter()
            .filter_map(|k| self.tickets.get(k))
            .map(|r| seconds(now.saturating_sub(r.enqueued_at)))
            .collect();
        let tickets = pending.tickets.iter().filter_map(|k| self.tickets.get(k)).map(|r| r.view.id.as_str());
        self.metrics.assigned(&pending.queue, waits, tickets, &status.game_server_name);
        for key in pending.tickets {
            self.transition(key, TicketState::Assigned, now, |t| t.assignment = Some(Box::new(assignment.clone())));
        }
        self.store.record(Change::MatchDone(match_id));
        tracing::info!(r#match = %match_id, gameserver = %status.game_server_name, address = %status.address, "match assigned");
        if let Some(window) = pending.window {
            self.open_match(match_id, &pending.queue, window, pending.info, status, now);
        }
        AssignOutcome::Assigned
    }

    /// Fails every ticket of the match (the allocation can never succeed).
    pub fn fail(&mut self, match_id: Uuid, reason: &str, now: Millis) {
        let Some(pending) = self.matches.remove(&match_id) else { return };
        tracing::warn!(r#match = %match_id, queue = %pending.queue, reason, "match failed");
        for key in pending.tickets {
            self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason.to_owned()));
        }
        self.store.record(Change::MatchDone(match_id));
    }
}

/// The GameServerAllocation for a match: the queue's target, narrowed to the match's region
/// when the latency rule names a region label, with the configured metadata rendered and the
/// match id always in the `stadion.dev/match-id` label. `adopt` (a match resumed after a
/// restart) first asks for the Allocated server already labelled with the match's id, so a
/// server allocated just before a crash is adopted rather than leaked.
fn allocation_request(config: &QueueConfig, info: &MatchInfo, adopt: bool) -> Result<AdmittedAllocation, FieldErrors> {
    let mut selectors = config.allocation.selectors.clone();
    if let (Some(label), Some(region)) = (config.latency.as_ref().and_then(|l| l.region_label.as_ref()), &info.region) {
        if selectors.is_empty() {
            selectors.push(Default::default());
        }
        for selector in &mut selectors {
            selector
                .label_selector
                .match_labels
                .get_or_insert_with(Default::default)
                .insert(label.clone(), region.clone());
        }
    }
    let vars = TemplateVars {
        match_id: &info.id,
        queue: &config.name,
        region: info.region.as_deref().unwrap_or(""),
        teams: &info.teams,
    };
    let mut metadata = config.metadata.render(&vars);
    metadata.labels.entry(MATCH_ID_LABEL.to_owned()).or_insert_with(|| info.id.clone());
    let mut spec = GameServerAllocationSpec::default();
    if let Some(tracker) = config.backfill.as_ref().and_then(|b| b.seats()) {
        // The match's players take their seats in the same write that allocates the server.
        let players: Vec<String> = info.teams.iter().flatten().cloned().collect();
        backfill::reserve_seats(tracker, &mut selectors, &mut spec, &players);
    }
    if adopt {
        if selectors.is_empty() {
            // No selectors means any Ready server; keep that after the adopting one.
            selectors.push(Default::default());
        }
        let mut own = GameServerSelector::default();
        own.label_selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(MATCH_ID_LABEL.to_owned(), info.id.clone());
        own.game_server_state = Some(GameServerState::Allocated);
        selectors.insert(0, own);
    }
    let mut request = GameServerAllocation::new(GameServerAllocationSpec {
        selectors,
        scheduling: Some(config.allocation.scheduling),
        metadata: Some(metadata),
        ..spec
    });
    request.metadata.namespace = Some(config.allocation.namespace.clone());
    // The one admission of a match's request: defaults and every rule, in core.
    admit_allocation(request)
}

#[cfg(test)]
mod tests;
