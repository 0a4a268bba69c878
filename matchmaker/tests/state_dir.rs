//! `stateDir`: a matchmaker restarted on the same folder resumes its tickets' clocks (timeouts
//! and retention keep running while it is down) and allocates a waiting match again, asking
//! first for the server that may already carry the match's id.

mod support;

use std::path::PathBuf;

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
    let (server, _) = support::restart_after_the_clocks_ran_out(|| dir.config(DUEL)).await;
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
