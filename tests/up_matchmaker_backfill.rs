//! Backfill end to end on `stadion up examples/`: the `lobby` queue's running match takes a late
//! ticket on its own server, whose game sees the new player in its `players` List through the
//! SDK; and 64 tickets racing into it never seat more players than the list holds, even when the
//! game itself took seats the matchmaker did not know about.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Scratch, Up, eventually, get_json, udp_request, up_with_matchmaker};

const SETTLE: Duration = Duration::from_secs(60);
/// Seats per server in `examples/fleet.yaml`.
const CAPACITY: usize = 8;

fn lobby(player: &str) -> Value {
    json!({"queue": "lobby", "players": [{"id": player, "attributes": {"skill": 1500}}]})
}

impl Up {
    async fn create(&self, ticket: Value) -> String {
        let response =
            self.http.post(format!("{}/v1/tickets", self.api)).json(&ticket).send().await.expect("POST /v1/tickets");
        let status = response.status();
        let body: Value = response.json().await.expect("ticket JSON");
        assert_eq!(status.as_u16(), 201, "ticket not created: {body}");
        body["id"].as_str().expect("ticket id").to_owned()
    }

    async fn ticket(&self, id: &str) -> Option<Value> {
        get_json(&self.http, &format!("{}/v1/tickets/{id}", self.api)).await
    }

    async fn assigned(&self, id: &str) -> Value {
        eventually(SETTLE, &format!("ticket {id} assigned"), || async {
            let ticket = self.ticket(id).await?;
            (ticket["state"] == "assigned").then_some(ticket)
        })
        .await
    }

    async fn ready_servers(&self, n: i64) {
        eventually(SETTLE, &format!("{n} Ready servers"), || async {
            (self.fleet_field("simple-game-server", "ready").await == Some(n)).then_some(())
        })
        .await;
    }
}

fn endpoint(ticket: &Value) -> SocketAddr {
    let assignment = &ticket["assignment"];
    let ip = assignment["address"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("{ticket}"));
    let port = assignment["ports"][0]["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    SocketAddr::new(ip, port.unwrap_or_else(|| panic!("no port: {ticket}")))
}

/// The `players` list as the game reads it through the SDK (`LIST players`).
fn seats(server: SocketAddr) -> (usize, Vec<String>) {
    let reply = udp_request(server, "LIST players");
    let rest = reply.strip_prefix("ACK LIST ").unwrap_or_else(|| panic!("{reply}")).trim();
    let (capacity, values) = rest.split_once(' ').unwrap_or((rest, ""));
    let values = values.split(',').filter(|v| !v.is_empty()).map(str::to_owned).collect();
    (capacity.parse().unwrap_or_else(|_| panic!("{reply}")), values)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_ticket_joins_the_running_match_and_the_game_sees_it_in_its_list() {
    let scratch = Scratch::new("up-backfill");
    let up = up_with_matchmaker(&scratch, 2, "21950-21999");
    up.ready_servers(2).await;

    let alice = up.create(lobby("alice")).await;
    let bob = up.create(lobby("bob")).await;
    let (alice, bob) = (up.assigned(&alice).await, up.assigned(&bob).await);
    let server = endpoint(&alice);
    assert_eq!(endpoint(&bob), server);
    let (capacity, mut seated) = seats(server);
    seated.sort();
    assert_eq!((capacity, seated), (CAPACITY, vec!["alice".to_owned(), "bob".to_owned()]), "seated on allocation");

    // Carol alone cannot start a match (min 2): she joins the running one, on its server.
    let carol = up.assigned(&up.create(lobby("carol")).await).await;
    assert_eq!(endpoint(&carol), server, "{carol}");
    assert_eq!(carol["assignment"]["matchId"], alice["assignment"]["matchId"], "{carol}");
    assert_eq!(carol["assignment"]["gameServerName"], alice["assignment"]["gameServerName"]);
    assert_eq!(carol["assignment"]["teams"][0].as_array().map(Vec::len), Some(3), "{carol}");
    assert_eq!(carol["assignment"]["teams"][0][2], "carol", "{carol}");
    let (_, values) = seats(server);
    assert_eq!(values.len(), 3, "{values:?}");
    assert_eq!(values[2], "carol", "the game sees the late joiner through the SDK: {values:?}");
    // The other server was not touched.
    assert_eq!(up.fleet_field("simple-game-server", "ready").await, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_racing_tickets_never_overfill_the_running_match() {
    let scratch = Scratch::new("up-backfill-race");
    let up = up_with_matchmaker(&scratch, 1, "21900-21949");
    up.ready_servers(1).await;
    let (a, b) = (up.create(lobby("p-a")).await, up.create(lobby("p-b")).await);
    let first = up.assigned(&a).await;
    up.assigned(&b).await;
    let server = endpoint(&first);
    // The game seats three players of its own: the matchmaker still counts 6 free seats, the
    // server has 3.
    for bot in ["bot-1", "bot-2", "bot-3"] {
        assert!(udp_request(server, &format!("LIST_ADD players {bot}")).starts_with("ACK LIST_ADD"));
    }

    let mut creates = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (http, url) = (up.http.clone(), format!("{}/v1/tickets", up.api));
        creates.spawn(async move {
            let response = http.post(url).json(&lobby(&format!("late-{i}"))).send().await.expect("POST");
            assert_eq!(response.status().as_u16(), 201);
            let body: Value = response.json().await.expect("ticket JSON");
            body["id"].as_str().expect("ticket id").to_owned()
        });
    }
    let ids: Vec<String> = creates.join_all().await;

    // Every seat is taken; then nothing more moves.
    eventually(SETTLE, "the list full", || async { (seats(server).1.len() == CAPACITY).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (capacity, values) = seats(server);
    assert_eq!(capacity, CAPACITY);
    assert_eq!(values.len(), CAPACITY, "never past capacity: {values:?}");

    let mut assigned_here = BTreeSet::new();
    for id in &ids {
        let ticket = up.ticket(id).await.expect("ticket");
        let state = ticket["state"].as_str().unwrap_or_default();
        assert!(matches!(state, "searching" | "matched" | "assigned"), "{ticket}");
        if state == "assigned" {
            assert_eq!(endpoint(&ticket), server, "only one server exists: {ticket}");
            assigned_here.insert(ticket["players"][0]["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let late_seated: BTreeSet<String> = values.iter().filter(|v| v.starts_with("late-")).cloned().collect();
    assert_eq!(assigned_here, late_seated, "exactly the assigned tickets hold seats");
    assert_eq!(assigned_here.len(), CAPACITY - 2 - 3);
}
