//! End to end through Agones' allocation API: `stadion up` on the example fleet answers the
//! generated gRPC client (h2c) and `POST /gameserverallocation` on the matchmaker's port; each
//! call leaves one more server Allocated, carrying the requested labels, in the admin API; a
//! selector that matches nothing is RESOURCE_EXHAUSTED over gRPC and 429 over REST.

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use stadion_sdk::allocation as pb;
use stadion_sdk::allocation::allocation_service_client::AllocationServiceClient;
use support::{Scratch, Up, eventually, up_with_matchmaker};

const SETTLE: Duration = Duration::from_secs(60);
const FLEET: &str = "simple-game-server";

impl Up {
    /// Waits until the admin API shows `name` Allocated with `label` = `value`.
    async fn allocated_with_label(&self, name: &str, label: &str, value: &str) -> Value {
        eventually(SETTLE, &format!("{name} Allocated with {label}={value}"), || async {
            let gs = self.gameserver(name).await?;
            (gs["state"] == "Allocated" && gs["labels"][label] == value).then_some(gs)
        })
        .await
    }

    async fn post_allocation(&self, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/gameserverallocation", self.api))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST /gameserverallocation");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }
}

fn selector(fleet: &str) -> pb::GameServerSelector {
    pb::GameServerSelector {
        match_labels: [("agones.dev/fleet".to_owned(), fleet.to_owned())].into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agones_clients_allocate_over_grpc_and_rest() {
    let scratch = Scratch::new("up-agones-allocation");
    let mut up = up_with_matchmaker(&scratch, 2, "21500-21599");
    eventually(SETTLE, "2 Ready servers", || async { (up.fleet_field(FLEET, "ready").await == Some(2)).then_some(()) })
        .await;

    // gRPC, with the client generated from Agones' proto, on the matchmaker's port.
    let mut client = AllocationServiceClient::connect(up.api.clone()).await.expect("gRPC connects");
    let request = pb::AllocationRequest {
        namespace: "default".into(),
        game_server_selectors: vec![selector(FLEET)],
        metadata: Some(pb::MetaPatch {
            labels: [("session".to_owned(), "grpc-1".to_owned())].into(),
            annotations: [("map".to_owned(), "dust2".to_owned())].into(),
        }),
        ..Default::default()
    };
    let response = client.allocate(request).await.expect("gRPC allocation").into_inner();
    assert!(response.game_server_name.starts_with(FLEET), "{response:?}");
    assert_eq!(response.address, "127.0.0.1", "{response:?}");
    assert_eq!(response.source, "local");
    assert_eq!(response.ports.len(), 1, "{response:?}");
    assert!((21500..=21599).contains(&response.ports[0].port), "{response:?}");
    let metadata = response.metadata.clone().unwrap_or_default();
    assert_eq!(metadata.labels.get("session").map(String::as_str), Some("grpc-1"), "{response:?}");
    assert_eq!(metadata.labels.get("agones.dev/fleet").map(String::as_str), Some(FLEET), "{response:?}");
    let gs = up.allocated_with_label(&response.game_server_name, "session", "grpc-1").await;
    assert_eq!(gs["ports"][0]["port"], response.ports[0].port, "{gs}");

    // A misspelt key is refused with its path (Agones' gateway would drop it and allocate any server).
    let (status, body) = up
        .post_allocation(&format!(
            r#"{{"gameServerSelectors": [{{"matchLabel": {{"agones.dev/fleet": "{FLEET}"}}}}], "metadata": {{"labels": {{"session": "typo"}}}}}}"#
        ))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "gameServerSelectors[0].matchLabel", "{body}");

    // REST, as Agones' gateway takes it: enum names.
    let (status, body) = up
        .post_allocation(&format!(
            r#"{{"gameServerSelectors": [{{"matchLabels": {{"agones.dev/fleet": "{FLEET}"}}, "gameServerState": "READY"}}],
                "scheduling": "Packed", "metadata": {{"labels": {{"session": "rest-1"}}}}}}"#
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let name = body["gameServerName"].as_str().expect("gameServerName").to_owned();
    assert_ne!(name, response.game_server_name, "one server per allocation");
    assert_eq!(body["address"], "127.0.0.1", "{body}");
    assert_eq!(body["metadata"]["labels"]["session"], "rest-1", "{body}");
    assert!(body["ports"][0]["port"].as_i64().is_some(), "{body}");
    up.allocated_with_label(&name, "session", "rest-1").await;
    eventually(SETTLE, "2 Allocated in the fleet", || async {
        (up.fleet_field(FLEET, "allocated").await == Some(2)).then_some(())
    })
    .await;

    // A selector that matches nothing: no server is free for it.
    let request =
        pb::AllocationRequest { game_server_selectors: vec![selector("no-such-fleet")], ..Default::default() };
    let status = client.allocate(request).await.expect_err("nothing matches");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let (status, body) = up
        .post_allocation(r#"{"gameServerSelectors": [{"matchLabels": {"agones.dev/fleet": "no-such-fleet"}}]}"#)
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], 8, "{body}");

    up.process.signal(Signal::SIGTERM);
    let exit = up.process.wait_exit(Duration::from_secs(30)).expect("up stops");
    assert!(exit.success(), "{exit}");
    assert!(scratch.marked_processes().is_empty(), "game processes left: {:?}", scratch.marked_processes());
}
