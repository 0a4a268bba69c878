//! The client crate against the local-mode sidecar over real loopback sockets: every rpc.

mod support;

use std::time::Duration;

use futures::StreamExt;
use stadion_crds::GameServerState;
use stadion_crds::gameserver::Health;
use stadion_sdk::proto::beta;
use stadion_sdk::server::{SdkCall, ServeOptions};
use stadion_sdk::{Error, Sdk, SdkConfig};
use tonic::Code;

fn state(gs: &stadion_sdk::proto::GameServer) -> String {
    gs.status.as_ref().map(|s| s.state.clone()).unwrap_or_default()
}

#[tokio::test]
async fn state_calls_labels_and_get() {
    let sidecar = support::start(support::game_server()).await;
    let sdk = sidecar.client().await;

    let gs = sdk.game_server().await.expect("get");
    let meta = gs.object_meta.clone().expect("meta");
    assert_eq!((meta.name.as_str(), meta.namespace.as_str()), ("local", "default"));
    assert!(meta.creation_timestamp > 0);
    let status = gs.status.clone().expect("status");
    assert_eq!((status.state.as_str(), status.address.as_str()), ("Ready", "127.0.0.1"));
    assert_eq!(status.ports[0].port, 7777);
    assert_eq!(status.counters["rooms"].capacity, 10);
    assert_eq!(status.lists["players"].values, vec!["a".to_owned()]);

    sdk.allocate().await.expect("allocate");
    let gs = sdk.game_server().await.expect("get");
    assert_eq!(state(&gs), "Allocated");
    let annotations = gs.object_meta.expect("meta").annotations;
    let stamp = annotations.get("agones.dev/last-allocated").expect("last-allocated annotation");
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "RFC 3339: {stamp}");

    sdk.ready().await.expect("ready");
    assert_eq!(state(&sdk.game_server().await.expect("get")), "Ready", "standalone: no controller, straight to Ready");

    sdk.set_label("map", "dust2").await.expect("label");
    sdk.set_annotation("note", "anything goes here: spaces, ünïcode").await.expect("annotation");
    let meta = sdk.game_server().await.expect("get").object_meta.expect("meta");
    assert_eq!(meta.labels.get("agones.dev/sdk-map").map(String::as_str), Some("dust2"));
    assert_eq!(
        meta.annotations.get("agones.dev/sdk-note").map(String::as_str),
        Some("anything goes here: spaces, ünïcode")
    );

    let err = sdk.set_label("bad key!", "v").await.expect_err("invalid key");
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert!(err.to_string().contains("bad key!"), "{err}");
    let err = sdk.set_label("ok", "not a valid value").await.expect_err("invalid value");
    assert_eq!(err.code(), Some(Code::InvalidArgument));

    sdk.shutdown().await.expect("shutdown");
    assert_eq!(state(&sdk.game_server().await.expect("get")), "Shutdown");
    // No way out of Shutdown: the calls succeed, as in Agones, and change nothing.
    sdk.ready().await.expect("ready after shutdown is accepted");
    sdk.allocate().await.expect("allocate after shutdown is accepted");
    assert_eq!(state(&sdk.game_server().await.expect("get")), "Shutdown");
}

#[tokio::test]
async fn a_change_through_one_connection_is_seen_on_another() {
    let sidecar = support::start(support::game_server()).await;
    let watcher = sidecar.client().await;
    let actor = sidecar.client().await;
    let mut changes = watcher.watch_game_server().await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(2), changes.next()).await.expect("current object at once");
    assert_eq!(state(&first.expect("item").expect("ok")), "Ready");

    actor.set_label("round", "1").await.expect("label");
    actor.allocate().await.expect("allocate");
    let seen = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(gs) = changes.next().await {
            let gs = gs.expect("ok");
            let labelled = gs.object_meta.as_ref().is_some_and(|m| m.labels.contains_key("agones.dev/sdk-round"));
            if labelled && state(&gs) == "Allocated" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true));
}

#[tokio::test]
async fn reserve_expires_back_to_ready_and_state_calls_cancel_it() {
    let sidecar = support::start(support::game_server()).await;
    let sdk = sidecar.client().await;

    sdk.reserve(Duration::from_secs(1)).await.expect("reserve");
    let gs = sidecar.game_server().await;
    assert_eq!(gs.state(), Some(GameServerState::Reserved));
    assert!(gs.status.as_ref().and_then(|s| s.reserved_until.as_ref()).is_some(), "reservedUntil set");
    let back = support::eventually(Duration::from_secs(3), || async {
        sidecar.game_server().await.state() == Some(GameServerState::Ready)
    })
    .await;
    assert!(back, "Reserved -> Ready after 1 s");
    assert!(sidecar.game_server().await.status.and_then(|s| s.reserved_until).is_none());

    // Allocate cancels a pending reservation, and so does a new Reserve: both servers are checked
    // after the first deadline has passed.
    let other = support::start(support::game_server()).await;
    let other_sdk = other.client().await;
    sdk.reserve(Duration::from_secs(1)).await.expect("reserve");
    sdk.allocate().await.expect("allocate");
    other_sdk.reserve(Duration::from_secs(1)).await.expect("reserve");
    other_sdk.reserve(Duration::ZERO).await.expect("reserve until told");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(sidecar.game_server().await.state(), Some(GameServerState::Allocated));
    let gs = other.game_server().await;
    assert_eq!(gs.state(), Some(GameServerState::Reserved), "zero: reserved until told otherwise");
    assert!(gs.status.and_then(|s| s.reserved_until).is_none());
    other_sdk.ready().await.expect("ready");
    assert_eq!(other.game_server().await.state(), Some(GameServerState::Ready));
}

#[tokio::test]
async fn missed_health_pings_make_the_server_unhealthy_and_pings_keep_it_healthy() {
    let mut gs = support::game_server();
    gs.spec.health = Some(Health {
        disabled: false,
        period_seconds: Some(1),
        failure_threshold: Some(2),
        initial_delay_seconds: Some(0),
    });

    // Pinged every 200 ms: still Ready after three periods.
    let pinged = support::start_with(gs.clone(), ServeOptions::default()).await;
    let sdk = pinged.client().await;
    let pinger = sdk.health_pinger(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(pinged.game_server().await.state(), Some(GameServerState::Ready));
    assert!(pinged.calls().contains(&SdkCall::Health));
    drop(pinger);

    // Once pings stop, two silent periods later it is Unhealthy, and stays so.
    let unhealthy = support::eventually(Duration::from_secs(4), || async {
        pinged.game_server().await.state() == Some(GameServerState::Unhealthy)
    })
    .await;
    assert!(unhealthy, "Unhealthy after the failure threshold");
    sdk.ready().await.expect("accepted");
    assert_eq!(pinged.game_server().await.state(), Some(GameServerState::Unhealthy), "no way out of Unhealthy");
}

#[tokio::test]
async fn raw_health_stream_counts_each_ping() {
    let sidecar = support::start(support::game_server()).await;
    let sdk = sidecar.client().await;
    let health = sdk.health();
    for _ in 0..3 {
        health.ping().await.expect("ping");
    }
    health.close().await.expect("stream closes cleanly");
    assert_eq!(sidecar.calls().iter().filter(|c| **c == SdkCall::Health).count(), 3);
}

#[tokio::test]
async fn player_tracking() {
    let sidecar = support::start(support::game_server()).await;
    let alpha = sidecar.client().await.alpha();
    assert_eq!(alpha.get_player_capacity().await.expect("capacity"), 2);
    assert!(alpha.player_connect("p1").await.expect("connect"));
    assert!(!alpha.player_connect("p1").await.expect("connect again"), "already connected");
    assert!(alpha.player_connect("p2").await.expect("connect"));
    let full = alpha.player_connect("p3").await.expect_err("at capacity");
    assert_eq!(full.code(), Some(Code::OutOfRange));
    assert_eq!(alpha.get_player_count().await.expect("count"), 2);
    assert!(alpha.is_player_connected("p2").await.expect("connected?"));
    assert_eq!(alpha.get_connected_players().await.expect("list"), vec!["p1".to_owned(), "p2".to_owned()]);
    assert!(alpha.player_disconnect("p1").await.expect("disconnect"));
    assert!(!alpha.player_disconnect("p1").await.expect("disconnect again"));
    alpha.set_player_capacity(5).await.expect("set capacity");
    assert_eq!(alpha.get_player_capacity().await.expect("capacity"), 5);
    let players = sidecar.game_server().await.status.and_then(|s| s.players).expect("players");
    assert_eq!((players.count, players.capacity, players.ids), (1, 5, vec!["p2".to_owned()]));
}

#[tokio::test]
async fn counters_and_lists() {
    let sidecar = support::start(support::game_server()).await;
    let beta = sidecar.client().await.beta();
    let rooms = beta.get_counter("rooms").await.expect("counter");
    assert_eq!((rooms.name.as_str(), rooms.count, rooms.capacity), ("rooms", 1, 10));
    assert_eq!(beta.increment_counter("rooms", 4).await.expect("inc").count, 5);
    assert_eq!(beta.decrement_counter("rooms", 2).await.expect("dec").count, 3);
    assert_eq!(beta.set_counter_count("rooms", 10).await.expect("set").count, 10);
    assert_eq!(beta.increment_counter("rooms", 1).await.map_err(|e| e.code()).err(), Some(Some(Code::OutOfRange)));
    assert_eq!(beta.set_counter_capacity("rooms", 20).await.expect("cap").capacity, 20);
    assert_eq!(beta.get_counter("nope").await.map_err(|e| e.code()).err(), Some(Some(Code::NotFound)));
    let raw = beta::CounterUpdateRequest { name: "rooms".into(), count: Some(-1), ..Default::default() };
    assert_eq!(beta.update_counter(raw).await.map_err(|e| e.code()).err(), Some(Some(Code::OutOfRange)));

    let list = beta.get_list("players").await.expect("list");
    assert_eq!((list.name.as_str(), list.capacity, list.values.clone()), ("players", 3, vec!["a".to_owned()]));
    assert_eq!(beta.add_list_value("players", "b").await.expect("add").values, vec!["a", "b"]);
    assert_eq!(beta.add_list_value("players", "b").await.map_err(|e| e.code()).err(), Some(Some(Code::AlreadyExists)));
    beta.add_list_value("players", "c").await.expect("add");
    assert_eq!(beta.add_list_value("players", "d").await.map_err(|e| e.code()).err(), Some(Some(Code::OutOfRange)));
    assert!(beta.list_contains("players", "c").await.expect("contains"));
    assert_eq!(beta.remove_list_value("players", "a").await.expect("remove").values, vec!["b", "c"]);
    assert_eq!(beta.remove_list_value("players", "a").await.map_err(|e| e.code()).err(), Some(Some(Code::NotFound)));
    assert_eq!(beta.set_list_capacity("players", 1).await.expect("shrink").values, vec!["b"], "truncated");
    let replaced = beta
        .update_list(
            beta::List { name: "players".into(), capacity: 0, values: vec!["x".into(), "y".into()] },
            &["values"],
        )
        .await
        .expect("update values only");
    assert_eq!(
        (replaced.capacity, replaced.values),
        (1, vec!["x".to_owned()]),
        "capacity kept, values truncated to it"
    );
    let bad = beta.update_list(beta::List { name: "players".into(), ..Default::default() }, &["bogus"]).await;
    assert_eq!(bad.map_err(|e| e.code()).err(), Some(Some(Code::InvalidArgument)));
    assert_eq!(beta.get_list("nope").await.map_err(|e| e.code()).err(), Some(Some(Code::NotFound)));

    let status = sidecar.game_server().await.status.expect("status");
    assert_eq!(status.counters["rooms"].capacity, 20);
    assert_eq!(status.lists["players"].values, vec!["x".to_owned()]);
}

#[tokio::test]
async fn connect_gives_up_with_a_clear_error_when_no_sidecar_runs() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let config = SdkConfig { host: "127.0.0.1".into(), port: unused, connect_timeout: Duration::from_millis(600) };
    let started = std::time::Instant::now();
    let err = Sdk::connect_with(config).await.expect_err("nothing listens");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("AGONES_SDK_GRPC"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connect_waits_for_a_sidecar_that_starts_late() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let config = SdkConfig { host: "127.0.0.1".into(), port, connect_timeout: Duration::from_secs(5) };
    let client = tokio::spawn(Sdk::connect_with(config));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backend = std::sync::Arc::new(stadion_sdk::server::local::LocalBackend::new(support::game_server()));
    let listeners = stadion_sdk::server::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("bind");
    let _handle = stadion_sdk::server::serve(backend, listeners, ServeOptions::default()).expect("serve");
    let sdk = client.await.expect("join").expect("connected once the sidecar came up");
    sdk.ready().await.expect("ready");
}

#[tokio::test]
async fn with_a_controller_ready_requests_ready_and_reserve_expiry_is_left_to_it() {
    let backend =
        std::sync::Arc::new(stadion_sdk::server::local::LocalBackend::new(support::game_server()).with_controller());
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let listeners = stadion_sdk::server::bind(loopback, loopback).await.expect("bind");
    let handle = stadion_sdk::server::serve(backend.clone(), listeners, ServeOptions::default()).expect("serve");
    let config = SdkConfig { host: "127.0.0.1".into(), port: handle.grpc_addr().port(), ..SdkConfig::default() };
    let sdk = Sdk::connect_with(config).await.expect("connect");
    let get = || async {
        use stadion_sdk::server::GameServerBackend;
        backend.get().await.expect("get")
    };

    sdk.ready().await.expect("ready");
    assert_eq!(get().await.state(), Some(GameServerState::RequestReady), "the controller moves it on to Ready");
    sdk.reserve(Duration::from_secs(1)).await.expect("reserve");
    assert_eq!(get().await.state(), Some(GameServerState::Reserved));
    // Was: the sidecar's own timer asked for Ready at the deadline. Now the controller's
    // reconcile is the one owner of expiry, so the sidecar writes nothing when the time is up...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reserved = get().await;
    assert_eq!(reserved.state(), Some(GameServerState::Reserved), "no second writer in the sidecar");
    let until = reserved.status.as_ref().and_then(|s| s.reserved_until.as_ref()).map(|t| t.0).expect("deadline kept");
    // ...and the controller's reconcile of that very object returns it to the pool.
    let plan = stadion_core::gameserver::reconcile(&reserved, until, Default::default());
    let expired = plan.update.expect("an expired reservation is written back");
    assert_eq!(expired.state(), Some(GameServerState::Ready), "an expired reservation returns to the pool");
    assert!(expired.status.and_then(|s| s.reserved_until).is_none());
}
