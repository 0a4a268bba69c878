//! Property tests: matches obey their rules, tickets are used once, and old compatible tickets
//! never starve.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

/// Checks one match against the rules at the moment it formed, independently of the engine.
fn check_match(m: &FormedMatch, tickets: &HashMap<TicketKey, EngineTicket>, rules: &Rules) -> Result<(), String> {
    let (count, min, max) = rules.size.teams();
    if m.teams.len() != count as usize {
        return Err(format!("{} teams, want {count}", m.teams.len()));
    }
    for team in &m.teams {
        let players: u32 = team.iter().map(|k| tickets[k].size).sum();
        if players < min || players > max {
            return Err(format!("team of {players} players outside {min}..={max}"));
        }
    }
    let members: Vec<&EngineTicket> = m.tickets().map(|k| &tickets[&k]).collect();
    let low = members.iter().map(|t| t.skill).fold(f64::INFINITY, f64::min);
    let high = members.iter().map(|t| t.skill).fold(f64::NEG_INFINITY, f64::max);
    for t in &members {
        if high - low > rules.spread_at(t, m.formed_at) {
            return Err(format!("spread {} exceeds ticket {}'s window", high - low, t.key));
        }
    }
    match (rules.latency, m.region) {
        (None, None) => {}
        (Some(_), Some(region)) => {
            for t in &members {
                let ms = t.latency(region).ok_or(format!("ticket {} has no latency to {region}", t.key))?;
                if ms > rules.latency_at(t, m.formed_at) {
                    return Err(format!("ticket {} at {ms} ms over its limit", t.key));
                }
            }
        }
        (rule, region) => return Err(format!("region {region:?} with latency rule {rule:?}")),
    }
    Ok(())
}

fn widening(max_initial: f64) -> impl Strategy<Value = Option<Widening>> {
    proptest::option::of(
        (0.0..max_initial, 0.0..max_initial, 0.0..max_initial * 3.0)
            .prop_map(|(initial, per_second, extra)| Widening { initial, per_second, cap: initial + extra }),
    )
}

fn rules() -> impl Strategy<Value = Rules> {
    let size = prop_oneof![
        (1u32..=3, 1u32..=3, 0u32..=2).prop_map(|(count, min, extra)| MatchSize::Teams {
            count,
            min,
            max: min + extra
        }),
        (1u32..=4, 0u32..=4).prop_map(|(min, extra)| MatchSize::FreeForAll { min, max: min + extra }),
    ];
    (size, widening(200.0), widening(100.0)).prop_map(|(size, skill, latency)| Rules { size, skill, latency })
}

/// One arrival: (arrival ms, party size, skill, latencies to regions 0..3).
type Arrival = (Millis, u32, f64, Vec<(RegionId, f64)>);

/// Tickets arriving over 20 s.
fn arrivals() -> impl Strategy<Value = Vec<Arrival>> {
    let latencies =
        proptest::collection::btree_map(0u32..3, 0.0..250.0f64, 1..=3).prop_map(|m| m.into_iter().collect::<Vec<_>>());
    proptest::collection::vec((0u64..20_000, 1u32..=3, 0.0..2000.0f64, latencies), 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn matches_obey_rules_and_use_each_ticket_once(rules in rules(), mut arrivals in arrivals()) {
        arrivals.sort_by_key(|a| a.0);
        let mut pool = Pool::new(rules.clone());
        let (_, _, team_max) = rules.size.teams();
        let mut all = HashMap::new();
        let mut used = HashSet::new();
        let mut next = arrivals.into_iter().enumerate().peekable();
        let mut now = 0;
        while now <= 40_000 {
            while let Some((key, (at, size, skill, latencies))) = next.next_if(|(_, a)| a.0 <= now) {
                // The service refuses parties larger than a team; so does this simulation.
                let ticket = EngineTicket {
                    key: key as TicketKey,
                    enqueued_at: at,
                    size: size.min(team_max),
                    skill: if rules.skill.is_some() { skill } else { 0.0 },
                    latencies: if rules.latency.is_some() { latencies } else { Vec::new() },
                };
                all.insert(ticket.key, ticket.clone());
                prop_assert!(pool.insert(ticket));
            }
            for m in pool.tick(now) {
                prop_assert_eq!(m.formed_at, now);
                if let Err(why) = check_match(&m, &all, &rules) {
                    return Err(TestCaseError::fail(format!("{why}: {m:?}")));
                }
                for key in m.tickets() {
                    prop_assert!(used.insert(key), "ticket {} in two matches", key);
                    prop_assert!(pool.get(key).is_none(), "matched ticket {} still queued", key);
                }
            }
            now += 250;
        }
        prop_assert_eq!(pool.len() + used.len(), all.len(), "tickets lost or invented");
    }

    #[test]
    fn old_compatible_solo_tickets_never_starve(
        rules in rules(),
        skills in proptest::collection::vec(0.0..1.0f64, 0..200),
    ) {
        // "Compatible": every skill within the widest spread of every other, and every player
        // near region 0 by the widest latency limit.
        let Some(widest) = rules.widest_after() else { return Ok(()) };
        let spread = rules.skill.map_or(1000.0, |w| w.cap);
        let latency = rules.latency.map_or(0.0, |w| w.cap);
        let mut pool = Pool::new(rules.clone());
        for (key, fraction) in skills.iter().enumerate() {
            pool.insert(EngineTicket {
                key: key as TicketKey,
                enqueued_at: (key as Millis) * 7,
                size: 1,
                skill: fraction * spread,
                latencies: if rules.latency.is_some() { vec![(0, latency)] } else { Vec::new() },
            });
        }
        let late = widest + 2_000;
        pool.tick(late);
        let (count, min, _) = rules.size.teams();
        prop_assert!(
            (pool.len() as u32) < count * min,
            "{} tickets left, enough for a match of {} teams × {}",
            pool.len(), count, min
        );
    }

    #[test]
    fn old_compatible_full_team_parties_never_starve(
        count in 1u32..=4,
        team in 1u32..=5,
        parties in 0usize..60,
    ) {
        let rules = Rules { size: MatchSize::Teams { count, min: team, max: team }, skill: None, latency: None };
        let mut pool = Pool::new(rules);
        for key in 0..parties {
            pool.insert(EngineTicket { key: key as TicketKey, enqueued_at: 0, size: team, skill: 0.0, latencies: vec![] });
        }
        let matches = pool.tick(1_000);
        prop_assert_eq!(matches.len(), parties / count as usize);
        prop_assert_eq!(pool.len(), parties % count as usize);
    }
}
