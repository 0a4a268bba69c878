//! Checking a ticket request against its queue before it enters the state.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hasher};

use stadion_crds::FieldErrors;

use crate::Error;
use crate::config::QueueConfig;
use crate::config::validate::label_value;
use crate::ticket::{AttributeValue, Player, TicketRequest};

/// Longest idempotency key and player id accepted.
const MAX_KEY_LEN: usize = 256;
/// Most free-form attributes per player.
const MAX_ATTRIBUTES: usize = 64;
/// Longest free-form string attribute.
const MAX_ATTRIBUTE_LEN: usize = 1024;

/// A request that passed every check, with what the engine needs computed.
#[derive(Clone, Debug)]
pub struct PreparedTicket {
    /// The request as submitted (idempotency key resolved from body or header).
    pub request: TicketRequest,
    /// Players in the party.
    pub size: u32,
    /// Mean skill (0 without a skill rule).
    pub skill: f64,
    /// Worst player latency per region that every player reported (empty without a rule).
    pub latencies: Vec<(String, f64)>,
    /// Hash of queue and players, to tell an idempotent retry from a conflicting reuse.
    pub fingerprint: u64,
}

/// Validates `request` for `queue` (`None`: unknown queue) and the `Idempotency-Key` header.
pub fn prepare(
    mut request: TicketRequest,
    header_key: Option<String>,
    queue: Option<&QueueConfig>,
) -> Result<PreparedTicket, Error> {
    let mut errors = FieldErrors::default();
    match (&request.idempotency_key, header_key) {
        (Some(body), Some(header)) if *body != header => {
            errors.push("idempotencyKey", "differs from the Idempotency-Key header");
        }
        (None, Some(header)) => request.idempotency_key = Some(header),
        _ => {}
    }
    if let Some(key) = &request.idempotency_key
        && (key.is_empty() || key.len() > MAX_KEY_LEN)
    {
        errors.push("idempotencyKey", format!("must be 1 to {MAX_KEY_LEN} characters"));
    }
    let Some(queue) = queue else {
        errors.push("queue", format!("unknown queue `{}`", request.queue));
        return Err(Error::Invalid(errors));
    };
    check_players(&request, queue, &mut errors);
    let skill = party_skill(&request, queue, &mut errors);
    let latencies = party_latencies(&request, queue, &mut errors);
    errors.into_result().map_err(Error::Invalid)?;
    let fingerprint = fingerprint(&request.queue, &request.players);
    Ok(PreparedTicket { size: request.players.len() as u32, skill, latencies, fingerprint, request })
}

/// Hash of a ticket's queue and players, to tell an idempotent retry from a conflicting reuse
/// of its key (recomputed, not stored, when tickets are restored).
pub fn fingerprint(queue: &str, players: &[Player]) -> u64 {
    /// Hashes the JSON as it is written, rather than a copy of it.
    struct Hashing(DefaultHasher);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(DefaultHasher::new());
    // Writing our own data types to a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hashing, &(queue, players));
    hashing.0.finish()
}

fn check_players(request: &TicketRequest, queue: &QueueConfig, errors: &mut FieldErrors) {
    let max = queue.max_party_size() as usize;
    if request.players.is_empty() {
        errors.push("players", "must list at least one player");
    } else if request.players.len() > max {
        errors.push(
            "players",
            format!("a party of {} does not fit queue `{}` (at most {max})", request.players.len(), queue.name),
        );
    }
    let mut seen = HashSet::new();
    for (i, player) in request.players.iter().enumerate() {
        // Named only when something is wrong: most requests have nothing to report.
        let path = Path(i);
        if player.id.is_empty() || player.id.len() > MAX_KEY_LEN {
            errors.push(format!("{path}.id"), format!("must be 1 to {MAX_KEY_LEN} characters"));
        } else if !first_time(&mut seen, &request.players[..i], &player.id) {
            errors.push(format!("{path}.id"), format!("player `{}` is listed twice", player.id));
        }
        if player.attributes.len() > MAX_ATTRIBUTES {
            errors.push(format!("{path}.attributes"), format!("at most {MAX_ATTRIBUTES} attributes"));
        }
        for (name, value) in &player.attributes {
            match value {
                AttributeValue::Number(n) if !n.is_finite() => {
                    errors.push(format!("{path}.attributes.{name}"), "must be a finite number");
                }
                AttributeValue::Text(t) if t.len() > MAX_ATTRIBUTE_LEN => {
                    errors.push(format!("{path}.attributes.{name}"), format!("at most {MAX_ATTRIBUTE_LEN} bytes"));
                }
                _ => {}
            }
        }
        for (region, ms) in &player.latencies {
            // Region names may end up in a label (the latency rule's regionLabel).
            if region.is_empty() {
                errors.push(format!("{path}.latencies"), "region names must not be empty");
            } else if let Err(message) = label_value(region) {
                errors.push(format!("{path}.latencies.{region}"), format!("region name {message}"));
            }
            if !ms.is_finite() || *ms < 0.0 {
                errors.push(format!("{path}.latencies.{region}"), "must be a number of milliseconds ≥ 0");
            }
        }
    }
}

/// `players[i]` in a field path, formatted only when used.
struct Path(usize);

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "players[{}]", self.0)
    }
}

/// Whether `id` is not among the players listed before it: a scan for a small party, a set
/// (filled on first use) for a large one.
fn first_time<'a>(seen: &mut HashSet<&'a str>, before: &'a [Player], id: &'a str) -> bool {
    const SCAN: usize = 16;
    if before.len() < SCAN {
        return !before.iter().any(|p| p.id == id);
    }
    if seen.is_empty() {
        seen.extend(before.iter().map(|p| p.id.as_str()));
    }
    seen.insert(id)
}

fn party_skill(request: &TicketRequest, queue: &QueueConfig, errors: &mut FieldErrors) -> f64 {
    let Some(rule) = &queue.skill else { return 0.0 };
    let mut total = 0.0;
    for (i, player) in request.players.iter().enumerate() {
        match player.attributes.get(&rule.attribute) {
            Some(AttributeValue::Number(n)) if n.is_finite() => total += n,
            Some(_) => errors.push(format!("players[{i}].attributes.{}", rule.attribute), "must be a number"),
            None => errors.push(
                format!("players[{i}].attributes.{}", rule.attribute),
                format!("required: queue `{}` matches by skill", queue.name),
            ),
        }
    }
    if request.players.is_empty() { 0.0 } else { total / request.players.len() as f64 }
}

fn party_latencies(request: &TicketRequest, queue: &QueueConfig, errors: &mut FieldErrors) -> Vec<(String, f64)> {
    if queue.latency.is_none() || request.players.is_empty() {
        return Vec::new();
    }
    // A party can only play where every member measured a latency; there it is as fast as
    // its slowest member.
    let mut worst: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (i, player) in request.players.iter().enumerate() {
        if player.latencies.is_empty() {
            errors
                .push(format!("players[{i}].latencies"), format!("required: queue `{}` matches by region", queue.name));
        }
        for (region, ms) in &player.latencies {
            let entry = worst.entry(region).or_insert((0.0, 0));
            entry.0 = entry.0.max(*ms);
            entry.1 += 1;
        }
    }
    let common: Vec<(String, f64)> = worst
        .into_iter()
        .filter(|(_, (_, count))| *count == request.players.len())
        .map(|(region, (ms, _))| (region.to_owned(), ms))
        .collect();
    if common.is_empty() && errors.is_empty() {
        errors.push("players", "the party has no region for which every player reported a latency");
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MatchmakerConfig;

    fn squads() -> MatchmakerConfig {
        MatchmakerConfig::from_yaml_str(
            "queues:\n  - name: squads\n    teams: {count: 2, minPlayers: 1, maxPlayers: 40}\n",
        )
        .unwrap()
    }

    fn party(ids: &[String]) -> TicketRequest {
        let players = ids
            .iter()
            .map(|id| Player { id: id.clone(), attributes: Default::default(), latencies: Default::default() })
            .collect();
        TicketRequest { queue: "squads".to_owned(), players, idempotency_key: None }
    }

    fn invalid_fields(result: Result<PreparedTicket, Error>) -> Vec<String> {
        match result {
            Err(Error::Invalid(errors)) => errors.iter().map(|e| e.path.clone()).collect(),
            other => panic!("expected invalid fields, got {other:?}"),
        }
    }

    #[test]
    fn a_player_listed_twice_is_named_in_a_small_and_in_a_large_party() {
        let config = squads();
        let queue = config.queue("squads");
        for size in [3, 30] {
            let mut ids: Vec<String> = (0..size).map(|i| format!("p{i}")).collect();
            assert!(prepare(party(&ids), None, queue).is_ok(), "{size} distinct players");
            ids[size - 1] = "p1".to_owned();
            let fields = invalid_fields(prepare(party(&ids), None, queue));
            assert_eq!(fields, vec![format!("players[{}].id", size - 1)], "party of {size}");
        }
    }

    #[test]
    fn the_fingerprint_tells_the_same_request_from_another() {
        let ids = ["a".to_owned(), "b".to_owned()];
        let same = fingerprint("squads", &party(&ids).players);
        assert_eq!(same, fingerprint("squads", &party(&ids).players));
        assert_ne!(same, fingerprint("duels", &party(&ids).players), "another queue");
        assert_ne!(same, fingerprint("squads", &party(&ids[..1]).players), "other players");
    }
}
