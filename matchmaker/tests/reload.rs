//! Reconfiguring a running matchmaker: queues come and go, tickets in unchanged queues stay,
//! an invalid configuration changes nothing.

mod support;

use support::{DUEL, FakeFleet, TestServer, config, solo};

const WITH_SQUADS: &str = "
queues:
  - name: duel
    players: {min: 2, max: 2}
    skill: {attribute: mmr, initialSpread: 100, widenPerSecond: 0, maxSpread: 100}
    ticketTimeout: 5s
  - name: lonely
    players: {min: 2, max: 2}
    ticketTimeout: 1m
  - name: squads
    teams: {count: 2, minPlayers: 1, maxPlayers: 2}
    ticketTimeout: 5s
";

#[tokio::test]
async fn queues_are_added_changed_and_removed_while_tickets_in_unchanged_queues_wait_on() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    let (status, waiting) = server.post_ticket(&solo("duel", "alice", 1500.0)).await;
    assert_eq!(status, 201, "{waiting}");
    let (status, refused) = server.post_ticket(&solo("squads", "carol", 1.0)).await;
    assert_eq!((status, &refused["error"]["field"]), (422, &serde_json::json!("queue")), "{refused}");

    let changes = server.matchmaker.reconfigure(config(WITH_SQUADS)).expect("valid").queues;
    assert_eq!(
        (changes.added, changes.changed, changes.removed),
        (vec!["squads".to_owned()], vec!["lonely".to_owned()], vec![])
    );
    let (status, squad) = server.post_ticket(&solo("squads", "carol", 1.0)).await;
    assert_eq!(status, 201, "the new queue takes tickets: {squad}");
    let id = waiting["id"].as_str().unwrap();
    let (_, still) = server.get_ticket(id).await;
    assert_eq!(still["state"], "searching", "a ticket in an unchanged queue keeps waiting: {still}");
    let (status, lonely) = server.post_ticket(&solo("lonely", "bob", 1.0)).await;
    assert_eq!(status, 201, "{lonely}");

    // A second player for the kept duel ticket: the pool survived the reload and matches them.
    let (status, _) = server.post_ticket(&solo("duel", "dave", 1510.0)).await;
    assert_eq!(status, 201);
    server.wait_for_state(id, "matched").await;

    let only_squads = "queues:\n  - name: squads\n    teams: {count: 2, minPlayers: 1, maxPlayers: 2}\n";
    let changes = server.matchmaker.reconfigure(config(only_squads)).expect("valid").queues;
    assert_eq!(changes.removed, vec!["duel".to_owned(), "lonely".to_owned()]);
    let failed = server.wait_for_state(lonely["id"].as_str().unwrap(), "failed").await;
    assert!(failed["reason"].as_str().unwrap_or_default().contains("removed"), "{failed}");
    let (status, _) = server.post_ticket(&solo("duel", "erin", 1.0)).await;
    assert_eq!(status, 422, "a removed queue takes no tickets");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_and_the_old_one_kept() {
    let server = TestServer::start(config(DUEL), FakeFleet::new(0)).await;
    let mut broken = config(WITH_SQUADS);
    broken.queues[2].teams = None;
    let error = server.matchmaker.reconfigure(broken).expect_err("no size");
    assert!(error.to_string().contains("queues[2]"), "{error}");
    assert_eq!(server.matchmaker.config().queues.len(), 2);
    let (status, _) = server.post_ticket(&solo("squads", "carol", 1.0)).await;
    assert_eq!(status, 422, "nothing of the refused configuration applied");
    let (status, _) = server.post_ticket(&solo("duel", "alice", 1.0)).await;
    assert_eq!(status, 201, "the old queues still work");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn searching_tickets_of_a_changed_queue_are_rechecked_against_its_new_rules() {
    let three_teams = WITH_SQUADS
        .replace("teams: {count: 2, minPlayers: 1, maxPlayers: 2}", "teams: {count: 3, minPlayers: 1, maxPlayers: 2}");
    let server = TestServer::start(config(&three_teams), FakeFleet::new(0)).await;
    let party = serde_json::json!({"queue": "squads", "players": [{"id": "a"}, {"id": "b"}]});
    let (status, party) = server.post_ticket(&party).await;
    assert_eq!(status, 201, "{party}");
    let (status, single) = server.post_ticket(&serde_json::json!({"queue": "squads", "players": [{"id": "c"}]})).await;
    assert_eq!(status, 201, "{single}");

    let smaller = three_teams.replace("maxPlayers: 2}", "maxPlayers: 1}");
    let changes = server.matchmaker.reconfigure(config(&smaller)).expect("valid").queues;
    assert_eq!((changes.changed, changes.failed_tickets), (vec!["squads".to_owned()], 1));
    let failed = server.wait_for_state(party["id"].as_str().unwrap(), "failed").await;
    assert!(failed["reason"].as_str().unwrap_or_default().contains("no longer fits"), "{failed}");
    let (_, kept) = server.get_ticket(single["id"].as_str().unwrap()).await;
    assert_eq!(kept["state"], "searching", "{kept}");

    // Two more singles make three teams of one under the new rules, with the kept ticket.
    for player in ["d", "e"] {
        let (status, _) =
            server.post_ticket(&serde_json::json!({"queue": "squads", "players": [{"id": player}]})).await;
        assert_eq!(status, 201);
    }
    server.wait_for_state(single["id"].as_str().unwrap(), "matched").await;
    server.shutdown().await.unwrap();
}
