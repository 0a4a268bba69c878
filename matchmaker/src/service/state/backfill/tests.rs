//! A running match that closes while tickets are still on their way into it: what the store
//! keeps of it until they have their answers.

use std::sync::{Arc, Mutex};

use stadion_crds::allocation::GameServerAllocationStatus;
use stadion_crds::common::ListStatus;
use uuid::Uuid;

use super::super::{BackfillAnswer, Job, State};
use crate::config::{MATCH_ID_LABEL, MatchmakerConfig};
use crate::engine::TicketKey;
use crate::metrics::Metrics;
use crate::service::submit::prepare;
use crate::store::{Change, Persisted, Stored, TicketStore};
use crate::ticket::{AttributeValue, Player, TicketRequest, TicketState};

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
    submit(&mut state, "alice", 0);
    submit(&mut state, "bob", 0);
    let Some(Job::Match(formed)) = state.take_arrivals().pop() else { panic!("a match forms on arrival") };
    state.assign(formed.id, &answer(&["alice", "bob"]), 10);
    let (carol, dave) = (submit(&mut state, "carol", 20), submit(&mut state, "dave", 20));
    assert_eq!(state.take_arrivals().len(), 2, "both placed into the running match");
    store.take();

    // The game filled the server itself: dave is refused, which closes the match.
    state.backfill_refused(dave, 30);
    assert_eq!(state.open_matches(), 0);
    assert_eq!(state.tickets[&dave].view.state, TicketState::Searching);
    assert_eq!(match_changes(&store.take(), formed.id), [Some(0)], "kept, with no room");

    // Carol's write had landed before: she is assigned, and only then is the match forgotten.
    state.backfill_assigned(carol, &answer(&["alice", "bob", "carol", "bot"]), 40);
    assert_eq!(state.tickets[&carol].view.state, TicketState::Assigned);
    let changes = store.take();
    assert_eq!(match_changes(&changes, formed.id), [None]);
    let assigned =
        changes.iter().position(|c| matches!(c, Change::Ticket(t) if t.ticket.state == TicketState::Assigned));
    let done = changes.iter().position(|c| matches!(c, Change::MatchDone(_)));
    assert!(assigned < done, "the ticket's assignment is stored before the match's end: {changes:?}");
    assert!(state.running.is_empty() && state.backfills.is_empty());
}

#[test]
fn a_match_the_last_answer_fills_is_forgotten_at_once() {
    let (mut state, store) = state();
    submit(&mut state, "alice", 0);
    submit(&mut state, "bob", 0);
    let Some(Job::Match(formed)) = state.take_arrivals().pop() else { panic!("a match forms on arrival") };
    state.assign(formed.id, &answer(&["alice", "bob", "bot"]), 10);
    let carol = submit(&mut state, "carol", 20);
    store.take();
    state.backfill_assigned(carol, &answer(&["alice", "bob", "bot", "carol"]), 30);
    assert_eq!(match_changes(&store.take(), formed.id), [None], "nobody else on the way in");
    assert!(state.running.is_empty());
}

#[test]
fn a_ticket_that_left_has_its_players_taken_off_a_server_another_refusal_closed() {
    let (mut state, _store) = state();
    submit(&mut state, "alice", 0);
    submit(&mut state, "bob", 0);
    let Some(Job::Match(formed)) = state.take_arrivals().pop() else { panic!("a match forms on arrival") };
    state.assign(formed.id, &answer(&["alice", "bob"]), 10);
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
    assert_eq!(spec.selectors[0].label_selector.match_labels.as_ref().unwrap()[MATCH_ID_LABEL], formed.id.to_string());
    assert_eq!(state.ticket(&carol_id).unwrap().state, TicketState::Cancelled);
    assert!(state.running.is_empty());
}
