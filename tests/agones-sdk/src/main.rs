//! A game server written against the official Agones Rust SDK, as a studio would write one. It
//! runs the whole stable SDK sequence plus player tracking (alpha) and counters and lists (beta)
//! and checks every answer, ending with Shutdown and a read of its own state after it, which
//! must say Shutdown. It prints `conformance: ok` and exits 0 when every step held; otherwise it
//! names the step and exits 1. The sidecar is found as every Agones SDK finds it
//! (`AGONES_SDK_GRPC_PORT`).
//!
//! It expects the GameServer to carry counter `rooms` {count 1, capacity 10} and list `players`
//! {test0, test1, test2; capacity 100}: what Agones' local SDK server starts with, and what the
//! manifest of the `stadion up` test declares.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use agones::Sdk;

type Outcome = Result<(), String>;

fn check(what: &str, ok: bool, seen: impl std::fmt::Debug) -> Outcome {
    if ok { Ok(()) } else { Err(format!("{what}: got {seen:?}")) }
}

fn call<T>(what: &str, result: Result<T, agones::errors::Error>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

async fn state(sdk: &mut Sdk) -> Result<String, String> {
    let gs = call("GetGameServer", sdk.get_gameserver().await)?;
    Ok(gs.status.map(|s| s.state).unwrap_or_default())
}

/// Polls the state until it is `wanted` (a controller may take a moment), or fails.
async fn state_becomes(sdk: &mut Sdk, wanted: &str, within: Duration) -> Outcome {
    let deadline = Instant::now() + within;
    loop {
        let now = state(sdk).await?;
        if now == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("state {wanted} within {within:?}: still {now}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stable(sdk: &mut Sdk) -> Outcome {
    let health = sdk.health_check();
    tokio::spawn(async move {
        while health.send(()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut watch = call("WatchGameServer", sdk.watch_gameserver().await)?;
    call("Ready", sdk.ready().await)?;
    state_becomes(sdk, "Ready", Duration::from_secs(15)).await?;

    call("SetLabel", sdk.set_label("conformance", "rust").await)?;
    call("SetAnnotation", sdk.set_annotation("sdk", "agones-1.61.0").await)?;
    let gs = call("GetGameServer", sdk.get_gameserver().await)?;
    let meta = gs.object_meta.unwrap_or_default();
    check(
        "SetLabel is stored with the SDK prefix",
        meta.labels.get("agones.dev/sdk-conformance").is_some_and(|v| v == "rust"),
        &meta.labels,
    )?;
    check(
        "SetAnnotation is stored with the SDK prefix",
        meta.annotations.get("agones.dev/sdk-sdk").is_some_and(|v| v == "agones-1.61.0"),
        &meta.annotations,
    )?;
    let first = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    check("WatchGameServer streams the GameServer", matches!(first, Ok(Ok(Some(_)))), first.is_ok())?;

    call("Allocate", sdk.allocate().await)?;
    state_becomes(sdk, "Allocated", Duration::from_secs(5)).await?;
    // Agones allows Reserve on an Allocated server; it returns to Ready when the time is up.
    call("Reserve", sdk.reserve(Duration::from_secs(2)).await)?;
    state_becomes(sdk, "Reserved", Duration::from_secs(5)).await?;
    state_becomes(sdk, "Ready", Duration::from_secs(15)).await
}

async fn players(sdk: &mut Sdk) -> Outcome {
    let mut alpha = sdk.alpha().clone();
    call("SetPlayerCapacity", alpha.set_player_capacity(10).await)?;
    check("GetPlayerCapacity", call("GetPlayerCapacity", alpha.get_player_capacity().await)? == 10, "")?;
    check("PlayerConnect", call("PlayerConnect", alpha.player_connect("alice").await)?, "false")?;
    check("PlayerConnect twice", !call("PlayerConnect", alpha.player_connect("alice").await)?, "true")?;
    check("IsPlayerConnected", call("IsPlayerConnected", alpha.is_player_connected("alice").await)?, "false")?;
    let connected = call("GetConnectedPlayers", alpha.get_connected_players().await)?;
    check("GetConnectedPlayers", connected == ["alice"], &connected)?;
    check("GetPlayerCount", call("GetPlayerCount", alpha.get_player_count().await)? == 1, "")?;
    check("PlayerDisconnect", call("PlayerDisconnect", alpha.player_disconnect("alice").await)?, "false")?;
    check("GetPlayerCount after", call("GetPlayerCount", alpha.get_player_count().await)? == 0, "")
}

async fn counters_and_lists(sdk: &mut Sdk) -> Outcome {
    let mut beta = sdk.beta().clone();
    let count = call("GetCounter", beta.get_counter_count("rooms").await)?;
    check("counter rooms starts at 1", count == 1, count)?;
    check("counter rooms capacity 10", call("GetCounter", beta.get_counter_capacity("rooms").await)? == 10, "")?;
    call("IncrementCounter", beta.increment_counter("rooms", 4).await)?;
    call("DecrementCounter", beta.decrement_counter("rooms", 1).await)?;
    check("count after +4 -1", call("GetCounter", beta.get_counter_count("rooms").await)? == 4, "")?;
    let past = beta.increment_counter("rooms", 100).await;
    check("incrementing past the capacity is refused", past.is_err(), "accepted")?;
    call("SetCounterCount", beta.set_counter_count("rooms", 9).await)?;
    // Agones accepts a capacity below the count and cuts the count down to it.
    call("SetCounterCapacity", beta.set_counter_capacity("rooms", 3).await)?;
    let count = call("GetCounter", beta.get_counter_count("rooms").await)?;
    check("the count follows a smaller capacity", count == 3, count)?;

    let values = call("GetList", beta.get_list_values("players").await)?;
    check("list players starts with test0..test2", values == ["test0", "test1", "test2"], &values)?;
    check("list capacity 100", call("GetList", beta.get_list_capacity("players").await)? == 100, "")?;
    call("AddListValue", beta.append_list_value("players", "test3").await)?;
    check("ListContains", call("GetList", beta.list_contains("players", "test3").await)?, "false")?;
    let again = beta.append_list_value("players", "test3").await;
    check("a value already in the list is refused", again.is_err(), "accepted")?;
    call("RemoveListValue", beta.delete_list_value("players", "test0").await)?;
    check("list length", call("GetList", beta.get_list_length("players").await)? == 3, "")?;
    call("UpdateList", beta.set_list_capacity("players", 2).await)?;
    let values = call("GetList", beta.get_list_values("players").await)?;
    check("a smaller capacity truncates the values", values == ["test1", "test2"], &values)
}

async fn shutdown(sdk: &mut Sdk) -> Outcome {
    call("Shutdown", sdk.shutdown().await)?;
    // A game that reads its state right after Shutdown must see Shutdown.
    let now = state(sdk).await?;
    check("the state right after Shutdown", now == "Shutdown", now)
}

async fn run() -> Outcome {
    let mut sdk = call("connecting to the sidecar", Sdk::new(None, None).await)?;
    stable(&mut sdk).await?;
    players(&mut sdk).await?;
    counters_and_lists(&mut sdk).await?;
    shutdown(&mut sdk).await
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("conformance: ok");
            ExitCode::SUCCESS
        }
        Err(step) => {
            println!("conformance: FAILED at {step}");
            ExitCode::FAILURE
        }
    }
}
