//! Backfill unit tests: who may join a running match, and that seats are never over-promised.

use super::*;
use crate::engine::{MatchSize, Pool, TicketKey, Widening};

fn ticket(key: TicketKey, enqueued_at: Millis, skill: f64) -> EngineTicket {
    EngineTicket { key, enqueued_at, size: 1, skill, latencies: Vec::new() }
}

fn in_region(mut t: EngineTicket, latencies: &[(RegionId, f64)]) -> EngineTicket {
    t.latencies = latencies.to_vec();
    t.latencies.sort_by_key(|(r, _)| *r);
    t
}

/// Free-for-all 2..=8, skill spread 100 widening 10/s up to 300, latency 50 ms up to 100.
fn rules() -> Rules {
    Rules {
        size: MatchSize::FreeForAll { min: 2, max: 8 },
        skill: Some(Widening { initial: 100.0, per_second: 10.0, cap: 300.0 }),
        latency: Some(Widening { initial: 50.0, per_second: 5.0, cap: 100.0 }),
    }
}

fn open(region: RegionId, low: f64, high: f64, spread: f64, room: u32) -> OpenMatch {
    OpenMatch {
        region: Some(region),
        skill_low: low,
        skill_high: high,
        spread,
        team_sizes: vec![2],
        room,
        in_flight: 0,
    }
}

#[test]
fn a_ticket_joins_only_within_the_windows_the_match_formed_with() {
    let rules = rules();
    let m = open(1, 1000.0, 1050.0, 100.0, 4);
    let near = in_region(ticket(1, 0, 1080.0), &[(1, 20.0)]);
    assert_eq!(m.team_for(&rules, &near, 0), Some(0));
    // 1101 − 1000 > the match's spread of 100, though the newcomer itself has widened to 300.
    let far = in_region(ticket(2, 0, 1101.0), &[(1, 20.0)]);
    assert_eq!(m.team_for(&rules, &far, 60_000), None);
    // Below the range on the other side.
    let low = in_region(ticket(3, 0, 949.0), &[(1, 20.0)]);
    assert_eq!(m.team_for(&rules, &low, 60_000), None);
}

#[test]
fn the_newcomer_must_accept_the_match_too() {
    let rules = rules();
    // The match accepted a 200 spread, but a fresh ticket only accepts 100.
    let m = open(1, 1000.0, 1000.0, 200.0, 4);
    let t = in_region(ticket(1, 0, 1150.0), &[(1, 20.0)]);
    assert_eq!(m.team_for(&rules, &t, 0), None, "fresh: spread 100");
    assert_eq!(m.team_for(&rules, &t, 5_000), Some(0), "after 5 s it accepts 150");
}

#[test]
fn the_match_region_must_be_within_the_tickets_latency_limit() {
    let rules = rules();
    let m = open(1, 1000.0, 1000.0, 100.0, 4);
    let elsewhere = in_region(ticket(1, 0, 1000.0), &[(2, 10.0)]);
    assert_eq!(m.team_for(&rules, &elsewhere, 0), None, "no latency to the match's region");
    let slow = in_region(ticket(2, 0, 1000.0), &[(1, 70.0)]);
    assert_eq!(m.team_for(&rules, &slow, 0), None, "70 ms > 50 ms when fresh");
    assert_eq!(m.team_for(&rules, &slow, 4_000), Some(0), "the limit widened to 70 ms");
}

#[test]
fn a_party_needs_a_seat_for_every_player() {
    let rules = rules();
    let m = open(1, 1000.0, 1000.0, 100.0, 2);
    let trio = EngineTicket { size: 3, ..in_region(ticket(1, 0, 1000.0), &[(1, 10.0)]) };
    let duo = EngineTicket { size: 2, ..trio.clone() };
    assert_eq!(m.team_for(&rules, &trio, 0), None);
    assert_eq!(m.team_for(&rules, &duo, 0), Some(0));
}

#[test]
fn late_parties_join_the_smallest_team() {
    let rules = Rules { size: MatchSize::Teams { count: 2, min: 1, max: 4 }, skill: None, latency: None };
    let m = OpenMatch { team_sizes: vec![3, 2], region: None, ..open(0, 0.0, 0.0, f64::INFINITY, 3) };
    assert_eq!(m.team_for(&rules, &ticket(1, 0, 0.0), 0), Some(1));
}

#[test]
fn placing_picks_the_lowest_latency_match_and_never_promises_more_seats_than_reported() {
    let rules = rules();
    let mut matches = OpenMatches::default();
    matches.open(10, open(1, 1000.0, 1000.0, 100.0, 2));
    matches.open(11, open(2, 1000.0, 1000.0, 100.0, 1));
    let tickets: Vec<EngineTicket> = (0..4).map(|k| in_region(ticket(k, 0, 1000.0), &[(1, 40.0), (2, 10.0)])).collect();
    let placed: Vec<Option<OpenKey>> = tickets.iter().map(|t| matches.place(&rules, t, 0).map(|p| p.open)).collect();
    // Region 2 is faster for everyone, but it has one seat; then region 1's two; then none.
    assert_eq!(placed, vec![Some(11), Some(10), Some(10), None]);
    assert!(matches.with_room().is_empty());

    // One placement to 10 failed for a passing reason: its seat is free again.
    matches.give_back(10, 0, 1);
    assert_eq!(matches.get(10).unwrap().room, 1);
    assert_eq!(matches.place(&rules, &tickets[3], 0).map(|p| p.open), Some(10));

    // The server answers the first placement on 10 with 5 seats free; the other placement is
    // still in flight, so 4 remain to promise.
    matches.confirm(10, 1, 5);
    assert_eq!(matches.get(10).map(|m| (m.room, m.in_flight)), Some((4, 1)));
    // 11's server reports itself full: the match closes.
    matches.confirm(11, 1, 0);
    assert!(matches.get(11).is_none());
}

#[test]
fn a_formed_match_remembers_its_windows() {
    let mut pool = Pool::new(rules());
    for (key, skill) in [(1, 1000.0), (2, 1060.0)] {
        pool.insert(in_region(ticket(key, 0, skill), &[(7, 20.0)]));
    }
    let formed = pool.tick(2_000);
    assert_eq!(formed.len(), 1);
    let m = OpenMatch::from_formed(&formed[0], 6);
    assert_eq!((m.skill_low, m.skill_high), (1000.0, 1060.0));
    assert_eq!(m.spread, 120.0, "both waited 2 s: 100 + 2 × 10");
    assert_eq!((m.region, m.team_sizes.clone(), m.room), (Some(7), vec![2], 6));
}

#[test]
fn filling_takes_the_oldest_fitting_tickets_from_the_pool_up_to_the_room() {
    let mut pool = Pool::new(rules());
    let mut matches = OpenMatches::default();
    matches.open(1, open(7, 1000.0, 1040.0, 100.0, 2));
    for (key, at, skill) in [(1, 30, 1010.0), (2, 10, 1020.0), (3, 20, 1500.0), (4, 40, 1030.0), (5, 0, 1035.0)] {
        pool.insert(in_region(ticket(key, at, skill), &[(7, 20.0)]));
    }
    // Ticket 5 is oldest but plays elsewhere; 3 is out of the skill window.
    pool.remove(5);
    pool.insert(in_region(ticket(5, 0, 1035.0), &[(8, 20.0)]));
    let placed: Vec<TicketKey> = pool.fill_open(&mut matches, 1, 100).into_iter().map(|(k, _)| k).collect();
    assert_eq!(placed, vec![2, 1], "oldest first, two seats");
    assert_eq!(pool.len(), 3);
    assert!(pool.get(2).is_none() && pool.get(1).is_none());
    assert_eq!(matches.get(1).map(|m| (m.room, m.in_flight, m.team_sizes.clone())), Some((0, 2, vec![4])));
    assert!(pool.fill_open(&mut matches, 1, 100).is_empty(), "no seat left");
}

#[test]
fn an_arrival_is_placed_before_it_could_form_a_new_match() {
    let mut pool = Pool::new(Rules { size: MatchSize::FreeForAll { min: 1, max: 8 }, skill: None, latency: None });
    let mut matches = OpenMatches::default();
    matches.open(3, OpenMatch { region: None, ..open(0, 0.0, 0.0, f64::INFINITY, 1) });
    pool.insert(ticket(1, 0, 0.0));
    assert_eq!(pool.backfill_arrival(1, &mut matches, 0), Some(Placement { open: 3, team: 0 }));
    assert!(pool.is_empty());
    pool.insert(ticket(2, 0, 0.0));
    assert_eq!(pool.backfill_arrival(2, &mut matches, 0), None, "the match is full");
    assert_eq!(pool.len(), 1, "it stays to be matched normally");
}
