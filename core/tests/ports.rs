//! Host-port allocation: per-node uniqueness, ranges, release, Static/Passthrough/None/TCPUDP,
//! rebuild at start-up; with a property test over random allocate/release sequences.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use stadion_core::gameserver::gameserver_key;
use stadion_core::ports::{PortAllocator, PortRanges};
use stadion_core::testing::{GameServerBuilder, port};
use stadion_crds::GameServer;
use stadion_crds::gameserver::{GameServerPort, PortPolicy, Protocol};

fn server(name: &str, ports: Vec<GameServerPort>) -> GameServer {
    GameServerBuilder::new(name).ports(ports).build()
}

fn dynamic(name: &str) -> GameServerPort {
    port(name, PortPolicy::Dynamic, Protocol::Udp)
}

#[test]
fn dynamic_ports_fill_lowest_first_and_release_makes_them_reusable() {
    let mut ports = PortAllocator::new(PortRanges::new());
    let a = ports.allocate(&server("a", vec![dynamic("game"), dynamic("query")]), Some("n1")).unwrap();
    assert_eq!(a.host_ports, vec![(0, 7000), (1, 7001)]);
    let b = ports.allocate(&server("b", vec![dynamic("game")]), Some("n1")).unwrap();
    assert_eq!(b.host_ports, vec![(0, 7002)]);
    let other_node = ports.allocate(&server("c", vec![dynamic("game")]), Some("n2")).unwrap();
    assert_eq!(other_node.host_ports, vec![(0, 7000)], "ports are per node");

    ports.release("default/a");
    assert!(!ports.is_used("n1", 7000));
    let d = ports.allocate(&server("d", vec![dynamic("game")]), Some("n1")).unwrap();
    assert_eq!(d.host_ports, vec![(0, 7000)]);
}

#[test]
fn allocation_is_all_or_nothing_when_a_range_runs_out() {
    let ranges = PortRanges::new().with("tiny", 5000, 5001).unwrap();
    let mut ports = PortAllocator::new(ranges);
    let mut three = vec![dynamic("a"), dynamic("b"), dynamic("c")];
    for p in &mut three {
        p.range = Some("tiny".into());
    }
    let err = ports.allocate(&server("big", three), Some("n1")).unwrap_err();
    assert_eq!(err.kind(), "ports_exhausted");
    assert!(!ports.is_used("n1", 5000) && !ports.is_used("n1", 5001), "nothing held after a failure");

    let mut unknown = dynamic("x");
    unknown.range = Some("nope".into());
    assert_eq!(ports.allocate(&server("u", vec![unknown]), Some("n1")).unwrap_err().kind(), "unknown_port_range");
}

#[test]
fn static_ports_are_reserved_and_conflicts_rejected() {
    let mut ports = PortAllocator::new(PortRanges::new());
    let mut fixed = port("fixed", PortPolicy::Static, Protocol::Udp);
    fixed.host_port = Some(7000);
    ports.allocate(&server("s1", vec![fixed.clone(), dynamic("game")]), Some("n1")).unwrap();
    assert!(ports.is_used("n1", 7000));
    assert_eq!(ports.holdings("default/s1").unwrap().1, &[7000, 7001]);
    let err = ports.allocate(&server("s2", vec![fixed.clone()]), Some("n1")).unwrap_err();
    assert_eq!(err.kind(), "static_port_in_use");
    assert!(ports.allocate(&server("s3", vec![fixed]), Some("n2")).is_ok());
}

#[test]
fn passthrough_sets_container_port_and_none_needs_no_host_port() {
    let mut ports = PortAllocator::new(PortRanges::new());
    let mut gs = server(
        "p",
        vec![port("pass", PortPolicy::Passthrough, Protocol::TcpUdp), port("plain", PortPolicy::None, Protocol::Tcp)],
    );
    let assignment = ports.allocate(&gs, Some("n1")).unwrap();
    assert_eq!(assignment.host_ports, vec![(0, 7000)]);
    assignment.apply_to(&mut gs.spec);
    assert_eq!((gs.spec.ports[0].host_port, gs.spec.ports[0].container_port), (Some(7000), Some(7000)));
    assert_eq!(gs.spec.ports[1].host_port, None);
}

#[test]
fn any_node_requests_pack_onto_the_fullest_node_that_fits() {
    let ranges = PortRanges::new().with("default", 7000, 7001).unwrap();
    let mut ports = PortAllocator::new(ranges);
    assert_eq!(ports.allocate(&server("x", vec![dynamic("g")]), None).unwrap_err().kind(), "no_nodes");
    ports.add_node("n1");
    ports.add_node("n2");
    let nodes: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| ports.allocate(&server(n, vec![dynamic("g")]), None).unwrap().node)
        .collect();
    assert_eq!(nodes, ["n1", "n1", "n2", "n2"]);
    assert_eq!(ports.allocate(&server("e", vec![dynamic("g")]), None).unwrap_err().kind(), "ports_exhausted");

    // The scheduler put `a` elsewhere: the record follows it.
    ports.add_node("n3");
    ports.move_to_node("default/a", "n3").unwrap();
    assert!(ports.is_used("n3", 7000) && !ports.is_used("n1", 7000));
}

#[test]
fn ports_for_the_scheduler_prefer_ones_no_node_uses_so_a_moved_reservation_is_not_handed_out_again() {
    let mut ports = PortAllocator::new(PortRanges::new());
    ports.add_node("n1");
    ports.add_node("n2");
    let a = ports.allocate(&server("a", vec![dynamic("g")]), None).unwrap();
    assert_eq!((a.node.as_str(), a.host_ports.clone()), ("n1", vec![(0, 7000)]));
    // The scheduler put `a` on n2: 7000 is free on n1 again, but a Pod holding it could no
    // longer go to n2. The next server gets a port taken nowhere.
    ports.move_to_node("default/a", "n2").unwrap();
    let b = ports.allocate(&server("b", vec![dynamic("g")]), None).unwrap();
    assert_eq!(b.host_ports, vec![(0, 7001)]);
    ports.move_to_node("default/b", "n1").unwrap();
    let c = ports.allocate(&server("c", vec![dynamic("g")]), None).unwrap();
    assert_eq!(c.host_ports, vec![(0, 7002)], "not 7000 (on n2) nor 7001 (on n1)");
    // Only once every port is taken somewhere do ports repeat across nodes.
    let tiny = PortRanges::new().with("default", 7000, 7001).unwrap();
    let mut ports = PortAllocator::new(tiny);
    ports.add_node("n1");
    ports.add_node("n2");
    let held: Vec<i32> = ["a", "b", "c"]
        .iter()
        .map(|n| ports.allocate(&server(n, vec![dynamic("g")]), None).unwrap().host_ports[0].1)
        .collect();
    assert_eq!(held, [7000, 7001, 7000]);
    // On a known node (the local runtime) ports stay dense: lowest free first.
    let mut local = PortAllocator::new(PortRanges::new());
    local.allocate(&server("x", vec![dynamic("g")]), Some("n1")).unwrap();
    let y = local.allocate(&server("y", vec![dynamic("g")]), Some("n2")).unwrap();
    assert_eq!(y.host_ports, vec![(0, 7000)]);
}

#[test]
fn rebuild_records_existing_servers_and_reports_collisions() {
    let mut a = GameServerBuilder::new("a").node("n1").build();
    a.spec.ports[0].host_port = Some(7005);
    let mut b = GameServerBuilder::new("b").node("n1").build();
    b.spec.ports[0].host_port = Some(7005);
    let mut pending = GameServerBuilder::new("c").build();
    pending.spec.ports[0].host_port = Some(7006);
    let (mut ports, problems) = PortAllocator::rebuild(PortRanges::new(), ["n1".to_owned()], [&a, &b, &pending]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "default/b");
    assert!(ports.is_used("n1", 7005) && ports.is_used("n1", 7006));
    let next = ports.allocate(&server("d", vec![dynamic("g")]), Some("n1")).unwrap();
    assert_eq!(next.host_ports, vec![(0, 7000)]);
}

#[derive(Clone, Debug)]
enum Op {
    Allocate { server: u8, node: Option<u8>, dynamic: u8, static_port: Option<i32> },
    Release { server: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, proptest::option::of(0u8..3), 0u8..4, proptest::option::of(6990i32..7010))
            .prop_map(|(server, node, dynamic, static_port)| Op::Allocate { server, node, dynamic, static_port }),
        1 => (0u8..12).prop_map(|server| Op::Release { server }),
    ]
}

proptest! {
    /// Whatever the sequence of allocations and releases: no host port is held twice on a node,
    /// dynamic ports stay inside their range, and what the allocator reports as used is exactly
    /// what live servers hold.
    #[test]
    fn no_host_port_is_handed_out_twice_on_a_node(ops in proptest::collection::vec(op(), 1..120)) {
        let ranges = PortRanges::new().with("default", 7000, 7007).unwrap();
        let mut ports = PortAllocator::new(ranges);
        ports.add_node("n0");
        let mut live: BTreeMap<String, (String, Vec<i32>)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Allocate { server: s, node, dynamic: d, static_port } => {
                    let mut spec_ports: Vec<GameServerPort> = (0..d).map(|i| dynamic(&format!("d{i}"))).collect();
                    if let Some(p) = static_port {
                        let mut fixed = port("fixed", PortPolicy::Static, Protocol::Udp);
                        fixed.host_port = Some(p);
                        spec_ports.push(fixed);
                    }
                    let gs = server(&format!("gs{s}"), spec_ports);
                    let key = gameserver_key(&gs);
                    let node_name = node.map(|n| format!("n{n}"));
                    // Re-allocating releases the server's old ports first.
                    live.remove(&key);
                    if let Ok(assignment) = ports.allocate(&gs, node_name.as_deref()) {
                        for (_, p) in &assignment.host_ports {
                            prop_assert!((7000..=7007).contains(p), "port {} outside range", p);
                        }
                        let mut held: Vec<i32> = assignment.host_ports.iter().map(|(_, p)| *p).collect();
                        held.extend(static_port);
                        live.insert(key, (assignment.node, held));
                    } else {
                        prop_assert!(ports.holdings(&key).is_none(), "failed allocation must hold nothing");
                    }
                }
                Op::Release { server: s } => {
                    let key = format!("default/gs{s}");
                    ports.release(&key);
                    live.remove(&key);
                }
            }
            let mut seen: BTreeSet<(String, i32)> = BTreeSet::new();
            for (node, held) in live.values() {
                for p in held {
                    prop_assert!(seen.insert((node.clone(), *p)), "port {} twice on {}", p, node);
                    prop_assert!(ports.is_used(node, *p));
                }
            }
            for n in 0..3 {
                let node = format!("n{n}");
                for p in 6990..7010 {
                    prop_assert_eq!(ports.is_used(&node, p), seen.contains(&(node.clone(), p)), "stale port {} on {}", p, node);
                }
            }
        }
    }
}
