//! State-machine property test: under any sequence of submissions, cancels, ticks, timeouts,
//! allocation successes and failures, no ticket is lost, duplicated, or in two places.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::config::MatchmakerConfig;
use crate::service::submit::prepare;
use crate::ticket::{AttributeValue, Player, TicketRequest};

#[derive(Clone, Debug)]
enum Op {
    Submit { player: u8, skill: u8 },
    Cancel(u8),
    Advance(u16),
    Assign(u8),
    Fail(u8),
    Watch(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..20, 0u8..3).prop_map(|(player, skill)| Op::Submit { player, skill }),
        2 => any::<u8>().prop_map(Op::Cancel),
        3 => (0u16..1500).prop_map(Op::Advance),
        2 => any::<u8>().prop_map(Op::Assign),
        1 => any::<u8>().prop_map(Op::Fail),
        1 => any::<u8>().prop_map(Op::Watch),
    ]
}

fn state() -> State {
    let config = MatchmakerConfig::from_yaml_str(
        "assignedRetention: 1s\nqueues:\n  - name: duel\n    players: {min: 2, max: 2}\n    ticketTimeout: 2s\n    skill: {attribute: mmr, initialSpread: 0, widenPerSecond: 1, maxSpread: 2}\n",
    )
    .unwrap();
    State::new(&config.queues, 1000, Arc::new(Metrics::new()), Arc::new(crate::store::MemoryStore))
}

fn request(player: u8, skill: u8) -> TicketRequest {
    TicketRequest {
        queue: "duel".to_owned(),
        players: vec![Player {
            id: format!("p{player}"),
            attributes: [("mmr".to_owned(), AttributeValue::Number(f64::from(skill)))].into(),
            latencies: Default::default(),
        }],
        idempotency_key: None,
    }
}

fn check(state: &State) -> Result<(), TestCaseError> {
    let pool = &state.queues["duel"].pool;
    let mut in_matches = HashSet::new();
    for (id, pending) in &state.matches {
        for key in &pending.tickets {
            prop_assert!(in_matches.insert(*key), "ticket {} in two matches", key);
            let record = &state.tickets[key];
            prop_assert_eq!(record.view.state, TicketState::Matched);
            prop_assert_eq!(record.match_id, Some(*id));
        }
    }
    for (key, record) in &state.tickets {
        let queued = pool.get(*key).is_some();
        match record.view.state {
            TicketState::Searching => prop_assert!(queued && !in_matches.contains(key)),
            TicketState::Matched => prop_assert!(!queued && in_matches.contains(key)),
            _ => prop_assert!(!queued && !in_matches.contains(key) && record.match_id.is_none()),
        }
        if let Some(events) = &record.events {
            prop_assert_eq!(&events.borrow().state, &record.view.state, "event stream in step");
        }
    }
    let searching = state.tickets.values().filter(|r| r.view.state == TicketState::Searching).count();
    prop_assert_eq!(pool.len(), searching);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn tickets_are_never_lost_or_duplicated(ops in proptest::collection::vec(op(), 1..80)) {
        let mut state = state();
        let mut now: Millis = 0;
        let mut ids: Vec<String> = Vec::new();
        let mut watchers = Vec::new();
        for op in ops {
            match op {
                Op::Submit { player, skill } => {
                    let queue = state.queues.get("duel").map(|q| q.config.clone());
                    let prepared = prepare(request(player, skill), None, queue.as_deref()).unwrap();
                    if let Ok((ticket, true)) = state.submit(prepared, now) {
                        ids.push(ticket.id);
                    }
                }
                Op::Watch(i) if !ids.is_empty() => {
                    if let Ok(watcher) = state.watch(&ids[i as usize % ids.len()]) {
                        watchers.push(watcher);
                    }
                }
                Op::Cancel(i) if !ids.is_empty() => {
                    let _ = state.cancel(&ids[i as usize % ids.len()], now);
                }
                Op::Advance(ms) => {
                    now += Millis::from(ms);
                    state.tick(now);
                }
                Op::Assign(i) | Op::Fail(i) if !state.matches.is_empty() => {
                    let mut matches: Vec<Uuid> = state.matches.keys().copied().collect();
                    matches.sort();
                    let id = matches[i as usize % matches.len()];
                    if matches!(op, Op::Assign(_)) {
                        let status = GameServerAllocationStatus { game_server_name: "gs".into(), ..Default::default() };
                        prop_assert_eq!(state.assign(id, &status, now), AssignOutcome::Assigned);
                    } else {
                        state.fail(id, "test", now);
                    }
                }
                _ => {}
            }
            check(&state)?;
            for watcher in &watchers {
                // A watcher sees the latest state of a ticket still held.
                let seen = watcher.borrow().clone();
                if let Ok(ticket) = state.ticket(&seen.id) {
                    prop_assert_eq!(seen.state, ticket.state);
                }
            }
        }
        // Every ticket created is still held, or was forgotten only after its retention.
        for id in &ids {
            match state.ticket(id) {
                Ok(ticket) => prop_assert_eq!(&ticket.id, id),
                Err(_) => prop_assert!(now >= 1000, "ticket {} forgotten before its retention", id),
            }
        }
    }
}
