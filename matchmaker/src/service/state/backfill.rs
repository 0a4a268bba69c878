//! Backfill in the ticket state: running matches that take late joiners, and the tickets on
//! their way into one.
//!
//! A match of a queue with `backfill` opens once its server is allocated, with the seats the
//! server reported free in its list or counter. A new ticket — on arrival, or at a round while
//! it searches — is placed into an open match by the engine ([`crate::engine::OpenMatches`])
//! before it may form a new match. It is then `matched` to that match while an allocation
//! request re-allocates the match's server: a selector on the match's id label, state
//! Allocated and enough room, with the players added to the list (or the counter incremented),
//! all in the allocator's one compare-and-swap. The server's answer either assigns the ticket
//! to the same address and match id, or (no room, server gone or back to Ready) closes the
//! match and sends the ticket back to search.
//!
//! A match that closes while other tickets are still on their way in stays, stored with no
//! room, until the last of them has its answer: after a restart each of those then only asks
//! whether its players are on the server already (see [`super::restore`]), so a ticket whose
//! write landed just before the crash is not matched a second time elsewhere.

use std::collections::BTreeMap;

use stadion_core::allocator::{AdmittedAllocation, admit_allocation};
use stadion_crds::FieldErrors;
use stadion_crds::allocation::{
    CounterAction, CounterActionKind, CounterSelector, GameServerAllocation, GameServerAllocationSpec,
    GameServerAllocationStatus, GameServerSelector, ListAction, ListSelector,
};
use stadion_crds::gameserver::GameServerState;
use uuid::Uuid;

use super::{Job, State, seconds};
use crate::config::{MATCH_ID_LABEL, QueueConfig, SeatTracker};
use crate::engine::{Millis, OpenKey, OpenMatch, Placement, TicketKey};
use crate::store::{Change, StoredMatch, StoredOpen};
use crate::ticket::{Assignment, MatchInfo, TicketState};

/// A running match of a backfill queue, for as long as it is open, and after it closed for as
/// long as tickets are still on their way into it.
#[derive(Clone, Debug)]
pub(super) struct RunningMatch {
    pub(super) id: Uuid,
    pub(super) queue: String,
    pub(super) namespace: String,
    pub(super) info: MatchInfo,
    /// Closed to late joiners (its server full or gone, or its queue changed); kept until the
    /// tickets still on their way in have their answers (see [`State::close_running`]).
    pub(super) closed: bool,
}

/// A ticket placed into an open match, waiting for the server's answer.
#[derive(Debug)]
pub(super) struct PendingBackfill {
    pub(super) open: OpenKey,
    pub(super) queue: String,
    pub(super) team: usize,
    pub(super) size: u32,
}

/// A late ticket's allocation: re-allocating its match's server with room for its players.
#[derive(Debug)]
pub struct BackfillJob {
    /// The ticket placed.
    pub ticket: TicketKey,
    /// The match it joins.
    pub match_id: Uuid,
    /// The request, admitted (or why it could not be).
    pub request: Result<AdmittedAllocation, FieldErrors>,
}

/// What the service does after a backfill's server answered.
#[derive(Debug)]
pub enum BackfillAnswer {
    /// The ticket is assigned.
    Assigned,
    /// The ticket left (cancelled or timed out) while its players were being added: take them
    /// off the server again with this request.
    Undo(Box<Result<AdmittedAllocation, FieldErrors>>),
}

/// Seats free in `status` for `tracker`, if the server has that list or counter.
pub(super) fn seats_free(tracker: SeatTracker<'_>, status: &GameServerAllocationStatus) -> Option<u32> {
    let free = match tracker {
        SeatTracker::List(name) => status.lists.get(name).map(|l| l.capacity - l.values.len() as i64),
        SeatTracker::Counter(name) => status.counters.get(name).map(|c| c.capacity - c.count),
    }?;
    Some(u32::try_from(free.max(0)).unwrap_or(u32::MAX))
}

/// Narrows `selectors` (none: any Ready server) to servers with room for `players`, and adds
/// them to the list or counter in `spec`: how a backfill queue's match takes its server.
pub(super) fn reserve_seats(
    tracker: SeatTracker<'_>,
    selectors: &mut Vec<GameServerSelector>,
    spec: &mut GameServerAllocationSpec,
    players: &[String],
) {
    if selectors.is_empty() {
        selectors.push(GameServerSelector::default());
    }
    let needed = players.len() as i64;
    for selector in selectors.iter_mut() {
        match tracker {
            SeatTracker::List(name) => {
                let list = selector.lists.entry(name.to_owned()).or_insert_with(ListSelector::default);
                list.min_available = list.min_available.max(needed);
            }
            SeatTracker::Counter(name) => {
                let counter = selector.counters.entry(name.to_owned()).or_insert_with(CounterSelector::default);
                counter.min_available = counter.min_available.max(needed);
            }
        }
    }
    change_seats(tracker, spec, players, CounterActionKind::Increment);
}

fn change_seats(
    tracker: SeatTracker<'_>,
    spec: &mut GameServerAllocationSpec,
    players: &[String],
    kind: CounterActionKind,
) {
    match tracker {
        SeatTracker::List(name) => {
            let action = match kind {
                CounterActionKind::Increment => ListAction { add_values: players.to_vec(), ..Default::default() },
                CounterActionKind::Decrement => ListAction { delete_values: players.to_vec(), ..Default::default() },
            };
            spec.lists.insert(name.to_owned(), action);
        }
        SeatTracker::Counter(name) => {
            let amount = Some(players.len() as i64);
            spec.counters.insert(name.to_owned(), CounterAction { action: Some(kind), amount, capacity: None });
        }
    }
}

/// The request that re-allocates `running`'s server with `players` added (or, for an undo,
/// removed): only while it is still Allocated to this match and, when adding, has room.
/// `adopt` (a list's value, for a placement resumed after a restart) first takes the server
/// when that value is already in its list: the players were seated before the restart, and
/// adding them again changes nothing.
pub(super) fn seat_request(
    config: &QueueConfig,
    tracker: SeatTracker<'_>,
    running: &RunningMatch,
    players: &[String],
    kind: CounterActionKind,
    adopt: Option<&str>,
) -> Result<AdmittedAllocation, FieldErrors> {
    let mut selectors = vec![match_server(running)];
    let mut spec = GameServerAllocationSpec::default();
    match kind {
        CounterActionKind::Increment => reserve_seats(tracker, &mut selectors, &mut spec, players),
        CounterActionKind::Decrement => change_seats(tracker, &mut spec, players, kind),
    }
    if let (Some(value), SeatTracker::List(name)) = (adopt, tracker) {
        selectors.insert(0, holding(running, name, value));
    }
    spec.selectors = selectors;
    admit_on_server(config, running, spec)
}

/// The request that takes `running`'s server only while `value` is already in its list `list`,
/// and changes nothing on it: how a ticket whose match closed before a restart learns whether
/// its players took their seats (found) or not (no server).
pub(super) fn adopt_request(
    config: &QueueConfig,
    list: &str,
    running: &RunningMatch,
    value: &str,
) -> Result<AdmittedAllocation, FieldErrors> {
    let spec = GameServerAllocationSpec { selectors: vec![holding(running, list, value)], ..Default::default() };
    admit_on_server(config, running, spec)
}

/// `running`'s server, while it is still Allocated to that match.
fn match_server(running: &RunningMatch) -> GameServerSelector {
    let mut selector = GameServerSelector::default();
    selector
        .label_selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MATCH_ID_LABEL.to_owned(), running.id.to_string());
    selector.game_server_state = Some(GameServerState::Allocated);
    selector
}

/// `running`'s server, while it is Allocated to that match and `value` is in its list `list`.
fn holding(running: &RunningMatch, list: &str, value: &str) -> GameServerSelector {
    let mut selector = match_server(running);
    selector.lists.insert(list.to_owned(), ListSelector { contains_value: value.to_owned(), ..Default::default() });
    selector
}

/// Admits `spec` as a request in `running`'s namespace with the queue's scheduling.
fn admit_on_server(
    config: &QueueConfig,
    running: &RunningMatch,
    mut spec: GameServerAllocationSpec,
) -> Result<AdmittedAllocation, FieldErrors> {
    spec.scheduling = Some(config.allocation.scheduling);
    let mut request = GameServerAllocation::new(spec);
    request.metadata.namespace = Some(running.namespace.clone());
    admit_allocation(request)
}

impl State {
    /// Opens the match `id` just assigned the server in `status`, if its queue backfills and its server
    /// reported free seats, and fills it from the queue's searching tickets at once.
    pub(super) fn open_match(
        &mut self,
        id: Uuid,
        queue: &str,
        window: OpenMatch,
        info: MatchInfo,
        status: &GameServerAllocationStatus,
        now: Millis,
    ) {
        let Some(runtime) = self.queues.get(queue) else { return };
        let config = runtime.config.clone();
        let Some(tracker) = config.backfill.as_ref().and_then(|b| b.seats()) else { return };
        let Some(room) = seats_free(tracker, status) else {
            tracing::warn!(r#match = %id, gameserver = %status.game_server_name, ?tracker, "backfill queue's server has no such list or counter; the match takes no late joiners");
            return;
        };
        if room == 0 {
            return;
        }
        let key = self.next_open;
        self.next_open += 1;
        let namespace = config.allocation.namespace.clone();
        self.running.insert(key, RunningMatch { id, queue: queue.to_owned(), namespace, info, closed: false });
        if let Some(runtime) = self.queues.get_mut(queue) {
            runtime.open.open(key, OpenMatch { room, in_flight: 0, ..window });
        }
        self.record_open(key);
        tracing::info!(r#match = %id, queue, room, "match open for late joiners");
        self.fill_open(queue, key, now);
    }

    /// Places searching tickets of `queue` into open match `key` while it has room.
    fn fill_open(&mut self, queue: &str, key: OpenKey, now: Millis) {
        let Some(runtime) = self.queues.get_mut(queue) else { return };
        let placed = runtime.pool.fill_open(&mut runtime.open, key, now);
        for (ticket, placement) in placed {
            self.start_backfill(ticket, queue, placement, now);
        }
    }

    /// Fills every open match of `queue` that has room (a round does this before forming new
    /// matches, so waiting tickets whose windows widened join running matches first).
    pub(super) fn fill_queue(&mut self, queue: &str, now: Millis) {
        let Some(runtime) = self.queues.get(queue) else { return };
        for key in runtime.open.with_room() {
            self.fill_open(queue, key, now);
        }
    }

    /// Places ticket `key`, just queued in `queue`, into an open match; `true` if it was.
    pub(super) fn backfill_arrival(&mut self, key: TicketKey, queue: &str, now: Millis) -> bool {
        let Some(runtime) = self.queues.get_mut(queue) else { return false };
        if runtime.open.is_empty() {
            return false;
        }
        let Some(placement) = runtime.pool.backfill_arrival(key, &mut runtime.open, now) else { return false };
        self.start_backfill(key, queue, placement, now);
        true
    }

    /// Moves a placed ticket to `matched` in its running match and queues its allocation.
    fn start_backfill(&mut self, key: TicketKey, queue: &str, placement: Placement, now: Millis) {
        let Some(running) = self.running.get_mut(&placement.open) else { return };
        let Some(record) = self.tickets.get(&key) else { return };
        let players: Vec<String> = record.view.players.iter().map(|p| p.id.clone()).collect();
        if let Some(team) = running.info.teams.get_mut(placement.team) {
            team.extend(players.iter().cloned());
        }
        let info = running.info.clone();
        let match_id = running.id;
        let request = match self.queues.get(queue).map(|q| q.config.clone()) {
            Some(config) => match config.backfill.as_ref().and_then(|b| b.seats()) {
                Some(tracker) => seat_request(&config, tracker, running, &players, CounterActionKind::Increment, None),
                None => Err(FieldErrors(vec![stadion_crds::FieldError::new("backfill", "no list or counter")])),
            },
            None => Err(FieldErrors(vec![stadion_crds::FieldError::new("queue", "removed")])),
        };
        let size = players.len() as u32;
        self.backfills
            .insert(key, PendingBackfill { open: placement.open, queue: queue.to_owned(), team: placement.team, size });
        self.transition(key, TicketState::Matched, now, |t| t.match_info = Some(Box::new(info)));
        tracing::info!(ticket = %self.tickets[&key].view.id, r#match = %match_id, team = placement.team, "ticket placed into a running match");
        self.arrivals.push(Job::Backfill(BackfillJob { ticket: key, match_id, request }));
    }

    /// Running matches open to late joiners, over every queue.
    #[cfg(test)]
    pub fn open_matches(&self) -> usize {
        self.queues.values().map(|q| q.open.len()).sum()
    }

    /// Tickets placed into a running match whose server has not answered yet.
    #[cfg(test)]
    pub fn backfills_in_flight(&self) -> usize {
        self.backfills.len()
    }

    /// The ticket still waits for its backfill's answer.
    pub fn is_backfilling(&self, ticket: TicketKey) -> bool {
        self.backfills.contains_key(&ticket)
            && self.tickets.get(&ticket).is_some_and(|r| r.view.state == TicketState::Matched)
    }

    /// The server took the ticket's players: assign it the match's server, and keep the match
    /// open with the seats the server reports free. A ticket that left meanwhile gets its
    /// players taken off again, even when that write closed the match.
    pub fn backfill_assigned(
        &mut self,
        ticket: TicketKey,
        status: &GameServerAllocationStatus,
        now: Millis,
    ) -> BackfillAnswer {
        let Some(pending) = self.backfills.remove(&ticket) else { return BackfillAnswer::Assigned };
        let config = self.queues.get(&pending.queue).map(|q| q.config.clone());
        let tracker = config.as_ref().and_then(|c| c.backfill.as_ref()).and_then(|b| b.seats());
        let reported = tracker.and_then(|t| seats_free(t, status)).unwrap_or(0);
        // Kept for an undo: a full server closes the match, yet the players still come off.
        let running = self.running.get(&pending.open).cloned();
        let mut closed = true;
        if let Some(runtime) = self.queues.get_mut(&pending.queue) {
            runtime.open.confirm(pending.open, pending.size, reported);
            closed = runtime.open.get(pending.open).is_none();
        }
        let Some(record) = self.tickets.get(&ticket) else {
            self.answered(pending.open, closed);
            return BackfillAnswer::Assigned;
        };
        let players: Vec<String> = record.view.players.iter().map(|p| p.id.clone()).collect();
        if record.view.state != TicketState::Matched {
            self.leave_team(ticket, &pending);
            // Its seats come free once the undo is written; the next answer reports them.
            if let Some(runtime) = self.queues.get_mut(&pending.queue) {
                runtime.open.left(pending.open, pending.team, pending.size);
            }
            self.answered(pending.open, closed);
            let undo = match (config.as_deref(), tracker, running.as_ref()) {
                (Some(config), Some(tracker), Some(running)) => {
                    seat_request(config, tracker, running, &players, CounterActionKind::Decrement, None)
                }
                _ => Err(FieldErrors(vec![stadion_crds::FieldError::new("backfill", "match closed")])),
            };
            return BackfillAnswer::Undo(Box::new(undo));
        }
        let teams = record.view.match_info.as_ref().map(|m| m.teams.clone()).unwrap_or_default();
        let match_id = record.view.match_info.as_ref().map(|m| m.id.clone()).unwrap_or_default();
        let assignment = Assignment::new(status, match_id, teams);
        let wait = seconds(now.saturating_sub(record.enqueued_at));
        self.metrics.assigned(&pending.queue, vec![wait], [record.view.id.as_str()], &status.game_server_name);
        self.transition(ticket, TicketState::Assigned, now, |t| t.assignment = Some(Box::new(assignment)));
        // After the assignment: a store that kept only the match's end would send the ticket,
        // seated, searching again after a restart.
        self.answered(pending.open, closed);
        if let Some(queue) = self.queues.get(&pending.queue)
            && queue.open.get(pending.open).is_some_and(|m| m.room > 0)
        {
            let queue = pending.queue.clone();
            self.fill_open(&queue, pending.open, now);
        }
        BackfillAnswer::Assigned
    }

    /// The server refused the ticket's players (full, shut down, or no longer Allocated to the
    /// match): the match closes, and the ticket, if still waiting, searches again — for another
    /// open match or a new one.
    pub fn backfill_refused(&mut self, ticket: TicketKey, now: Millis) {
        let Some(pending) = self.backfills.remove(&ticket) else { return };
        if let Some(runtime) = self.queues.get_mut(&pending.queue) {
            runtime.open.close(pending.open);
        }
        if let Some(running) = self.close_running(pending.open) {
            tracing::info!(r#match = %running.id, queue = %running.queue, "running match closed to late joiners: its server has no room or is gone");
        }
        // Every other ticket on its way into that match learns from its own answer whether its
        // players were seated before the server filled or left the match.
        self.search_again(ticket, &pending.queue, now);
    }

    /// The backfill's call failed for a passing reason and the ticket gives its seats back:
    /// it searches again.
    pub fn backfill_abandoned(&mut self, ticket: TicketKey, now: Millis) {
        let Some(pending) = self.backfills.remove(&ticket) else { return };
        if let Some(runtime) = self.queues.get_mut(&pending.queue) {
            runtime.open.give_back(pending.open, pending.team, pending.size);
        }
        self.leave_team(ticket, &pending);
        if self.running.get(&pending.open).is_some_and(|r| r.closed) {
            self.close_running(pending.open);
        }
        self.search_again(ticket, &pending.queue, now);
    }

    /// Takes a ticket's players off the team it was placed on in its running match's teams.
    fn leave_team(&mut self, ticket: TicketKey, pending: &PendingBackfill) {
        let Some(record) = self.tickets.get(&ticket) else { return };
        let Some(running) = self.running.get_mut(&pending.open) else { return };
        if let Some(team) = running.info.teams.get_mut(pending.team) {
            team.retain(|id| !record.view.players.iter().any(|p| &p.id == id));
        }
    }

    /// Forgets running matches no longer open (their queue changed or was removed).
    pub(super) fn prune_running(&mut self) {
        let closed: Vec<OpenKey> = self
            .running
            .iter()
            .filter(|(key, running)| self.queues.get(&running.queue).is_none_or(|q| q.open.get(**key).is_none()))
            .map(|(key, _)| *key)
            .collect();
        for key in closed {
            self.close_running(key);
        }
    }

    /// A backfill into running match `key` has its answer: the match, if that (or an earlier
    /// answer) closed it, is closed; otherwise stored as the server now confirmed it.
    fn answered(&mut self, key: OpenKey, closed: bool) {
        if closed {
            self.close_running(key);
        } else {
            self.record_open(key);
        }
    }

    /// Closes running match `key` to late joiners and forgets it, in the store too, once no
    /// ticket is on its way into it. Until then it stays, stored with no room, so that after a
    /// restart those tickets ask whether their players took their seats rather than search
    /// again while they may hold one. Returns the match if it was open until now.
    pub(super) fn close_running(&mut self, key: OpenKey) -> Option<RunningMatch> {
        let in_flight = self.backfills.values().any(|b| b.open == key);
        let running = self.running.get_mut(&key)?;
        let was_open = !std::mem::replace(&mut running.closed, true);
        let closing = was_open.then(|| running.clone());
        if !in_flight {
            let id = running.id;
            self.running.remove(&key);
            self.store.record(Change::MatchDone(id));
        } else if was_open {
            self.record_open(key);
        }
        closing
    }

    /// Stores running match `key` as its server last confirmed it: without the players still on
    /// their way in, and (while it is open) with their seats counted free, so a restart places
    /// them again. A closed one is stored with no room, which a restart never reopens.
    pub(super) fn record_open(&self, key: OpenKey) {
        if !self.store.keeps_changes() {
            return;
        }
        let Some(running) = self.running.get(&key) else { return };
        let open = self.queues.get(&running.queue).and_then(|q| q.open.get(key));
        let mut info = running.info.clone();
        let mut in_flight: u32 = 0;
        for (ticket, pending) in self.backfills.iter().filter(|(_, b)| b.open == key) {
            in_flight = in_flight.saturating_add(pending.size);
            if let (Some(team), Some(record)) = (info.teams.get_mut(pending.team), self.tickets.get(ticket)) {
                team.retain(|id| !record.view.players.iter().any(|p| &p.id == id));
            }
        }
        let stored = match open {
            _ if running.closed => StoredOpen::closed(running.namespace.clone()),
            Some(open) => StoredOpen {
                namespace: running.namespace.clone(),
                skill_low: open.skill_low,
                skill_high: open.skill_high,
                spread: open.spread.is_finite().then_some(open.spread),
                room: open.room.saturating_add(in_flight),
            },
            // Between its server's answer and its closing.
            None => return,
        };
        self.store.record(Change::Match(Box::new(StoredMatch {
            id: running.id,
            queue: running.queue.clone(),
            tickets: Vec::new(),
            info,
            open: Some(stored),
        })));
    }

    fn search_again(&mut self, ticket: TicketKey, queue: &str, now: Millis) {
        let Some(record) = self.tickets.get(&ticket) else { return };
        if record.view.state != TicketState::Matched {
            return;
        }
        if !self.requeue(ticket, queue) {
            let reason = format!("queue `{queue}` no longer takes this ticket");
            self.transition(ticket, TicketState::Failed, now, |t| t.reason = Some(reason));
            return;
        }
        self.transition(ticket, TicketState::Searching, now, |t| t.match_info = None);
        self.after_queued(ticket, queue, now);
    }
}

#[cfg(test)]
mod tests;
