//! A running match that closes while tickets are still on their way into it: what the store
//! keeps of it, and what a restart does with it.

use std::sync::{Arc, Mutex};

use stadion_crds::allocation::GameServerAllocationStatus;
use stadion_crds::common::ListStatus;
use uuid::Uuid;

use super::super::{BackfillAnswer, Job, State};
use crate::config::{MATCH_ID_LABEL, MatchmakerConfig};
use crate::engine::TicketKey;
use crate::metrics::Metrics;
use crate::service::submit::prepare;
use crate::store::{Change, Persisted, Stored, StoredMatch, StoredOpen, StoredTicket, TicketStore};
use crate::ticket::{AttributeValue, MatchInfo, Player, TicketRequest, TicketState};

/// Keeps every change recorded, in order.
#[derive(Default)]
struct RecordingStore {
    changes: Mutex<Vec<Change>>,
}

impl RecordingStore {
    /// The changes recorded since the last call.
    fn take(&self) -> Vec<Change> {
        std::mem::take(&mut self.changes.lock().unwrap())
    }
}

impl TicketStore for RecordingStore {
    fn load(&self) -> Result<Stored, crate::store::StoreError> {
        Ok(Stored::default())
    }

    fn record(&self, change: Change) {
        self.changes.lock().unwrap().push(change);
    }

    fn persisted(&self) -> Persisted {
        Box::pin(std::future::ready(Ok(())))
    }

    fn describe(&self) -> String {
        "recording".to_owned()
    }
}

const QUEUES: &str = "queues:\n  - name: lobby\n    players: {min: 2, max: 2}\n    skill: {attribute: skill, initialSpread: 100, maxSpread: 100}\n    backfill: {list: players}\n  - name: sessions\n    players: {min: 2, max: 2}\n    skill: {attribute: skill, initialSpread: 100, maxSpread: 100}\n    backfill: {counter: sessions}\n";

fn state() -> (State, Arc<RecordingStore>) {
    let config = MatchmakerConfig::from_yaml_str(QUEUES).unwrap();
    let store = Arc::new(RecordingStore::default());
    (State::new(&config.queues, 1000, Arc::new(Metrics::new()), store.clone()), store)
}

fn player(id: &str) -> Player {
    Player {
        id: id.to_owned(),
        attributes: [("skill".to_owned(), AttributeValue::Number(1000.0))].into(),
        latencies: Default::default(),
    }
}

/// Submits `player`'s ticket to `lobby` at `now`; its key.
fn submit(state: &mut State, player_id: &str, now: u64) -> TicketKey {
    let request = TicketRequest { queue: "lobby".to_owned(), players: vec![player(player_id)], idempotency_key: None };
    let config = state.queues["lobby"].config.clone();
    let (ticket, _) = state.submit(prepare(request, None, Some(&config)).unwrap(), now).unwrap();
    state.by_id[&Uuid::parse_str(&ticket.id).unwrap()]
}

/// An answer from `gs-1` with these values in its `players` list of 4.
fn answer(values: &[&str]) -> GameServerAllocationStatus {
    let list = ListStatus { capacity: 4, values: values.iter().map(|v| (*v).to_owned()).collect() };
    GameServerAllocationStatus {
        game_server_name: "gs-1".to_owned(),
        lists: [("players".to_owned(), list)].into(),
        ..Default::default()
    }
}

/// Alice and Bob's match, formed on arrival and running on `gs-1`, whose list then holds
/// `seated`: its id.
fn running_match(state: &mut State, seated: &[&str]) -> Uuid {
    submit(state, "alice", 0);
    submit(state, "bob", 0);
    let Some(Job::Match(formed)) = state.take_arrivals().pop() else { panic!("a match forms on arrival") };
    state.assign(formed.id, &answer(seated), 10);
    formed.id
}

/// The stored form of every running-match change among `changes`: `Some(room)` for a record,
/// `None` for its end.
fn match_changes(changes: &[Change], id: Uuid) -> Vec<Option<u32>> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Match(m) if m.id == id => Some(m.open.as_ref().map(|o| o.room)),
            Change::MatchDone(done) if *done == id => Some(None),
            _ => None,
        })
        .collect()
}

#[test]
fn a_match_closed_with_a_ticket_on_its_way_in_is_stored_closed_until_that_ticket_has_its_answer() {
    let (mut state, store) = state();
    let formed = running_match(&mut state, &["alice", "bob"]);
    let (carol, dave) = (submit(&mut state, "carol", 20), submit(&mut state, "dave", 20));
    assert_eq!(state.take_arrivals().len(), 2, "both placed into the running match");
    store.take();

    // The game filled the server itself: dave is refused, which closes the match.
    state.backfill_refused(dave, 30);
    assert_eq!(state.open_matches(), 0);
    assert_eq!(state.tickets[&dave].view.state, TicketState::Searching);
    assert_eq!(match_changes(&store.take(), formed), [Some(0)], "kept, with no room");

    // Carol's write had landed before: she is assigned, and only then is the match forgotten.
    state.backfill_assigned(carol, &answer(&["alice", "bob", "carol", "bot"]), 40);
    assert_eq!(state.tickets[&carol].view.state, TicketState::Assigned);
    let changes = store.take();
    assert_eq!(match_changes(&changes, formed), [None]);
    let assigned =
        changes.iter().position(|c| matches!(c, Change::Ticket(t) if t.ticket.state == TicketState::Assigned));
    let done = changes.iter().position(|c| matches!(c, Change::MatchDone(_)));
    assert!(assigned < done, "the ticket's assignment is stored before the match's end: {changes:?}");
    assert!(state.running.is_empty() && state.backfills.is_empty());
}

#[test]
fn a_match_the_last_answer_fills_is_forgotten_at_once() {
    let (mut state, store) = state();
    let formed = running_match(&mut state, &["alice", "bob", "bot"]);
    let carol = submit(&mut state, "carol", 20);
    store.take();
    state.backfill_assigned(carol, &answer(&["alice", "bob", "bot", "carol"]), 30);
    assert_eq!(match_changes(&store.take(), formed), [None], "nobody else on the way in");
    assert!(state.running.is_empty());
}

#[test]
fn a_ticket_that_left_has_its_players_taken_off_a_server_another_refusal_closed() {
    let (mut state, _store) = state();
    let formed = running_match(&mut state, &["alice", "bob"]);
    let (carol, dave) = (submit(&mut state, "carol", 20), submit(&mut state, "dave", 20));
    let carol_id = state.tickets[&carol].view.id.clone();
    state.cancel(&carol_id, 25).unwrap();
    state.backfill_refused(dave, 30);
    // Carol's write landed before the server filled: it must come off again.
    let BackfillAnswer::Undo(undo) = state.backfill_assigned(carol, &answer(&["alice", "bob", "carol", "bot"]), 40)
    else {
        panic!("carol left during her backfill");
    };
    let undo = undo.expect("the closed match is still known");
    let spec = &undo.request().spec;
    assert_eq!(spec.lists["players"].delete_values, ["carol"]);
    assert_eq!(spec.selectors[0].label_selector.match_labels.as_ref().unwrap()[MATCH_ID_LABEL], formed.to_string());
    assert_eq!(state.ticket(&carol_id).unwrap().state, TicketState::Cancelled);
    assert!(state.running.is_empty());
}

/// A ticket of `queue` stored `matched` on its way into the running match `info` names.
fn on_its_way(queue: &str, player_id: &str, info: &MatchInfo) -> StoredTicket {
    let ticket = crate::ticket::Ticket {
        id: Uuid::new_v4().to_string(),
        queue: queue.to_owned(),
        state: TicketState::Matched,
        players: vec![player(player_id)],
        idempotency_key: None,
        created_at: String::new(),
        updated_at: String::new(),
        match_info: Some(Box::new(info.clone())),
        assignment: None,
        reason: None,
    };
    StoredTicket { ticket, enqueued_at: 100, deadline: 1_000_000, forget_at: None, match_id: None }
}

/// A running match of `queue` stored closed, with `players` seated on one team.
fn closed(queue: &str, players: &[&str]) -> StoredMatch {
    let id = Uuid::new_v4();
    let teams = vec![players.iter().map(|p| (*p).to_owned()).collect()];
    let info = MatchInfo { id: id.to_string(), teams, region: None, formed_at: String::new() };
    StoredMatch {
        id,
        queue: queue.to_owned(),
        tickets: Vec::new(),
        info,
        open: Some(StoredOpen::closed("default".to_owned())),
    }
}

#[test]
fn after_a_restart_a_closed_match_is_only_asked_whether_its_late_tickets_took_their_seats() {
    let (mut state, store) = state();
    let listed = closed("lobby", &["alice", "bob"]);
    let counted = closed("sessions", &["erin", "frank"]);
    let empty = closed("lobby", &["gina", "hal"]);
    let carol = on_its_way("lobby", "carol", &listed.info);
    let dave = on_its_way("sessions", "dave", &counted.info);
    let stored = Stored {
        tickets: vec![carol.clone(), dave.clone()],
        matches: vec![listed.clone(), counted.clone(), empty.clone()],
    };
    let jobs = state.restore(stored, 5_000);

    assert_eq!(state.open_matches(), 0, "no closed match takes late joiners again");
    let [Job::Backfill(job)] = jobs.as_slice() else { panic!("one request, for carol: {jobs:?}") };
    assert_eq!(job.match_id, listed.id);
    let spec = &job.request.as_ref().unwrap().request().spec;
    assert!(spec.lists.is_empty() && spec.counters.is_empty(), "nothing added: {spec:?}");
    let [selector] = spec.selectors.as_slice() else { panic!("only her server with her on it: {spec:?}") };
    let labels = selector.label_selector.match_labels.as_ref().unwrap();
    assert_eq!(labels[MATCH_ID_LABEL], listed.id.to_string());
    assert_eq!(selector.lists["players"].contains_value, "carol");
    assert_eq!(state.ticket(&carol.ticket.id).unwrap().state, TicketState::Matched, "until the server answers");
    // A counter cannot tell whether dave took a seat: he searches again, as before.
    assert_eq!(state.ticket(&dave.ticket.id).unwrap().state, TicketState::Searching);

    let done: Vec<Uuid> =
        store.take().iter().filter_map(|c| if let Change::MatchDone(id) = c { Some(*id) } else { None }).collect();
    assert!(done.contains(&counted.id) && done.contains(&empty.id), "nobody asks about them: {done:?}");
    assert!(!done.contains(&listed.id), "kept for carol's answer");

    // Her players are not on the server: she searches again, and the match is done.
    let key = state.by_id[&Uuid::parse_str(&carol.ticket.id).unwrap()];
    state.backfill_refused(key, 5_100);
    assert_eq!(state.ticket(&carol.ticket.id).unwrap().state, TicketState::Searching);
    assert_eq!(match_changes(&store.take(), listed.id), [None]);
    assert!(state.running.is_empty());
}

#[test]
fn a_ticket_found_on_the_server_of_a_closed_match_is_assigned_there() {
    let (mut state, store) = state();
    let listed = closed("lobby", &["alice", "bob"]);
    let carol = on_its_way("lobby", "carol", &listed.info);
    let jobs = state.restore(Stored { tickets: vec![carol.clone()], matches: vec![listed.clone()] }, 5_000);
    let [Job::Backfill(job)] = jobs.as_slice() else { panic!("one request, for carol: {jobs:?}") };
    store.take();
    // The server's list has a free seat again (a bot left), but the match stays closed.
    state.backfill_assigned(job.ticket, &answer(&["alice", "bob", "carol"]), 5_100);
    let ticket = state.ticket(&carol.ticket.id).unwrap();
    assert_eq!(ticket.state, TicketState::Assigned);
    let assignment = ticket.assignment.unwrap();
    assert_eq!((assignment.game_server_name.as_str(), assignment.match_id), ("gs-1", listed.id.to_string()));
    assert_eq!(match_changes(&store.take(), listed.id), [None]);
    assert_eq!(state.open_matches(), 0);
}
