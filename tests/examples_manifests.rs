//! The files in `examples/` are what a newcomer runs first and what an Agones user compares with
//! their own: every manifest must parse and validate, the matchmaker config must load, and the
//! game command they run must accept the arguments they give it.

use std::path::{Path, PathBuf};

use clap::Parser;
use stadion_crds::FieldErrors;
use stadion_crds::fleetautoscaler::FleetAutoscalerPolicyType;
use stadion_crds::manifest::{Resource, parse_documents};
use stadion_matchmaker::MatchmakerConfig;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every `*.yaml` under `examples/`, subfolders included (the game crate has none).
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("examples folder").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn declares_kind(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("kind:"))
}

/// Every resource in the example manifests, with the file it came from.
fn resources() -> Vec<(String, Resource)> {
    let mut files = Vec::new();
    yaml_files(&examples_dir(), &mut files);
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable example");
        if !declares_kind(&text) {
            continue;
        }
        let name = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&file).display().to_string();
        let parsed = parse_documents(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.is_empty(), "{name}: no documents");
        out.extend(parsed.into_iter().map(|r| (name.clone(), r)));
    }
    out
}

/// Validates as the admission webhook would: defaults first, then the rules.
fn validate(resource: &mut Resource) -> FieldErrors {
    match resource {
        Resource::GameServer(gs) => {
            gs.apply_defaults();
            gs.validate()
        }
        Resource::GameServerSet(set) => {
            set.apply_defaults();
            set.validate()
        }
        Resource::Fleet(fleet) => {
            fleet.apply_defaults();
            fleet.validate()
        }
        Resource::FleetAutoscaler(fas) => {
            fas.apply_defaults();
            fas.validate()
        }
        Resource::GameServerAllocation(gsa) => {
            gsa.apply_defaults();
            gsa.validate()
        }
    }
}

#[test]
fn every_example_manifest_parses_and_validates() {
    let all = resources();
    for (file, mut resource) in all.clone() {
        let errors = validate(&mut resource);
        assert!(errors.is_empty(), "{file}: {} {}: {errors:?}", resource.kind(), resource.name());
    }
    let kinds: Vec<(&str, &str)> = all.iter().map(|(_, r)| (r.kind(), r.name())).collect();
    for expected in [
        ("GameServer", "simple-game-server"),
        ("Fleet", "simple-game-server"),
        ("FleetAutoscaler", "simple-game-server-autoscaler"),
        ("FleetAutoscaler", "simple-game-server-webhook-autoscaler"),
        ("Fleet", "rooms"),
        ("Fleet", "lobby"),
        ("Fleet", "events"),
        ("FleetAutoscaler", "rooms-autoscaler"),
        ("FleetAutoscaler", "lobby-autoscaler"),
        ("FleetAutoscaler", "events-autoscaler"),
        ("GameServerAllocation", ""),
    ] {
        assert!(kinds.contains(&expected), "missing {expected:?} in {kinds:?}");
    }
}

/// Every policy type Agones has is shown on an example fleet: Buffer and Webhook on the main
/// fleet, Counter, List and a Chain with a Schedule in `examples/autoscalers/`.
#[test]
fn every_autoscaler_policy_type_has_an_example() {
    use FleetAutoscalerPolicyType::{Buffer, Chain, Counter, List, Schedule, Webhook};
    let mut policies = Vec::new();
    for (file, resource) in resources() {
        if let Resource::FleetAutoscaler(fas) = resource {
            let policy = &fas.spec.policy;
            let inner: Vec<_> = policy.chain.iter().map(|entry| entry.policy.type_).collect();
            policies.push((fas.spec.fleet_name.clone(), policy.type_, inner, file));
        }
    }
    policies.sort_by_key(|(fleet, policy, ..)| (fleet.clone(), format!("{policy:?}")));
    let summary: Vec<_> =
        policies.iter().map(|(fleet, policy, inner, _)| (fleet.as_str(), *policy, inner.clone())).collect();
    assert_eq!(
        summary,
        vec![
            ("events", Chain, vec![Schedule, Buffer]),
            ("lobby", List, vec![]),
            ("rooms", Counter, vec![]),
            ("simple-game-server", Buffer, vec![]),
            ("simple-game-server", Webhook, vec![]),
        ]
    );
}

/// The flags of `stadion simple-game-server`, parsed as the CLI does.
#[derive(Debug, Parser)]
struct GameCommand {
    #[command(flatten)]
    args: simple_game_server::Args,
}

#[test]
fn every_game_container_runs_the_simple_game_server_with_valid_flags() {
    let mut seen = 0;
    for (file, resource) in resources() {
        let template = match &resource {
            Resource::GameServer(gs) => gs.spec.template.clone(),
            Resource::Fleet(fleet) => fleet.spec.template.spec.template.clone(),
            Resource::GameServerSet(set) => set.spec.template.spec.template.clone(),
            _ => continue,
        };
        let containers = template.spec.map(|s| s.containers).unwrap_or_default();
        assert_eq!(containers.len(), 1, "{file}: one game container");
        let container = &containers[0];
        assert_eq!(container.command.as_deref(), Some(&["stadion".to_owned(), "simple-game-server".to_owned()][..]));
        assert!(container.image.as_deref().is_some_and(|i| i.starts_with("ghcr.io/stadion-dev/simple-game-server:")));
        let argv = std::iter::once("simple-game-server".to_owned()).chain(container.args.clone().unwrap_or_default());
        if let Err(error) = GameCommand::try_parse_from(argv) {
            panic!("{file}: the game would reject its args: {error}");
        }
        seen += 1;
    }
    assert!(seen >= 2, "expected the GameServer and the Fleet, saw {seen}");
}

#[test]
fn matchmaker_config_loads_with_a_duel_and_a_two_by_two_queue() {
    let config =
        MatchmakerConfig::from_yaml_file(examples_dir().join("matchmaker.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let duel = config.queue("duel").expect("duel queue");
    let teams = duel.teams.expect("duel is a team match");
    assert_eq!((teams.count, teams.min_players, teams.max_players), (2, 1, 1));
    assert!(duel.skill.is_some(), "duel matches by skill");

    let lobby = config.queue("lobby").expect("lobby queue");
    assert_eq!(lobby.backfill.as_ref().and_then(|b| b.list.as_deref()), Some("players"), "the lobby backfills");

    let two_by_two = config.queue("teams-2v2").expect("teams-2v2 queue");
    let teams = two_by_two.teams.expect("2×2 is a team match");
    assert_eq!((teams.count, teams.min_players, teams.max_players), (2, 2, 2));
    assert!(two_by_two.skill.is_some() && two_by_two.latency.is_some(), "2×2 has skill and region rules");

    // Both queues draw from the example fleet, so the standalone GameServer is never handed out.
    for queue in &config.queues {
        let selector = queue.allocation.selectors.first().expect("a selector");
        let labels = selector.label_selector.match_labels.clone().unwrap_or_default();
        assert_eq!(labels.get("agones.dev/fleet").map(String::as_str), Some("simple-game-server"), "{}", queue.name);
    }
}
