//! The matchmaker over the real local runtime: tickets over HTTP, matches allocated through the
//! runtime's compare-and-swap allocator onto real game processes.

// The local runtime fixtures live with the controller crate's own tests.
#[path = "../controller/tests/local_runtime/mod.rs"]
mod local_runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use local_runtime::{apply, count, eventually, fleet_yaml, servers, with_runtime};
use stadion_crds::{GameServerState, labels};
use stadion_matchmaker::ticket::{Ticket, TicketState};
use stadion_matchmaker::{Matchmaker, MatchmakerConfig};

const QUEUES: &str = r#"
tickInterval: 50ms
queues:
  - name: duel
    players: {min: 2, max: 2}
    allocation:
      namespace: default
      selectors:
        - matchLabels: {agones.dev/fleet: arena}
    ticketTimeout: 60s
"#;

/// A matchmaker serving on a loopback port, allocating from `runtime`.
async fn serve_matchmaker(
    allocator: Arc<dyn stadion_matchmaker::Allocator>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = MatchmakerConfig::from_yaml_str(QUEUES).expect("queues config is valid");
    let matchmaker = Matchmaker::new(config, allocator).expect("matchmaker starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        stadion_matchmaker::http::serve_listener(listener, matchmaker, shutdown).await.expect("matchmaker serves");
    });
    (base, stop)
}

async fn submit(client: &reqwest::Client, base: &str, player: &str) -> Ticket {
    let response = client
        .post(format!("{base}/v1/tickets"))
        .json(&serde_json::json!({ "queue": "duel", "players": [{ "id": player }] }))
        .send()
        .await
        .expect("POST /v1/tickets");
    assert_eq!(response.status(), 201, "ticket for {player} accepted");
    response.json().await.expect("ticket JSON")
}

async fn fetch(client: &reqwest::Client, base: &str, id: &str) -> Ticket {
    let response = client.get(format!("{base}/v1/tickets/{id}")).send().await.expect("GET ticket");
    assert_eq!(response.status(), 200);
    response.json().await.expect("ticket JSON")
}

async fn all_tickets(client: &reqwest::Client, base: &str, ids: &[String]) -> Vec<Ticket> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(fetch(client, base, id).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_duel_tickets_over_fifty_ready_servers_then_waiting_for_capacity() {
    with_runtime(|runtime| async move {
        apply(&runtime, &fleet_yaml("arena", 50, &["--health-ms", "500"]));
        let store = runtime.store().clone();
        eventually(Duration::from_secs(60), "50 Ready servers", || {
            (count(&servers(&store, labels::FLEET, "arena"), GameServerState::Ready) == 50).then_some(())
        })
        .await;

        let (base, stop) = serve_matchmaker(Arc::new(runtime.allocator())).await;
        let client = reqwest::Client::new();
        let mut ids = Vec::new();
        for player in 0..100 {
            ids.push(submit(&client, &base, &format!("player-{player}")).await.id);
        }

        // Every ticket ends up assigned; poll through the public API as a game backend would.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let tickets = loop {
            let tickets = all_tickets(&client, &base, &ids).await;
            if tickets.iter().all(|t| t.state == TicketState::Assigned) {
                break tickets;
            }
            let stuck: Vec<_> = tickets.iter().filter(|t| t.state != TicketState::Assigned).map(|t| t.state).collect();
            assert!(tokio::time::Instant::now() < deadline, "tickets not assigned in time: {stuck:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };

        // Each server went to exactly one match of two players, and both were told the same place.
        let mut by_server: BTreeMap<String, Vec<&Ticket>> = BTreeMap::new();
        for ticket in &tickets {
            let assignment = ticket.assignment.as_ref().expect("assigned tickets carry an assignment");
            by_server.entry(assignment.game_server_name.clone()).or_default().push(ticket);
        }
        assert_eq!(by_server.len(), 50, "50 servers, one per match");
        for (server, pair) in &by_server {
            assert_eq!(pair.len(), 2, "{server} serves exactly one duel");
            let (a, b) = (pair[0].assignment.as_ref().unwrap(), pair[1].assignment.as_ref().unwrap());
            assert_eq!((&a.address, &a.ports, &a.match_id), (&b.address, &b.ports, &b.match_id));
            assert_eq!(a.address, "127.0.0.1");
            assert!(!a.ports.is_empty() && a.ports[0].port >= 7000, "a host port from the default range");
        }
        let fleet = servers(&store, labels::FLEET, "arena");
        assert_eq!(count(&fleet, GameServerState::Allocated), 50);
        let allocated: BTreeSet<String> = fleet.iter().map(|gs| gs.name().to_owned()).collect();
        assert_eq!(allocated, by_server.keys().cloned().collect::<BTreeSet<_>>());

        // The fleet now has no Ready server: a new pair matches and waits as `matched`...
        let late = [submit(&client, &base, "late-1").await.id, submit(&client, &base, "late-2").await.id];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let states: Vec<_> = all_tickets(&client, &base, &late).await.iter().map(|t| t.state).collect();
            if states.iter().all(|s| *s == TicketState::Matched) {
                break;
            }
            assert!(states.iter().all(|s| matches!(s, TicketState::Searching | TicketState::Matched)), "{states:?}");
            assert!(tokio::time::Instant::now() < deadline, "late pair never matched: {states:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let waiting = all_tickets(&client, &base, &late).await;
        assert!(waiting.iter().all(|t| t.state == TicketState::Matched), "still waiting with no Ready server");

        // ...and is assigned as soon as the fleet grows a Ready server.
        apply(&runtime, &fleet_yaml("arena", 51, &["--health-ms", "500"]));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let assigned = loop {
            let tickets = all_tickets(&client, &base, &late).await;
            if tickets.iter().all(|t| t.state == TicketState::Assigned) {
                break tickets;
            }
            assert!(tokio::time::Instant::now() < deadline, "late pair not assigned after scale-up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let server = &assigned[0].assignment.as_ref().unwrap().game_server_name;
        assert_eq!(server, &assigned[1].assignment.as_ref().unwrap().game_server_name);
        assert!(!by_server.contains_key(server), "the new match got the new server, not a busy one");

        let _ = stop.send(());
        runtime
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_allocation_shuts_its_server_down_and_the_fleet_replaces_it() {
    use stadion_core::allocator::admit_allocation;
    use stadion_crds::GameServerAllocation;
    use stadion_crds::allocation::GameServerAllocationSpec;
    use stadion_matchmaker::Allocator;

    with_runtime(|runtime| async move {
        apply(&runtime, &fleet_yaml("arena", 1, &["--health-ms", "500"]));
        let store = runtime.store().clone();
        eventually(Duration::from_secs(30), "1 Ready server", || {
            (count(&servers(&store, labels::FLEET, "arena"), GameServerState::Ready) == 1).then_some(())
        })
        .await;
        let allocator = runtime.allocator();
        let outcome = allocator
            .allocate(admit_allocation(GameServerAllocation::new(GameServerAllocationSpec::default())).unwrap())
            .await
            .unwrap();
        let status = outcome.allocated().expect("a Ready server");
        let id =
            stadion_core::allocation::status_allocation_id(&status).expect("the allocation names itself").to_owned();
        allocator.release("default", &status.game_server_name, "another-allocation").await.expect("release");
        assert_eq!(
            servers(&store, labels::FLEET, "arena")
                .iter()
                .find(|gs| gs.name() == status.game_server_name)
                .and_then(|gs| gs.state()),
            Some(GameServerState::Allocated),
            "a release naming another allocation leaves the server alone"
        );
        allocator.release("default", &status.game_server_name, &id).await.expect("release");

        // The released server leaves; a fresh Ready one takes its place.
        eventually(Duration::from_secs(30), "a fresh Ready replacement", || {
            let fleet = servers(&store, labels::FLEET, "arena");
            let replaced = fleet.iter().all(|gs| gs.name() != status.game_server_name);
            (replaced && count(&fleet, GameServerState::Ready) == 1).then_some(())
        })
        .await;
        // Releasing again (already gone) is not an error.
        allocator.release("default", &status.game_server_name, &id).await.expect("idempotent release");
        runtime
    })
    .await;
}
