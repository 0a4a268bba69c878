//! `stadion matchmaker` in cluster mode, on a real API server (`KUBECONFIG`): the real binary,
//! allocating through the kube allocator.
//!
//! ```text
//! cargo test -p stadion --test kube_matchmaker -- --ignored --test-threads=1
//! ```
//!
//! Tickets go to assigned onto Ready GameServers of a Fleet the in-process controller runs; a
//! matchmaker restart (SIGTERM, start again) loses no assigned server: it stays Allocated, is
//! not released, and is never handed to a later match.

#[path = "../controller/tests/kube_support/mod.rs"]
mod kube_support;
mod support;

use std::time::Duration;

use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use stadion_crds::{Fleet, GameServer, GameServerState};
use stadion_matchmaker::ticket::{Ticket, TicketState};

use kube_support::{Cluster, eventually};
use support::{Guarded, Scratch, free_port};

fn queues(namespace: &str) -> String {
    format!(
        r#"
tickInterval: 50ms
queues:
  - name: duel
    players: {{min: 2, max: 2}}
    allocation:
      namespace: {namespace}
      selectors:
        - matchLabels: {{agones.dev/fleet: arena}}
    ticketTimeout: 60s
"#
    )
}

/// `stadion matchmaker` on `port`, watching `namespace`, up once `/healthz` answers.
async fn matchmaker(scratch: &Scratch, config: &std::path::Path, namespace: &str, port: u16, name: &str) -> Guarded {
    let listen = format!("127.0.0.1:{port}");
    let args = ["matchmaker", "--config", config.to_str().unwrap(), "--listen", &listen, "--namespace", namespace];
    let process = Guarded::stadion(scratch, name, &args, &[]);
    let http = reqwest::Client::new();
    eventually("the matchmaker to answer /healthz", || async {
        let response = http.get(format!("http://{listen}/healthz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    process
}

/// Submits one ticket per player to `duel` and waits until all are assigned: their server.
async fn duel(base: &str, players: [&str; 2]) -> String {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for player in players {
        let response = http
            .post(format!("{base}/v1/tickets"))
            .json(&json!({"queue": "duel", "players": [{"id": player}]}))
            .send()
            .await
            .expect("POST /v1/tickets");
        assert_eq!(response.status(), 201, "ticket for {player}");
        ids.push(response.json::<Ticket>().await.unwrap().id);
    }
    let tickets = eventually("both tickets assigned", || async {
        let mut tickets = Vec::new();
        for id in &ids {
            let ticket: Ticket = http.get(format!("{base}/v1/tickets/{id}")).send().await.ok()?.json().await.ok()?;
            assert!(
                matches!(ticket.state, TicketState::Searching | TicketState::Matched | TicketState::Assigned),
                "{ticket:?}"
            );
            tickets.push(ticket);
        }
        tickets.iter().all(|t| t.state == TicketState::Assigned).then_some(tickets)
    })
    .await;
    let servers: Vec<&str> = tickets.iter().map(|t| t.assignment.as_ref().unwrap().game_server_name.as_str()).collect();
    assert_eq!(servers[0], servers[1], "one match, one server");
    let assignment = tickets[0].assignment.as_ref().unwrap();
    assert_eq!(assignment.address, "203.0.113.77");
    servers[0].to_owned()
}

async fn states(api: &Api<GameServer>) -> Vec<(String, Option<GameServerState>)> {
    let list = api.list(&ListParams::default()).await.expect("list GameServers").items;
    list.into_iter().map(|gs| (gs.metadata.name.clone().unwrap(), gs.state())).collect()
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn matchmaker_assigns_over_the_api_server_and_a_restart_loses_no_server() {
    let cluster = Cluster::start("stadion-mm", None).await;
    let ns = cluster.namespace.clone();
    let fleets: Api<Fleet> = Api::namespaced(cluster.client.clone(), &ns);
    let fleet: Fleet = serde_json::from_value(cluster.fleet("arena", 3)).unwrap();
    fleets.create(&PostParams::default(), &fleet).await.expect("fleet");
    cluster.await_ready(3).await;

    let scratch = Scratch::new("kube-matchmaker");
    let config = scratch.write("matchmaker.yaml", &queues(&ns));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = matchmaker(&scratch, &config, &ns, port, "matchmaker-1").await;
    let server = duel(&base, ["ada", "bob"]).await;
    let gameservers: Api<GameServer> = Api::namespaced(cluster.client.clone(), &ns);
    let chosen = gameservers.get(&server).await.unwrap();
    assert_eq!(chosen.state(), Some(GameServerState::Allocated));

    // Restart: the matchmaker exits cleanly on SIGTERM and gives nothing back.
    let status = first.stop(Duration::from_secs(15)).expect("the matchmaker exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", first.output());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gameservers.get(&server).await.unwrap().state(), Some(GameServerState::Allocated), "kept Allocated");
    let _second = matchmaker(&scratch, &config, &ns, port, "matchmaker-2").await;

    // The restarted matchmaker assigns the next match elsewhere, and the first server is still
    // Allocated to its players: nothing lost, nothing handed out twice.
    let next = duel(&base, ["cy", "dee"]).await;
    assert_ne!(next, server, "an assigned server is never handed to another match");
    let all = states(&gameservers).await;
    let allocated: Vec<&String> =
        all.iter().filter(|(_, s)| *s == Some(GameServerState::Allocated)).map(|(n, _)| n).collect();
    assert_eq!(allocated.len(), 2, "{all:?}");
    assert!(allocated.contains(&&server) && allocated.contains(&&next), "{all:?}");
    let gs: Value = serde_json::to_value(gameservers.get(&server).await.unwrap()).unwrap();
    assert!(gs["metadata"]["deletionTimestamp"].is_null(), "the first server was not deleted: {gs}");
    cluster.finish().await;
}
