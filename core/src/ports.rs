//! Host-port allocation: which host port each Dynamic/Passthrough port gets, per node, so no
//! host port is ever used twice on one node.
//!
//! Ports are picked before a server is scheduled (the PortAllocation state comes first), so the
//! allocator works with two kinds of request: a known node (the local runtime's `local` node),
//! or "any node" (the kube runtime, where the scheduler places the pod afterwards and honours the
//! host ports as a constraint). For "any node" the allocator reserves the ports on the fullest
//! registered node that still fits them, which packs ports like Agones does, and
//! [`PortAllocator::move_to_node`] corrects the record once the real node is known.
//!
//! TCP and UDP share the number space here: a TCPUDP port needs both anyway, and keeping one
//! number per node per server avoids surprising collisions.

use std::collections::{BTreeMap, BTreeSet};

use stadion_crds::GameServer;
use stadion_crds::gameserver::{DEFAULT_MAX_PORT, DEFAULT_MIN_PORT, DEFAULT_PORT_RANGE, GameServerSpec, PortPolicy};

use super::gameserver::gameserver_key;
use super::{Error, Result};

/// An inclusive range of host ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub min: i32,
    /// Last port (inclusive).
    pub max: i32,
}

impl PortRange {
    /// Whether `port` lies in the range.
    pub fn contains(self, port: i32) -> bool {
        (self.min..=self.max).contains(&port)
    }
}

/// Named port ranges; always has `default` (7000–8000 unless configured otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRanges(BTreeMap<String, PortRange>);

impl Default for PortRanges {
    fn default() -> Self {
        Self(BTreeMap::from([(
            DEFAULT_PORT_RANGE.to_owned(),
            PortRange { min: DEFAULT_MIN_PORT, max: DEFAULT_MAX_PORT },
        )]))
    }
}

impl PortRanges {
    /// The default range only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a range (`default` included), checking it is within 1–65535.
    pub fn with(mut self, name: impl Into<String>, min: i32, max: i32) -> Result<Self> {
        let name = name.into();
        if !(1 <= min && min <= max && max <= 65535) {
            return Err(Error::InvalidPortRange { name, min, max });
        }
        self.0.insert(name, PortRange { min, max });
        Ok(self)
    }

    /// The range called `name`.
    pub fn get(&self, name: &str) -> Option<PortRange> {
        self.0.get(name).copied()
    }
}

/// The host ports picked for one GameServer: `(index into spec.ports, host port)` on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortAssignment {
    /// The node the ports are reserved on (for "any node" requests, a provisional choice).
    pub node: String,
    /// Host port per spec port index, for Dynamic and Passthrough ports.
    pub host_ports: Vec<(usize, i32)>,
}

impl PortAssignment {
    /// Writes the host ports into the spec; a Passthrough port's container port becomes its host
    /// port, since the game listens on the very number players connect to.
    pub fn apply_to(&self, spec: &mut GameServerSpec) {
        for &(index, host_port) in &self.host_ports {
            if let Some(port) = spec.ports.get_mut(index) {
                port.host_port = Some(host_port);
                if port.policy() == PortPolicy::Passthrough {
                    port.container_port = Some(host_port);
                }
            }
        }
    }
}

/// Which host ports are taken on which node, and by whom.
#[derive(Clone, Debug, Default)]
pub struct PortAllocator {
    ranges: PortRanges,
    /// Taken host ports per node.
    used: BTreeMap<String, BTreeSet<i32>>,
    /// Per GameServer key: its node and the host ports it holds there (to release them).
    owners: BTreeMap<String, (String, Vec<i32>)>,
}

impl PortAllocator {
    /// An empty allocator over `ranges`.
    pub fn new(ranges: PortRanges) -> Self {
        Self { ranges, used: BTreeMap::new(), owners: BTreeMap::new() }
    }

    /// An allocator that knows `nodes` and the host ports every existing GameServer holds, for
    /// start-up. Servers with a node record their ports there; servers not yet scheduled are
    /// placed like an "any node" request. Servers that cannot be placed (a collision in stale
    /// data) are returned rather than failing the whole rebuild, so the runtime can log them.
    pub fn rebuild<'a>(
        ranges: PortRanges,
        nodes: impl IntoIterator<Item = String>,
        gameservers: impl IntoIterator<Item = &'a GameServer>,
    ) -> (Self, Vec<(String, Error)>) {
        let mut allocator = Self::new(ranges);
        for node in nodes {
            allocator.add_node(node);
        }
        let mut problems = Vec::new();
        for gs in gameservers {
            let held = held_host_ports(&gs.spec);
            // Every state counts, Unhealthy included: its pod may still run and hold the port
            // until the GameServer is deleted.
            if held.is_empty() {
                continue;
            }
            let key = gameserver_key(gs);
            let node = gs.status.as_ref().map(|s| s.node_name.as_str()).filter(|n| !n.is_empty());
            let placed = match node {
                Some(node) => allocator.check_free(&key, node, &held).map(|()| node.to_owned()),
                None => allocator.fullest_node_fitting(&key, &held, &[]),
            };
            match placed {
                Ok(node) => allocator.record(key, node, held),
                Err(e) => problems.push((key, e)),
            }
        }
        (allocator, problems)
    }

    /// Registers a node (idempotent), so "any node" requests may use it.
    pub fn add_node(&mut self, node: impl Into<String>) {
        self.used.entry(node.into()).or_default();
    }

    /// Forgets a node and every reservation on it (the node left the cluster).
    pub fn remove_node(&mut self, node: &str) {
        self.used.remove(node);
        self.owners.retain(|_, (n, _)| n != node);
    }

    /// Picks host ports for every Dynamic/Passthrough port of `gs` and reserves them together
    /// with its Static ports: all or nothing. `node` is the node the server will run on, or
    /// `None` for "any registered node". Allocating again for a server that already holds ports
    /// releases the old ones first.
    pub fn allocate(&mut self, gs: &GameServer, node: Option<&str>) -> Result<PortAssignment> {
        let key = gameserver_key(gs);
        self.release(&key);
        let statics = static_host_ports(gs, &key)?;
        let (node, placement) = match node {
            Some(node) => {
                self.add_node(node);
                self.check_free(&key, node, &statics)?;
                (node.to_owned(), Placement::Known)
            }
            None => (self.fullest_node_fitting(&key, &statics, &dynamic_ports(gs))?, Placement::Scheduler),
        };
        let host_ports = self.pick_on(&key, &node, gs, &statics, placement)?;
        let mut held = statics;
        held.extend(host_ports.iter().map(|&(_, port)| port));
        self.record(key, node.clone(), held);
        Ok(PortAssignment { node, host_ports })
    }

    /// Frees every host port held by the server with this key (no-op if it holds none).
    pub fn release(&mut self, key: &str) {
        if let Some((node, ports)) = self.owners.remove(key)
            && let Some(used) = self.used.get_mut(&node)
        {
            for port in ports {
                used.remove(&port);
            }
        }
    }

    /// Moves a server's reservation to the node it was actually scheduled on. Fails (and keeps
    /// the old record) if one of its ports is already taken there.
    pub fn move_to_node(&mut self, key: &str, node: &str) -> Result<()> {
        let Some((current, ports)) = self.owners.get(key).cloned() else { return Ok(()) };
        if current == node {
            return Ok(());
        }
        self.add_node(node);
        self.check_free(key, node, &ports)?;
        self.release(key);
        self.record(key.to_owned(), node.to_owned(), ports);
        Ok(())
    }

    /// Whether `port` is taken on `node`.
    pub fn is_used(&self, node: &str, port: i32) -> bool {
        self.used.get(node).is_some_and(|u| u.contains(&port))
    }

    /// The node and host ports a server holds.
    pub fn holdings(&self, key: &str) -> Option<(&str, &[i32])> {
        self.owners.get(key).map(|(node, ports)| (node.as_str(), ports.as_slice()))
    }

    fn record(&mut self, key: String, node: String, ports: Vec<i32>) {
        self.used.entry(node.clone()).or_default().extend(ports.iter().copied());
        self.owners.insert(key, (node, ports));
    }

    fn check_free(&self, key: &str, node: &str, ports: &[i32]) -> Result<()> {
        match ports.iter().find(|p| self.is_used(node, **p)) {
            Some(&port) => Err(Error::StaticPortInUse { gameserver: key.to_owned(), port, node: node.to_owned() }),
            None => Ok(()),
        }
    }

    /// The registered node with the most taken ports on which `statics` are free and every
    /// dynamic range has enough room: filling busy nodes first keeps empty nodes free to scale in.
    fn fullest_node_fitting(&self, key: &str, statics: &[i32], dynamic: &[(usize, &str)]) -> Result<String> {
        if self.used.is_empty() {
            return Err(Error::NoNodes { gameserver: key.to_owned() });
        }
        let mut nodes: Vec<(&String, &BTreeSet<i32>)> = self.used.iter().collect();
        nodes.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
        let mut last_err = None;
        for (node, _) in &nodes {
            if let Err(e) = self.check_free(key, node, statics) {
                last_err = Some(e);
                continue;
            }
            match self.free_counts_fit(key, node, statics, dynamic) {
                Ok(()) => return Ok((*node).clone()),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(Error::NoNodes { gameserver: key.to_owned() }))
    }

    /// Checks that each range has as many free ports on `node` as the server needs from it.
    fn free_counts_fit(&self, key: &str, node: &str, statics: &[i32], dynamic: &[(usize, &str)]) -> Result<()> {
        let mut needed: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, range) in dynamic {
            *needed.entry(range).or_default() += 1;
        }
        for (range_name, count) in needed {
            let range = self.range(key, range_name, "")?;
            let free =
                (range.min..=range.max).filter(|p| !self.is_used(node, *p) && !statics.contains(p)).take(count).count();
            if free < count {
                return Err(Error::PortsExhausted {
                    gameserver: key.to_owned(),
                    range: range_name.to_owned(),
                    nodes_tried: self.used.len(),
                });
            }
        }
        Ok(())
    }

    /// Free ports of `node`. On a known node the lowest first, which keeps the used ports dense
    /// and predictable. For the scheduler ([`Placement::Scheduler`]) the port taken on the fewest
    /// nodes (then the lowest): the reservation is only a guess, and once the Pod lands
    /// elsewhere its port is free again here, so lowest-first would hand the same port out
    /// again and again until it is taken on every node, and a Pod holding it then fits only
    /// where it is still free — on Packed nodes that fill up on Pod count, nowhere (seen on a
    /// real API server: 71 of 1,000 Pods unschedulable with 750 ports never used).
    fn pick_on(
        &self,
        key: &str,
        node: &str,
        gs: &GameServer,
        statics: &[i32],
        placement: Placement,
    ) -> Result<Vec<(usize, i32)>> {
        let used = self.used.get(node);
        // This server's own ports so far: its Static ones, then each dynamic one chosen.
        let mut mine = statics.to_vec();
        let mut out = Vec::new();
        for (index, range_name) in dynamic_ports(gs) {
            let range = self.range(key, range_name, &gs.spec.ports[index].name)?;
            let chosen = match placement {
                Placement::Known => lowest_free(range, used, &mine),
                Placement::Scheduler => (range.min..=range.max)
                    .filter(|p| !used.is_some_and(|used| used.contains(p)) && !mine.contains(p))
                    .min_by_key(|p| (self.nodes_using(*p), *p)),
            };
            let port = chosen.ok_or_else(|| Error::PortsExhausted {
                gameserver: key.to_owned(),
                range: range_name.to_owned(),
                nodes_tried: 1,
            })?;
            mine.push(port);
            out.push((index, port));
        }
        Ok(out)
    }

    /// On how many nodes `port` is taken.
    fn nodes_using(&self, port: i32) -> usize {
        self.used.values().filter(|used| used.contains(&port)).count()
    }

    fn range(&self, key: &str, range: &str, port: &str) -> Result<PortRange> {
        self.ranges.get(range).ok_or_else(|| Error::UnknownPortRange {
            gameserver: key.to_owned(),
            port: port.to_owned(),
            range: range.to_owned(),
        })
    }
}

/// The lowest port of `range` that is neither in `used` nor in `mine`. Walks the taken ports in
/// order beside the candidates, so a node with a thousand servers costs one pass over its ports,
/// not a set lookup for each port of the range.
fn lowest_free(range: PortRange, used: Option<&BTreeSet<i32>>, mine: &[i32]) -> Option<i32> {
    let mut taken = used.into_iter().flat_map(|used| used.range(range.min..=range.max)).copied().peekable();
    (range.min..=range.max).find(|port| {
        while taken.next_if(|taken| taken < port).is_some() {}
        taken.peek() != Some(port) && !mine.contains(port)
    })
}

/// Whether the node of an allocation is where the server will run, or the scheduler's to pick.
#[derive(Clone, Copy)]
enum Placement {
    Known,
    Scheduler,
}

/// Dynamic and Passthrough ports: `(index, range name)`.
fn dynamic_ports(gs: &GameServer) -> Vec<(usize, &str)> {
    gs.spec
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.policy().needs_host_port_allocation())
        .map(|(i, p)| (i, p.range()))
        .collect()
}

/// Host ports of Static ports, which the user chose; each must be given.
fn static_host_ports(gs: &GameServer, key: &str) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    for port in gs.spec.ports.iter().filter(|p| p.policy() == PortPolicy::Static) {
        let host_port = port.host_port.ok_or_else(|| Error::MissingPortNumber {
            gameserver: key.to_owned(),
            port: port.name.clone(),
            policy: "Static",
            field: "hostPort",
        })?;
        if !out.contains(&host_port) {
            out.push(host_port);
        }
    }
    Ok(out)
}

/// Host ports a server already holds (every policy but None), for rebuilding at start-up.
fn held_host_ports(spec: &GameServerSpec) -> Vec<i32> {
    let mut out: Vec<i32> =
        spec.ports.iter().filter(|p| p.policy() != PortPolicy::None).filter_map(|p| p.host_port).collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_free_port_skips_taken_ones_and_this_servers_own() {
        let range = PortRange { min: 7000, max: 7005 };
        let used = BTreeSet::from([6990, 7000, 7001, 7003]);
        assert_eq!(lowest_free(range, Some(&used), &[]), Some(7002));
        assert_eq!(lowest_free(range, Some(&used), &[7002]), Some(7004));
        assert_eq!(lowest_free(range, None, &[7000]), Some(7001));
        let full: BTreeSet<i32> = (7000..=7005).collect();
        assert_eq!(lowest_free(range, Some(&full), &[]), None);
        assert_eq!(lowest_free(range, Some(&BTreeSet::from([7000, 7001, 7002])), &[7003, 7004, 7005]), None);
    }
}
