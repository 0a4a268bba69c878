//! The example Grafana dashboard (`deploy/grafana/stadion-fleets.json`) only queries metrics the
//! runtimes export, so it cannot drift from them: every `agones_*`/`stadion_*` name in its
//! queries is an exported family (or a histogram's `_bucket`/`_count`/`_sum` series), and it
//! shows what a fleet operator looks at first.

use std::collections::BTreeSet;

use serde_json::Value;
use stadion_controller::metrics::AGONES_FAMILIES;

const DASHBOARD: &str = include_str!("../../deploy/grafana/stadion-fleets.json");

/// Histogram families, whose series carry a suffix.
const HISTOGRAMS: &[&str] = &[
    "agones_gameserver_allocations_duration_seconds",
    "agones_gameserver_state_duration",
    "agones_gameservers_node_count",
];

fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("expr" | "definition", Value::String(query)) => out.push(query.clone()),
                    ("query", Value::String(query)) => out.push(query.clone()),
                    _ => queries(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("agones_").or_else(|| rest.find("stadion_")) {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn exported(name: &str) -> bool {
    AGONES_FAMILIES.contains(&name)
        || ["_bucket", "_count", "_sum"].iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| HISTOGRAMS.contains(&base) && AGONES_FAMILIES.contains(&base))
        })
}

#[test]
fn every_queried_metric_is_exported() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "stadion-fleets");
    let mut all = Vec::new();
    queries(&dashboard, &mut all);
    assert!(all.len() >= 10, "the dashboard has its queries: {all:?}");
    let used: BTreeSet<String> = all.iter().flat_map(|q| metric_names(q)).collect();
    let unknown: Vec<&String> = used.iter().filter(|name| !exported(name)).collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics nobody exports: {unknown:?}");
    for needed in [
        "agones_fleets_replicas_count",
        "agones_gameservers_count",
        "agones_gameserver_allocations_duration_seconds_count",
        "agones_gameserver_allocations_duration_seconds_bucket",
        "agones_fleet_autoscalers_desired_replicas_count",
        "agones_fleet_autoscalers_current_replicas_count",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }
}

#[test]
fn the_drift_check_catches_a_misspelt_name() {
    assert_eq!(metric_names("sum(rate(agones_gameservers_totl{a=\"b\"}[5m]))"), ["agones_gameservers_totl"]);
    assert!(!exported("agones_gameservers_totl"));
    assert!(!exported("agones_fleets_replicas_count_bucket"), "only histograms have buckets");
    assert!(exported("agones_gameserver_state_duration_bucket"));
}

#[test]
fn panels_do_not_overlap_and_each_has_a_query() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut cells = BTreeSet::new();
    for panel in panels {
        assert!(panel["targets"].as_array().is_some_and(|t| !t.is_empty()), "{}", panel["title"]);
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (grid["x"].as_u64(), grid["y"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else { panic!("{} has no gridPos", panel["title"]) };
        assert!(x + w <= 24, "{} is wider than the board", panel["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{} overlaps another panel", panel["title"]);
        }
    }
}
