//! One task per match: allocate, wait for capacity when none is free, back off on failures.

use std::time::Duration;

use tokio::sync::watch;

use super::Matchmaker;
use super::state::{AssignOutcome, BackfillAnswer, BackfillJob, Job, MatchJob};
use stadion_core::allocation::status_allocation_id;
use stadion_core::allocator::{AllocateError, AllocationOutcome};
use stadion_crds::FieldErrors;

/// Retry pacing: exponential from `base` to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { next: base, max }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

/// First retry after a failed or unavailable allocation.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// Slowest retry; a capacity change retries sooner.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs one allocation job to its end.
pub async fn run(matchmaker: Matchmaker, job: Job) {
    match job {
        Job::Match(job) => allocate_match(matchmaker, job).await,
        Job::Backfill(job) => allocate_backfill(matchmaker, job).await,
    }
}

/// Tries one backfill loses to concurrent writers of the same server before its ticket gives
/// its seats back and searches again.
const BACKFILL_ATTEMPTS: u32 = 50;
/// Pause after a backfill lost to contention (the server's other writers finish in
/// milliseconds).
const BACKFILL_RETRY: Duration = Duration::from_millis(5);

/// Adds a late ticket's players to its running match's server and assigns it there; a server
/// without room (or gone, or no longer Allocated to the match) closes the match to joiners and
/// the ticket searches again.
async fn allocate_backfill(matchmaker: Matchmaker, job: BackfillJob) {
    let ticket = job.ticket;
    let request = match job.request {
        Ok(request) => request,
        Err(errors) => {
            tracing::warn!(r#match = %job.match_id, %errors, "backfill request invalid; the match closes to joiners");
            let now = matchmaker.now();
            return matchmaker.with_state(|s| s.backfill_refused(ticket, now));
        }
    };
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_MAX);
    // Never seat players the store may not yet know are on their way in: after a crash the
    // ticket would search again while holding a seat on this server.
    while let Err(error) = matchmaker.persisted().await {
        tracing::warn!(r#match = %job.match_id, %error, "backfill not yet stored; waiting before writing to the server");
        tokio::time::sleep(backoff.next_delay()).await;
        if !matchmaker.with_state(|s| s.is_backfilling(ticket)) {
            let now = matchmaker.now();
            return matchmaker.with_state(|s| s.backfill_abandoned(ticket, now));
        }
    }
    let metrics = matchmaker.inner.metrics.clone();
    let mut contended = 0;
    loop {
        if !matchmaker.with_state(|s| s.is_backfilling(ticket)) {
            // The ticket left before its players were added: its seats are free again.
            let now = matchmaker.now();
            return matchmaker.with_state(|s| s.backfill_abandoned(ticket, now));
        }
        let result = matchmaker.inner.allocator.allocate(request.clone()).await;
        let now = matchmaker.now();
        let delay = match result {
            Ok(AllocationOutcome::Allocated(status)) => {
                metrics.allocation("backfill");
                let answer = matchmaker.with_state(|s| s.backfill_assigned(ticket, &status, now));
                if let BackfillAnswer::Undo(undo) = answer {
                    undo_backfill(&matchmaker, job.match_id, *undo).await;
                }
                return;
            }
            Ok(AllocationOutcome::UnAllocated) | Err(AllocateError::Invalid(_)) => {
                metrics.allocation_failure("backfill", "unavailable");
                tracing::info!(r#match = %job.match_id, "the running match's server did not take the late ticket (no room, gone, or after a restart not holding its players); it searches again");
                return matchmaker.with_state(|s| s.backfill_refused(ticket, now));
            }
            Ok(AllocationOutcome::Contention) => {
                metrics.allocation_failure("backfill", "contention");
                contended += 1;
                BACKFILL_RETRY
            }
            Err(AllocateError::Backend(error)) => {
                metrics.allocation_failure("backfill", "backend");
                tracing::warn!(r#match = %job.match_id, %error, "backfill allocation failed; retrying");
                contended += 1;
                backoff.next_delay()
            }
        };
        if contended >= BACKFILL_ATTEMPTS {
            tracing::warn!(r#match = %job.match_id, "backfill kept failing; the ticket searches again");
            return matchmaker.with_state(|s| s.backfill_abandoned(ticket, now));
        }
        tokio::time::sleep(delay).await;
    }
}

/// Takes the players of a ticket that left during its backfill off the server again.
async fn undo_backfill(
    matchmaker: &Matchmaker,
    match_id: uuid::Uuid,
    undo: Result<stadion_core::allocator::AdmittedAllocation, FieldErrors>,
) {
    let Ok(undo) = undo else {
        tracing::warn!(r#match = %match_id, "a ticket left during its backfill; its players stay on the server");
        return;
    };
    for _ in 0..BACKFILL_ATTEMPTS {
        match matchmaker.inner.allocator.allocate(undo.clone()).await {
            Ok(AllocationOutcome::Contention) => tokio::time::sleep(BACKFILL_RETRY).await,
            Ok(AllocationOutcome::Allocated(_)) => {
                tracing::info!(r#match = %match_id, "a ticket left during its backfill; its players were taken off the server");
                return;
            }
            outcome => {
                tracing::info!(r#match = %match_id, ?outcome, "a ticket left during its backfill; its server is gone or changed");
                return;
            }
        }
    }
}

/// Allocates `job` until it succeeds, fails for good, or its match dissolves.
async fn allocate_match(matchmaker: Matchmaker, job: MatchJob) {
    let request = match job.request {
        Ok(request) => request,
        Err(errors) => return fail_invalid(&matchmaker, &job.queue, job.id, &errors),
    };
    let mut capacity: watch::Receiver<u64> = matchmaker.inner.allocator.capacity_changes();
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_MAX);
    let namespace = request.namespace().to_owned();
    // Never take a server for a match the store may not hold yet: after a crash it would be
    // neither resumed nor released.
    while let Err(error) = matchmaker.persisted().await {
        tracing::warn!(r#match = %job.id, %error, "match not yet stored; waiting before allocating");
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = job.wake.notified() => {}
        }
        if !matchmaker.with_state(|s| s.is_pending(job.id)) {
            return;
        }
    }
    loop {
        if !matchmaker.with_state(|s| s.is_pending(job.id)) {
            return;
        }
        // Mark the current capacity as seen before asking, so a server turning Ready during
        // the call still wakes the wait below.
        capacity.borrow_and_update();
        let result = matchmaker.inner.allocator.allocate(request.clone()).await;
        let metrics = &matchmaker.inner.metrics;
        let delay = match result {
            Ok(AllocationOutcome::Allocated(status)) => {
                metrics.allocation("match");
                let now = matchmaker.now();
                // A backfill match opening places waiting tickets at once (sent on by with_state).
                if matchmaker.with_state(|s| s.assign(job.id, &status, now)) == AssignOutcome::Dissolved {
                    release_dissolved(&matchmaker, job.id, &namespace, &status).await;
                }
                return;
            }
            Err(AllocateError::Invalid(errors)) => return fail_invalid(&matchmaker, &job.queue, job.id, &errors),
            Ok(AllocationOutcome::UnAllocated) => {
                metrics.allocation_failure("match", "unavailable");
                tracing::debug!(r#match = %job.id, "no server available; match waits");
                backoff.next_delay()
            }
            Ok(AllocationOutcome::Contention) => {
                // Servers exist but concurrent allocations won them: retry at once rather than
                // wait for a capacity change that may not come.
                metrics.allocation_failure("match", "contention");
                tracing::debug!(r#match = %job.id, "allocation lost to contention; retrying");
                RETRY_BASE
            }
            Err(AllocateError::Backend(error)) => {
                metrics.allocation_failure("match", "backend");
                tracing::warn!(r#match = %job.id, %error, "allocation backend failed; retrying");
                backoff.next_delay()
            }
        };
        tokio::select! {
            changed = capacity.changed() => {
                if changed.is_err() {
                    // The allocator dropped its sender: only the timer can wake us now.
                    tokio::time::sleep(delay).await;
                }
            }
            () = tokio::time::sleep(delay) => {}
            () = job.wake.notified() => {}
        }
    }
}

/// Gives back the server of a match that dissolved while it was being allocated, naming this
/// allocation so a server another allocation took since (or shares) is left alone.
async fn release_dissolved(
    matchmaker: &Matchmaker,
    id: uuid::Uuid,
    namespace: &str,
    status: &stadion_crds::allocation::GameServerAllocationStatus,
) {
    let gameserver = &status.game_server_name;
    let Some(allocation_id) = status_allocation_id(status) else {
        tracing::warn!(r#match = %id, %gameserver, "match dissolved during allocation; its server is shared with other matches, so it stays Allocated");
        return;
    };
    tracing::warn!(r#match = %id, %gameserver, allocation_id, "match dissolved during allocation; releasing its server");
    if let Err(error) = matchmaker.inner.allocator.release(namespace, gameserver, allocation_id).await {
        tracing::warn!(%gameserver, %error, "release failed");
    }
}

/// Fails a match whose queue's request cannot be allocated as configured: retrying cannot help.
fn fail_invalid(matchmaker: &Matchmaker, queue: &str, id: uuid::Uuid, errors: &FieldErrors) {
    matchmaker.inner.metrics.allocation_failure("match", "invalid");
    let reason = format!("queue `{queue}` allocation request is invalid: {errors}");
    let now = matchmaker.now();
    matchmaker.with_state(|s| s.fail(id, &reason, now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
    }
}
