//! The architecture is the crate graph (design.md, "Layers"): crds ← core ← {sdk, matchmaker} ←
//! controller ← simple-game-server ← stadion. This reads `cargo metadata` and fails on any edge that points up, and on
//! an I/O crate in `stadion-core`, whose dependencies must make I/O impossible.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Each workspace crate's layer: a crate may depend only on crates of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("stadion-crds", 0),
    ("stadion-core", 1),
    ("stadion-sdk", 2),
    ("stadion-matchmaker", 3),
    ("stadion-controller", 4),
    ("simple-game-server", 5),
    ("stadion", 6),
];

/// What `stadion-core` may depend on: types, serde, time, errors, logging, a proc macro, and
/// runtime-free channels. No async runtime, client, HTTP, gRPC or process crate.
const CORE_ALLOWED: &[&str] =
    &["stadion-crds", "async-trait", "jiff", "k8s-openapi", "serde", "serde_json", "thiserror", "tokio", "tracing"];

/// The only tokio features `stadion-core` may turn on: channels, not the runtime.
const CORE_TOKIO_FEATURES: &[&str] = &["sync"];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every workspace package with its declared dependencies (name, kind, features).
fn packages() -> BTreeMap<String, Vec<Value>> {
    let metadata = metadata();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name").to_owned();
            (name, p["dependencies"].as_array().cloned().unwrap_or_default())
        })
        .collect()
}

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(crate_name, _)| *crate_name == name).map(|(_, layer)| *layer)
}

#[test]
fn every_workspace_crate_has_a_layer() {
    for name in packages().keys() {
        assert!(layer(name).is_some(), "workspace crate {name} has no layer in tests/crate_graph.rs");
    }
}

#[test]
fn no_dependency_points_up_or_sideways() {
    let mut violations = Vec::new();
    for (name, dependencies) in packages() {
        let from = layer(&name).expect("every crate has a layer");
        for dependency in dependencies {
            let to_name = dependency["name"].as_str().expect("dependency name");
            let Some(to) = layer(to_name) else { continue };
            // Dev-dependencies count too: a test that needs a higher layer belongs to that layer.
            if to >= from {
                let kind = dependency["kind"].as_str().unwrap_or("normal");
                violations.push(format!("{name} (layer {from}) -> {to_name} (layer {to}) [{kind}]"));
            }
        }
    }
    assert!(violations.is_empty(), "dependencies that point up the layer list:\n{}", violations.join("\n"));
}

#[test]
fn the_core_cannot_do_io() {
    let packages = packages();
    let core = packages.get("stadion-core").expect("the stadion-core crate exists");
    for dependency in core.iter().filter(|d| d["kind"].is_null()) {
        let name = dependency["name"].as_str().expect("dependency name");
        assert!(CORE_ALLOWED.contains(&name), "stadion-core must stay pure, but depends on {name}");
        if name == "tokio" {
            let features: Vec<&str> =
                dependency["features"].as_array().expect("features").iter().filter_map(Value::as_str).collect();
            assert!(
                features.iter().all(|f| CORE_TOKIO_FEATURES.contains(f)),
                "stadion-core may use tokio only for {CORE_TOKIO_FEATURES:?}, not {features:?}"
            );
        }
    }
}

#[test]
fn the_controller_does_not_compile_the_matchmaker() {
    let packages = packages();
    let controller = packages.get("stadion-controller").expect("the controller crate exists");
    assert!(
        controller.iter().all(|d| d["name"] != "stadion-matchmaker"),
        "the controller reaches the Allocator seam through stadion-core, not the matchmaker"
    );
}
