//! Resuming from what the store kept: tickets keep their state, wait, timeout, retention and
//! idempotency key; searching ones go back into their queue's pool; a match that waited for a
//! server waits again and first looks for the server it may already have been given; a running
//! match open to late joiners opens again, and a ticket that was on its way into it is placed
//! again, first looking for its players already on the server; a ticket on its way into a
//! match that closed meanwhile only looks for them, and searches again if they are not there.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use uuid::Uuid;

use stadion_crds::allocation::CounterActionKind;

use super::backfill::{PendingBackfill, RunningMatch, adopt_request, seat_request};
use super::{BackfillJob, Job, MatchJob, PendingMatch, Record, State, allocation_request};
use crate::config::{QueueConfig, SeatTracker};
use crate::engine::{EngineTicket, Millis, OpenKey, OpenMatch, Rules, TicketKey, skill_window};
use crate::service::submit;
use crate::store::{Change, Stored, StoredMatch, StoredTicket};
use crate::ticket::{MatchInfo, TicketState};

/// A match resumed after a restart gets at least this long to adopt or allocate its server
/// before its tickets' timeout can dissolve it (a dissolved match could not give back a server
/// allocated to it just before the crash).
pub const ADOPT_GRACE: Millis = 10_000;

impl State {
    /// Loads `stored` into this (empty) state at `now` and returns the matches to allocate
    /// again. Searching tickets of a queue that is gone or whose rules they no longer fit fail,
    /// as on a reload; a matched ticket whose match cannot resume searches again.
    pub fn restore(&mut self, stored: Stored, now: Millis) -> Vec<Job> {
        let mut keys: HashMap<Uuid, TicketKey> = HashMap::new();
        for ticket in stored.tickets {
            if let Some((id, key)) = self.restore_ticket(ticket, now) {
                keys.insert(id, key);
            }
        }
        if !self.matching {
            // A follower keeps the tickets as they are; the replica that matches resumes them.
            tracing::info!(tickets = self.tickets.len(), "matchmaker state loaded (following)");
            return Vec::new();
        }
        let mut jobs = Vec::new();
        let mut reopened = 0;
        for m in stored.matches {
            if m.open.is_some() {
                reopened += usize::from(self.reopen(m));
            } else if let Some(job) = self.restore_match(m, &keys, now) {
                jobs.push(Job::Match(job));
            }
        }
        let orphans: Vec<TicketKey> = self
            .tickets
            .iter()
            .filter(|(_, r)| r.view.state == TicketState::Matched)
            .filter(|(_, r)| r.match_id.is_none_or(|id| !self.matches.contains_key(&id)))
            .map(|(key, _)| *key)
            .collect();
        for key in orphans {
            if let Some(job) = self.resume_backfill(key, now) {
                jobs.push(Job::Backfill(job));
                continue;
            }
            let Some(record) = self.tickets.get_mut(&key) else { continue };
            record.match_id = None;
            let queue = record.view.queue.clone();
            if self.requeue(key, &queue) {
                self.transition(key, TicketState::Searching, now, |t| t.match_info = None);
            } else {
                let reason = format!("queue `{queue}` no longer takes this ticket after a restart");
                self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
            }
        }
        // A closed match kept for tickets none of which still asks about it is done.
        let done: Vec<OpenKey> = self
            .running
            .iter()
            .filter(|(key, running)| running.closed && !self.backfills.values().any(|b| b.open == **key))
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            self.close_running(key);
        }
        tracing::info!(tickets = self.tickets.len(), jobs = jobs.len(), reopened, "matchmaker state restored");
        jobs
    }

    pub(super) fn restore_ticket(&mut self, stored: StoredTicket, now: Millis) -> Option<(Uuid, TicketKey)> {
        let id = Uuid::parse_str(&stored.ticket.id).ok()?;
        if self.by_id.contains_key(&id) {
            return None;
        }
        let key = self.next_key;
        self.next_key += 1;
        let view = stored.ticket;
        let (state, queue) = (view.state, view.queue.clone());
        let terminal = state.is_terminal();
        self.metrics.ticket_state(&queue, None, Some(state));
        if !terminal && self.matching {
            self.deadlines.insert((stored.deadline, key));
        }
        let fingerprint = submit::fingerprint(&view.queue, &view.players);
        self.admission.restore(&view, id, fingerprint);
        self.by_id.insert(id, key);
        let forget_at = terminal.then(|| stored.forget_at.unwrap_or(now + self.retention));
        if let Some(at) = forget_at {
            self.forget.insert((at, key));
        }
        let record = Record {
            events: None,
            view,
            enqueued_at: stored.enqueued_at,
            deadline: stored.deadline,
            match_id: stored.match_id.filter(|_| state == TicketState::Matched),
            forget_at,
        };
        self.tickets.insert(key, record);
        if self.matching && state == TicketState::Searching && !self.requeue(key, &queue) {
            let reason = format!("no longer fits queue `{queue}` after a restart");
            self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
        }
        Some((id, key))
    }

    /// Resumes a match whose tickets all still wait in it; otherwise forgets it (its tickets
    /// search again, see [`State::restore`]).
    fn restore_match(&mut self, m: StoredMatch, keys: &HashMap<Uuid, TicketKey>, now: Millis) -> Option<MatchJob> {
        let members: Option<Vec<TicketKey>> = m.tickets.iter().map(|id| keys.get(id).copied()).collect();
        let config = self.queues.get(&m.queue).map(|q| q.config.clone());
        let intact = members.as_ref().is_some_and(|members| {
            members.iter().all(|k| {
                self.tickets.get(k).is_some_and(|r| r.view.state == TicketState::Matched && r.match_id == Some(m.id))
            })
        });
        let (Some(members), Some(config), true) = (members, config, intact) else {
            tracing::info!(r#match = %m.id, queue = %m.queue, "stored match not resumed; its tickets search again");
            self.store.record(Change::MatchDone(m.id));
            return None;
        };
        for &key in &members {
            self.extend_deadline(key, now);
        }
        tracing::info!(r#match = %m.id, queue = %m.queue, tickets = members.len(), "match resumed; allocating its server again");
        let request = allocation_request(&config, &m.info, true);
        let wake = Arc::new(Notify::new());
        let window = config.backfill.is_some().then(|| self.window_of(&config, &members, &m.info)).flatten();
        self.matches.insert(
            m.id,
            PendingMatch { queue: m.queue.clone(), tickets: members, info: m.info, wake: wake.clone(), window },
        );
        Some(MatchJob { id: m.id, queue: m.queue, request, wake })
    }
}

impl State {
    /// Reopens a running match stored open to late joiners if its queue still backfills and its
    /// server had room. Its server is not asked now: the first late joiner's request only
    /// succeeds while the server is still Allocated to the match with room, and closes it if
    /// not. One stored with no room closed while tickets were on their way in: it stays closed,
    /// kept only for those tickets to ask whether their players took their seats. A match whose
    /// queue no longer backfills is forgotten.
    fn reopen(&mut self, m: StoredMatch) -> bool {
        let Some(stored) = m.open else { return false };
        let tracked = self.queues.get(&m.queue).and_then(|q| q.config.backfill.as_ref()).and_then(|b| b.seats());
        if tracked.is_none() {
            tracing::info!(r#match = %m.id, queue = %m.queue, "stored running match not reopened: its queue no longer backfills");
            self.store.record(Change::MatchDone(m.id));
            return false;
        }
        if stored.room == 0 {
            let key = self.next_open;
            self.next_open += 1;
            tracing::info!(r#match = %m.id, queue = %m.queue, "stored running match kept closed: tickets on their way into it ask whether they took their seats");
            let running =
                RunningMatch { id: m.id, queue: m.queue, namespace: stored.namespace, info: m.info, closed: true };
            self.running.insert(key, running);
            return false;
        }
        let region = m.info.region.as_deref().map(|name| self.intern_region(name));
        let window = OpenMatch {
            region,
            skill_low: stored.skill_low,
            skill_high: stored.skill_high,
            spread: stored.spread.unwrap_or(f64::INFINITY),
            team_sizes: m.info.teams.iter().map(|team| team.len() as u32).collect(),
            room: stored.room,
            in_flight: 0,
        };
        let key = self.next_open;
        self.next_open += 1;
        if let Some(runtime) = self.queues.get_mut(&m.queue) {
            runtime.open.open(key, window);
        }
        tracing::info!(r#match = %m.id, queue = %m.queue, room = stored.room, "running match reopened for late joiners");
        let running =
            RunningMatch { id: m.id, queue: m.queue, namespace: stored.namespace, info: m.info, closed: false };
        self.running.insert(key, running);
        true
    }

    /// Places again a ticket that was on its way into a running match when the matchmaker
    /// stopped, if that match reopened and still has its seats: its request first looks for
    /// the players already on the server (with a list, their id in it), so a write that landed
    /// just before the stop is adopted rather than made twice. Into a match that closed, it is
    /// only asked after (see [`State::resolve_backfill`]).
    fn resume_backfill(&mut self, key: TicketKey, now: Millis) -> Option<BackfillJob> {
        let record = self.tickets.get(&key)?;
        let match_id = record.view.match_info.as_ref().and_then(|m| Uuid::parse_str(&m.id).ok())?;
        let (open_key, running) = self.running.iter().find(|(_, r)| r.id == match_id)?;
        let open_key = *open_key;
        if running.closed {
            return self.resolve_backfill(key, open_key, now);
        }
        let queue = record.view.queue.clone();
        let players: Vec<String> = record.view.players.iter().map(|p| p.id.clone()).collect();
        let placed_on = team_of(record.view.match_info.as_deref(), &players);
        let engine = self.engine_ticket(key, &queue)?;
        let config = self.queues.get(&queue).map(|q| q.config.clone())?;
        let tracker = config.backfill.as_ref().and_then(|b| b.seats())?;
        let runtime = self.queues.get_mut(&queue)?;
        let open = runtime.open.get(open_key)?;
        if engine.size > open.room || open.team_sizes.is_empty() {
            return None;
        }
        let team = placed_on.filter(|&t| t < open.team_sizes.len()).unwrap_or(0);
        runtime.open.take(open_key, &engine, team);
        let running = self.running.get_mut(&open_key)?;
        if let Some(members) = running.info.teams.get_mut(team) {
            members.extend(players.iter().filter(|p| !members.contains(p)).cloned().collect::<Vec<_>>());
        }
        let adopt = match tracker {
            SeatTracker::List(_) => players.first().map(String::as_str),
            SeatTracker::Counter(counter) => {
                tracing::warn!(r#match = %match_id, counter, "a ticket was on its way into a running match at restart; a counter cannot tell whether its seats were taken, so they may be counted twice");
                None
            }
        };
        let request = seat_request(&config, tracker, running, &players, CounterActionKind::Increment, adopt);
        self.extend_deadline(key, now);
        let size = engine.size;
        self.backfills.insert(key, PendingBackfill { open: open_key, queue, team, size });
        tracing::info!(ticket = %self.tickets[&key].view.id, r#match = %match_id, "ticket placed into a running match again after a restart");
        Some(BackfillJob { ticket: key, match_id, request })
    }

    /// Asks after a ticket that was on its way into a running match that closed (its server
    /// full or gone) before the stop. With a list: for the match's server with the ticket's first
    /// player already in it, adding nothing, so a write that landed assigns the ticket there
    /// and one that did not sends it searching again, never into the closed match. A counter
    /// cannot tell: the ticket searches again.
    fn resolve_backfill(&mut self, key: TicketKey, open_key: OpenKey, now: Millis) -> Option<BackfillJob> {
        let record = self.tickets.get(&key)?;
        let queue = record.view.queue.clone();
        let players: Vec<String> = record.view.players.iter().map(|p| p.id.clone()).collect();
        let team = team_of(record.view.match_info.as_deref(), &players).unwrap_or(0);
        let config = self.queues.get(&queue).map(|q| q.config.clone())?;
        let running = self.running.get(&open_key)?;
        let match_id = running.id;
        let request = match config.backfill.as_ref().and_then(|b| b.seats())? {
            SeatTracker::List(list) => adopt_request(&config, list, running, players.first()?),
            SeatTracker::Counter(counter) => {
                tracing::warn!(r#match = %match_id, counter, "a ticket was on its way into a running match that closed before the restart; a counter cannot tell whether its seats were taken, so it searches again and they may stay counted on that server");
                return None;
            }
        };
        self.extend_deadline(key, now);
        let size = players.len() as u32;
        self.backfills.insert(key, PendingBackfill { open: open_key, queue, team, size });
        tracing::info!(ticket = %self.tickets[&key].view.id, r#match = %match_id, "asking whether a ticket took its seats in a running match that closed before the restart");
        Some(BackfillJob { ticket: key, match_id, request })
    }

    /// The windows a resumed match formed with, from its tickets as the engine formed it (their
    /// skill range and the narrowest spread they accepted when it formed), so it opens to late
    /// joiners once it has its server.
    fn window_of(&mut self, config: &QueueConfig, members: &[TicketKey], info: &MatchInfo) -> Option<OpenMatch> {
        let engine: Vec<EngineTicket> =
            members.iter().map(|&key| self.engine_ticket(key, &config.name)).collect::<Option<_>>()?;
        let formed_at =
            info.formed_at.parse::<jiff::Timestamp>().map_or(0, |t| Millis::try_from(t.as_millisecond()).unwrap_or(0));
        let (skill_low, skill_high, spread) = skill_window(&Rules::from_queue(config), &engine, formed_at);
        Some(OpenMatch {
            region: info.region.as_deref().map(|name| self.intern_region(name)),
            skill_low,
            skill_high,
            spread,
            team_sizes: info.teams.iter().map(|team| team.len() as u32).collect(),
            room: 0,
            in_flight: 0,
        })
    }

    /// Gives ticket `key` at least [`ADOPT_GRACE`] before it can time out.
    fn extend_deadline(&mut self, key: TicketKey, now: Millis) {
        let Some(record) = self.tickets.get_mut(&key) else { return };
        if record.deadline < now + ADOPT_GRACE {
            self.deadlines.remove(&(record.deadline, key));
            record.deadline = now + ADOPT_GRACE;
            self.deadlines.insert((record.deadline, key));
        }
    }
}

/// The team of `info` that holds one of `players` (where their ticket was placed).
fn team_of(info: Option<&MatchInfo>, players: &[String]) -> Option<usize> {
    info?.teams.iter().position(|team| players.iter().any(|p| team.contains(p)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;
    use crate::config::MatchmakerConfig;
    use crate::metrics::Metrics;
    use crate::store::MemoryStore;
    use crate::ticket::{AttributeValue, MatchInfo, Player, Ticket};

    fn state() -> State {
        let config = MatchmakerConfig::from_yaml_str(
            "queues:\n  - name: duel\n    players: {min: 2, max: 2}\n    skill: {attribute: mmr, initialSpread: 0, widenPerSecond: 0, maxSpread: 0}\n",
        )
        .unwrap();
        State::new(&config.queues, 1000, Arc::new(Metrics::new()), Arc::new(MemoryStore))
    }

    fn stored(player: &str, queue: &str, state: TicketState, mmr: f64) -> StoredTicket {
        let players = vec![Player {
            id: player.to_owned(),
            attributes: [("mmr".to_owned(), AttributeValue::Number(mmr))].into(),
            latencies: Default::default(),
        }];
        let ticket = Ticket {
            id: Uuid::new_v4().to_string(),
            queue: queue.to_owned(),
            state,
            players,
            idempotency_key: None,
            created_at: String::new(),
            updated_at: String::new(),
            match_info: None,
            assignment: None,
            reason: None,
        };
        StoredTicket { ticket, enqueued_at: 100, deadline: 1_000_000, forget_at: None, match_id: None }
    }

    fn id(t: &StoredTicket) -> Uuid {
        Uuid::parse_str(&t.ticket.id).unwrap()
    }

    fn info() -> MatchInfo {
        MatchInfo { id: Uuid::new_v4().to_string(), teams: vec![], region: None, formed_at: String::new() }
    }

    #[test]
    fn a_match_missing_a_ticket_is_not_resumed_and_its_tickets_search_again() {
        let mut state = state();
        let (mut a, mut b, mut lone) = (
            stored("a", "duel", TicketState::Matched, 1.0),
            stored("b", "duel", TicketState::Matched, 2.0),
            stored("lone", "duel", TicketState::Matched, 3.0),
        );
        let whole = StoredMatch {
            id: Uuid::new_v4(),
            queue: "duel".to_owned(),
            tickets: vec![id(&a), id(&b)],
            info: info(),
            open: None,
        };
        let broken = StoredMatch {
            id: Uuid::new_v4(),
            queue: "duel".to_owned(),
            tickets: vec![id(&lone), Uuid::new_v4()],
            info: info(),
            open: None,
        };
        (a.match_id, b.match_id, lone.match_id) = (Some(whole.id), Some(whole.id), Some(broken.id));
        // Without its match stored at all.
        let mut stray = stored("stray", "duel", TicketState::Matched, 4.0);
        stray.match_id = Some(Uuid::new_v4());
        let stored =
            Stored { tickets: vec![a.clone(), b, lone.clone(), stray.clone()], matches: vec![whole.clone(), broken] };
        let jobs = state.restore(stored, 5_000);
        let ids: Vec<Uuid> = jobs
            .iter()
            .map(|j| match j {
                Job::Match(m) => m.id,
                Job::Backfill(b) => b.match_id,
            })
            .collect();
        assert_eq!(ids, vec![whole.id]);
        assert!(state.is_pending(whole.id));
        for t in [&lone, &stray] {
            assert_eq!(state.ticket(&t.ticket.id).unwrap().state, TicketState::Searching, "{}", t.ticket.id);
        }
        assert_eq!(state.queues["duel"].pool.len(), 2);
        // A resumed match's tickets keep at least the adoption grace.
        let key = state.by_id[&id(&a)];
        assert!(state.tickets[&key].deadline >= 5_000 + ADOPT_GRACE);
    }

    #[test]
    fn tickets_of_a_removed_queue_fail_and_final_ones_keep_their_retention() {
        let mut state = state();
        let gone = stored("g", "gone", TicketState::Searching, 1.0);
        let mut done = stored("d", "duel", TicketState::Assigned, 1.0);
        done.forget_at = Some(4_000);
        state.restore(Stored { tickets: vec![gone.clone(), done.clone()], matches: vec![] }, 3_000);
        let failed = state.ticket(&gone.ticket.id).unwrap();
        assert_eq!(failed.state, TicketState::Failed);
        assert!(failed.reason.unwrap().contains("after a restart"));
        assert_eq!(state.ticket(&done.ticket.id).unwrap().state, TicketState::Assigned);
        state.tick(3_999);
        assert!(state.ticket(&done.ticket.id).is_ok(), "kept until its retention ends");
        state.tick(4_000);
        assert!(state.ticket(&done.ticket.id).is_err(), "forgotten at its stored time");
    }
}
