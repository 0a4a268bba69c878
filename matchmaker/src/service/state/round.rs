//! A matching round in slices: the service runs one slice per hold of the state lock, so a
//! round over a large backlog never keeps a submission waiting for long.

use super::{Job, State};
use crate::engine::{Millis, RoundCursor};

/// Where a round over every queue has got to.
#[derive(Debug)]
pub struct Round {
    now: Millis,
    /// Time-outs and retention are done.
    housekeeping: bool,
    /// Queues with searching tickets when the round began, by name.
    queues: Vec<String>,
    at: usize,
    cursor: Option<RoundCursor>,
}

impl Round {
    /// Every slice has run.
    pub fn is_done(&self) -> bool {
        self.housekeeping && self.at >= self.queues.len()
    }
}

impl State {
    /// Starts a round at `now`.
    pub fn begin_round(&self, now: Millis) -> Round {
        let mut queues: Vec<String> =
            self.queues.iter().filter(|(_, q)| !q.pool.is_empty()).map(|(name, _)| name.clone()).collect();
        queues.sort();
        Round { now, housekeeping: false, queues, at: 0, cursor: None }
    }

    /// Runs the next slice of `round`, doing at most about `budget` units of work: time-outs
    /// and forgetting first, then for each queue its running matches' late joiners and its next
    /// `budget` anchors. Returns the matches it formed and the backfills it placed (and those
    /// placed on arrival since).
    pub fn step(&mut self, round: &mut Round, budget: usize) -> Vec<Job> {
        let mut jobs = self.step_queue(round, budget);
        jobs.append(&mut self.arrivals);
        jobs
    }

    fn step_queue(&mut self, round: &mut Round, budget: usize) -> Vec<Job> {
        let now = round.now;
        if !round.housekeeping {
            round.housekeeping = self.expire(now, budget) && self.forget_expired(now, budget);
            return Vec::new();
        }
        let Some(name) = round.queues.get(round.at) else { return Vec::new() };
        if !self.queues.contains_key(name) {
            // Removed by a reload since the round began.
            (round.at, round.cursor) = (round.at + 1, None);
            return Vec::new();
        }
        if round.cursor.is_none() {
            // Running matches with room take waiting tickets before new matches form.
            let name = name.clone();
            self.fill_queue(&name, now);
        }
        let Some(name) = round.queues.get(round.at) else { return Vec::new() };
        let Some(queue) = self.queues.get_mut(name) else { return Vec::new() };
        let (formed, next) = queue.pool.tick_slice(now, round.cursor, budget);
        let config = queue.config.clone();
        match next {
            Some(cursor) => round.cursor = Some(cursor),
            None => (round.at, round.cursor) = (round.at + 1, None),
        }
        formed.into_iter().map(|m| Job::Match(self.register_match(&config, m, now))).collect()
    }
}
