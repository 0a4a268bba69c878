//! The GameServerSet controller of the local runtime: runs the shared set executor
//! ([`crate::executor::execute_set`]) on the embedded store whenever a set or one of its servers
//! changes, and when a pass asks to come back.

use std::sync::Arc;

use stadion_core::gameserverset::SetScalingOptions;
use stadion_core::names::SeededNames;
use stadion_crds::{GameServer, GameServerSet};
use tokio::sync::watch;

use super::Shared;
use super::queue::OwnerTriggers;
use crate::executor::{ExecError, Outcome, execute_set};

/// Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut triggers = OwnerTriggers::<GameServerSet, GameServer>::new(&shared.store, stop);
    let mut names = SeededNames::new(rand::random());
    let normal = SetScalingOptions::default();
    // While a set backs off it still deletes, scales down and reports; it only creates nothing.
    let holding = SetScalingOptions { max_creations: 0, ..normal.clone() };
    while let Some(due) = triggers.next_due().await {
        for key in due {
            let Some(set) = triggers.parent(&key) else {
                shared.crash_loops.forget(&key);
                continue;
            };
            let now = jiff::Timestamp::now();
            let hold = shared.crash_loops.hold_until(&key, now);
            let options = if hold.is_some() { &holding } else { &normal };
            let result = execute_set(&set, shared.seams(), &mut names, now, options).await;
            triggers.finished(&key, &held_back(result, hold, now));
        }
    }
}

/// A pass made while backing off comes back when the delay ends, or sooner when the executor
/// asked for a later time of its own (an Error server's grace ending). Never "at once": a plan
/// that was not allowed to create asks for that, which would spin until the delay is over.
fn held_back(
    result: Result<Outcome, ExecError>,
    hold: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Result<Outcome, ExecError> {
    let Some(until) = hold else { return result };
    let wait = until.duration_since(now).unsigned_abs();
    match result {
        Ok(Outcome::RequeueAfter(after)) if !after.is_zero() => Ok(Outcome::RequeueAfter(after.min(wait))),
        Ok(_) => Ok(Outcome::RequeueAfter(wait)),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_held_pass_comes_back_when_the_delay_ends_never_at_once() {
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("timestamp");
        let until = now + jiff::SignedDuration::from_secs(20);
        let after = |result| held_back(result, Some(until), now);
        let twenty = Outcome::RequeueAfter(Duration::from_secs(20));
        // "Again at once" (it could not create) and "only on a change" both wait for the delay.
        assert_eq!(after(Ok(Outcome::RequeueAfter(Duration::ZERO))).ok(), Some(twenty));
        assert_eq!(after(Ok(Outcome::AwaitChange)).ok(), Some(twenty));
        // A sooner wake-up of its own (an Error server's grace) is kept; a later one is cut.
        let five = Outcome::RequeueAfter(Duration::from_secs(5));
        assert_eq!(after(Ok(five)).ok(), Some(five));
        assert_eq!(after(Ok(Outcome::RequeueAfter(Duration::from_secs(30)))).ok(), Some(twenty));
        // Not holding: the executor's answer as it is.
        assert_eq!(held_back(Ok(Outcome::AwaitChange), None, now).ok(), Some(Outcome::AwaitChange));
    }
}
