//! Two `stadion up` matchmakers on one real Redis (`--redis-url`): tickets go to both while
//! load runs; the one holding the matching lease is killed with SIGKILL mid-load, and the
//! other takes over matching within 5 s of the kill. Every acknowledged ticket is found and
//! ends assigned, no ticket or server is in two matches, an event stream opened on the
//! follower sees the leader's assignment, and one idempotency key sent to both replicas names
//! one ticket.

#[path = "../matchmaker/tests/support/redis.rs"]
mod redis_server;
mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use redis::AsyncCommands;
use serde_json::Value;
use stadion_matchmaker::store::KEY_PREFIX;
use support::{Scratch, TICKET_SETTLE, copy_example, duel_ticket, eventually, get_json, test_fleet, up_on_with};

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_redis_survive_a_kill_of_the_lease_holder() {
    let scratch = Scratch::new("up-mm-replicas");
    let redis = redis_server::RedisServer::start();
    let queues = copy_example(&scratch, "matchmaker.yaml", |text| text);
    let url = redis.url();
    let flags = ["--redis-url", url.as_str()];
    let fleet_a = test_fleet(&scratch, 4);
    let mut a = up_on_with(&scratch, &[&fleet_a, &queues], "23500-23549", &flags);
    a.fleet_ready(4).await;
    // `a` came first: it holds the matching lease.
    let mut client = redis.client().await;
    let lease = format!("{KEY_PREFIX}lease");
    let held: Option<String> = client.get(&lease).await.unwrap();
    let first_token = held.expect("the first replica holds the lease");
    // `b` writes its own fleet file: the two runtimes are separate, their matchmaker shared.
    // (Enough servers for every match `a` may leave half-allocated when it dies.)
    let fleet_b_dir = scratch.dir.join("b");
    std::fs::create_dir_all(&fleet_b_dir).unwrap();
    let fleet_b = fleet_b_dir.join("fleet.yaml");
    let text = std::fs::read_to_string(&fleet_a).unwrap();
    assert!(text.contains("replicas: 4"), "{text}");
    std::fs::write(&fleet_b, text.replace("replicas: 4", "replicas: 10")).unwrap();
    let b = up_on_with(&scratch, &[&fleet_b, &queues], "23550-23599", &flags);
    b.fleet_ready(10).await;
    let held: Option<String> = client.get(&lease).await.unwrap();
    assert_eq!(held.as_deref(), Some(first_token.as_str()), "the second replica follows");

    // An event stream on the follower sees the assignment the leader makes.
    let watched = b.ticket_created(&duel_ticket("sse-b", 100.0), None).await;
    let events = b.http.get(format!("{}/v1/tickets/{watched}/events", b.api)).send().await.expect("SSE");
    assert_eq!(events.status().as_u16(), 200);
    let partner = a.ticket_created(&duel_ticket("sse-a", 100.0), None).await;
    let body = tokio::time::timeout(Duration::from_secs(30), events.text()).await.expect("the stream ends").unwrap();
    let states: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| serde_json::from_str(d.trim()).unwrap()).collect();
    let last = states.last().expect("events");
    assert_eq!(last["state"], "assigned", "{body}");
    assert_eq!(last["assignment"], a.ticket_reaches(&watched, "assigned").await["assignment"]);

    // One idempotency key on both replicas: one ticket.
    let (s1, t1) = b.try_post_ticket_json(&duel_ticket("keyed", 9000.0), Some("one-key")).await.unwrap();
    let (s2, t2) = a.try_post_ticket_json(&duel_ticket("keyed", 9000.0), Some("one-key")).await.unwrap();
    assert_eq!((s1, s2), (201, 200), "{t1} {t2}");
    assert_eq!(t1["id"], t2["id"]);
    let keyed = t1["id"].as_str().unwrap().to_owned();

    // Load on both replicas; the lease holder dies in the middle of it.
    // Skill buckets far apart (more than the widest spread), two tickets to each.
    let mut acknowledged: Vec<String> = vec![watched, partner, keyed];
    for i in 0..6 {
        let server = if i % 2 == 0 { &a } else { &b };
        acknowledged.push(
            server.ticket_created(&duel_ticket(&format!("before-{i}"), 2000.0 + (i / 2) as f64 * 1000.0), None).await,
        );
    }
    a.process.signal(Signal::SIGKILL);
    let killed = Instant::now();
    // Posts racing the kill, to both: whatever either replica acknowledged counts, and a
    // bucket left with one ticket gets its partner from the survivor.
    for bucket in 0..3 {
        let skill = 6000.0 + bucket as f64 * 1000.0;
        let mut count = 0;
        for (n, server) in [&a, &b].into_iter().enumerate() {
            if let Some((201, body)) =
                server.try_post_ticket_json(&duel_ticket(&format!("during-{bucket}-{n}"), skill), None).await
            {
                acknowledged.push(body["id"].as_str().unwrap().to_owned());
                count += 1;
            }
        }
        for n in count..2 {
            acknowledged.push(b.ticket_created(&duel_ticket(&format!("during-{bucket}-late-{n}"), skill), None).await);
        }
    }
    assert!(a.process.wait_exit(Duration::from_secs(10)).is_some(), "up survived SIGKILL");
    // The keyed ticket's partner; and a pair posted to the survivor, matched once it took over.
    acknowledged.push(b.ticket_created(&duel_ticket("keyed-partner", 9000.0), None).await);
    let first = b.ticket_created(&duel_ticket("after-0", 20000.0), None).await;
    let second = b.ticket_created(&duel_ticket("after-1", 20000.0), None).await;
    let url = format!("{}/v1/tickets/{first}", b.api);
    eventually(TICKET_SETTLE, "the survivor matches", || async {
        let ticket = get_json(&b.http, &url).await?;
        (ticket["state"] == "matched" || ticket["state"] == "assigned").then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    acknowledged.extend([first, second]);
    eprintln!("takeover: matching resumed {takeover:?} after the kill");
    assert!(takeover < Duration::from_secs(5), "matching resumed {takeover:?} after the kill");
    // It matches under a new fencing token.
    let held: Option<String> = client.get(&lease).await.unwrap();
    let token = held.expect("the survivor holds the lease");
    let fence = |t: &str| t.split(':').next().unwrap().parse::<u64>().unwrap();
    assert!(fence(&token) > fence(&first_token), "{first_token} then {token}");

    // Every acknowledged ticket is found on the survivor and ends assigned; no ticket is in
    // two matches and no server serves two.
    let mut servers: HashMap<String, String> = HashMap::new();
    let mut seen = HashSet::new();
    for id in &acknowledged {
        assert!(seen.insert(id.clone()), "ticket {id} acknowledged twice");
        let ticket = b.ticket_reaches(id, "assigned").await;
        let assignment = &ticket["assignment"];
        let match_id = assignment["matchId"].as_str().expect("matchId").to_owned();
        let server = format!("{} {}", assignment["address"], assignment["ports"]);
        if let Some(other) = servers.insert(server.clone(), match_id.clone()) {
            assert_eq!(other, match_id, "server {server} is in two matches");
        }
    }
    let mut per_match: HashMap<String, usize> = HashMap::new();
    for id in &acknowledged {
        let ticket = b.ticket_reaches(id, "assigned").await;
        *per_match.entry(ticket["assignment"]["matchId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(per_match.values().all(|&n| n == 2), "every duel has two tickets: {per_match:?}");
}
