//! Watching this server's GameServer: log every state change, log the match metadata when it is
//! Allocated, and (optionally) shut down a while after allocation so fleets recycle.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use stadion_sdk::proto;

use crate::game::{ExitReason, Game};

/// State name of an allocated GameServer.
const ALLOCATED: &str = "Allocated";

/// What a GameServer update means for the game.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Same state as before (metadata or status detail changed).
    Unchanged,
    /// A new state, not Allocated.
    Changed(String),
    /// Just became Allocated (a match was placed here).
    Allocated,
}

/// Tracks the last state seen, so each transition is reported once.
#[derive(Debug, Default)]
pub struct StateTracker {
    last: Option<String>,
}

impl StateTracker {
    /// Records `gs` and says what changed.
    pub fn observe(&mut self, gs: &proto::GameServer) -> Transition {
        let state = gs.status.as_ref().map(|s| s.state.clone()).unwrap_or_default();
        if self.last.as_deref() == Some(state.as_str()) {
            return Transition::Unchanged;
        }
        self.last = Some(state.clone());
        if state == ALLOCATED { Transition::Allocated } else { Transition::Changed(state) }
    }
}

/// Follows the GameServer until the task is dropped, reopening the watch if the sidecar drops it.
pub async fn follow(game: Arc<Game>, shutdown_after_allocation: Option<Duration>) {
    let mut tracker = StateTracker::default();
    let mut shutdown_armed = false;
    loop {
        let mut changes = match game.sdk().watch_game_server().await {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(gameserver = %game.name(), %error, "cannot watch the GameServer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(change) = changes.next().await {
            let gs = match change {
                Ok(gs) => gs,
                Err(error) => {
                    tracing::warn!(gameserver = %game.name(), %error, "GameServer watch broke; reopening");
                    break;
                }
            };
            match tracker.observe(&gs) {
                Transition::Unchanged => {}
                Transition::Changed(state) => tracing::info!(gameserver = %game.name(), %state, "state changed"),
                Transition::Allocated => {
                    let meta = gs.object_meta.clone().unwrap_or_default();
                    tracing::info!(
                        gameserver = %game.name(),
                        labels = ?meta.labels,
                        annotations = ?meta.annotations,
                        "allocated: a match is coming"
                    );
                    if let Some(delay) = shutdown_after_allocation
                        && !shutdown_armed
                    {
                        shutdown_armed = true;
                        tokio::spawn(shutdown_later(game.clone(), delay));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// After `delay`: SDK Shutdown, then end the process, as a game does when its match is over.
async fn shutdown_later(game: Arc<Game>, delay: Duration) {
    tracing::info!(gameserver = %game.name(), delay_seconds = delay.as_secs(), "shutting down after the delay");
    tokio::time::sleep(delay).await;
    if let Err(error) = game.sdk().shutdown().await {
        // Exit anyway: the runtime sees the process end and replaces the server.
        tracing::warn!(gameserver = %game.name(), %error, "SDK Shutdown failed");
    }
    game.request_exit(ExitReason::AfterAllocation);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_state(state: &str) -> proto::GameServer {
        proto::GameServer {
            status: Some(proto::game_server::Status { state: state.into(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn each_transition_is_reported_once() {
        let mut tracker = StateTracker::default();
        assert_eq!(tracker.observe(&in_state("Scheduled")), Transition::Changed("Scheduled".into()));
        assert_eq!(tracker.observe(&in_state("Scheduled")), Transition::Unchanged);
        assert_eq!(tracker.observe(&in_state("Ready")), Transition::Changed("Ready".into()));
        assert_eq!(tracker.observe(&in_state("Allocated")), Transition::Allocated);
        assert_eq!(tracker.observe(&in_state("Allocated")), Transition::Unchanged);
        // Back to Ready and allocated again (a reused server): a second match, logged again.
        assert_eq!(tracker.observe(&in_state("Ready")), Transition::Changed("Ready".into()));
        assert_eq!(tracker.observe(&in_state("Allocated")), Transition::Allocated);
    }
}
