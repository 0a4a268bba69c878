//! CrashLoopBackOff per GameServerSet, as the kubelet does it per container: a set whose games
//! exit before they get Ready waits 10 s before it may create a replacement, then 20 s, 40 s…
//! up to 5 min, and is forgiven once its servers have run 10 min without such a crash.
//!
//! Only exits before Ready count, however soon after the start: that is where Agones leaves a
//! game to the kubelet's restarts. A game that exits once Ready makes its server Unhealthy and
//! Agones replaces it at once; so does this runtime, so a killed server of a healthy fleet (even
//! one killed a moment after it got Ready, and again after its replacement did) never waits.
//!
//! The decision ([`CrashBackoff::after_crash`]) is a pure function of the set's history; the
//! runtime records crashes here (the GameServer controller) and asks before creating servers
//! (the GameServerSet controller), so a broken template no longer restarts a hundred times a
//! second while its neighbours keep their normal pace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use stadion_crds::GameServerState;

use super::lock;

/// The kubelet's first back-off step.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(10);
/// The kubelet's longest back-off.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(300);
/// How long a set's servers must run without a crash for the back-off to start over.
pub const DEFAULT_RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off policy: first delay, doubling up to a cap, forgiven after a quiet run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashBackoff {
    /// Delay after the first crash.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Crash-free running time (from the last permitted attempt) after which the count resets.
    pub reset_after: Duration,
}

impl Default for CrashBackoff {
    fn default() -> Self {
        Self { initial: DEFAULT_INITIAL_DELAY, max: DEFAULT_MAX_DELAY, reset_after: DEFAULT_RESET_AFTER }
    }
}

/// One set's crash-loop history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashLoopState {
    /// Crashes since the last reset (1 after the first).
    pub consecutive_crashes: u32,
    /// The delay the last crash imposed.
    pub delay: Duration,
    /// When the last crash was seen.
    pub last_crash: Timestamp,
    /// Before this time the set creates no servers.
    pub next_attempt: Timestamp,
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

impl CrashBackoff {
    /// The delay imposed by the `crashes`-th consecutive crash (1-based): `initial` doubled
    /// `crashes - 1` times, at most `max`.
    pub fn delay_for(&self, crashes: u32) -> Duration {
        // 2^31 times any delay is past every sensible cap; saturating keeps it well defined.
        let doublings = crashes.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// Whether `state` is forgiven at `now`: the set's servers have been allowed to run for
    /// `reset_after` since its last permitted attempt without crashing.
    pub fn is_reset(&self, state: &CrashLoopState, now: Timestamp) -> bool {
        now >= state.next_attempt.saturating_add(signed(self.reset_after)).unwrap_or(Timestamp::MAX)
    }

    /// The history after a crash seen at `at`, given the history before it (if any).
    pub fn after_crash(&self, previous: Option<&CrashLoopState>, at: Timestamp) -> CrashLoopState {
        let consecutive_crashes = match previous {
            Some(state) if !self.is_reset(state, at) => state.consecutive_crashes.saturating_add(1),
            _ => 1,
        };
        let delay = self.delay_for(consecutive_crashes);
        let next_attempt = at.saturating_add(signed(delay)).unwrap_or(Timestamp::MAX);
        CrashLoopState { consecutive_crashes, delay, last_crash: at, next_attempt }
    }
}

/// Whether a game process that exited on its own while its server was in `state` crashed at
/// start: it never got as far as asking to be Ready. A server that was Ready (or Allocated,
/// Reserved) and then died is replaced at once, as before; one that had asked to shut down
/// ended normally.
pub fn is_crash_at_start(state: Option<GameServerState>) -> bool {
    use GameServerState as S;
    matches!(state, None | Some(S::PortAllocation | S::Creating | S::Starting | S::Scheduled))
}

/// The crash-loop view of one set, for the admin API.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashLoopSummary {
    /// Crashes at start since the last reset.
    pub consecutive_crashes: u32,
    /// The current delay in seconds.
    pub delay_seconds: f64,
    /// When the last crash was seen (RFC 3339).
    pub last_crash: String,
    /// When the set may next create a server (RFC 3339).
    pub next_attempt: String,
    /// Whether the set is waiting right now (`nextAttempt` is in the future).
    pub backing_off: bool,
}

/// Every set's crash-loop history, shared by the controllers and the admin API.
#[derive(Clone, Debug, Default)]
pub struct CrashLoops {
    policy: CrashBackoff,
    states: Arc<Mutex<HashMap<String, CrashLoopState>>>,
}

impl CrashLoops {
    /// An empty table under `policy`.
    pub fn new(policy: CrashBackoff) -> Self {
        Self { policy, states: Arc::default() }
    }

    /// Records a crash at start of one of set `set_key`'s servers and logs the step.
    pub fn record(&self, set_key: &str, gameserver: &str, at: Timestamp) -> CrashLoopState {
        let mut states = lock(&self.states);
        let next = self.policy.after_crash(states.get(set_key), at);
        states.insert(set_key.to_owned(), next);
        drop(states);
        tracing::warn!(
            gameserverset = %set_key,
            gameserver,
            attempt = next.consecutive_crashes,
            delay_seconds = next.delay.as_secs_f64(),
            next_attempt = %next.next_attempt,
            "game exited before Ready: CrashLoopBackOff, no replacement before the delay"
        );
        next
    }

    /// Until when set `set_key` must not create servers, if it is backing off at `now`.
    pub fn hold_until(&self, set_key: &str, now: Timestamp) -> Option<Timestamp> {
        let mut states = lock(&self.states);
        let state = *states.get(set_key)?;
        if self.policy.is_reset(&state, now) {
            states.remove(set_key);
            return None;
        }
        (state.next_attempt > now).then_some(state.next_attempt)
    }

    /// Forgets a set that is gone.
    pub fn forget(&self, set_key: &str) {
        lock(&self.states).remove(set_key);
    }

    /// The history of set `set_key` as the admin API shows it; `None` if it has none (or it
    /// was forgiven).
    pub fn summary(&self, set_key: &str, now: Timestamp) -> Option<CrashLoopSummary> {
        let state = *lock(&self.states).get(set_key)?;
        if self.policy.is_reset(&state, now) {
            return None;
        }
        Some(CrashLoopSummary {
            consecutive_crashes: state.consecutive_crashes,
            delay_seconds: state.delay.as_secs_f64(),
            last_crash: state.last_crash.to_string(),
            next_attempt: state.next_attempt.to_string(),
            backing_off: state.next_attempt > now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("timestamp")
    }

    #[test]
    fn delays_double_from_ten_seconds_to_a_five_minute_cap() {
        let policy = CrashBackoff::default();
        let delays: Vec<u64> = (1..=8).map(|n| policy.delay_for(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(policy.delay_for(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn each_crash_in_a_loop_takes_the_next_step_from_its_own_time() {
        let policy = CrashBackoff::default();
        let first = policy.after_crash(None, at(0));
        assert_eq!((first.consecutive_crashes, first.delay, first.next_attempt), (1, Duration::from_secs(10), at(10)));
        let second = policy.after_crash(Some(&first), at(11));
        assert_eq!((second.consecutive_crashes, second.next_attempt), (2, at(31)));
        let third = policy.after_crash(Some(&second), at(32));
        assert_eq!((third.consecutive_crashes, third.delay, third.last_crash), (3, Duration::from_secs(40), at(32)));
    }

    #[test]
    fn ten_minutes_of_running_after_the_last_attempt_starts_over() {
        let policy = CrashBackoff::default();
        let mut state = policy.after_crash(None, at(0));
        for t in [10, 30, 70, 150, 310] {
            state = policy.after_crash(Some(&state), at(t));
        }
        assert_eq!(state.consecutive_crashes, 6);
        assert_eq!(state.next_attempt, at(610));
        // Nine minutes of running after the attempt: still in the loop.
        assert!(!policy.is_reset(&state, at(610 + 540)));
        assert_eq!(policy.after_crash(Some(&state), at(610 + 540)).consecutive_crashes, 7);
        // Ten minutes: forgiven, the next crash waits the first delay again.
        assert!(policy.is_reset(&state, at(1210)));
        let fresh = policy.after_crash(Some(&state), at(1210));
        assert_eq!((fresh.consecutive_crashes, fresh.delay), (1, Duration::from_secs(10)));
    }

    #[test]
    fn only_exits_before_ready_are_crashes_at_start() {
        use GameServerState as S;
        for state in [S::PortAllocation, S::Creating, S::Starting, S::Scheduled] {
            assert!(is_crash_at_start(Some(state)), "{state:?}");
        }
        for state in [S::RequestReady, S::Ready, S::Allocated, S::Reserved, S::Shutdown, S::Unhealthy, S::Error] {
            assert!(!is_crash_at_start(Some(state)), "{state:?}");
        }
    }

    #[test]
    fn the_table_holds_a_set_until_its_next_attempt_and_forgets_it_after_a_quiet_run() {
        let policy = CrashBackoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(4),
            reset_after: Duration::from_secs(60),
        };
        let loops = CrashLoops::new(policy);
        assert_eq!(loops.hold_until("default/a", at(0)), None);
        loops.record("default/a", "a-x", at(0));
        loops.record("default/a", "a-y", at(0));
        assert_eq!(loops.hold_until("default/a", at(1)), Some(at(2)));
        assert_eq!(loops.hold_until("default/b", at(1)), None, "per set");
        let summary = loops.summary("default/a", at(1)).expect("summary");
        assert_eq!((summary.consecutive_crashes, summary.delay_seconds, summary.backing_off), (2, 2.0, true));
        assert_eq!(loops.hold_until("default/a", at(2)), None, "the delay is over");
        assert!(!loops.summary("default/a", at(3)).expect("still remembered").backing_off);
        assert_eq!(loops.summary("default/a", at(62)), None, "forgiven");
        assert_eq!(loops.hold_until("default/a", at(62)), None);
        loops.record("default/b", "b-x", at(0));
        loops.forget("default/b");
        assert_eq!(loops.summary("default/b", at(0)), None);
    }
}
