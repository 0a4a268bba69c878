//! Several matchmaker replicas on one real `redis-server` (each test starts its own): any
//! replica takes tickets and answers reads and event streams, one matches, and another takes
//! over matching when it goes.

mod support;

use std::time::Duration;

use serde_json::json;
use support::redis::RedisServer;
use support::{DUEL, FakeFleet, TestServer, config, read_events, solo};

fn redis_config(redis: &RedisServer) -> stadion_matchmaker::MatchmakerConfig {
    let mut config = config(DUEL);
    config.redis = Some(redis.url());
    config
}

/// A leader and a follower on `redis`, allocating from one fleet of `ready` servers.
async fn pair(redis: &RedisServer, ready: usize) -> (TestServer, TestServer, std::sync::Arc<FakeFleet>) {
    let fleet = FakeFleet::new(ready);
    let leader = TestServer::start(redis_config(redis), fleet.clone()).await;
    let follower = TestServer::start(redis_config(redis), fleet.clone()).await;
    assert!(leader.matchmaker.is_matching() && !follower.matchmaker.is_matching());
    (leader, follower, fleet)
}

#[tokio::test]
async fn a_follower_takes_tickets_the_leader_matches_and_its_event_stream_sees_the_assignment() {
    let redis = RedisServer::start();
    let (leader, follower, _fleet) = pair(&redis, 1).await;
    let (status, a) = follower.post_ticket(&solo("duel", "a", 1000.0)).await;
    assert_eq!(status, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    // Read on the follower at once (its own ticket), and on the leader once the stream brought it.
    assert_eq!(follower.get_ticket(&id).await.1["state"], "searching");
    leader.wait_for_state(&id, "searching").await;
    let events = follower.client.get(follower.url(&format!("/v1/tickets/{id}/events"))).send().await.unwrap();
    assert_eq!(events.status().as_u16(), 200);
    // Its partner goes to the leader; the leader matches the pair and assigns it.
    let (_, b) = leader.post_ticket(&solo("duel", "b", 1010.0)).await;
    let on_leader = leader.wait_for_state(&id, "assigned").await;
    let on_follower = follower.wait_for_state(&id, "assigned").await;
    assert_eq!(on_follower["assignment"], on_leader["assignment"]);
    assert_eq!(
        follower.wait_for_state(b["id"].as_str().unwrap(), "assigned").await["assignment"],
        on_leader["assignment"]
    );
    let seen = read_events(events).await;
    assert_eq!(seen.first().unwrap()["state"], "searching", "{seen:?}");
    assert_eq!(seen.last().unwrap()["state"], "assigned", "{seen:?}");
    assert_eq!(seen.last().unwrap()["assignment"], on_leader["assignment"]);
    follower.shutdown().await.unwrap();
    leader.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_idempotency_key_on_two_replicas_names_one_ticket() {
    let redis = RedisServer::start();
    let (leader, follower, _fleet) = pair(&redis, 0).await;
    let mut keyed = solo("duel", "k", 5000.0);
    keyed["idempotencyKey"] = json!("once-only");
    let (first_status, first) = follower.post_ticket(&keyed).await;
    let (second_status, second) = leader.post_ticket(&keyed).await;
    assert_eq!((first_status, second_status), (201, 200), "{first} {second}");
    assert_eq!(first["id"], second["id"]);
    // And the other way round, racing: both answers name the same ticket.
    let mut raced = solo("duel", "r", 7000.0);
    raced["idempotencyKey"] = json!("raced");
    let ((s1, t1), (s2, t2)) = tokio::join!(leader.post_ticket(&raced), follower.post_ticket(&raced));
    assert_eq!(t1["id"], t2["id"], "{t1} {t2}");
    let mut statuses = [s1, s2];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201]);
    // The same key for a different ticket is a conflict on either replica.
    let mut reused = solo("duel", "other", 5000.0);
    reused["idempotencyKey"] = json!("once-only");
    for server in [&leader, &follower] {
        let (status, body) = server.post_ticket(&reused).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["field"], "idempotencyKey", "{body}");
    }
    // A request that fails validation is refused on a follower exactly as on the leader.
    let bad = json!({"queue": "nope", "players": [{"id": "x"}]});
    let (leader_status, leader_body) = leader.post_ticket(&bad).await;
    let (follower_status, follower_body) = follower.post_ticket(&bad).await;
    assert_eq!((leader_status, &leader_body), (follower_status, &follower_body));
    assert_eq!(follower_status, 422, "{follower_body}");
    follower.shutdown().await.unwrap();
    leader.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cancel_on_a_follower_is_decided_by_the_leader_and_the_ticket_is_never_matched() {
    let redis = RedisServer::start();
    let (leader, follower, fleet) = pair(&redis, 1).await;
    let (_, a) = follower.post_ticket(&solo("duel", "a", 1000.0)).await;
    let id = a["id"].as_str().unwrap().to_owned();
    leader.wait_for_state(&id, "searching").await;
    let response = follower.client.delete(follower.url(&format!("/v1/tickets/{id}"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cancelled: serde_json::Value = response.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(leader.get_ticket(&id).await.1["state"], "cancelled");
    // A partner arriving now finds nobody to match with.
    let (_, b) = follower.post_ticket(&solo("duel", "b", 1000.0)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leader.get_ticket(b["id"].as_str().unwrap()).await.1["state"], "searching");
    assert_eq!(fleet.request_count(), 0);
    // An assigned ticket cannot be cancelled on a follower either (409, as on the leader).
    let (_, c) = leader.post_ticket(&solo("duel", "c", 1000.0)).await;
    let assigned = follower.wait_for_state(c["id"].as_str().unwrap(), "assigned").await;
    let response = follower
        .client
        .delete(follower.url(&format!("/v1/tickets/{}", assigned["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    follower.shutdown().await.unwrap();
    leader.shutdown().await.unwrap();
}

#[tokio::test]
async fn when_the_leader_goes_the_follower_matches_and_resumes_its_waiting_match() {
    let redis = RedisServer::start();
    // No server free: the leader's match waits for one.
    let (leader, follower, fleet) = pair(&redis, 0).await;
    let (_, a) = follower.post_ticket(&solo("duel", "a", 1000.0)).await;
    let (_, b) = leader.post_ticket(&solo("duel", "b", 1000.0)).await;
    let matched = follower.wait_for_state(a["id"].as_str().unwrap(), "matched").await;
    leader.shutdown().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !follower.matchmaker.is_matching() {
        assert!(tokio::time::Instant::now() < deadline, "the follower never took the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.add_ready(2);
    // The match resumed (same id), and new tickets match on the new leader.
    let assigned = follower.wait_for_state(b["id"].as_str().unwrap(), "assigned").await;
    assert_eq!(assigned["assignment"]["matchId"], matched["match"]["id"]);
    let (_, c) = follower.post_ticket(&solo("duel", "c", 3000.0)).await;
    let (_, d) = follower.post_ticket(&solo("duel", "d", 3000.0)).await;
    follower.wait_for_state(c["id"].as_str().unwrap(), "assigned").await;
    follower.wait_for_state(d["id"].as_str().unwrap(), "assigned").await;
    follower.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_follower_store_streams_the_leaders_changes_and_reloads_when_it_fell_behind() {
    use redis::AsyncCommands;
    use stadion_matchmaker::store::{Change, RedisStore, StoreEvent, TicketStore};

    let redis = RedisServer::start();
    let prefix = "replicas-store:";
    let leader = RedisStore::connect_with_prefix(&redis.url(), prefix).await.unwrap();
    let follower = RedisStore::connect_with_prefix(&redis.url(), prefix).await.unwrap();
    assert!(leader.term().is_some() && follower.term().is_none());
    leader.begin_term(leader.term().as_deref());
    let mut events = follower.events().unwrap();
    let gone = uuid::Uuid::new_v4();
    leader.record(Change::MatchDone(gone));
    leader.persisted().await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert!(matches!(event, StoreEvent::Change(Change::MatchDone(id)) if id == gone), "{event:?}");
    // Entries trimmed before the follower read them (their numbers are skipped, as when the
    // stream's length cap dropped them): it loads the hashes again.
    let mut client = redis.client().await;
    let _: i64 = client.incr(format!("{prefix}changes-count"), 5).await.unwrap();
    leader.record(Change::MatchDone(uuid::Uuid::new_v4()));
    leader.persisted().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv()).await.expect("a reload").unwrap();
        if let StoreEvent::Reset { term, .. } = event {
            assert_eq!(term, None, "still following");
            break;
        }
    }
    // A change recorded outside the lease's term is refused, not written.
    leader.begin_term(Some("1:not-the-lease"));
    leader.record(Change::MatchDone(uuid::Uuid::new_v4()));
    let error = leader.persisted().await.unwrap_err();
    assert!(error.message.contains("lease"), "{error}");
}

#[tokio::test]
async fn an_idempotency_key_is_freed_on_every_replica_once_its_ticket_is_forgotten() {
    use redis::AsyncCommands;

    let redis = RedisServer::start();
    let fleet = FakeFleet::new(0);
    let short = || {
        let mut config = redis_config(&redis);
        config.assigned_retention = Duration::from_millis(300);
        config
    };
    let leader = TestServer::start(short(), fleet.clone()).await;
    let follower = TestServer::start(short(), fleet.clone()).await;
    let mut keyed = solo("duel", "k", 5000.0);
    keyed["idempotencyKey"] = json!("reusable");
    let (status, first) = follower.post_ticket(&keyed).await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_str().unwrap();
    leader.wait_for_state(id, "searching").await;
    let response = follower.client.delete(follower.url(&format!("/v1/tickets/{id}"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // Forgotten after its retention, on both replicas and in Redis, key included.
    let mut client = redis.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let key: Option<String> = client.get("stadion:matchmaker:idem:reusable").await.unwrap();
        let gone = follower.get_ticket(id).await.0 == 404 && leader.get_ticket(id).await.0 == 404;
        if key.is_none() && gone {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never forgotten: key {key:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, second) = leader.post_ticket(&keyed).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["id"], first["id"]);
    follower.shutdown().await.unwrap();
    leader.shutdown().await.unwrap();
}
