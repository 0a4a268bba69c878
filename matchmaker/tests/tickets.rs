//! Ticket lifecycle over real sockets: assignment, SSE, idempotency, cancel, timeout,
//! waiting for capacity, retries and retention.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use support::{DUEL, FakeFleet, TestServer, config, read_events, solo};

#[tokio::test]
async fn a_pair_is_assigned_one_server_and_sse_delivers_it() {
    let fleet = FakeFleet::new(3);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let (status, a) = server.post_ticket(&solo("duel", "alice", 1500.0)).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["state"], "searching");
    let a_id = a["id"].as_str().unwrap().to_owned();
    let events = server.client.get(server.url(&format!("/v1/tickets/{a_id}/events"))).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let (status, b) = server.post_ticket(&solo("duel", "bob", 1550.0)).await;
    assert_eq!(status, 201);
    let b_id = b["id"].as_str().unwrap().to_owned();

    let events = read_events(events).await;
    assert_eq!(events.first().unwrap()["state"], "searching", "current state comes first");
    let last = events.last().unwrap();
    assert_eq!(last["state"], "assigned", "stream ends with the assignment: {events:?}");

    let a = server.wait_for_state(&a_id, "assigned").await;
    let b = server.wait_for_state(&b_id, "assigned").await;
    assert_eq!(a["assignment"], b["assignment"], "both tickets get the same server");
    assert_eq!(a["assignment"], last["assignment"]);
    assert_eq!(a["assignment"]["address"], "10.0.0.7");
    assert_eq!(a["assignment"]["ports"][0]["port"], 7000);
    assert_eq!(a["assignment"]["gameServerName"], "gs-0");
    assert_eq!(a["match"]["id"], a["assignment"]["matchId"]);
    assert_eq!(fleet.request_count(), 1, "one allocation per match");

    // The allocation carried the match's metadata.
    let request = fleet.requests.lock().unwrap()[0].clone();
    let meta = request.spec.metadata.unwrap();
    assert_eq!(meta.labels["stadion.dev/match-id"], a["match"]["id"].as_str().unwrap());
    assert_eq!(meta.labels["stadion.dev/queue"], "duel");
    let players = &meta.annotations["stadion.dev/players"];
    assert!(players.contains("alice") && players.contains("bob"), "{players}");
    assert_eq!(request.metadata.namespace.as_deref(), Some("default"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn resubmitting_with_an_idempotency_key_returns_the_same_ticket() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    let mut body = solo("duel", "carol", 1000.0);
    body["idempotencyKey"] = json!("req-1");
    let (status, first) = server.post_ticket(&body).await;
    assert_eq!(status, 201);
    let (status, again) = server.post_ticket(&body).await;
    assert_eq!(status, 200);
    assert_eq!(first["id"], again["id"]);

    // The header works the same way.
    let send = |body: serde_json::Value| {
        server.client.post(server.url("/v1/tickets")).header("Idempotency-Key", "req-2").json(&body).send()
    };
    let one = send(solo("duel", "dave", 1000.0)).await.unwrap();
    assert_eq!(one.status(), 201);
    let one: serde_json::Value = one.json().await.unwrap();
    let two: serde_json::Value = send(solo("duel", "dave", 1000.0)).await.unwrap().json().await.unwrap();
    assert_eq!(one["id"], two["id"]);
    assert_eq!(one["idempotencyKey"], "req-2");

    // Reusing a key for a different ticket is a conflict.
    let conflict = send(solo("duel", "erin", 1000.0)).await.unwrap();
    assert_eq!(conflict.status(), 409);
    let error: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(error["error"]["code"], "conflict");
    assert_eq!(error["error"]["field"], "idempotencyKey");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancel_before_assignment_and_conflict_after() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(1)).await;
    let (_, lone) = server.post_ticket(&solo("duel", "frank", 1000.0)).await;
    let id = lone["id"].as_str().unwrap();
    let url = server.url(&format!("/v1/tickets/{id}"));
    let cancelled: serde_json::Value = server.client.delete(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let again = server.client.delete(&url).send().await.unwrap();
    assert_eq!(again.status(), 200, "cancelling twice is harmless");
    let events = read_events(server.client.get(format!("{url}/events")).send().await.unwrap()).await;
    assert_eq!(events.len(), 1, "a final ticket's stream is its state, then the end");
    assert_eq!(events[0]["state"], "cancelled");

    // The player is free again and can be matched; an assigned ticket cannot be cancelled.
    let (_, a) = server.post_ticket(&solo("duel", "frank", 1000.0)).await;
    let (_, _b) = server.post_ticket(&solo("duel", "gina", 1000.0)).await;
    let a_id = a["id"].as_str().unwrap();
    server.wait_for_state(a_id, "assigned").await;
    let response = server.client.delete(server.url(&format!("/v1/tickets/{a_id}"))).send().await.unwrap();
    assert_eq!(response.status(), 409);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "conflict");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unmatched_ticket_times_out_and_its_stream_ends() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(1)).await;
    let (_, lone) = server.post_ticket(&solo("lonely", "hank", 0.0)).await;
    let id = lone["id"].as_str().unwrap();
    let events = server.client.get(server.url(&format!("/v1/tickets/{id}/events"))).send().await.unwrap();
    let events = read_events(events).await;
    assert_eq!(events.last().unwrap()["state"], "timed_out");
    let (_, ticket) = server.get_ticket(id).await;
    assert_eq!(ticket["state"], "timed_out");
    assert!(ticket["reason"].as_str().unwrap().contains("ticketTimeout"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_match_waits_as_matched_until_a_server_turns_ready() {
    let fleet = FakeFleet::new(0);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let (_, a) = server.post_ticket(&solo("duel", "ivy", 1000.0)).await;
    let (_, b) = server.post_ticket(&solo("duel", "jay", 1000.0)).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let matched = server.wait_for_state(a_id, "matched").await;
    assert!(matched["match"]["id"].is_string());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(server.get_ticket(a_id).await.1["state"], "matched", "still waiting, not failed");

    fleet.add_ready(1);
    let a = server.wait_for_state(a_id, "assigned").await;
    let b = server.wait_for_state(b_id, "assigned").await;
    assert_eq!(a["assignment"]["gameServerName"], b["assignment"]["gameServerName"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_waiting_match_returns_its_mate_to_searching() {
    let fleet = FakeFleet::new(0);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let (_, a) = server.post_ticket(&solo("duel", "kim", 1000.0)).await;
    let (_, b) = server.post_ticket(&solo("duel", "lee", 1000.0)).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    server.wait_for_state(b_id, "matched").await;
    let response = server.client.delete(server.url(&format!("/v1/tickets/{a_id}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mate = server.wait_for_state(b_id, "searching").await;
    assert!(mate.get("match").is_none(), "{mate}");
    assert_eq!(mate["createdAt"], b["createdAt"]);

    let (_, c) = server.post_ticket(&solo("duel", "max", 1000.0)).await;
    fleet.add_ready(1);
    let b = server.wait_for_state(b_id, "assigned").await;
    let c = server.wait_for_state(c["id"].as_str().unwrap(), "assigned").await;
    assert_eq!(b["assignment"], c["assignment"]);
    assert_eq!(server.get_ticket(a_id).await.1["state"], "cancelled");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn backend_errors_are_retried_until_assigned() {
    let fleet = FakeFleet::new(1);
    fleet.backend_failures.store(2, Ordering::SeqCst);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let (_, a) = server.post_ticket(&solo("duel", "ned", 1000.0)).await;
    server.post_ticket(&solo("duel", "oli", 1000.0)).await;
    server.wait_for_state(a["id"].as_str().unwrap(), "assigned").await;
    assert_eq!(fleet.request_count(), 3, "two failures, then success");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"stadion_matchmaker_allocation_failures_total{source="match",reason="backend"} 2"#),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn assigned_tickets_are_forgotten_after_retention() {
    let config = stadion_matchmaker::MatchmakerConfig::from_yaml_str(&format!(
        "tickInterval: 20ms\nassignedRetention: 200ms\n{DUEL}"
    ))
    .unwrap();
    let server = TestServer::start(config, FakeFleet::new(1)).await;
    let mut body = solo("duel", "pat", 1000.0);
    body["idempotencyKey"] = json!("k");
    let (_, a) = server.post_ticket(&body).await;
    server.post_ticket(&solo("duel", "quinn", 1000.0)).await;
    let id = a["id"].as_str().unwrap();
    server.wait_for_state(id, "assigned").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, error) = server.get_ticket(id).await;
    assert_eq!(status, 404, "{error}");
    // Its idempotency key is free again: the same body makes a new ticket.
    let (status, fresh) = server.post_ticket(&body).await;
    assert_eq!(status, 201);
    assert_ne!(fresh["id"], a["id"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn players_stay_apart_when_skill_is_too_far() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(2)).await;
    let (_, a) = server.post_ticket(&solo("duel", "ray", 1000.0)).await;
    let (_, b) = server.post_ticket(&solo("duel", "sam", 2000.0)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(server.get_ticket(a["id"].as_str().unwrap()).await.1["state"], "searching");
    assert_eq!(server.get_ticket(b["id"].as_str().unwrap()).await.1["state"], "searching");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_allocated_for_a_match_cancelled_mid_call_is_released() {
    let fleet = FakeFleet::new(1);
    *fleet.delay.lock().unwrap() = Duration::from_millis(800);
    let server = TestServer::start(config(DUEL), fleet.clone()).await;
    let (_, a) = server.post_ticket(&solo("duel", "tia", 1000.0)).await;
    let (_, b) = server.post_ticket(&solo("duel", "ugo", 1000.0)).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    server.wait_for_state(a_id, "matched").await;
    // Cancelled mid-call, not before it: a match dissolved before its allocation starts takes
    // no server, and there is nothing to release (a loaded machine can get there first).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fleet.calls.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the match's allocation never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let response = server.client.delete(server.url(&format!("/v1/tickets/{a_id}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    server.wait_for_state(b_id, "searching").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while fleet.released.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "server never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*fleet.released.lock().unwrap(), vec!["gs-0".to_owned()]);
    assert_eq!(server.get_ticket(b_id).await.1["state"], "searching", "never assigned to a dissolved match");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_queue_whose_request_cannot_be_admitted_fails_its_match_without_allocating() {
    // The queue's selector asks for a state no allocation may select: admission refuses the
    // match's request where it is made, so the allocator never sees it.
    let queue = "
queues:
  - name: broken
    players: {min: 1, max: 1}
    ticketTimeout: 5s
    allocation:
      selectors:
        - gameServerState: Shutdown
";
    let fleet = FakeFleet::new(1);
    let server = TestServer::start(config(queue), fleet.clone()).await;
    let (status, ticket) = server.post_ticket(&solo("broken", "dora", 1.0)).await;
    assert_eq!(status, 201, "{ticket}");
    let failed = server.wait_for_state(ticket["id"].as_str().unwrap(), "failed").await;
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("allocation request is invalid"), "{failed}");
    assert!(reason.contains("spec.selectors[0].gameServerState"), "{failed}");
    assert_eq!(fleet.request_count(), 0, "an unadmitted request reached the allocator");
    server.shutdown().await.unwrap();
}
