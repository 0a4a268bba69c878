//! Fitting parties into teams, and balancing teams by skill.

use super::MatchSize;

/// Packs parties into teams as they are chosen: a party goes to a team still below its minimum
/// if one has room (so every team reaches its minimum), and among those to the fullest (best
/// fit), which leaves the most room elsewhere for larger parties to come.
#[derive(Clone, Debug)]
pub struct TeamPacker {
    min: u32,
    max: u32,
    fill: Vec<u32>,
    assignment: Vec<usize>,
}

impl TeamPacker {
    /// Empty teams for `size`.
    pub fn new(size: MatchSize) -> Self {
        let (count, min, max) = size.teams();
        Self { min, max, fill: vec![0; count as usize], assignment: Vec::new() }
    }

    /// Adds a party of `players`; `false` (and no change) when no team has room.
    pub fn try_add(&mut self, players: u32) -> bool {
        let best = (0..self.fill.len())
            .filter(|&t| self.fill[t] + players <= self.max)
            .max_by_key(|&t| (self.fill[t] < self.min, self.fill[t], std::cmp::Reverse(t)));
        match best {
            Some(team) => {
                self.fill[team] += players;
                self.assignment.push(team);
                true
            }
            None => false,
        }
    }

    /// Every team is at its maximum.
    pub fn is_full(&self) -> bool {
        self.fill.iter().all(|&f| f == self.max)
    }

    /// Every team has at least its minimum, so the match may start.
    pub fn is_satisfied(&self) -> bool {
        self.fill.iter().all(|&f| f >= self.min)
    }

    /// The team of each party added, in order.
    pub fn assignment(&self) -> &[usize] {
        &self.assignment
    }
}

/// Assigns parties `(players, skill_total)` to `size`'s teams so the teams' skill sums are as
/// close as a greedy pass plus pairwise swaps get them. `None` when the greedy pass cannot
/// respect team sizes (the caller then keeps the packer's feasible assignment).
pub fn balance_teams(parties: &[(u32, f64)], size: MatchSize) -> Option<Vec<usize>> {
    let (count, min, max) = size.teams();
    let count = count as usize;
    let mut order: Vec<usize> = (0..parties.len()).collect();
    // Big parties first (they are the hard ones to place), strongest first within a size, so
    // each goes to the currently weakest team: the classic greedy for number partitioning.
    order.sort_by(|&a, &b| parties[b].0.cmp(&parties[a].0).then(parties[b].1.total_cmp(&parties[a].1)));
    let mut fill = vec![0u32; count];
    let mut sum = vec![0f64; count];
    let mut team_of = vec![0usize; parties.len()];
    for &p in &order {
        let (players, skill) = parties[p];
        let team = (0..count)
            .filter(|&t| fill[t] + players <= max)
            .min_by(|&a, &b| sum[a].total_cmp(&sum[b]).then(fill[a].cmp(&fill[b])))?;
        fill[team] += players;
        sum[team] += skill;
        team_of[p] = team;
    }
    if fill.iter().any(|&f| f < min) {
        return None;
    }
    improve_by_swaps(parties, &mut team_of, &mut sum);
    Some(team_of)
}

/// Swaps equal-sized parties between teams while that narrows the pair's skill gap. Sizes stay
/// the same, so team limits keep holding.
fn improve_by_swaps(parties: &[(u32, f64)], team_of: &mut [usize], sum: &mut [f64]) {
    const MAX_PASSES: usize = 8;
    for _ in 0..MAX_PASSES {
        let mut improved = false;
        for x in 0..parties.len() {
            for y in (x + 1)..parties.len() {
                let (tx, ty) = (team_of[x], team_of[y]);
                if tx == ty || parties[x].0 != parties[y].0 {
                    continue;
                }
                let delta = parties[y].1 - parties[x].1;
                let before = (sum[tx] - sum[ty]).abs();
                let after = ((sum[tx] + delta) - (sum[ty] - delta)).abs();
                if after + 1e-9 < before {
                    sum[tx] += delta;
                    sum[ty] -= delta;
                    team_of.swap(x, y);
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
}
