//! End to end through the matchmaker: `stadion up examples/` serves the ticket API; two players'
//! tickets end `assigned` to the same server, which answers them over UDP and carries the match
//! metadata; a party stays on one team in the 2×2 queue; a server told `EXIT` after its match is
//! replaced; and stopping `up` leaves no game process behind.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{Scratch, Up, eventually, get_json, udp_request, up_with_matchmaker};

const SETTLE: Duration = Duration::from_secs(60);

impl Up {
    async fn submit(&self, ticket: Value) -> String {
        let response =
            self.http.post(format!("{}/v1/tickets", self.api)).json(&ticket).send().await.expect("POST /v1/tickets");
        let status = response.status();
        let body: Value = response.json().await.expect("ticket JSON");
        assert_eq!(status.as_u16(), 201, "ticket not created: {body}");
        body["id"].as_str().expect("ticket id").to_owned()
    }

    async fn assigned(&self, id: &str) -> Value {
        let url = format!("{}/v1/tickets/{id}", self.api);
        eventually(SETTLE, &format!("ticket {id} assigned"), || async {
            let ticket = get_json(&self.http, &url).await?;
            let state = ticket["state"].as_str().unwrap_or_default();
            assert!(matches!(state, "searching" | "matched" | "assigned"), "ticket {id} ended {state}: {ticket}");
            (state == "assigned").then_some(ticket)
        })
        .await
    }
}

fn player(id: &str, skill: f64) -> Value {
    json!({"id": id, "attributes": {"skill": skill}, "latencies": {"local": 20.0}})
}

fn endpoint(ticket: &Value) -> SocketAddr {
    let assignment = &ticket["assignment"];
    let ip = assignment["address"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("{ticket}"));
    let port = assignment["ports"][0]["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    SocketAddr::new(ip, port.unwrap_or_else(|| panic!("no port: {ticket}")))
}

/// What the game itself reports of its GameServer (`GAMESERVER` command).
fn described(server: SocketAddr) -> Value {
    let reply = udp_request(server, "GAMESERVER");
    let json = reply.strip_prefix("ACK GAMESERVER ").unwrap_or_else(|| panic!("{reply}"));
    serde_json::from_str(json.trim()).expect("GAMESERVER JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_are_assigned_one_server_that_answers_and_carries_the_match() {
    let scratch = Scratch::new("up-matchmaker");
    let mut up = up_with_matchmaker(&scratch, 2, "21300-21399");
    eventually(SETTLE, "2 Ready servers", || async {
        (up.fleet_field("simple-game-server", "ready").await == Some(2)).then_some(())
    })
    .await;

    // 1v1: two players close in skill.
    let alice = up.submit(json!({"queue": "duel", "players": [player("alice", 1500.0)]})).await;
    let bob = up.submit(json!({"queue": "duel", "players": [player("bob", 1550.0)]})).await;
    let (alice, bob) = (up.assigned(&alice).await, up.assigned(&bob).await);
    assert_eq!(alice["assignment"]["gameServerName"], bob["assignment"]["gameServerName"], "{alice}\n{bob}");
    assert_eq!(endpoint(&alice), endpoint(&bob));
    assert_eq!(alice["assignment"]["matchId"], bob["assignment"]["matchId"]);
    let server = endpoint(&alice);
    let name = alice["assignment"]["gameServerName"].as_str().expect("server name").to_owned();
    let match_id = alice["assignment"]["matchId"].as_str().expect("match id").to_owned();

    // The players reach it, and it knows it hosts their match.
    assert_eq!(udp_request(server, "hello from alice"), format!("ECHO {name}: hello from alice\n"));
    assert_eq!(up.state_of(&name).await.as_deref(), Some("Allocated"));
    let gs = described(server);
    assert_eq!(gs["state"], "Allocated", "{gs}");
    assert_eq!(gs["labels"]["stadion.dev/match-id"], match_id.as_str(), "{gs}");
    assert_eq!(gs["labels"]["stadion.dev/queue"], "duel", "{gs}");
    let players = gs["annotations"]["stadion.dev/players"].as_str().unwrap_or_default();
    assert!(players.contains("alice") && players.contains("bob"), "{gs}");
    // The game logged its allocation with that metadata (its output is prefixed in up's stderr).
    eventually(SETTLE, "the game's allocation log line", || async {
        let output = up.process.output();
        output.lines().any(|l| l.contains("allocated: a match is coming") && l.contains(&match_id)).then_some(())
    })
    .await;

    // 2×2: a party of two stays together; four players on the other Ready server.
    let party =
        up.submit(json!({"queue": "teams-2v2", "players": [player("carol", 1400.0), player("dave", 1420.0)]})).await;
    let erin = up.submit(json!({"queue": "teams-2v2", "players": [player("erin", 1410.0)]})).await;
    let frank = up.submit(json!({"queue": "teams-2v2", "players": [player("frank", 1430.0)]})).await;
    let tickets = [up.assigned(&party).await, up.assigned(&erin).await, up.assigned(&frank).await];
    for ticket in &tickets[1..] {
        assert_eq!(endpoint(ticket), endpoint(&tickets[0]), "one server for the 2×2 match");
    }
    assert_ne!(endpoint(&tickets[0]), server, "a second match gets its own server");
    let teams = tickets[0]["assignment"]["teams"].as_array().cloned().unwrap_or_default();
    assert_eq!(teams.len(), 2, "{teams:?}");
    assert!(
        teams.iter().any(|team| team == &json!(["carol", "dave"]) || team == &json!(["dave", "carol"])),
        "the party shares a team: {teams:?}"
    );
    let gs = described(endpoint(&tickets[0]));
    assert_eq!(gs["labels"]["stadion.dev/region"], "local", "{gs}");

    // The duel ends: EXIT, and the fleet brings a fresh Ready server back.
    assert_eq!(udp_request(server, "EXIT"), "ACK EXIT\n");
    eventually(SETTLE, "a replacement Ready", || async {
        (up.state_of(&name).await.is_none() && up.fleet_field("simple-game-server", "ready").await == Some(1))
            .then_some(())
    })
    .await;

    let before = scratch.marked_processes();
    assert!(before.len() >= 3, "up and 2 games expected, found {before:?}");
    up.process.signal(Signal::SIGTERM);
    let status = up.process.wait_exit(Duration::from_secs(30)).expect("up stops");
    assert!(status.success(), "{status}");
    assert!(scratch.marked_processes().is_empty(), "game processes left: {:?}", scratch.marked_processes());
}
