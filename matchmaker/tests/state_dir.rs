//! `stateDir`: a matchmaker restarted on the same folder resumes its tickets' clocks (timeouts
//! and retention keep running while it is down) and allocates a waiting match again, asking
//! first for the server that may already carry the match's id.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use stadion_crds::gameserver::GameServerState;
use support::{DUEL, FakeFleet, TestServer, config, solo};

struct StateDir(PathBuf);

impl StateDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("stadion-mm-state-{}", uuid::Uuid::new_v4())))
    }

    fn config(&self, extra: &str) -> stadion_matchmaker::MatchmakerConfig {
        let mut config = config(extra);
        config.state_dir = Some(self.0.clone());
        config
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_match_waiting_at_restart_adopts_its_labelled_server_before_taking_a_new_one() {
    let dir = StateDir::new();
    let server = TestServer::start(dir.config(DUEL), FakeFleet::new(0)).await;
    let (_, a) = server.post_ticket(&solo("duel", "a", 1000.0)).await;
    let (_, b) = server.post_ticket(&solo("duel", "b", 1010.0)).await;
    let matched = server.wait_for_state(a["id"].as_str().unwrap(), "matched").await;
    let match_id = matched["match"]["id"].as_str().unwrap().to_owned();
    server.shutdown().await.unwrap();

    let fleet = FakeFleet::new(1);
    let server = TestServer::start(dir.config(DUEL), fleet.clone()).await;
    let assigned = server.wait_for_state(b["id"].as_str().unwrap(), "assigned").await;
    assert_eq!(assigned["assignment"]["matchId"], match_id.as_str());
    let first = fleet.requests.lock().unwrap()[0].clone();
    let own = &first.spec.selectors[0];
    assert_eq!(own.game_server_state, Some(GameServerState::Allocated), "{first:?}");
    assert_eq!(own.label_selector.match_labels.as_ref().unwrap()["stadion.dev/match-id"], match_id);
    // Then the queue's own selectors (any Ready server here).
    assert_eq!(first.spec.selectors[1].game_server_state, Some(GameServerState::Ready));
    assert_eq!(first.spec.metadata.as_ref().unwrap().labels["stadion.dev/match-id"], match_id);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn timeouts_and_retention_keep_running_while_the_matchmaker_is_down() {
    let dir = StateDir::new();
    let short = || {
        let mut config = dir.config(DUEL);
        config.assigned_retention = Duration::from_millis(700);
        config
    };
    let server = TestServer::start(short(), FakeFleet::new(0)).await;
    let (_, lonely) = server.post_ticket(&solo("lonely", "l", 1.0)).await;
    let (_, gone) = server.post_ticket(&solo("duel", "g", 1.0)).await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    let cancel = server.client.delete(server.url(&format!("/v1/tickets/{gone}"))).send().await.unwrap();
    assert_eq!(cancel.status().as_u16(), 200);
    server.shutdown().await.unwrap();

    // Down for longer than the lonely queue's 300 ms timeout and the 700 ms retention.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let server = TestServer::start(short(), FakeFleet::new(0)).await;
    let ticket = server.wait_for_state(lonely["id"].as_str().unwrap(), "timed_out").await;
    assert!(ticket["reason"].as_str().unwrap().contains("ticketTimeout"), "{ticket}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.get_ticket(&gone).await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "cancelled ticket outlived its retention");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_folder_in_use_is_refused_naming_it() {
    let dir = StateDir::new();
    let server = TestServer::start(dir.config(DUEL), FakeFleet::new(0)).await;
    let error = stadion_matchmaker::Matchmaker::new(dir.config(DUEL), FakeFleet::new(0)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&dir.0.display().to_string()) && message.contains("in use"), "{message}");
    server.shutdown().await.unwrap();
}
