//! CrashLoopBackOff per GameServerSet on the local runtime, with the delays shortened: a set
//! whose games exit before Ready creates replacements only as the back-off allows, its state
//! shows the steps, and a healthy set beside it is not slowed down.

mod local_runtime;

use std::sync::Arc;
use std::time::{Duration, Instant};

use local_runtime::{apply, count, eventually, servers, set_yaml, test_config, with_runtime_config};
use stadion_controller::local::runtime::CrashBackoff;
use stadion_crds::{GameServerState, labels};

/// A set whose game appends a line to `starts` and exits at once.
fn crashing_set(name: &str, replicas: i32, starts: &std::path::Path) -> String {
    format!(
        "apiVersion: agones.dev/v1\nkind: GameServerSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      ports:\n        - name: default\n          containerPort: 7654\n      template:\n        spec:\n          containers:\n            - name: game\n              command: [\"sh\", \"-c\", \"echo x >> {}; exit 1\"]\n",
        starts.display()
    )
}

fn starts(file: &std::path::Path) -> usize {
    std::fs::read_to_string(file).map(|t| t.lines().count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_crashing_at_start_backs_off_exponentially_and_shows_it() {
    let file = std::env::temp_dir().join(format!("stadion-crash-loop-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let config = test_config();
    let backoff = CrashBackoff {
        initial: Duration::from_millis(400),
        max: Duration::from_millis(1600),
        reset_after: Duration::from_secs(600),
    };
    let config = stadion_controller::local::runtime::RuntimeConfig { crash_backoff: backoff, ..config };
    let marker = file.clone();
    with_runtime_config(config, |runtime| async move {
        let began = Instant::now();
        apply(&runtime, &crashing_set("doomed", 1, &marker));
        eventually(Duration::from_secs(10), "the first start", || (starts(&marker) >= 1).then_some(())).await;
        // 0.4 + 0.8 + 1.6 + 1.6 s of back-off: a hot loop would start hundreds of times.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let seen = starts(&marker);
        let elapsed = began.elapsed();
        assert!(seen >= 3, "it is retried ({seen} starts in {elapsed:?})");
        assert!(seen <= 6, "it backs off: {seen} starts in {elapsed:?}");

        let summary = runtime.crash_loops().summary("default/doomed", jiff::Timestamp::now()).expect("recorded");
        assert!(summary.consecutive_crashes as usize >= seen - 1, "{summary:?} after {seen} starts");
        assert!(summary.delay_seconds <= 1.6, "capped: {summary:?}");
        assert!(summary.delay_seconds >= 0.8, "doubled: {summary:?}");
        runtime
    })
    .await;
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backing_off_set_creates_nothing_until_its_delay_ends_and_leaves_its_neighbour_alone() {
    let file = std::env::temp_dir().join(format!("stadion-crash-hold-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    // A long first delay: after the first round the broken set must stay put.
    let backoff = CrashBackoff {
        initial: Duration::from_secs(30),
        max: Duration::from_secs(60),
        reset_after: Duration::from_secs(600),
    };
    let config = stadion_controller::local::runtime::RuntimeConfig { crash_backoff: backoff, ..test_config() };
    let marker = file.clone();
    with_runtime_config(config, |runtime| async move {
        apply(&runtime, &crashing_set("doomed", 2, &marker));
        apply(&runtime, &set_yaml("healthy", 2, &[]));
        let store = runtime.store().clone();
        eventually(Duration::from_secs(20), "both first starts", || (starts(&marker) >= 2).then_some(())).await;
        let ready = eventually(Duration::from_secs(20), "2 Ready healthy servers", || {
            let all = servers(&store, labels::GAMESERVERSET, "healthy");
            (count(&all, GameServerState::Ready) == 2).then_some(all)
        })
        .await;
        let summary = runtime.crash_loops().summary("default/doomed", jiff::Timestamp::now()).expect("recorded");
        assert!(summary.backing_off, "{summary:?}");
        assert_eq!(summary.consecutive_crashes, 2, "one step per crashed server: {summary:?}");
        assert_eq!(runtime.crash_loops().summary("default/healthy", jiff::Timestamp::now()), None);

        // A Ready server that dies is not a crash at start: replaced at once.
        let victim = ready[0].name().to_owned();
        let pid = runtime.process_id("default", &victim).expect("running");
        let killed = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")), nix::sys::signal::SIGKILL)
            .expect("kill");
        eventually(Duration::from_secs(10), "the killed healthy server replaced", || {
            let all: Vec<Arc<_>> = servers(&store, labels::GAMESERVERSET, "healthy");
            let gone = all.iter().all(|gs| gs.name() != victim);
            (gone && count(&all, GameServerState::Ready) == 2).then_some(())
        })
        .await;
        assert!(killed.elapsed() < Duration::from_secs(10));
        assert_eq!(runtime.crash_loops().summary("default/healthy", jiff::Timestamp::now()), None);

        // The broken set held still all along: no third start, its servers gone, none created.
        assert_eq!(starts(&marker), 2, "no replacement during the back-off");
        let doomed = servers(&store, labels::GAMESERVERSET, "doomed");
        assert!(doomed.is_empty(), "the crashed servers are deleted and not replaced: {doomed:?}");
        runtime
    })
    .await;
    let _ = std::fs::remove_file(&file);
}
