//! Backfill: which running match a new ticket joins, while its server still has room.
//!
//! A match of a backfill queue stays *open* once its server is allocated. It remembers the
//! windows it was formed with — its region, its tickets' skill range and the tightest spread any
//! of them accepted — and the seats its server reported free. A ticket joins an open match only
//! if the match would still satisfy those windows with it, the ticket accepts the match's region
//! within its own (widened) latency limit, and the server has a seat for every player of the
//! ticket. Seats are reserved here when a ticket is placed and confirmed or given back once the
//! server answered, so the engine never promises more seats than the server last reported; the
//! server's compare-and-swap is what finally guarantees it.

use std::collections::HashMap;

use super::{EngineTicket, FormedMatch, Millis, RegionId, Rules};

/// Caller-assigned handle of an open match, unique among a queue's open matches.
pub type OpenKey = u64;

/// A running match that takes late joiners.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenMatch {
    /// The region it plays in (`None` without a latency rule).
    pub region: Option<RegionId>,
    /// Lowest ticket skill in it.
    pub skill_low: f64,
    /// Highest ticket skill in it.
    pub skill_high: f64,
    /// The widest skill range its tickets accepted when it formed (infinite without a rule).
    pub spread: f64,
    /// Players per team, in team order (free-for-all: one team).
    pub team_sizes: Vec<u32>,
    /// Seats free on its server and not reserved by a placement in flight.
    pub room: u32,
    /// Seats reserved by placements whose server answer has not arrived.
    pub in_flight: u32,
}

/// Where a ticket goes: which open match, and which team.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The open match.
    pub open: OpenKey,
    /// The team (index into the match's teams).
    pub team: usize,
}

/// How well a ticket fits one open match; lower is better.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fit {
    team: usize,
    latency: f64,
    range_after: f64,
}

impl OpenMatch {
    /// The open form of `formed` (as the engine formed it) with `room` seats free on its server.
    pub fn from_formed(formed: &FormedMatch, room: u32) -> Self {
        Self {
            region: formed.region,
            skill_low: formed.skill_low,
            skill_high: formed.skill_high,
            spread: formed.spread,
            team_sizes: formed.team_sizes.clone(),
            room,
            in_flight: 0,
        }
    }

    /// The team `ticket` joins at `now`, if it may join: seats for its whole party, the
    /// match's skill range with it still within the match's spread and the ticket's own, and the
    /// match's region within the ticket's latency limit.
    pub fn team_for(&self, rules: &Rules, ticket: &EngineTicket, now: Millis) -> Option<usize> {
        self.fit(rules, ticket, now).map(|fit| fit.team)
    }

    fn fit(&self, rules: &Rules, ticket: &EngineTicket, now: Millis) -> Option<Fit> {
        if ticket.size == 0 || ticket.size > self.room || self.team_sizes.is_empty() {
            return None;
        }
        let (low, high) = (self.skill_low.min(ticket.skill), self.skill_high.max(ticket.skill));
        let allowed = self.spread.min(rules.spread_at(ticket, now));
        if high - low > allowed {
            return None;
        }
        let latency = match (rules.latency, self.region) {
            (None, _) => 0.0,
            (Some(_), None) => return None,
            (Some(_), Some(region)) => {
                let ms = ticket.latency(region)?;
                if ms > rules.latency_at(ticket, now) {
                    return None;
                }
                ms
            }
        };
        // A late party joins the smallest team, so teams stay as even as seats allow.
        let team = (0..self.team_sizes.len()).min_by_key(|&t| (self.team_sizes[t], t))?;
        Some(Fit { team, latency, range_after: high - low })
    }

    /// Reserves seats for `ticket` on `team` and widens the skill range to include it.
    fn take(&mut self, ticket: &EngineTicket, team: usize) {
        self.room -= ticket.size;
        self.in_flight += ticket.size;
        self.team_sizes[team] += ticket.size;
        self.skill_low = self.skill_low.min(ticket.skill);
        self.skill_high = self.skill_high.max(ticket.skill);
    }
}

/// One queue's open matches.
#[derive(Clone, Debug, Default)]
pub struct OpenMatches {
    matches: HashMap<OpenKey, OpenMatch>,
}

impl OpenMatches {
    /// No open match.
    pub fn is_empty(&self) -> bool {
        self.matches.is_empty()
    }

    /// Open matches.
    pub fn len(&self) -> usize {
        self.matches.len()
    }

    /// The open match `key`.
    pub fn get(&self, key: OpenKey) -> Option<&OpenMatch> {
        self.matches.get(&key)
    }

    /// Opens a match (replacing one with the same key).
    pub fn open(&mut self, key: OpenKey, open: OpenMatch) {
        self.matches.insert(key, open);
    }

    /// Closes a match: its server is full, gone, or no longer Allocated to it.
    pub fn close(&mut self, key: OpenKey) -> Option<OpenMatch> {
        self.matches.remove(&key)
    }

    /// Keys of the open matches with at least one free seat, in key order.
    pub fn with_room(&self) -> Vec<OpenKey> {
        let mut keys: Vec<OpenKey> = self.matches.iter().filter(|(_, m)| m.room > 0).map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    }

    /// The open match `ticket` fits best at `now` — lowest latency for the ticket, then the
    /// narrowest skill range with it, then the oldest match — with its seats reserved.
    pub fn place(&mut self, rules: &Rules, ticket: &EngineTicket, now: Millis) -> Option<Placement> {
        let (key, fit) =
            self.matches.iter().filter_map(|(key, m)| m.fit(rules, ticket, now).map(|fit| (*key, fit))).min_by(
                |(ka, a), (kb, b)| {
                    a.latency.total_cmp(&b.latency).then(a.range_after.total_cmp(&b.range_after)).then(ka.cmp(kb))
                },
            )?;
        self.take(key, ticket, fit.team);
        Some(Placement { open: key, team: fit.team })
    }

    /// Reserves seats on `key` for `ticket` (already checked with [`OpenMatch::accepts`]).
    pub fn take(&mut self, key: OpenKey, ticket: &EngineTicket, team: usize) {
        if let Some(open) = self.matches.get_mut(&key) {
            open.take(ticket, team);
        }
    }

    /// The server took a placement of `players`: `reported_room` is what it says is free now,
    /// so the match keeps that minus the seats other placements still hold. A full server
    /// closes the match.
    pub fn confirm(&mut self, key: OpenKey, players: u32, reported_room: u32) {
        let Some(open) = self.matches.get_mut(&key) else { return };
        open.in_flight = open.in_flight.saturating_sub(players);
        open.room = reported_room.saturating_sub(open.in_flight);
        if reported_room == 0 && open.in_flight == 0 {
            self.matches.remove(&key);
        }
    }

    /// A placed party of `players` left `team` after the server took it (its ticket was
    /// cancelled meanwhile); the seats free up when the server says so.
    pub fn left(&mut self, key: OpenKey, team: usize, players: u32) {
        if let Some(size) = self.matches.get_mut(&key).and_then(|m| m.team_sizes.get_mut(team)) {
            *size = size.saturating_sub(players);
        }
    }

    /// A placement of `players` on `team` will not happen (its ticket left, or the server call
    /// failed for a passing reason): its seats are free again.
    pub fn give_back(&mut self, key: OpenKey, team: usize, players: u32) {
        let Some(open) = self.matches.get_mut(&key) else { return };
        let players = players.min(open.in_flight);
        open.in_flight -= players;
        open.room += players;
        if let Some(size) = open.team_sizes.get_mut(team) {
            *size = size.saturating_sub(players);
        }
    }
}

#[cfg(test)]
mod tests;
