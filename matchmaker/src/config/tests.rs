//! Config loading and validation: every error names its field path.

use super::*;

fn errors_of(yaml: &str) -> String {
    match MatchmakerConfig::from_yaml_str(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

const MINIMAL: &str = "queues:\n  - name: duel\n    players: {min: 2, max: 2}\n";

#[test]
fn the_shipped_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/queues.yaml");
    let config = MatchmakerConfig::from_yaml_file(path).unwrap();
    assert_eq!(config.queues.len(), 2);
    assert_eq!(config.tick_interval, Duration::from_millis(100));
    let squads = config.queue("squads").unwrap();
    assert_eq!(squads.teams, Some(TeamsConfig { count: 2, min_players: 3, max_players: 4 }));
    assert_eq!(squads.max_party_size(), 4);
    assert_eq!(config.queue("duel").unwrap().allocation.selectors.len(), 1);
}

#[test]
fn defaults_apply() {
    let config = MatchmakerConfig::from_yaml_str(MINIMAL).unwrap();
    let queue = &config.queues[0];
    assert_eq!(queue.ticket_timeout, Duration::from_secs(300));
    assert_eq!(queue.allocation.namespace, "default");
    assert_eq!(queue.metadata, MatchMetadata::default());
    assert_eq!(config.assigned_retention, Duration::from_secs(600));
    assert_eq!(config.http.max_body_bytes, 65536);
}

#[test]
fn errors_name_the_field_path() {
    let yaml = "queues:\n  - name: a\n    players: {min: 2, max: 2}\n  - name: b\n    teams: {count: 0, minPlayers: 2, maxPlayers: 1}\n";
    let message = errors_of(yaml);
    assert!(message.contains("queues[1].teams.count: must be ≥ 1"), "{message}");
    assert!(message.contains("queues[1].teams.maxPlayers: must be ≥ minPlayers"), "{message}");
}

#[test]
fn size_must_be_exactly_one_kind() {
    assert!(errors_of("queues:\n  - name: a\n").contains("queues[0]: set one of `teams`"));
    let both =
        "queues:\n  - name: a\n    players: {min: 1, max: 2}\n    teams: {count: 2, minPlayers: 1, maxPlayers: 1}\n";
    assert!(errors_of(both).contains("set only one"));
}

#[test]
fn names_must_be_unique_dns_labels() {
    let yaml = "queues:\n  - name: a\n    players: {min: 1, max: 1}\n  - name: a\n    players: {min: 1, max: 1}\n  - name: Bad_Name\n    players: {min: 1, max: 1}\n";
    let message = errors_of(yaml);
    assert!(message.contains("queues[1].name: duplicate"), "{message}");
    assert!(message.contains("queues[2].name"), "{message}");
}

#[test]
fn rules_are_checked() {
    let yaml = format!(
        "{MINIMAL}    skill: {{attribute: '', initialSpread: 10, widenPerSecond: -1, maxSpread: 5}}\n    latency: {{initialMaxMs: 50, capMs: 40}}\n    ticketTimeout: 0s\n"
    );
    let message = errors_of(&yaml);
    for expected in [
        "queues[0].skill.attribute",
        "queues[0].skill.widenPerSecond",
        "queues[0].skill.maxSpread: must be ≥ initialSpread",
        "queues[0].latency.capMs",
        "queues[0].ticketTimeout: must be > 0",
    ] {
        assert!(message.contains(expected), "missing {expected}: {message}");
    }
}

#[test]
fn parse_errors_name_the_path() {
    let message = errors_of("queues:\n  - name: a\n    players: {min: 2, max: 2}\n    colour: blue\n");
    assert!(message.contains("queues[0]"), "{message}");
    assert!(message.contains("colour"), "{message}");
    let message = errors_of("queues:\n  - name: a\n    players: {min: 2, max: 2}\n    ticketTimeout: soon\n");
    assert!(message.contains("queues[0].ticketTimeout"), "{message}");
}

#[test]
fn metadata_templates_are_checked() {
    let yaml = format!(
        "{MINIMAL}    metadata:\n      labels:\n        stadion.dev/players: '{{{{playerIds}}}}'\n        ok: '{{{{nope}}}}'\n        'bad key!': x\n      annotations:\n        stadion.dev/teams: '{{{{teams}}}}'\n"
    );
    let message = errors_of(&yaml);
    assert!(message.contains("metadata.labels[stadion.dev/players]: `playerIds` can exceed"), "{message}");
    assert!(message.contains("metadata.labels[ok]: unknown variable `nope`"), "{message}");
    assert!(message.contains("metadata.labels[bad key!]: key"), "{message}");
    assert!(!message.contains("annotations"), "annotations may hold teams: {message}");
}

#[test]
fn an_allocation_ttl_annotation_must_parse() {
    let with = |ttl: &str| {
        format!("{MINIMAL}    metadata:\n      annotations:\n        stadion.dev/allocation-ttl: '{ttl}'\n")
    };
    let message = errors_of(&with("soon"));
    assert!(message.contains("queues[0].metadata.annotations[stadion.dev/allocation-ttl]"), "{message}");
    for ok in ["10m", "90", "off"] {
        MatchmakerConfig::from_yaml_str(&with(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn auth_needs_tokens() {
    let message = errors_of(&format!("http:\n  auth: {{tokensEnv: STADION_TEST_SURELY_UNSET_VAR}}\n{MINIMAL}"));
    assert!(message.contains("http.auth: no tokens"), "{message}");
}

#[test]
fn token_files_skip_comments_and_blanks() {
    let tokens: Vec<String> = parse_token_lines("# comment\n  a1 \n\nb2\n").collect();
    assert_eq!(tokens, vec!["a1", "b2"]);
}

#[test]
fn tokens_come_from_an_environment_variable() {
    // PATH is set wherever tests run; the test cannot set its own variable (no unsafe).
    let path = std::env::var("PATH").unwrap_or_default();
    let expected: Vec<&str> = path.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if expected.is_empty() {
        return;
    }
    let config = MatchmakerConfig::from_yaml_str(&format!("http:\n  auth: {{tokensEnv: PATH}}\n{MINIMAL}")).unwrap();
    assert_eq!(config.http.tokens, expected);
}

#[test]
fn durations_use_the_one_grammar_and_bad_ones_name_the_field() {
    let yaml = "tickInterval: 300ms\nassignedRetention: 1h30m\nqueues:\n  - name: a\n    players: {min: 1, max: 2}\n    ticketTimeout: 1.5m\n  - name: b\n    players: {min: 1, max: 2}\n    ticketTimeout: 90\n";
    let config = MatchmakerConfig::from_yaml_str(yaml).unwrap();
    assert_eq!(config.tick_interval, Duration::from_millis(300));
    assert_eq!(config.assigned_retention, Duration::from_secs(5400));
    assert_eq!(config.queues[0].ticket_timeout, Duration::from_secs(90));
    assert_eq!(config.queues[1].ticket_timeout, Duration::from_secs(90), "a bare number is seconds");
    let message = errors_of("queues:\n  - name: a\n    players: {min: 1, max: 2}\n    ticketTimeout: 5 parsecs\n");
    assert!(message.contains("queues[0].ticketTimeout"), "{message}");
    assert!(message.contains("1h30m, 90s, 300ms, 1.5m"), "{message}");
}

#[test]
fn backfill_names_exactly_one_list_or_counter() {
    let with = |backfill: &str| format!("{MINIMAL}    backfill: {backfill}\n");
    let config = MatchmakerConfig::from_yaml_str(&with("{list: players}")).unwrap();
    assert_eq!(config.queues[0].backfill.as_ref().and_then(BackfillConfig::seats), Some(SeatTracker::List("players")));
    let config = MatchmakerConfig::from_yaml_str(&with("{counter: sessions}")).unwrap();
    assert_eq!(
        config.queues[0].backfill.as_ref().and_then(BackfillConfig::seats),
        Some(SeatTracker::Counter("sessions"))
    );
    assert!(
        errors_of(&with("{list: a, counter: b}")).contains("queues[0].backfill: set only one of `list` and `counter`")
    );
    assert!(errors_of(&with("{}")).contains("queues[0].backfill: set `list`"));
    assert!(errors_of(&with("{list: ' '}")).contains("queues[0].backfill.list: must name"));
    assert!(errors_of(&with("{lists: players}")).contains("backfill"), "unknown fields are refused");
}

#[test]
fn one_ticket_store_at_a_time_and_redis_takes_a_redis_url() {
    let config = MatchmakerConfig::from_yaml_str(&format!("redis: redis://cache:6379/0\n{MINIMAL}")).unwrap();
    assert_eq!(config.redis.as_deref(), Some("redis://cache:6379/0"));
    let message = errors_of(&format!("redis: redis://cache:6379/0\nstateDir: /var/lib/stadion\n{MINIMAL}"));
    assert!(message.contains("redis") && message.contains("stateDir"), "{message}");
    let message = errors_of(&format!("redis: cache:6379\n{MINIMAL}"));
    assert!(message.contains("redis") && message.contains("not a Redis URL"), "{message}");
}

#[test]
fn state_sync_is_always_or_a_duration_and_needs_a_state_dir() {
    let config = MatchmakerConfig::from_yaml_str(&format!("stateDir: /var/lib/stadion\n{MINIMAL}")).unwrap();
    assert_eq!(config.state_sync.unwrap_or_default(), StateSync::Always);
    for (text, sync) in [
        ("always", StateSync::Always),
        ("1s", StateSync::Every(Duration::from_secs(1))),
        ("250ms", StateSync::Every(Duration::from_millis(250))),
        ("2", StateSync::Every(Duration::from_secs(2))),
    ] {
        let yaml = format!("stateDir: /var/lib/stadion\nstateSync: {text}\n{MINIMAL}");
        let config = MatchmakerConfig::from_yaml_str(&yaml).unwrap();
        assert_eq!(config.state_sync, Some(sync), "{text}");
        // It reads back as written.
        let again: StateSync = sync.to_string().parse().unwrap();
        assert_eq!(again, sync);
    }
    for text in ["never", "0s", "-1s"] {
        let message = errors_of(&format!("stateDir: /var/lib/stadion\nstateSync: {text}\n{MINIMAL}"));
        assert!(message.contains("stateSync") && message.contains("always"), "{text}: {message}");
    }
    let message = errors_of(&format!("stateSync: 1s\n{MINIMAL}"));
    assert!(message.contains("stateSync") && message.contains("stateDir"), "{message}");
}
