//! `stadion up --state-dir` and `stadion up --redis-url`: a kill -9 of `up` loses no ticket.
//! After a restart on the same folder (or Redis), assigned tickets keep their assignment,
//! searching ones search again (and match with newcomers), a match that was waiting for a
//! server gets one, a cancelled ticket stays cancelled, and an idempotency key still gives back
//! its ticket.

#[path = "../matchmaker/tests/support/redis.rs"]
mod redis_server;
mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{Scratch, TICKET_SETTLE, Up, copy_example, duel_ticket, eventually, get_json, test_fleet, up_on_with};

fn squad(id: &str) -> Value {
    json!({"queue": "teams-2v2", "players": [{"id": id, "attributes": {"skill": 1000.0}, "latencies": {"local": 10.0}}]})
}

impl Up {
    async fn ticket(&self, id: &str) -> Value {
        let url = format!("{}/v1/tickets/{id}", self.api);
        eventually(TICKET_SETTLE, &format!("GET ticket {id}"), || get_json(&self.http, &url)).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_up_resumes_every_ticket_from_its_state_dir() {
    let scratch = Scratch::new("up-mm-restart");
    let state = scratch.dir.join("state").display().to_string();
    resumes_every_ticket_after_a_kill(&scratch, &["--state-dir", &state], ["21500-21549", "21550-21599"]).await;
}

/// With `--state-sync 1h` nothing is synced during the test (but the snapshot written at
/// start): every answered ticket was only written, which a kill of the process cannot undo.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_up_resumes_every_ticket_from_a_state_dir_synced_on_an_interval() {
    let scratch = Scratch::new("up-mm-restart-interval");
    let state = scratch.dir.join("state").display().to_string();
    let flags = ["--state-dir", &state, "--state-sync", "1h"];
    resumes_every_ticket_after_a_kill(&scratch, &flags, ["23600-23649", "23650-23699"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_up_resumes_every_ticket_from_redis() {
    let scratch = Scratch::new("up-mm-restart-redis");
    let redis = redis_server::RedisServer::start();
    resumes_every_ticket_after_a_kill(&scratch, &["--redis-url", &redis.url()], ["23300-23349", "23350-23399"]).await;
}

/// Tickets in every state before a kill -9 of `up` with the store `flags`, then a restart on
/// the same store with host ports from the second range.
async fn resumes_every_ticket_after_a_kill(scratch: &Scratch, flags: &[&str], ports: [&str; 2]) {
    let fleet = test_fleet(scratch, 1);
    let queues = copy_example(scratch, "matchmaker.yaml", |text| text);

    let mut up = up_on_with(scratch, &[&fleet, &queues], ports[0], flags);
    up.fleet_ready(1).await;
    // Assigned: a duel takes the only server.
    let alice = up.ticket_created(&duel_ticket("alice", 1500.0), Some("key-alice")).await;
    let bob = up.ticket_created(&duel_ticket("bob", 1510.0), None).await;
    let alice_before = up.ticket_reaches(&alice, "assigned").await;
    let bob_before = up.ticket_reaches(&bob, "assigned").await;
    // Matched, waiting for a server none is free.
    let frank = up.ticket_created(&duel_ticket("frank", 900.0), None).await;
    let gina = up.ticket_created(&duel_ticket("gina", 910.0), None).await;
    up.ticket_reaches(&frank, "matched").await;
    up.ticket_reaches(&gina, "matched").await;
    // Searching: two of the four a 2v2 needs, one with an idempotency key.
    let carol = up.ticket_created(&squad("carol"), None).await;
    let dave = up.ticket_created(&squad("dave"), Some("key-dave")).await;
    // Cancelled.
    let erin = up.ticket_created(&squad("erin"), None).await;
    let cancel = up.http.delete(format!("{}/v1/tickets/{erin}", up.api)).send().await.expect("DELETE");
    assert_eq!(cancel.status().as_u16(), 200);

    up.process.signal(Signal::SIGKILL);
    assert!(up.process.wait_exit(Duration::from_secs(10)).is_some(), "up survived SIGKILL");

    let up = up_on_with(scratch, &[&fleet, &queues], ports[1], flags);
    // Answers before its fleet is back: the tickets come from the store.
    let alice_after = up.ticket(&alice).await;
    assert_eq!(alice_after["state"], "assigned", "{alice_after}");
    assert_eq!(alice_after["assignment"], alice_before["assignment"], "assignment kept");
    assert_eq!(up.ticket(&bob).await["assignment"], bob_before["assignment"]);
    assert_eq!(up.ticket(&erin).await["state"], "cancelled");
    for id in [&carol, &dave] {
        assert_eq!(up.ticket(id).await["state"], "searching");
    }
    // Idempotency keys give back the same tickets.
    let (status, again) = up.post_ticket_json(&squad("dave"), Some("key-dave")).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(dave.as_str())), "{again}");
    let (status, again) = up.post_ticket_json(&duel_ticket("alice", 1500.0), Some("key-alice")).await;
    assert_eq!((status, again["id"].as_str(), again["state"].as_str()), (200, Some(alice.as_str()), Some("assigned")));
    // A player with a live ticket still cannot queue twice.
    let (status, conflict) = up.post_ticket_json(&squad("carol"), None).await;
    assert_eq!(status, 409, "{conflict}");

    // The waiting duel gets the fresh server.
    let frank_after = up.ticket_reaches(&frank, "assigned").await;
    let gina_after = up.ticket_reaches(&gina, "assigned").await;
    assert_eq!(frank_after["assignment"]["matchId"], frank_after["match"]["id"]);
    assert_eq!(frank_after["assignment"], gina_after["assignment"]);
    assert_ne!(frank_after["assignment"]["gameServerName"], alice_before["assignment"]["gameServerName"]);

    // The searching tickets are back in the pool: two newcomers complete the 2v2 (it waits for
    // a server, none being free, which shows it formed).
    let heidi = up.ticket_created(&squad("heidi"), None).await;
    let ivan = up.ticket_created(&squad("ivan"), None).await;
    let matched = up.ticket_reaches(&carol, "matched").await;
    let mut players: Vec<String> = matched["match"]["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .flat_map(|team| team.as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    players.sort();
    assert_eq!(players, ["carol", "dave", "heidi", "ivan"], "{matched}");
    for id in [&dave, &heidi, &ivan] {
        assert_eq!(up.ticket(id).await["match"]["id"], matched["match"]["id"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_dir_without_a_matchmaker_is_a_usage_error() {
    let scratch = Scratch::new("up-mm-state-no-queues");
    let fleet = test_fleet(&scratch, 1);
    let state = scratch.dir.join("state").display().to_string();
    let output = usage_error(&scratch, &[&fleet], "21600-21609", &["--state-dir", &state]);
    assert!(output.contains("--state-dir"), "{output}");
}

/// The output of an `up` with `flags` that must exit 2 before it starts anything.
fn usage_error(scratch: &Scratch, paths: &[&std::path::Path], ports: &str, flags: &[&str]) -> String {
    let mut up = up_on_with(scratch, paths, ports, flags);
    let status = up.process.wait_exit(Duration::from_secs(30)).expect("up exits");
    let output = up.process.output();
    assert_eq!(status.code(), Some(2), "{flags:?}: {output}");
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_store_flag_is_a_usage_error() {
    let scratch = Scratch::new("up-mm-redis-usage");
    let fleet = test_fleet(&scratch, 1);
    let queues = copy_example(&scratch, "matchmaker.yaml", |text| text);
    let state = scratch.dir.join("state").display().to_string();
    let both = ["--redis-url", "redis://127.0.0.1:1/0", "--state-dir", state.as_str()];
    let output = usage_error(&scratch, &[&fleet, &queues], "23400-23409", &both);
    assert!(output.contains("--redis-url"), "{output}");

    // Nothing listens on the port: refused at start, naming the URL.
    let port = support::free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let output = usage_error(&scratch, &[&fleet, &queues], "23410-23419", &["--redis-url", &url]);
    assert!(output.contains(&url), "{output}");

    // `--state-sync` that is not a duration, or without a state folder.
    let cases: [(&[&str], &str, [&str; 2]); 2] = [
        (&["--state-dir", &state, "--state-sync", "sometimes"], "23700-23709", ["--state-sync", "always"]),
        (&["--state-sync", "1s"], "23710-23719", ["stateSync", "--state-dir"]),
    ];
    for (flags, ports, named) in cases {
        let output = usage_error(&scratch, &[&fleet, &queues], ports, flags);
        assert!(named.iter().all(|word| output.contains(word)), "{flags:?} should name {named:?}: {output}");
    }
    assert!(!std::path::Path::new(&state).join("tickets.jsonl").exists(), "a refused start wrote a journal");
}
