//! Health checking from SDK pings: after `initialDelaySeconds`, every `periodSeconds` without a
//! ping counts one failure, each ping resets the count, and at `failureThreshold` failures the
//! server becomes Unhealthy (terminal). Settings are re-read from the GameServer every period, so a
//! reloaded manifest takes effect without a restart.

use std::sync::Mutex;
use std::time::Duration;

use stadion_crds::gameserver::Health;

use super::Sidecar;

/// Pings seen since the last check, and the failures counted so far.
#[derive(Debug, Default)]
pub struct HealthTracker {
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    pinged: bool,
    failures: i32,
}

impl HealthTracker {
    /// Records a ping: the failure count starts over.
    pub fn ping(&self) {
        if let Ok(mut counts) = self.state.lock() {
            counts.pinged = true;
            counts.failures = 0;
        }
    }

    /// Ends one period: a failure if no ping came during it. Returns the failures so far.
    fn end_period(&self) -> i32 {
        let Ok(mut counts) = self.state.lock() else { return 0 };
        if counts.pinged {
            counts.pinged = false;
        } else {
            counts.failures = counts.failures.saturating_add(1);
        }
        counts.failures
    }
}

fn seconds(value: i32) -> Duration {
    Duration::from_secs(u64::try_from(value).unwrap_or(0))
}

/// Runs until the server is terminal (or the task is aborted with the sidecar). With `enforce`
/// off, a failed check is logged once per failure streak and the server left as it is.
pub async fn run_health_checks(sidecar: Sidecar, enforce: bool) {
    let mut reported = false;
    let watch = sidecar.backend().watch();
    let settings = |watch: &tokio::sync::watch::Receiver<_>| -> Health {
        let gs: &std::sync::Arc<stadion_crds::GameServer> = &watch.borrow();
        gs.health()
    };
    tokio::time::sleep(seconds(settings(&watch).initial_delay_seconds())).await;
    loop {
        let health = settings(&watch);
        // A zero period would spin; Agones' minimum is one second.
        tokio::time::sleep(seconds(health.period_seconds()).max(Duration::from_secs(1))).await;
        let failures = sidecar.health_tracker().end_period();
        let (health, state) = {
            let gs = watch.borrow();
            (gs.health(), gs.state())
        };
        if state.is_some_and(stadion_crds::GameServerState::is_terminal) {
            return;
        }
        if health.disabled || failures == 0 {
            reported = false;
            continue;
        }
        tracing::debug!(failures, threshold = health.failure_threshold(), "health period without a ping");
        if failures >= health.failure_threshold() && !enforce {
            if !reported {
                tracing::warn!(
                    failures,
                    "health check failed; local mode only logs it (a cluster would mark the server Unhealthy)"
                );
                reported = true;
            }
            continue;
        }
        if failures >= health.failure_threshold() {
            match sidecar.mark_unhealthy().await {
                Ok(gs) => {
                    tracing::warn!(
                        gameserver = gs.metadata.name.as_deref().unwrap_or(""),
                        failures,
                        "health check failed: Unhealthy"
                    );
                    return;
                }
                Err(error) => tracing::warn!(%error, "could not mark the server Unhealthy; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_reset_the_failure_count() {
        let tracker = HealthTracker::default();
        assert_eq!(tracker.end_period(), 1);
        assert_eq!(tracker.end_period(), 2);
        tracker.ping();
        assert_eq!(tracker.end_period(), 0, "a ping during the period");
        assert_eq!(tracker.end_period(), 1);
    }
}
