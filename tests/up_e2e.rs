//! End to end: the real `stadion up` runs the example manifests as real game processes. Players
//! reach a server over UDP, a server told `EXIT` is replaced, an Unhealthy one too, the Buffer
//! autoscaler keeps its Ready buffer while servers are Allocated, and SIGTERM / Ctrl-C stop
//! everything, leaving no game process behind; so does a SIGKILL, through the orphan guard.
//!
//! The matchmaker path (tickets → assigned server) is in `up_matchmaker.rs`.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use support::{Guarded, Scratch, copy_example, eventually, free_port, get_json, test_fleet, udp_request};

/// Generous bounds: the machine running CI is shared and a server's start includes a process
/// spawn, a sidecar and health pings.
const SETTLE: Duration = Duration::from_secs(60);

/// A running `stadion up` and its admin endpoint.
struct Up {
    http: reqwest::Client,
    admin: String,
    process: Guarded,
}

/// Starts `stadion up` on `paths` with its admin endpoint on a free port and host ports from
/// `port_range` (distinct per test, so tests running at once never race for a port).
fn start_up(scratch: &Scratch, paths: &[PathBuf], port_range: &str) -> Up {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut args = vec![
        "up".to_owned(),
        "--admin-addr".to_owned(),
        admin.to_string(),
        // `up` runs the matchmaker when a queue config is among the paths: never on its default
        // port, which a developer's own `stadion up` may hold.
        "--matchmaker-addr".to_owned(),
        SocketAddr::from(([127, 0, 0, 1], free_port())).to_string(),
        "--port-range".to_owned(),
        port_range.to_owned(),
        "--grace-seconds".to_owned(),
        "3".to_owned(),
        "--poll-ms".to_owned(),
        "200".to_owned(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = Guarded::stadion(scratch, "stadion-up", &args, &[]);
    Up { http: reqwest::Client::new(), admin: format!("http://{admin}"), process }
}

impl Up {
    async fn fleet(&self, name: &str) -> Option<Value> {
        let fleets = get_json(&self.http, &format!("{}/api/fleets", self.admin)).await?;
        fleets.as_array()?.iter().find(|f| f["name"] == name).cloned()
    }

    async fn gameservers(&self) -> Vec<Value> {
        let all = get_json(&self.http, &format!("{}/api/gameservers", self.admin)).await;
        all.and_then(|v| v.as_array().cloned()).unwrap_or_default()
    }

    async fn gameserver(&self, name: &str) -> Option<Value> {
        self.gameservers().await.into_iter().find(|gs| gs["name"] == name)
    }

    /// Waits until the fleet's counts satisfy `check`, returning them.
    async fn fleet_until(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(SETTLE, what, || async { self.fleet(name).await.filter(|f| check(f)) }).await
    }

    /// A Ready server of `fleet` and where players reach it.
    async fn ready_server(&self, fleet: &str) -> (String, SocketAddr) {
        let gs = eventually(SETTLE, "a Ready server", || async {
            self.gameservers().await.into_iter().find(|gs| gs["fleet"] == fleet && gs["state"] == "Ready")
        })
        .await;
        (gs["name"].as_str().unwrap_or_default().to_owned(), address_of(&gs))
    }

    async fn state_of(&self, name: &str) -> Option<String> {
        self.gameserver(name).await.and_then(|gs| gs["state"].as_str().map(str::to_owned))
    }
}

/// `status.address` and the first port of an admin GameServer entry.
fn address_of(gs: &Value) -> SocketAddr {
    let ip = gs["address"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no address: {gs}"));
    let port = gs["ports"][0]["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_else(|| panic!("{gs}"));
    SocketAddr::new(ip, port)
}

fn count(fleet: &Value, field: &str) -> i64 {
    fleet[field].as_i64().unwrap_or(-1)
}

/// Stops `up` with `signal` and checks it exits 0 and takes every game process with it.
fn stop_and_check_clean(up: &mut Up, scratch: &Scratch, signal: Signal, games_running: usize) {
    let before = scratch.marked_processes();
    assert!(
        before.len() > games_running,
        "expected `up` and at least {games_running} games carrying the marker, found {before:?}"
    );
    up.process.signal(signal);
    let status = up.process.wait_exit(Duration::from_secs(30)).expect("`up` stops within 30 s of the signal");
    assert!(status.success(), "`up` should exit 0 on {signal:?}, got {status}");
    // The games were in their own process groups; none may outlive `up`.
    let left = scratch.marked_processes();
    assert!(left.is_empty(), "game processes left behind after {signal:?}: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_serves_players_replaces_exited_and_unhealthy_servers_and_stops_clean() {
    let scratch = Scratch::new("up-fleet");
    let fleet = test_fleet(&scratch, 2);
    let standalone = copy_example(&scratch, "gameserver.yaml", |t| t);
    let mut up = start_up(&scratch, &[fleet.clone(), standalone], "21000-21099");

    up.fleet_until("simple-game-server", "2 Ready servers", |f| count(f, "ready") == 2).await;
    let standalone = eventually(SETTLE, "the standalone GameServer Ready", || async {
        up.gameserver("simple-game-server").await.filter(|gs| gs["state"] == "Ready")
    })
    .await;
    assert_eq!(udp_request(address_of(&standalone), "hi"), "ECHO simple-game-server: hi\n");

    // A player reaches a fleet server at its advertised address and port.
    let (name, addr) = up.ready_server("simple-game-server").await;
    assert_eq!(udp_request(addr, "hello"), format!("ECHO {name}: hello\n"));

    // The game allocates itself (SDK Allocate): the store sees it, the fleet counts it.
    assert_eq!(udp_request(addr, "ALLOCATE"), "ACK ALLOCATE\n");
    eventually(SETTLE, "the server Allocated", || async {
        (up.state_of(&name).await.as_deref() == Some("Allocated")).then_some(())
    })
    .await;
    up.fleet_until("simple-game-server", "1 allocated, 1 ready", |f| {
        count(f, "allocated") == 1 && count(f, "ready") == 1
    })
    .await;

    // EXIT: SDK Shutdown and exit 0; the server goes away and the fleet is back to 2 Ready.
    assert_eq!(udp_request(addr, "EXIT"), "ACK EXIT\n");
    eventually(SETTLE, "the exited server removed", || async { up.gameserver(&name).await.is_none().then_some(()) })
        .await;
    up.fleet_until("simple-game-server", "2 Ready again after EXIT", |f| {
        count(f, "ready") == 2 && count(f, "allocated") == 0
    })
    .await;

    // UNHEALTHY: pings stop, the sidecar marks it Unhealthy, the fleet replaces it.
    let (sick, sick_addr) = up.ready_server("simple-game-server").await;
    assert_eq!(udp_request(sick_addr, "UNHEALTHY"), "ACK UNHEALTHY\n");
    eventually(SETTLE, "the silent server Unhealthy or gone", || async {
        match up.state_of(&sick).await.as_deref() {
            None | Some("Unhealthy") => Some(()),
            Some(_) => None,
        }
    })
    .await;
    up.fleet_until("simple-game-server", "2 Ready after the Unhealthy one", |f| count(f, "ready") == 2).await;
    let names: Vec<String> =
        up.gameservers().await.iter().filter(|gs| gs["state"] == "Ready").map(|gs| gs["name"].to_string()).collect();
    assert!(!names.iter().any(|n| n.contains(&name) || n.contains(&sick)), "replaced servers still Ready: {names:?}");

    // Declarative: edit replicas, save, the fleet follows.
    std::fs::write(&fleet, std::fs::read_to_string(&fleet).expect("fleet copy").replace("replicas: 2", "replicas: 4"))
        .expect("edit fleet");
    up.fleet_until("simple-game-server", "4 Ready after the edit", |f| count(f, "ready") == 4).await;

    stop_and_check_clean(&mut up, &scratch, Signal::SIGTERM, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn buffer_autoscaler_keeps_two_ready_as_servers_are_allocated_and_ctrl_c_stops_clean() {
    let scratch = Scratch::new("up-autoscaler");
    let fleet = test_fleet(&scratch, 1);
    let autoscaler = copy_example(&scratch, "fleetautoscaler.yaml", |t| t.replace("seconds: 5", "seconds: 1"));
    let mut up = start_up(&scratch, &[fleet, autoscaler], "21100-21199");

    // minReplicas 2 and a buffer of 2 lift the fleet from its 1 replica to 2 Ready.
    up.fleet_until("simple-game-server", "the buffer of 2 Ready", |f| count(f, "ready") == 2).await;

    let mut allocated = Vec::new();
    for round in 1..=2 {
        let (name, addr) = up.ready_server("simple-game-server").await;
        assert_eq!(udp_request(addr, "ALLOCATE"), "ACK ALLOCATE\n");
        allocated.push((name, addr));
        up.fleet_until("simple-game-server", &format!("{round} allocated and still 2 Ready"), |f| {
            count(f, "allocated") == round && count(f, "ready") == 2 && count(f, "desired") == round + 2
        })
        .await;
    }

    // Matches end: the fleet shrinks back to the buffer.
    for (_, addr) in &allocated {
        assert_eq!(udp_request(*addr, "EXIT"), "ACK EXIT\n");
    }
    up.fleet_until("simple-game-server", "back to 2 Ready and desired 2", |f| {
        count(f, "allocated") == 0 && count(f, "ready") == 2 && count(f, "desired") == 2
    })
    .await;

    stop_and_check_clean(&mut up, &scratch, Signal::SIGINT, 2);
}

/// A SIGKILLed `up` runs no cleanup of its own; its orphan guard stops the games instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_up_takes_its_games_with_it() {
    let scratch = Scratch::new("up-sigkill");
    let fleet = test_fleet(&scratch, 2);
    let mut up = start_up(&scratch, &[fleet], "21600-21699");
    up.fleet_until("simple-game-server", "2 Ready", |f| count(f, "ready") == 2).await;
    let before = scratch.marked_processes();
    assert!(before.len() >= 4, "expected `up`, its guard and 2 games, found {before:?}");
    up.process.signal(Signal::SIGKILL);
    up.process.wait_exit(Duration::from_secs(30)).expect("SIGKILL ends `up`");
    // The games get SIGTERM and up to --grace-seconds (3) before SIGKILL.
    eventually(Duration::from_secs(20), "every game gone after `up` was SIGKILLed", || async {
        scratch.marked_processes().is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_manifest_exits_2_and_starts_nothing() {
    let scratch = Scratch::new("up-invalid");
    let fleet = copy_example(&scratch, "fleet.yaml", |t| t.replace("containerPort: 7654", "containerPort: seventy"));
    let mut up = start_up(&scratch, &[fleet], "21200-21299");
    let status = up.process.wait_exit(Duration::from_secs(30)).expect("`up` refuses at once");
    assert_eq!(status.code(), Some(2), "{}", up.process.output());
    let output = up.process.output();
    assert!(output.contains("containerPort"), "the error names the field: {output}");
    assert!(scratch.marked_processes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_examples_folder_runs_as_is() {
    // What the README's first command runs: the files as committed, not test copies.
    let scratch = Scratch::new("up-examples");
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut up = start_up(&scratch, &[examples], "21400-21499");

    // The fleet asks for 3; the Buffer autoscaler (2 above 0 allocated, min 2) settles it at 2.
    up.fleet_until("simple-game-server", "the autoscaled fleet at 2 Ready", |f| {
        count(f, "desired") == 2 && count(f, "ready") == 2
    })
    .await;
    let standalone = eventually(SETTLE, "the standalone GameServer Ready", || async {
        up.gameserver("simple-game-server").await.filter(|gs| gs["state"] == "Ready")
    })
    .await;
    assert_eq!(udp_request(address_of(&standalone), "hi"), "ECHO simple-game-server: hi\n");
    let (name, addr) = up.ready_server("simple-game-server").await;
    assert_eq!(udp_request(addr, "hi"), format!("ECHO {name}: hi\n"));

    stop_and_check_clean(&mut up, &scratch, Signal::SIGINT, 3);
}
