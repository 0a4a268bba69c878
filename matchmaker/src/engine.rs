//! The matching engine: pure code fed tickets and a clock, returning matches.
//!
//! No I/O, no tokio, no wall clock: the service passes "now" in milliseconds, so tests and the
//! benchmark drive simulated time. One [`Pool`] per queue holds the searching tickets indexed
//! by age and by skill within each region, so a tick is O(n · k · log n) for n tickets and a
//! bounded candidate count k, never O(n²).
//!
//! Rules a match satisfies at the moment it forms (time `t`):
//! - size: every team holds `min..=max` players (free-for-all: one team of `min..=max`), and a
//!   ticket's players (a party) all sit on one team;
//! - skill: `max(skill) − min(skill)` over its tickets is ≤ every ticket's widened spread
//!   `min(initial + rate · waited, cap)`, where a ticket's skill is its players' mean;
//! - latency: one region where, for every ticket, its worst player's latency is ≤ that ticket's
//!   widened limit.
//!
//! Every ticket must accept the match, so waiting widens a ticket's own tolerance without
//! forcing a newcomer into a match it would reject.
//!
//! Backfill ([`OpenMatches`]) extends the same rules to a running match: a late ticket joins it
//! only within the windows the match formed with, and only into seats its server reported free.

mod backfill;
mod pool;
mod teams;

pub use backfill::{OpenKey, OpenMatch, OpenMatches, Placement};
pub use pool::{Pool, RoundCursor};
pub use teams::{TeamPacker, balance_teams};

use crate::config::QueueConfig;

/// Engine-side ticket handle, assigned by the caller and unique within a pool.
pub type TicketKey = u64;
/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;
/// A region, interned by the caller (names live outside the engine).
pub type RegionId = u32;

/// How a tolerance grows with wait time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Widening {
    /// Tolerance when the ticket arrives.
    pub initial: f64,
    /// Added per second of waiting.
    pub per_second: f64,
    /// Never exceeded.
    pub cap: f64,
}

impl Widening {
    /// The tolerance after waiting `waited` milliseconds.
    pub fn at(&self, waited: Millis) -> f64 {
        (self.initial + self.per_second * waited as f64 / 1000.0).min(self.cap)
    }

    /// How long until the tolerance reaches its cap (`None` if it never grows).
    pub fn time_to_cap(&self) -> Option<Millis> {
        if self.initial >= self.cap {
            Some(0)
        } else if self.per_second > 0.0 {
            Some(((self.cap - self.initial) / self.per_second * 1000.0).ceil() as Millis)
        } else {
            None
        }
    }
}

/// Match size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchSize {
    /// `count` teams of `min..=max` players.
    Teams {
        /// Number of teams.
        count: u32,
        /// Fewest players per team.
        min: u32,
        /// Most players per team.
        max: u32,
    },
    /// One group of `min..=max` players.
    FreeForAll {
        /// Fewest players.
        min: u32,
        /// Most players.
        max: u32,
    },
}

impl MatchSize {
    /// Teams as (count, min, max); free-for-all is one team.
    pub fn teams(&self) -> (u32, u32, u32) {
        match *self {
            MatchSize::Teams { count, min, max } => (count, min, max),
            MatchSize::FreeForAll { min, max } => (1, min, max),
        }
    }

    /// Most players a match holds.
    pub fn max_players(&self) -> u32 {
        let (count, _, max) = self.teams();
        count * max
    }
}

/// The rules of one queue, as the engine sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Match size.
    pub size: MatchSize,
    /// Skill spread widening; `None` ignores skill.
    pub skill: Option<Widening>,
    /// Latency limit widening (ms); `None` ignores regions.
    pub latency: Option<Widening>,
}

impl Rules {
    /// The rules of a validated queue config.
    pub fn from_queue(queue: &QueueConfig) -> Self {
        let size = match (&queue.teams, &queue.players) {
            (Some(t), _) => MatchSize::Teams { count: t.count, min: t.min_players, max: t.max_players },
            (None, Some(p)) => MatchSize::FreeForAll { min: p.min, max: p.max },
            (None, None) => MatchSize::FreeForAll { min: 1, max: 1 },
        };
        Self {
            size,
            skill: queue.skill.as_ref().map(|s| Widening {
                initial: s.initial_spread,
                per_second: s.widen_per_second,
                cap: s.max_spread,
            }),
            latency: queue.latency.as_ref().map(|l| Widening {
                initial: l.initial_max_ms,
                per_second: l.widen_per_second,
                cap: l.cap_ms,
            }),
        }
    }

    /// A ticket's skill spread tolerance at `now` (infinite without a skill rule).
    pub fn spread_at(&self, ticket: &EngineTicket, now: Millis) -> f64 {
        self.skill.map_or(f64::INFINITY, |w| w.at(now.saturating_sub(ticket.enqueued_at)))
    }

    /// A ticket's latency limit at `now` (infinite without a latency rule).
    pub fn latency_at(&self, ticket: &EngineTicket, now: Millis) -> f64 {
        self.latency.map_or(f64::INFINITY, |w| w.at(now.saturating_sub(ticket.enqueued_at)))
    }

    /// How long a ticket must wait before every window is as wide as it gets.
    pub fn widest_after(&self) -> Option<Millis> {
        let skill = self.skill.map_or(Some(0), |w| w.time_to_cap())?;
        let latency = self.latency.map_or(Some(0), |w| w.time_to_cap())?;
        Some(skill.max(latency))
    }
}

/// A searching ticket as the engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineTicket {
    /// Caller-assigned key.
    pub key: TicketKey,
    /// When its wait started (kept when a ticket returns to searching).
    pub enqueued_at: Millis,
    /// Players in the party.
    pub size: u32,
    /// Mean skill of its players (0 without a skill rule).
    pub skill: f64,
    /// Latency per region: its worst player's, sorted by region (empty without a latency rule).
    pub latencies: Vec<(RegionId, f64)>,
}

impl EngineTicket {
    /// Its latency to `region`, if every player reported one.
    pub fn latency(&self, region: RegionId) -> Option<f64> {
        self.latencies.binary_search_by_key(&region, |(r, _)| *r).ok().map(|i| self.latencies[i].1)
    }

    /// Sum of its players' skills (what team balancing adds up).
    pub fn skill_total(&self) -> f64 {
        self.skill * f64::from(self.size)
    }
}

/// A match formed by the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct FormedMatch {
    /// Tickets per team, in team order (free-for-all: one team).
    pub teams: Vec<Vec<TicketKey>>,
    /// The region every ticket accepted (`None` without a latency rule).
    pub region: Option<RegionId>,
    /// When it formed.
    pub formed_at: Millis,
    /// Lowest ticket skill in it (0 without a skill rule).
    pub skill_low: f64,
    /// Highest ticket skill in it (0 without a skill rule).
    pub skill_high: f64,
    /// The tightest skill spread its tickets accepted when it formed (infinite without a
    /// rule): the window a late joiner must keep it within.
    pub spread: f64,
    /// Players per team, in team order.
    pub team_sizes: Vec<u32>,
}

/// The skill window a match forms with: its members' lowest and highest skill, and the
/// tightest spread any of them accepted at `at` (what a late joiner must keep it within).
pub fn skill_window<'a>(
    rules: &Rules,
    members: impl IntoIterator<Item = &'a EngineTicket>,
    at: Millis,
) -> (f64, f64, f64) {
    members.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY), |(low, high, spread), t| {
        (low.min(t.skill), high.max(t.skill), spread.min(rules.spread_at(t, at)))
    })
}

impl FormedMatch {
    /// Every ticket, team by team.
    pub fn tickets(&self) -> impl Iterator<Item = TicketKey> + '_ {
        self.teams.iter().flatten().copied()
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
