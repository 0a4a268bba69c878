//! One queue's searching tickets and the tick that turns them into matches.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use super::backfill::{OpenKey, OpenMatches, Placement};
use super::teams::{TeamPacker, balance_teams};
use super::{EngineTicket, FormedMatch, Millis, RegionId, Rules, TicketKey, skill_window};

/// Most searching tickets one open match looks at per fill, nearest its skill range first.
const FILL_SCAN: usize = 256;

/// The single bucket used when a queue has no latency rule.
const ANYWHERE: RegionId = RegionId::MAX;

/// A skill with a total order, so it can key a `BTreeSet` (skills are finite, checked at entry).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Skill(f64);

impl Eq for Skill {}
impl PartialOrd for Skill {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Skill {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One queue's searching tickets, indexed by age (who anchors next) and by skill within each
/// region (who is near an anchor).
///
/// A fully widened ticket that found no match as anchor is *stalled*: trying it again cannot
/// succeed until a ticket within its skill window enters or leaves one of its region buckets
/// (only those are ever its candidates), so it leaves the anchor index until then. A stalled
/// queue of any size therefore costs nothing per tick, and a ticket entering or leaving it
/// wakes only the stalled tickets near its skill; it still serves as a candidate for other
/// anchors.
#[derive(Debug)]
pub struct Pool {
    rules: Rules,
    tickets: HashMap<TicketKey, EngineTicket>,
    anchors: BTreeSet<(Millis, TicketKey)>,
    by_skill: HashMap<RegionId, BTreeSet<(Skill, TicketKey)>>,
    stalled: HashSet<TicketKey>,
    /// Stalled tickets per region bucket, by skill (what a change in the bucket may wake).
    stalled_by_bucket: HashMap<RegionId, BTreeSet<(Skill, TicketKey)>>,
}

/// Where a round in slices has got to: the (enqueued at, key) of the last anchor it tried.
pub type RoundCursor = (Millis, TicketKey);

/// The best candidate match found for one anchor in one region.
struct Candidate {
    chosen: Vec<TicketKey>,
    packed: Vec<usize>,
    region: RegionId,
    worst_latency: f64,
}

/// Takes a ticket that is no longer stalled out of its buckets' stalled sets.
fn forget_stalled(
    by_bucket: &mut HashMap<RegionId, BTreeSet<(Skill, TicketKey)>>,
    entry: (Skill, TicketKey),
    buckets: Vec<RegionId>,
) {
    for region in buckets {
        if let Some(stalled) = by_bucket.get_mut(&region) {
            stalled.remove(&entry);
            if stalled.is_empty() {
                by_bucket.remove(&region);
            }
        }
    }
}

impl Pool {
    /// An empty pool with `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            tickets: HashMap::new(),
            anchors: BTreeSet::new(),
            by_skill: HashMap::new(),
            stalled: HashSet::new(),
            stalled_by_bucket: HashMap::new(),
        }
    }

    /// The rules matches are formed by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Searching tickets.
    pub fn len(&self) -> usize {
        self.tickets.len()
    }

    /// No searching tickets.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// The searching ticket with `key`.
    pub fn get(&self, key: TicketKey) -> Option<&EngineTicket> {
        self.tickets.get(&key)
    }

    /// Adds a searching ticket; `false` (and no change) if its key is already queued.
    pub fn insert(&mut self, ticket: EngineTicket) -> bool {
        if self.tickets.contains_key(&ticket.key) {
            return false;
        }
        self.anchors.insert((ticket.enqueued_at, ticket.key));
        for region in self.buckets(&ticket) {
            self.by_skill.entry(region).or_default().insert((Skill(ticket.skill), ticket.key));
            self.wake(region, ticket.skill);
        }
        self.tickets.insert(ticket.key, ticket);
        true
    }

    /// Takes a ticket out (cancelled, timed out, or matched).
    pub fn remove(&mut self, key: TicketKey) -> Option<EngineTicket> {
        let ticket = self.tickets.remove(&key)?;
        self.anchors.remove(&(ticket.enqueued_at, key));
        if self.stalled.remove(&key) {
            let buckets = self.buckets(&ticket);
            forget_stalled(&mut self.stalled_by_bucket, (Skill(ticket.skill), key), buckets);
        }
        for region in self.buckets(&ticket) {
            self.wake(region, ticket.skill);
            if let Some(bucket) = self.by_skill.get_mut(&region) {
                bucket.remove(&(Skill(ticket.skill), key));
                if bucket.is_empty() {
                    self.by_skill.remove(&region);
                }
            }
        }
        Some(ticket)
    }

    /// Forms every match it can at `now`, oldest tickets first, and removes their tickets.
    pub fn tick(&mut self, now: Millis) -> Vec<FormedMatch> {
        self.tick_slice(now, None, usize::MAX).0
    }

    /// Tries `key`, a ticket just inserted, as the anchor of a match at `now` (its neighbours
    /// still oldest first): the match it completes, its tickets removed. Lets a ticket that
    /// completes a match be matched when it arrives rather than at the next tick; O(k · log n).
    pub fn match_arrival(&mut self, key: TicketKey, now: Millis) -> Option<FormedMatch> {
        let found = self.best_match_for(key, now)?;
        let formed = self.form(found, now);
        for key in formed.tickets() {
            self.remove(key);
        }
        Some(formed)
    }

    /// One slice of a round: [`Pool::tick`] over at most `budget` anchors, those after
    /// `after` (the cursor an earlier slice returned; `None` starts the round). Returns the
    /// matches and where the next slice continues (`None` once the round is complete), so a
    /// caller can release its lock between slices however large the backlog is.
    pub fn tick_slice(
        &mut self,
        now: Millis,
        after: Option<RoundCursor>,
        budget: usize,
    ) -> (Vec<FormedMatch>, Option<RoundCursor>) {
        let range = match after {
            None => self.anchors.range(..),
            Some(cursor) => self.anchors.range((Bound::Excluded(cursor), Bound::Unbounded)),
        };
        let anchors: Vec<RoundCursor> = range.take(budget).copied().collect();
        let next = (anchors.len() == budget).then(|| anchors.last().copied()).flatten();
        let mut formed = Vec::new();
        for (_, anchor) in anchors {
            if self.stalled.contains(&anchor) {
                continue;
            }
            let Some(found) = self.best_match_for(anchor, now) else {
                // Tickets still widening are retried every tick; partners still widening try
                // a stalled ticket from their side, as anchors.
                self.stall_if_widened(anchor, now);
                continue;
            };
            let formed_match = self.form(found, now);
            for key in formed_match.tickets() {
                self.remove(key);
            }
            formed.push(formed_match);
        }
        (formed, next)
    }

    /// Places `key`, a ticket just inserted, into the open match it fits best, reserving its
    /// seats and taking it out of the pool; `None` (and no change) when none fits.
    pub fn backfill_arrival(&mut self, key: TicketKey, open: &mut OpenMatches, now: Millis) -> Option<Placement> {
        let ticket = self.tickets.get(&key)?;
        let placement = open.place(&self.rules, ticket, now)?;
        self.remove(key);
        Some(placement)
    }

    /// Fills open match `open_key` from the pool at `now`: searching tickets in its region
    /// whose skill is near enough its range, oldest first, while its server has seats. Each
    /// ticket placed leaves the pool with its seats reserved. Looks at a bounded number of
    /// tickets, so a fill costs O(k · log n) however large the pool is.
    pub fn fill_open(&mut self, open: &mut OpenMatches, open_key: OpenKey, now: Millis) -> Vec<(TicketKey, Placement)> {
        let Some(target) = open.get(open_key) else { return Vec::new() };
        if target.room == 0 {
            return Vec::new();
        }
        let region = match (self.rules.latency, target.region) {
            (None, _) => ANYWHERE,
            (Some(_), Some(region)) => region,
            (Some(_), None) => return Vec::new(),
        };
        let Some(bucket) = self.by_skill.get(&region) else { return Vec::new() };
        // Only skills within the match's spread of both ends of its range can join.
        let (low, high) = (target.skill_high - target.spread, target.skill_low + target.spread);
        if low > high {
            return Vec::new();
        }
        let start = (Skill(if low.is_finite() { low } else { f64::MIN }), TicketKey::MIN);
        let mut near: Vec<&EngineTicket> = bucket
            .range(start..)
            .take_while(|(skill, _)| skill.0 <= high)
            .take(FILL_SCAN)
            .filter_map(|(_, key)| self.tickets.get(key))
            .collect();
        near.sort_by_key(|t| (t.enqueued_at, t.key));
        let mut placed = Vec::new();
        for ticket in near {
            let Some(target) = open.get(open_key) else { break };
            if target.room == 0 {
                break;
            }
            let Some(team) = target.team_for(&self.rules, ticket, now) else { continue };
            open.take(open_key, ticket, team);
            placed.push((ticket.key, Placement { open: open_key, team }));
        }
        for (key, _) in &placed {
            self.remove(*key);
        }
        placed
    }

    fn stall_if_widened(&mut self, key: TicketKey, now: Millis) {
        let Some(ticket) = self.tickets.get(&key) else { return };
        let waited = now.saturating_sub(ticket.enqueued_at);
        let widened = [self.rules.skill, self.rules.latency]
            .into_iter()
            .flatten()
            .all(|w| w.per_second <= 0.0 || w.time_to_cap().is_some_and(|cap| waited >= cap));
        if !widened {
            return;
        }
        self.anchors.remove(&(ticket.enqueued_at, key));
        let entry = (Skill(ticket.skill), key);
        for region in self.buckets(ticket) {
            self.stalled_by_bucket.entry(region).or_default().insert(entry);
        }
        self.stalled.insert(key);
    }

    /// A ticket of `skill` entered or left `region`'s bucket: the stalled tickets it could be
    /// a candidate of (those whose widest skill window reaches it) become anchors again.
    fn wake(&mut self, region: RegionId, skill: f64) {
        let Some(stalled) = self.stalled_by_bucket.get(&region) else { return };
        let reach = self.rules.skill.map_or(f64::INFINITY, |w| w.initial.max(w.cap));
        let woken: Vec<TicketKey> = if reach.is_finite() {
            // A little wider than the window, so rounding never leaves a candidate asleep.
            let margin = reach + (reach.abs() + skill.abs()) * 1e-9 + 1e-9;
            let low = (Skill(skill - margin), TicketKey::MIN);
            let high = (Skill(skill + margin), TicketKey::MAX);
            stalled.range(low..=high).map(|&(_, key)| key).collect()
        } else {
            stalled.iter().map(|&(_, key)| key).collect()
        };
        for key in woken {
            if self.stalled.remove(&key)
                && let Some(ticket) = self.tickets.get(&key)
            {
                self.anchors.insert((ticket.enqueued_at, key));
                let buckets = self.buckets(ticket);
                forget_stalled(&mut self.stalled_by_bucket, (Skill(ticket.skill), key), buckets);
            }
        }
    }

    /// Whether ticket `key` is stalled (out of the anchor index until its bucket changes).
    #[cfg(test)]
    pub fn is_stalled(&self, key: TicketKey) -> bool {
        self.stalled.contains(&key)
    }

    fn buckets(&self, ticket: &EngineTicket) -> Vec<RegionId> {
        if self.rules.latency.is_some() {
            ticket.latencies.iter().map(|&(region, _)| region).collect()
        } else {
            vec![ANYWHERE]
        }
    }

    /// The best match anchored on `anchor` (which it must contain), over every region the
    /// anchor accepts: the one whose worst player latency is lowest.
    fn best_match_for(&self, anchor: TicketKey, now: Millis) -> Option<Candidate> {
        let anchor = self.tickets.get(&anchor)?;
        let mut regions: Vec<(RegionId, f64)> = match self.rules.latency {
            None => vec![(ANYWHERE, 0.0)],
            Some(_) => {
                let limit = self.rules.latency_at(anchor, now);
                anchor.latencies.iter().filter(|&&(_, ms)| ms <= limit).copied().collect()
            }
        };
        // Anchor's fastest region first: a match's worst latency is at least the anchor's own,
        // so once a match beats the next region's anchor latency no later region can win.
        regions.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut best: Option<Candidate> = None;
        for (region, anchor_ms) in regions {
            if best.as_ref().is_some_and(|b| b.worst_latency <= anchor_ms) {
                break;
            }
            let Some(candidate) = self.match_in_region(anchor, region, now) else { continue };
            if best.as_ref().is_none_or(|b| candidate.worst_latency < b.worst_latency) {
                best = Some(candidate);
            }
        }
        best
    }

    /// Greedy: the anchor, then its skill neighbours in `region` oldest first, each taken if
    /// the match still satisfies every rule with it, until the teams are full.
    fn match_in_region(&self, anchor: &EngineTicket, region: RegionId, now: Millis) -> Option<Candidate> {
        let mut packer = TeamPacker::new(self.rules.size);
        if !packer.try_add(anchor.size) {
            return None;
        }
        let mut neighbours = self.neighbours(anchor, region, now);
        neighbours.sort_by_key(|t| (t.enqueued_at, t.key));
        let mut chosen = vec![anchor.key];
        let (mut low, mut high) = (anchor.skill, anchor.skill);
        let mut allowed = self.rules.spread_at(anchor, now);
        let mut worst_latency = anchor.latency(region).unwrap_or(0.0);
        for ticket in neighbours {
            if packer.is_full() {
                break;
            }
            let (new_low, new_high) = (low.min(ticket.skill), high.max(ticket.skill));
            let new_allowed = allowed.min(self.rules.spread_at(ticket, now));
            if new_high - new_low > new_allowed || !packer.try_add(ticket.size) {
                continue;
            }
            (low, high, allowed) = (new_low, new_high, new_allowed);
            worst_latency = worst_latency.max(ticket.latency(region).unwrap_or(0.0));
            chosen.push(ticket.key);
        }
        packer.is_satisfied().then(|| Candidate { chosen, packed: packer.assignment().to_vec(), region, worst_latency })
    }

    /// Up to a bounded number of tickets nearest the anchor's skill (within its spread) that
    /// accept `region` and whose own spread admits the anchor. Bounding the scan keeps a tick
    /// O(n · k · log n) however dense the queue is.
    fn neighbours(&self, anchor: &EngineTicket, region: RegionId, now: Millis) -> Vec<&EngineTicket> {
        let Some(bucket) = self.by_skill.get(&region) else { return Vec::new() };
        let want = (self.rules.size.max_players() as usize * 2).clamp(8, 4096);
        let scan_limit = want * 8;
        let spread = self.rules.spread_at(anchor, now);
        let centre = (Skill(anchor.skill), anchor.key);
        let mut below = bucket.range(..centre).rev().peekable();
        let mut above = bucket.range((Bound::Excluded(centre), Bound::Unbounded)).peekable();
        let mut out = Vec::with_capacity(want);
        let mut scanned = 0;
        while out.len() < want && scanned < scan_limit {
            let distance = |entry: Option<&&(Skill, TicketKey)>| {
                entry.map(|(s, _)| (s.0 - anchor.skill).abs()).filter(|d| *d <= spread)
            };
            let key = match (distance(below.peek()), distance(above.peek())) {
                (None, None) => break,
                (Some(b), Some(a)) if b <= a => below.next(),
                (Some(_), None) => below.next(),
                _ => above.next(),
            };
            let Some(&(skill, key)) = key else { break };
            scanned += 1;
            let Some(ticket) = self.tickets.get(&key) else { continue };
            let within_spread = (skill.0 - anchor.skill).abs() <= self.rules.spread_at(ticket, now);
            let accepts_region =
                region == ANYWHERE || ticket.latency(region).is_some_and(|ms| ms <= self.rules.latency_at(ticket, now));
            if within_spread && accepts_region {
                out.push(ticket);
            }
        }
        out
    }

    fn form(&self, found: Candidate, now: Millis) -> FormedMatch {
        let parties: Vec<(u32, f64)> =
            found.chosen.iter().filter_map(|key| self.tickets.get(key)).map(|t| (t.size, t.skill_total())).collect();
        let team_of = balance_teams(&parties, self.rules.size).unwrap_or(found.packed);
        let (count, _, _) = self.rules.size.teams();
        let mut teams = vec![Vec::new(); count as usize];
        for (key, team) in found.chosen.iter().zip(team_of) {
            teams[team].push(*key);
        }
        let region = (found.region != ANYWHERE).then_some(found.region);
        let members = found.chosen.iter().filter_map(|key| self.tickets.get(key));
        let (skill_low, skill_high, spread) = skill_window(&self.rules, members, now);
        let team_sizes = teams
            .iter()
            .map(|team| team.iter().filter_map(|key| self.tickets.get(key)).map(|t| t.size).sum())
            .collect();
        FormedMatch { teams, region, formed_at: now, skill_low, skill_high, spread, team_sizes }
    }
}
