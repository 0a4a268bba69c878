//! Shared harness of the local runtime's component tests: a runtime running the real test game
//! (`stadion-test-game`, which uses the SDK client), manifests built from YAML, and polling.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stadion_controller::local::LocalRuntime;
use stadion_controller::local::runtime::{ApplyReport, Manifest, RuntimeConfig};
use stadion_controller::local::store::{Selector, Store};
use stadion_controller::local::supervisor::OutputSink;
use stadion_crds::manifest::parse_documents;
use stadion_crds::{GameServer, GameServerState};

/// The test game binary, built by Cargo for integration tests. Tests of other packages that
/// include this harness (the root package's) find it beside their own executable, in the target
/// folder `cargo test --workspace` builds it into.
pub fn game() -> String {
    if let Some(path) = option_env!("CARGO_BIN_EXE_stadion-test-game") {
        return path.to_owned();
    }
    let exe = std::env::current_exe().expect("the test knows its executable");
    let target = exe.parent().and_then(|deps| deps.parent()).expect("tests run from target/<profile>/deps");
    let game = target.join("stadion-test-game");
    assert!(game.exists(), "{} is missing: run `cargo test --workspace`", game.display());
    game.display().to_string()
}

/// Settings of test runtimes: quiet output and a short grace period. Set
/// `STADION_TEST_OUTPUT=1` to see the games' output.
pub fn test_config() -> RuntimeConfig {
    let output =
        if std::env::var_os("STADION_TEST_OUTPUT").is_some() { OutputSink::stderr() } else { OutputSink::Discard };
    RuntimeConfig { grace: Duration::from_secs(2), output, ..RuntimeConfig::default() }
}

/// A runtime with the [`test_config`].
pub fn runtime() -> LocalRuntime {
    LocalRuntime::start(test_config()).expect("runtime starts")
}

/// The pod template and health settings every test server uses: the test game, health pings
/// every 200 ms checked every second.
pub fn game_spec(args: &[&str]) -> String {
    let args = args.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
    let game = game();
    format!(
        r#"
      ports:
        - name: default
          containerPort: 7654
      health:
        periodSeconds: 1
        failureThreshold: 2
        initialDelaySeconds: 1
      template:
        spec:
          containers:
            - name: game
              command: [{game:?}]
              args: [{args}]"#
    )
}

/// A Fleet manifest.
pub fn fleet_yaml(name: &str, replicas: i32, args: &[&str]) -> String {
    format!(
        "apiVersion: agones.dev/v1\nkind: Fleet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  template:\n    spec:{}\n",
        indent(&game_spec(args), 2)
    )
}

/// A GameServerSet manifest.
pub fn set_yaml(name: &str, replicas: i32, args: &[&str]) -> String {
    format!(
        "apiVersion: agones.dev/v1\nkind: GameServerSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  template:\n    spec:{}\n",
        indent(&game_spec(args), 2)
    )
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
}

/// Parses YAML into manifests applied from the temp folder.
pub fn manifests(yaml: &str) -> Vec<Manifest> {
    parse_documents(yaml, "test.yaml")
        .expect("test manifests parse")
        .into_iter()
        .map(|resource| Manifest { resource, base_dir: PathBuf::from("/"), source: "test.yaml".into() })
        .collect()
}

/// Applies YAML, pruning nothing.
pub fn apply(runtime: &LocalRuntime, yaml: &str) -> ApplyReport {
    runtime.apply(&manifests(yaml), false).expect("valid manifests apply")
}

/// Servers labelled with `label=value`, in any state (not counting those being deleted).
pub fn servers(store: &Store, label: &str, value: &str) -> Vec<std::sync::Arc<GameServer>> {
    store
        .api::<GameServer>()
        .list(Some("default"), &Selector::from_labels([(label, value)]))
        .into_iter()
        .filter(|gs| gs.metadata.deletion_timestamp.is_none())
        .collect()
}

/// How many of `servers` are in `state`.
pub fn count(servers: &[std::sync::Arc<GameServer>], state: GameServerState) -> usize {
    servers.iter().filter(|gs| gs.state() == Some(state)).count()
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `limit` with `what`.
pub async fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `test` against a fresh runtime, then shuts it down and checks that no game process
/// outlived it, whether the test passed or not.
pub async fn with_runtime<F, Fut>(test: F)
where
    F: FnOnce(LocalRuntime) -> Fut,
    Fut: Future<Output = LocalRuntime>,
{
    with_runtime_config(test_config(), test).await;
}

/// [`with_runtime`] over a runtime started with `config` (start from [`test_config`]).
pub async fn with_runtime_config<F, Fut>(config: RuntimeConfig, test: F)
where
    F: FnOnce(LocalRuntime) -> Fut,
    Fut: Future<Output = LocalRuntime>,
{
    let runtime = test(LocalRuntime::start(config).expect("runtime starts")).await;
    let store = runtime.store().clone();
    let pids: Vec<u32> = store
        .api::<GameServer>()
        .list(None, &Selector::everything())
        .iter()
        .filter_map(|gs| runtime.process_id(gs.namespace(), gs.name()))
        .collect();
    runtime.shutdown().await;
    for pid in pids {
        assert!(!alive(pid), "game process {pid} outlived the runtime");
    }
}

/// Whether `pid` is a live process (zombies awaiting a reaper that is not us do not count).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}
