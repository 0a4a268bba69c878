//! `stadion up` supervising like a kubelet: a fleet whose game exits at start is restarted in
//! CrashLoopBackOff (10 s, 20 s, 40 s…), not in a hot loop, the admin API shows the back-off,
//! and a healthy fleet beside it still has a killed server replaced at once.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use support::{Guarded, Scratch, eventually, get_json, test_fleet};

/// Starts `stadion up` on `paths` with a free admin port; returns it and the admin base URL.
fn up(scratch: &Scratch, paths: &[&Path], port_range: &str) -> (Guarded, String) {
    let up = support::up_on(scratch, paths, port_range);
    (up.process, up.admin)
}

/// A one-server fleet whose game appends a line to `starts` and exits 1 at once.
fn crashing_fleet(scratch: &Scratch, starts: &Path) -> PathBuf {
    let text = format!(
        r#"apiVersion: agones.dev/v1
kind: Fleet
metadata:
  name: crashloop
spec:
  replicas: 1
  template:
    spec:
      ports:
        - name: default
          containerPort: 7654
      template:
        spec:
          containers:
            - name: game
              command: ["sh", "-c", "echo x >> \"$STARTS\"; exit 1"]
              env:
                - name: STARTS
                  value: {}
"#,
        starts.display()
    );
    scratch.write("crashloop.yaml", &text)
}

/// `text` without terminal colour sequences (`ESC [ … m`).
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn starts(file: &Path) -> usize {
    std::fs::read_to_string(file).map(|t| t.lines().count()).unwrap_or(0)
}

/// The pid of the game process of GameServer `name` (its environment names it).
fn game_pid(scratch: &Scratch, name: &str) -> Option<u32> {
    let needle = format!("STADION_GAMESERVER_NAME={name}");
    scratch.marked_processes().into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
    })
}

async fn ready_servers(http: &reqwest::Client, admin: &str, fleet: &str) -> Vec<String> {
    let all = get_json(http, &format!("{admin}/api/gameservers")).await.unwrap_or_default();
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|gs| gs["fleet"] == fleet && gs["state"] == "Ready" && gs["deleting"] == false)
        .filter_map(|gs| gs["name"].as_str().map(str::to_owned))
        .collect()
}

async fn set_of_fleet(http: &reqwest::Client, admin: &str, fleet: &str) -> Option<Value> {
    let sets = get_json(http, &format!("{admin}/api/gameserversets")).await?;
    sets.as_array()?.iter().find(|s| s["fleet"] == fleet).cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_fleet_backs_off_and_its_healthy_neighbour_is_replaced_at_once() {
    let scratch = Scratch::new("up-crash-loop");
    let marker = scratch.dir.join("starts.log");
    let broken = crashing_fleet(&scratch, &marker);
    let healthy = test_fleet(&scratch, 2);
    let (mut process, admin) = up(&scratch, &[&broken, &healthy], "23100-23199");
    let http = reqwest::Client::new();
    let began = Instant::now();

    eventually(Duration::from_secs(20), "the broken game's first start", || async {
        (starts(&marker) >= 1).then_some(())
    })
    .await;
    let ready = eventually(Duration::from_secs(30), "2 Ready healthy servers", || async {
        let ready = ready_servers(&http, &admin, "simple-game-server").await;
        (ready.len() == 2).then_some(ready)
    })
    .await;

    // The admin API shows the broken set backing off, and the healthy one not.
    let crashing = eventually(Duration::from_secs(10), "the broken set's back-off in the admin API", || async {
        let set = set_of_fleet(&http, &admin, "crashloop").await?;
        (set["crashLoopBackOff"]["consecutiveCrashes"].as_u64()? >= 1).then_some(set)
    })
    .await;
    let state = &crashing["crashLoopBackOff"];
    assert!(state["delaySeconds"].as_f64().is_some_and(|d| d >= 10.0), "{crashing}");
    assert!(state["nextAttempt"].is_string() && state["lastCrash"].is_string(), "{crashing}");
    let neighbour = set_of_fleet(&http, &admin, "simple-game-server").await.expect("the healthy set");
    assert!(neighbour["crashLoopBackOff"].is_null(), "{neighbour}");

    // Kill a Ready healthy server: it is replaced at once, not after the neighbour's delay.
    let victim = &ready[0];
    let pid = game_pid(&scratch, victim).expect("the victim's game process");
    let killed = Instant::now();
    kill(Pid::from_raw(i32::try_from(pid).expect("pid")), Signal::SIGKILL).expect("kill");
    eventually(Duration::from_secs(8), "the killed server replaced by a Ready one", || async {
        let ready = ready_servers(&http, &admin, "simple-game-server").await;
        (ready.len() == 2 && !ready.contains(victim)).then_some(())
    })
    .await;
    let replaced_in = killed.elapsed();
    assert!(replaced_in < Duration::from_secs(8), "replacement took {replaced_in:?}");

    // 60 s of a game that exits at once: starts at about 0 s, 10 s and 30 s (the next at 70 s),
    // never a hot loop. The issue's bound is at most 6 starts in 60 s; the kubelet's schedule
    // gives 3, and one more is allowed for a start that races the window's end.
    let window = Duration::from_secs(60);
    tokio::time::sleep(window.saturating_sub(began.elapsed())).await;
    let seen = starts(&marker);
    assert!(seen >= 3, "the broken fleet is retried at 10 s and 30 s: {seen} starts in {:?}", began.elapsed());
    assert!(seen <= 4, "the broken fleet backs off: {seen} starts in {:?}", began.elapsed());

    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(Duration::from_secs(20)).expect("`up` stops");
    let output = without_ansi(&process.output());
    assert!(status.success(), "{output}");
    // One log line per step, naming the set, the attempt and the delay.
    let steps: Vec<&str> = output.lines().filter(|l| l.contains("CrashLoopBackOff")).collect();
    assert!(steps.len() >= seen.saturating_sub(1).max(1), "{output}");
    assert!(steps.iter().all(|l| l.contains("crashloop") && l.contains("attempt=")), "{steps:?}");
    assert!(steps.iter().any(|l| l.contains("attempt=2") && l.contains("delay_seconds=20")), "{steps:?}");
}

/// Agones' own simple-game-server Fleet, as its docs give it: an image and no command.
const AGONES_IMAGE_ONLY_FLEET: &str = r#"apiVersion: agones.dev/v1
kind: Fleet
metadata:
  name: simple-game-server
spec:
  replicas: 2
  template:
    spec:
      ports:
        - name: default
          containerPort: 7654
      template:
        spec:
          containers:
            - name: simple-game-server
              image: us-docker.pkg.dev/agones-images/examples/simple-game-server:0.35
              resources:
                requests:
                  memory: 64Mi
                  cpu: 20m
"#;

#[test]
fn a_container_with_only_an_image_is_refused_at_start_with_what_to_add() {
    let scratch = Scratch::new("up-image-only");
    let file = scratch.write("fleet.yaml", AGONES_IMAGE_ONLY_FLEET);
    let (mut process, _) = up(&scratch, &[&file], "23200-23209");
    let started = Instant::now();
    let status = process.wait_exit(Duration::from_secs(10)).expect("`up` answers at once");
    let output = without_ansi(&process.output());
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(started.elapsed() < Duration::from_secs(10));
    for needle in [
        "fleet.yaml",
        "Fleet default/simple-game-server",
        "spec.template.spec.template.spec.containers[0].command",
        "simple-game-server:0.35",
        "add `command:`",
        "`args:`",
    ] {
        assert!(output.contains(needle), "the error names {needle:?}: {output}");
    }
    assert!(scratch.marked_processes().is_empty(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_to_an_image_only_container_is_reported_and_the_running_fleet_kept() {
    let scratch = Scratch::new("up-image-only-edit");
    let fleet = test_fleet(&scratch, 1);
    let (mut process, admin) = up(&scratch, &[&fleet], "23210-23219");
    let http = reqwest::Client::new();
    let before = eventually(Duration::from_secs(30), "the Ready server", || async {
        let ready = ready_servers(&http, &admin, "simple-game-server").await;
        (ready.len() == 1).then_some(ready)
    })
    .await;

    let text = std::fs::read_to_string(&fleet).expect("fleet");
    let command = text.lines().find(|l| l.trim_start().starts_with("command:")).expect("a command line").to_owned();
    std::fs::write(&fleet, text.replace(&command, "").replace("replicas: 1", "replicas: 2")).expect("edit");
    eventually(Duration::from_secs(10), "the edit reported", || async {
        let output = without_ansi(&process.output());
        (output.contains("not re-applied") && output.contains("containers[0].command")).then_some(())
    })
    .await;
    // The last good state stays: one server, the same one, still Ready.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ready_servers(&http, &admin, "simple-game-server").await, before);
    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(Duration::from_secs(20)).expect("`up` stops");
    assert!(status.success(), "{}", process.output());
}

/// Copies `tests/fixtures/generate-name/` into a folder of the scratch directory.
fn generate_name_fixture(scratch: &Scratch) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/generate-name");
    let folder = scratch.dir.join("manifests");
    std::fs::create_dir_all(&folder).expect("folder");
    for file in ["fleet.yaml", "gameservers.yaml"] {
        std::fs::copy(source.join(file), folder.join(file)).expect("copy fixture");
    }
    folder
}

/// `(name, created)` of every live GameServer, sorted.
async fn server_identities(http: &reqwest::Client, admin: &str) -> Vec<(String, String)> {
    let all = get_json(http, &format!("{admin}/api/gameservers")).await.unwrap_or_default();
    let mut out: Vec<(String, String)> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|gs| gs["deleting"] == false)
        .map(|gs| (gs["name"].as_str().unwrap_or_default().to_owned(), gs["created"].to_string()))
        .collect();
    out.sort();
    out
}

fn generated(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|s| s.len() == 5 && s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)))
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_name_objects_are_named_once_and_kept_across_re_applies() {
    let scratch = Scratch::new("up-generate-name");
    let folder = generate_name_fixture(&scratch);
    let (mut process, admin) = up(&scratch, &[&folder], "23220-23239");
    let http = reqwest::Client::new();

    let fleet = eventually(Duration::from_secs(40), "the generated fleet with 2 Ready servers", || async {
        let fleets = get_json(&http, &format!("{admin}/api/fleets")).await?;
        let fleet = fleets.as_array()?.first()?.clone();
        (fleet["ready"] == 2).then_some(fleet)
    })
    .await;
    let fleet_name = fleet["name"].as_str().expect("name").to_owned();
    assert!(generated(&fleet_name, "simple-game-server-"), "{fleet_name}");
    let settled = || async {
        let all = get_json(&http, &format!("{admin}/api/gameservers")).await?;
        let ready = all.as_array()?.iter().filter(|gs| gs["state"] == "Ready").count();
        (ready == 4).then_some(())
    };
    eventually(Duration::from_secs(40), "2 standalone and 2 fleet servers Ready", settled).await;
    let before = server_identities(&http, &admin).await;
    let duels: Vec<&String> = before.iter().map(|(n, _)| n).filter(|n| n.starts_with("duel-")).collect();
    assert_eq!(duels.len(), 2, "{before:?}");
    assert!(duels.iter().all(|n| generated(n, "duel-")), "{duels:?}");

    // Saving the files unchanged re-applies the folder: nothing is duplicated or re-created.
    for file in ["fleet.yaml", "gameservers.yaml"] {
        let text = std::fs::read_to_string(folder.join(file)).expect("read");
        std::fs::write(folder.join(file), format!("{text}\n")).expect("touch");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server_identities(&http, &admin).await, before, "the same objects after re-applying");
    let fleets = get_json(&http, &format!("{admin}/api/fleets")).await.expect("fleets");
    assert_eq!(fleets.as_array().map(Vec::len), Some(1), "{fleets}");

    // An edit updates the generated fleet in place.
    let text = std::fs::read_to_string(folder.join("fleet.yaml")).expect("read");
    std::fs::write(folder.join("fleet.yaml"), text.replace("replicas: 2", "replicas: 3")).expect("edit");
    eventually(Duration::from_secs(40), "the same fleet with 3 Ready servers", || async {
        let fleets = get_json(&http, &format!("{admin}/api/fleets")).await?;
        let fleets = fleets.as_array()?;
        (fleets.len() == 1 && fleets[0]["name"] == fleet_name.as_str() && fleets[0]["ready"] == 3).then_some(())
    })
    .await;
    let after = server_identities(&http, &admin).await;
    assert!(before.iter().all(|server| after.contains(server)), "kept: {before:?} → {after:?}");

    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(Duration::from_secs(20)).expect("`up` stops");
    assert!(status.success(), "{}", process.output());
}
