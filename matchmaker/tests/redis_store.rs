//! The Redis ticket store against a real `redis-server` (each test starts its own): a restart
//! resumes every ticket, match and idempotency key; a second matchmaker follows the lease
//! holder, and one that lost the lease stops matching; a Redis lost while running answers 503
//! JSON and the store reconnects; concurrent creations sharing an idempotency key store one
//! ticket.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use stadion_crds::gameserver::GameServerState;
use stadion_matchmaker::store::{KEY_PREFIX, RedisStore};
use support::redis::RedisServer;
use support::{DUEL, FakeFleet, TestServer, config, solo};

fn redis_config(redis: &RedisServer) -> stadion_matchmaker::MatchmakerConfig {
    let mut config = config(DUEL);
    config.redis = Some(redis.url());
    config
}

/// Posts until the answer is not 503 (the store may still be reconnecting): the first try
/// that got 503 may have created the ticket, so `body` should carry an idempotency key.
async fn post_until_stored(server: &TestServer, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, ticket) = server.post_ticket(body).await;
        if status != 503 || tokio::time::Instant::now() > deadline {
            return (status, ticket);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_restart_resumes_searching_matched_and_assigned_tickets_and_idempotency_keys() {
    let redis = RedisServer::start();
    let fleet = FakeFleet::new(1);
    let server = TestServer::start(redis_config(&redis), fleet.clone()).await;
    // An assigned pair (the one server), a matched pair waiting for a server, a searcher.
    let (_, a) = server.post_ticket(&solo("duel", "a", 1000.0)).await;
    let (_, b) = server.post_ticket(&solo("duel", "b", 1010.0)).await;
    let assigned = server.wait_for_state(a["id"].as_str().unwrap(), "assigned").await;
    let (_, c) = server.post_ticket(&solo("duel", "c", 3000.0)).await;
    let (_, d) = server.post_ticket(&solo("duel", "d", 3010.0)).await;
    let matched = server.wait_for_state(c["id"].as_str().unwrap(), "matched").await;
    let match_id = matched["match"]["id"].as_str().unwrap().to_owned();
    let mut keyed = solo("duel", "e", 9000.0);
    keyed["idempotencyKey"] = json!("retry-me");
    let (status, e) = server.post_ticket(&keyed).await;
    assert_eq!(status, 201);
    // What a client was told is in Redis itself.
    let stored: Vec<String> = redis.client().await.hkeys(format!("{KEY_PREFIX}tickets")).await.unwrap();
    assert_eq!(stored.len(), 5, "{stored:?}");
    server.shutdown().await.unwrap();

    let fleet = FakeFleet::new(1);
    let server = TestServer::start(redis_config(&redis), fleet.clone()).await;
    let (_, again) = server.get_ticket(a["id"].as_str().unwrap()).await;
    assert_eq!(again["state"], "assigned");
    assert_eq!(again["assignment"], assigned["assignment"]);
    assert_eq!(server.get_ticket(b["id"].as_str().unwrap()).await.1["state"], "assigned");
    // The waiting match first asks for the server that may already carry its id.
    let resumed = server.wait_for_state(d["id"].as_str().unwrap(), "assigned").await;
    assert_eq!(resumed["assignment"]["matchId"], match_id.as_str());
    let first = fleet.requests.lock().unwrap()[0].clone();
    assert_eq!(first.spec.selectors[0].game_server_state, Some(GameServerState::Allocated), "{first:?}");
    assert_eq!(first.spec.selectors[0].label_selector.match_labels.as_ref().unwrap()["stadion.dev/match-id"], match_id);
    assert_eq!(server.get_ticket(e["id"].as_str().unwrap()).await.1["state"], "searching");
    let (status, retried) = server.post_ticket(&keyed).await;
    assert_eq!((status, &retried["id"]), (200, &e["id"]), "the key still names its ticket: {retried}");
    let mut reused = solo("duel", "f", 9000.0);
    reused["idempotencyKey"] = json!("retry-me");
    assert_eq!(server.post_ticket(&reused).await.0, 409);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancel_timeouts_and_retention_hold_across_a_restart() {
    let redis = RedisServer::start();
    let (server, gone) = support::restart_after_the_clocks_ran_out(|| redis_config(&redis)).await;
    // Forgotten in Redis too, not just in memory.
    let mut client = redis.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: bool = client.hexists(format!("{KEY_PREFIX}tickets"), &gone).await.unwrap();
        if !left {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a forgotten ticket stayed in Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_matchmaker_on_the_same_redis_follows_at_once() {
    let redis = RedisServer::start();
    let server = TestServer::start(redis_config(&redis), FakeFleet::new(0)).await;
    let started = tokio::time::Instant::now();
    let second = stadion_matchmaker::Matchmaker::open(redis_config(&redis), FakeFleet::new(0)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "it did not wait for the lease: {:?}", started.elapsed());
    assert!(server.matchmaker.is_matching());
    assert!(!second.is_matching(), "the lease is held: the second one follows");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_naming_its_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let error = RedisStore::connect(&url).await.unwrap_err();
    assert!(error.to_string().contains(&url), "{error}");
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[tokio::test]
async fn a_matchmaker_that_lost_its_lease_stops_matching_and_its_fenced_writes_fail() {
    let redis = RedisServer::start();
    let server = TestServer::start(redis_config(&redis), FakeFleet::new(0)).await;
    let (status, before) = server.post_ticket(&solo("duel", "before", 1.0)).await;
    assert_eq!(status, 201);
    // Another replica took the lease (as after a pause longer than its TTL).
    let mut client = redis.client().await;
    let _: () = client.set(format!("{KEY_PREFIX}lease"), "99:someone-else").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.matchmaker.is_matching() {
        assert!(tokio::time::Instant::now() < deadline, "it kept matching without its lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // As a follower it still takes tickets (any replica does) but forms no match: the pair
    // stays searching, and Redis holds no match.
    let (status, after) = server.post_ticket(&solo("duel", "after", 2.0)).await;
    assert_eq!(status, 201, "{after}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for ticket in [&before, &after] {
        assert_eq!(server.get_ticket(ticket["id"].as_str().unwrap()).await.1["state"], "searching");
    }
    let matches: Vec<String> = client.hkeys(format!("{KEY_PREFIX}matches")).await.unwrap();
    assert!(matches.is_empty(), "{matches:?}");
    // A cancel goes to the replica that matches; none answers here, so 503 JSON, not a hang.
    let response = server
        .client
        .delete(server.url(&format!("/v1/tickets/{}", before["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store", "{body}");
    // The new holder's lease is left alone.
    let lease: String = client.get(format!("{KEY_PREFIX}lease")).await.unwrap();
    assert_eq!(lease, "99:someone-else");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_redis_lost_while_running_answers_503_json_and_the_store_reconnects() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(redis_config(&redis), FakeFleet::new(0)).await;
    assert_eq!(server.post_ticket(&solo("duel", "a", 1.0)).await.0, 201);
    redis.kill();
    let started = tokio::time::Instant::now();
    let (status, body) = server.post_ticket(&solo("duel", "b", 500.0)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store", "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "the answer waited {:?}", started.elapsed());
    // Reads are served from memory meanwhile.
    assert_eq!(server.client.get(server.url("/healthz")).send().await.unwrap().status().as_u16(), 200);

    redis.restart();
    // A client retries with its idempotency key until the store answers.
    let mut retried = solo("duel", "c", 900.0);
    retried["idempotencyKey"] = json!("c-once");
    let (status, body) = post_until_stored(&server, &retried).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    assert_eq!(body["players"][0]["id"], "c", "{body}");
    // A ticket refused with 503 was not created (Redis never saw it): its player may post again.
    let mut client = redis.client().await;
    let players: Vec<String> = client.hvals(format!("{KEY_PREFIX}tickets")).await.unwrap();
    assert!(!players.iter().any(|t| t.contains("\"b\"")), "{players:?}");
    assert!(players.iter().any(|t| t.contains("\"c\"")), "{players:?}");
    assert_eq!(server.post_ticket(&solo("duel", "b", 500.0)).await.0, 201);
    server.shutdown().await.unwrap();
}

/// A searching ticket for `player`, with idempotency key `key`.
fn searching(player: &str, key: &str) -> stadion_matchmaker::store::StoredTicket {
    use stadion_matchmaker::ticket::{Player, Ticket, TicketState};
    let ticket = Ticket {
        id: uuid::Uuid::new_v4().to_string(),
        queue: "duel".to_owned(),
        state: TicketState::Searching,
        players: vec![Player { id: player.to_owned(), attributes: Default::default(), latencies: Default::default() }],
        idempotency_key: Some(key.to_owned()),
        created_at: "2026-12-02T00:00:00Z".to_owned(),
        updated_at: "2026-12-02T00:00:00Z".to_owned(),
        match_info: None,
        assignment: None,
        reason: None,
    };
    stadion_matchmaker::store::StoredTicket { ticket, enqueued_at: 0, deadline: 1, forget_at: None, match_id: None }
}

#[tokio::test]
async fn concurrent_creations_with_one_idempotency_key_write_one_ticket_and_all_name_it() {
    use stadion_matchmaker::store::{Created, TicketStore};
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    // Two tickets per key, all created at once.
    let tickets: Vec<_> = (0..200).map(|i| searching(&format!("p{i}"), &format!("key-{}", i / 2))).collect();
    let creations: Vec<_> = tickets.iter().map(|t| store.create(t).unwrap()).collect();
    let answers = futures::future::join_all(creations).await;
    let mut written = Vec::new();
    for (pair, answers) in tickets.chunks(2).zip(answers.chunks(2)) {
        let id = |t: &stadion_matchmaker::store::StoredTicket| uuid::Uuid::parse_str(&t.ticket.id).unwrap();
        let (first, second) = (id(&pair[0]), id(&pair[1]));
        let winner = match (&answers[0], &answers[1]) {
            (Ok(Created::New), Ok(Created::Existing(named))) if *named == first => first,
            (Ok(Created::Existing(named)), Ok(Created::New)) if *named == second => second,
            other => panic!("one of each pair is new and the other names it: {other:?}"),
        };
        written.push(winner.to_string());
    }
    let mut conn = redis.client().await;
    let mut stored: Vec<String> = conn.hkeys(format!("{KEY_PREFIX}tickets")).await.unwrap();
    let entries: usize = conn.xlen(format!("{KEY_PREFIX}changes")).await.unwrap();
    assert_eq!(entries, 100, "one stream entry per ticket written");
    stored.sort();
    written.sort();
    assert_eq!(stored, written, "exactly the ticket each key names is stored");
}
