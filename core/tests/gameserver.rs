//! The GameServer state machine, driven the way a runtime drives it: facts in, objects out.

use k8s_openapi::api::core::v1::NodeAddress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stadion_core::env::{self, NetworkMode};
use stadion_core::gameserver::{
    AllocationExpiry, GameServerAction, GameServerDefaults, GameServerEvent as E, READY_CONTAINER_ID, Transition,
    allocation_deadline, allocation_expiry, apply_event, effective_allocation_ttl, primary_address, ready_container,
    reconcile, reservation_end, stamp_ready_container, status_ports, without_finalizer,
};
use stadion_core::ports::{PortAllocator, PortRanges};
use stadion_core::testing::{GameServerBuilder, at, game_spec, port};
use stadion_crds::allocation_ttl::AllocationTtl;
use stadion_crds::gameserver::{GameServerSpec, PortPolicy, Protocol};
use stadion_crds::{GameServer, GameServerState as S, labels};

/// Runtime defaults with the allocation TTL off (the default).
const OFF: GameServerDefaults = GameServerDefaults { allocation_ttl: AllocationTtl::OFF };

fn step(gs: &GameServer, event: E, seconds: i64) -> GameServer {
    match apply_event(gs, &event, at(seconds)) {
        Transition::Changed(next) => *next,
        other => panic!("{event:?} on {:?} gave {other:?}", gs.state()),
    }
}

fn addr(kind: &str, address: &str) -> NodeAddress {
    NodeAddress { type_: kind.into(), address: address.into() }
}

fn fresh() -> GameServer {
    let mut gs = GameServer::new("gs-1", game_spec());
    gs.metadata.namespace = Some("default".into());
    gs
}

#[test]
fn full_lifecycle_from_new_object_to_deletion() {
    let gs = fresh();
    let plan = reconcile(&gs, at(0), OFF);
    let gs = plan.update.expect("defaults are written first");
    assert_eq!(gs.state(), Some(S::PortAllocation));
    assert_eq!(plan.action, GameServerAction::AllocatePorts);
    assert!(gs.metadata.finalizers.as_ref().unwrap().contains(&labels::FINALIZER.to_owned()));

    let mut ports = PortAllocator::new(PortRanges::new());
    let assignment = ports.allocate(&gs, Some("local")).unwrap();
    let gs = step(&gs, E::PortsAllocated(assignment), 1);
    assert_eq!(gs.state(), Some(S::Creating));
    assert_eq!(gs.spec.ports[0].host_port, Some(7000));
    assert_eq!(reconcile(&gs, at(1), OFF).action, GameServerAction::CreatePod);

    let gs = step(&gs, E::PodCreated, 2);
    assert_eq!(gs.state(), Some(S::Starting));
    let gs = step(&gs, E::Scheduled { node_name: "local".into(), addresses: vec![addr("InternalIP", "127.0.0.1")] }, 3);
    let status = gs.status.as_ref().unwrap();
    assert_eq!(
        (status.state, status.address.as_str(), status.node_name.as_str()),
        (Some(S::Scheduled), "127.0.0.1", "local")
    );
    assert_eq!(status.ports[0].port, 7000);

    let gs = step(&gs, E::SdkReady, 4);
    assert_eq!(gs.state(), Some(S::RequestReady));
    let gs = reconcile(&gs, at(4), OFF).update.expect("RequestReady on a node becomes Ready");
    assert_eq!(gs.state(), Some(S::Ready));

    let gs = step(&gs, E::SdkAllocate, 5);
    assert_eq!(gs.state(), Some(S::Allocated));
    assert_eq!(gs.metadata.annotations.as_ref().unwrap()[labels::LAST_ALLOCATED], "2026-01-01T00:00:05Z");

    let gs = step(&gs, E::SdkShutdown, 6);
    assert_eq!(gs.state(), Some(S::Shutdown));
    assert_eq!(reconcile(&gs, at(6), OFF).action, GameServerAction::Delete);
    // The game exiting 0 after Shutdown is the normal end: nothing changes.
    assert_eq!(apply_event(&gs, &E::ProcessExited { code: Some(0) }, at(7)), Transition::Unchanged);

    let mut deleting = gs.clone();
    deleting.metadata.deletion_timestamp = Some(Time(at(8)));
    assert_eq!(reconcile(&deleting, at(8), OFF).action, GameServerAction::Teardown);
    assert!(without_finalizer(&deleting).metadata.finalizers.unwrap().is_empty());
}

#[test]
fn ready_before_scheduled_waits_for_an_address() {
    let gs = GameServerBuilder::new("gs").state(S::Starting).build();
    let gs = step(&gs, E::SdkReady, 0);
    assert_eq!(gs.state(), Some(S::RequestReady));
    assert_eq!(reconcile(&gs, at(0), OFF).update, None, "no node yet: stays RequestReady");
    let gs = step(&gs, E::Scheduled { node_name: "n1".into(), addresses: vec![addr("InternalIP", "10.1.1.1")] }, 1);
    assert_eq!(gs.state(), Some(S::RequestReady), "Scheduled fills the address without going backwards");
    assert_eq!(reconcile(&gs, at(1), OFF).update.unwrap().state(), Some(S::Ready));
}

#[test]
fn reserved_expires_back_to_ready_at_reserved_until() {
    let gs = GameServerBuilder::new("gs").node("n1").build();
    let gs = step(&gs, E::SdkReserve { seconds: 10 }, 100);
    assert_eq!(gs.state(), Some(S::Reserved));
    assert_eq!(gs.status.as_ref().unwrap().reserved_until, Some(Time(at(110))));

    let early = reconcile(&gs, at(109), OFF);
    assert_eq!((early.update, early.requeue_at), (None, Some(at(110))));
    let expired = reconcile(&gs, at(110), OFF).update.expect("expired reservation returns to Ready");
    assert_eq!(expired.state(), Some(S::Ready));
    assert_eq!(expired.status.unwrap().reserved_until, None);
}

#[test]
fn reserve_zero_never_expires_and_ready_or_allocate_cancels_it() {
    let gs = step(&GameServerBuilder::new("gs").node("n1").build(), E::SdkReserve { seconds: 0 }, 0);
    assert_eq!(gs.status.as_ref().unwrap().reserved_until, None);
    let later = reconcile(&gs, at(1_000_000), OFF);
    assert_eq!((later.update, later.requeue_at), (None, None));

    let timed = step(&GameServerBuilder::new("gs").node("n1").build(), E::SdkReserve { seconds: 30 }, 0);
    let allocated = step(&timed, E::SdkAllocate, 1);
    assert_eq!((allocated.state(), allocated.status.unwrap().reserved_until), (Some(S::Allocated), None));
}

#[test]
fn allocated_can_be_reserved_and_ready_returns_it_to_the_pool() {
    // Agones lets an Allocated server be Reserved (backfill: keep it out of scale-down while the
    // matchmaker looks for players); the reservation then expires to Ready like any other.
    let allocated = GameServerBuilder::new("gs").node("n1").state(S::Allocated).build();
    let reserved = step(&allocated, E::SdkReserve { seconds: 5 }, 0);
    assert_eq!(reserved.state(), Some(S::Reserved));
    assert_eq!(reserved.status.as_ref().unwrap().reserved_until, Some(Time(at(5))));
    assert_eq!(reconcile(&reserved, at(5), OFF).update.unwrap().state(), Some(S::Ready));

    let gs = step(&allocated, E::SdkReady, 0);
    assert_eq!(gs.state(), Some(S::RequestReady), "SDK Ready asks, the controller decides");
    assert_eq!(reconcile(&gs, at(0), OFF).update.unwrap().state(), Some(S::Ready));
    let gs = step(&reserved, E::SdkReady, 1);
    assert_eq!((gs.state(), gs.status.unwrap().reserved_until), (Some(S::RequestReady), None), "Reserved too");
}

#[test]
fn reserve_applies_before_ready_and_its_expiry_waits_for_an_address() {
    let starting = GameServerBuilder::new("gs").state(S::Starting).build();
    let reserved = step(&starting, E::SdkReserve { seconds: 10 }, 0);
    assert_eq!(reserved.state(), Some(S::Reserved));
    let expired = reconcile(&reserved, at(10), OFF).update.expect("expired");
    assert_eq!(
        (expired.state(), expired.status.as_ref().unwrap().reserved_until.clone()),
        (Some(S::RequestReady), None),
        "no node yet: Ready would publish no address"
    );
}

#[test]
fn reserve_for_negative_seconds_never_expires_and_for_too_long_is_ignored() {
    let ready = GameServerBuilder::new("gs").node("n1").build();
    let gs = step(&ready, E::SdkReserve { seconds: -5 }, 0);
    assert_eq!((gs.state(), gs.status.unwrap().reserved_until), (Some(S::Reserved), None), "as in Agones");
    assert!(matches!(apply_event(&ready, &E::SdkReserve { seconds: i64::MAX }, at(0)), Transition::Ignored(_)));
    assert_eq!(reservation_end(i64::MAX, at(0)).map_err(drop), Err(()));
    assert_eq!(reservation_end(0, at(0)), Ok(None));
    // Stored to the second (a Kubernetes time), so rounded up: never shorter than asked.
    let mid_second = at(10) + jiff::SignedDuration::from_millis(300);
    assert_eq!(reservation_end(2, mid_second), Ok(Some(at(13))));
    assert_eq!(reservation_end(2, at(10)), Ok(Some(at(12))));
    assert_eq!(reservation_end(3, at(0)), Ok(Some(at(3))));
}

#[test]
fn sdk_state_calls_follow_agones_from_every_state() {
    use S::{
        Allocated, Creating, Error, PortAllocation, RequestReady, Reserved, Scheduled, Shutdown, Starting, Unhealthy,
    };
    let all = [PortAllocation, Creating, Starting, Scheduled, RequestReady, S::Ready, Reserved, Allocated];
    for state in all {
        let gs = GameServerBuilder::new("gs").node("n1").state(state).build();
        // Unchanged counts too: SDK Ready on a RequestReady server is already where it asks to be.
        let after = |event: E| apply_event(&gs, &event, at(0)).into_changed().unwrap_or_else(|| gs.clone()).state();
        assert_eq!(after(E::SdkReady), Some(RequestReady), "Ready from {state:?}");
        assert_eq!(after(E::SdkAllocate), Some(Allocated), "Allocate from {state:?}");
        assert_eq!(after(E::SdkReserve { seconds: 0 }), Some(Reserved), "Reserve from {state:?}");
        assert_eq!(after(E::SdkShutdown), Some(Shutdown), "Shutdown from {state:?}");
        assert_eq!(after(E::HealthCheckFailed), Some(Unhealthy), "health failure in {state:?}");
    }
    for state in [Shutdown, Unhealthy, Error] {
        let gs = GameServerBuilder::new("gs").node("n1").state(state).build();
        for event in [E::SdkReady, E::SdkAllocate, E::SdkReserve { seconds: 5 }, E::SdkShutdown, E::HealthCheckFailed] {
            let outcome = apply_event(&gs, &event, at(0));
            assert!(outcome.into_changed().is_none(), "{event:?} revives nothing in {state:?}");
        }
        // Labels and annotations are not state: Agones stores them in any state.
        let labelled = step(&gs, E::SdkSetAnnotation { key: "why".into(), value: "done".into() }, 0);
        assert_eq!(labelled.metadata.annotations.unwrap()["agones.dev/sdk-why"], "done");
    }
}

#[test]
fn unhealthy_drops_a_pending_reservation() {
    let reserved = step(&GameServerBuilder::new("gs").node("n1").build(), E::SdkReserve { seconds: 30 }, 0);
    for event in [E::HealthCheckFailed, E::ProcessExited { code: Some(1) }, E::PodFailed { reason: "gone".into() }] {
        let gs = step(&reserved, event.clone(), 1);
        assert_eq!((gs.state(), gs.status.unwrap().reserved_until), (Some(S::Unhealthy), None), "{event:?}");
    }
}

#[test]
fn the_first_ready_container_is_remembered() {
    let mut gs = GameServerBuilder::new("gs").node("n1").build();
    assert_eq!(ready_container(&gs), None);
    stamp_ready_container(&mut gs, "");
    assert_eq!(ready_container(&gs), None, "an unknown id records nothing");
    stamp_ready_container(&mut gs, "containerd://first");
    stamp_ready_container(&mut gs, "containerd://second");
    assert_eq!(ready_container(&gs), Some("containerd://first"));
    assert_eq!(gs.metadata.annotations.unwrap()[READY_CONTAINER_ID], "containerd://first");
    assert_eq!(READY_CONTAINER_ID, "agones.dev/ready-container-id");
}

#[test]
fn exits_and_failures_make_a_server_unhealthy_and_it_stays_so() {
    for state in [S::Starting, S::Scheduled, S::Ready, S::Allocated, S::Reserved] {
        for event in [
            E::ProcessExited { code: Some(1) },
            E::ProcessExited { code: Some(0) },
            E::ProcessExited { code: None },
            E::PodFailed { reason: "Evicted".into() },
            E::HealthCheckFailed,
        ] {
            let gs = GameServerBuilder::new("gs").node("n1").state(state).build();
            let gs = step(&gs, event.clone(), 0);
            assert_eq!(gs.state(), Some(S::Unhealthy), "{event:?} in {state:?}");
            for after in [E::SdkReady, E::SdkAllocate, E::SdkShutdown, E::SdkReserve { seconds: 1 }] {
                assert!(matches!(apply_event(&gs, &after, at(1)), Transition::Ignored(_)), "{after:?} after Unhealthy");
            }
        }
    }
}

#[test]
fn allocation_deadline_follows_the_last_allocation() {
    let ttl = jiff::SignedDuration::from_mins(5);
    let ready = GameServerBuilder::new("gs").node("n1").build();
    assert_eq!(allocation_deadline(&ready, ttl), None);
    let allocated = step(&ready, E::SdkAllocate, 10);
    assert_eq!(allocation_deadline(&allocated, ttl), Some(at(310)));
    let again = step(&allocated, E::SdkAllocate, 100);
    assert_eq!(allocation_deadline(&again, ttl), Some(at(400)), "re-allocation extends it");
}

fn ttl(text: &str) -> AllocationTtl {
    text.parse().expect("a valid TTL")
}

/// A server allocated at `at(allocated)`.
fn allocated_at(allocated: i64) -> GameServer {
    step(&GameServerBuilder::new("gs").node("n1").build(), E::SdkAllocate, allocated)
}

#[test]
fn allocation_expiry_lapses_only_past_the_deadline_with_nobody_playing() {
    use AllocationExpiry::{HeldByPlayers, Lapsed, NotApplicable, Pending};
    let five_minutes = ttl("5m");
    let gs = allocated_at(10);
    assert_eq!(allocation_expiry(&gs, five_minutes, at(309)), Pending(at(310)), "not yet");
    assert_eq!(allocation_expiry(&gs, five_minutes, at(310)), Lapsed(at(310)), "lapsed at the deadline");
    assert_eq!(allocation_expiry(&gs, five_minutes, at(9_999)), Lapsed(at(310)), "and after it");
    assert_eq!(allocation_expiry(&gs, AllocationTtl::OFF, at(9_999)), NotApplicable, "TTL off");

    let mut playing = step(&GameServerBuilder::new("gs").node("n1").players(2).build(), E::SdkAllocate, 10);
    assert_eq!(allocation_expiry(&playing, five_minutes, at(309)), Pending(at(310)));
    assert_eq!(allocation_expiry(&playing, five_minutes, at(400)), HeldByPlayers(at(310)), "players connected");
    playing.status.as_mut().unwrap().players.as_mut().unwrap().count = 0;
    assert_eq!(allocation_expiry(&playing, five_minutes, at(400)), Lapsed(at(310)), "the last player left");

    let again = step(&gs, E::SdkAllocate, 200);
    assert_eq!(allocation_expiry(&again, five_minutes, at(310)), Pending(at(500)), "re-allocated: extended");
    assert_eq!(allocation_expiry(&again, five_minutes, at(500)), Lapsed(at(500)));
}

#[test]
fn allocation_expiry_needs_an_allocated_server_with_a_stamp() {
    let five_minutes = ttl("5m");
    for state in [S::Ready, S::Reserved, S::Shutdown, S::Unhealthy, S::Scheduled] {
        let mut gs = allocated_at(0);
        gs.status.as_mut().unwrap().state = Some(state);
        assert_eq!(allocation_expiry(&gs, five_minutes, at(9_999)), AllocationExpiry::NotApplicable, "{state:?}");
    }
    let unstamped = GameServerBuilder::new("gs").node("n1").state(S::Allocated).build();
    assert_eq!(allocation_expiry(&unstamped, five_minutes, at(9_999)), AllocationExpiry::NotApplicable, "no stamp");
    let badly_stamped = GameServerBuilder::new("gs")
        .node("n1")
        .state(S::Allocated)
        .annotation(labels::LAST_ALLOCATED, "yesterday")
        .build();
    assert_eq!(
        allocation_expiry(&badly_stamped, five_minutes, at(9_999)),
        AllocationExpiry::NotApplicable,
        "bad stamp"
    );
    // A TTL so long the deadline is past the last representable time never lapses (no panic).
    let forever = AllocationTtl::after(jiff::SignedDuration::from_secs(i64::MAX / 4));
    assert_eq!(allocation_expiry(&allocated_at(0), forever, at(9_999)), AllocationExpiry::NotApplicable);
}

#[test]
fn the_annotation_wins_over_the_runtime_default() {
    let runtime = ttl("10m");
    let plain = allocated_at(0);
    assert_eq!(effective_allocation_ttl(&plain, runtime), runtime);
    let annotated = |value: &str| {
        let mut gs = plain.clone();
        gs.metadata.annotations.get_or_insert_default().insert(labels::ALLOCATION_TTL.into(), value.into());
        gs
    };
    assert_eq!(effective_allocation_ttl(&annotated("90s"), runtime), ttl("90s"));
    assert_eq!(effective_allocation_ttl(&annotated("off"), runtime), AllocationTtl::OFF, "opted out");
    assert_eq!(effective_allocation_ttl(&annotated("0"), runtime), AllocationTtl::OFF);
    assert_eq!(effective_allocation_ttl(&annotated("soon"), runtime), runtime, "unparseable: the default");
    assert_eq!(effective_allocation_ttl(&annotated("90"), AllocationTtl::OFF), ttl("90s"));
}

#[test]
fn reconcile_shuts_down_a_lapsed_allocation_and_wakes_at_the_deadline_otherwise() {
    let gs = allocated_at(100);
    let short = GameServerDefaults { allocation_ttl: ttl("60s") };

    let early = reconcile(&gs, at(159), short);
    assert_eq!((early.update, early.requeue_at, early.allocation_lapsed), (None, Some(at(160)), None));
    assert_eq!(early.action, GameServerAction::Wait);

    let lapsed = reconcile(&gs, at(160), short);
    let shut = lapsed.update.expect("a lapsed allocation is written as Shutdown");
    assert_eq!(shut.state(), Some(S::Shutdown));
    assert_eq!((lapsed.allocation_lapsed, lapsed.requeue_at), (Some(at(160)), None));
    assert_eq!(lapsed.action, GameServerAction::Wait, "written first; the next reconcile deletes it");
    assert_eq!(reconcile(&shut, at(161), short).action, GameServerAction::Delete, "as after SDK Shutdown");

    let quiet = reconcile(&gs, at(10_000), OFF);
    assert_eq!((quiet.update, quiet.requeue_at, quiet.allocation_lapsed), (None, None, None), "TTL off");

    let mut opted_out = gs.clone();
    opted_out.metadata.annotations.get_or_insert_default().insert(labels::ALLOCATION_TTL.into(), "off".into());
    assert_eq!(reconcile(&opted_out, at(10_000), short).update, None, "the annotation wins");

    let playing = GameServerBuilder::new("gs").node("n1").players(1).build();
    let playing = step(&playing, E::SdkAllocate, 100);
    let held = reconcile(&playing, at(10_000), short);
    assert_eq!((held.update, held.requeue_at), (None, None), "players keep it; their leaving re-runs this");
}

#[test]
fn creation_failure_is_error_and_sdk_labels_are_prefixed() {
    let gs = GameServerBuilder::new("gs").state(S::Creating).build();
    let failed = step(&gs, E::PodCreationFailed { reason: "no such file".into() }, 42);
    assert_eq!(failed.state(), Some(S::Error));
    // Its set holds it 30 s from this moment, not from its creation.
    assert_eq!(stadion_core::gameserver::errored_at(&failed), Some(at(42)));

    let gs = step(&gs, E::SdkSetLabel { key: "map".into(), value: "dust".into() }, 0);
    assert_eq!(gs.metadata.labels.as_ref().unwrap()["agones.dev/sdk-map"], "dust");
    let gs = step(&gs, E::SdkSetAnnotation { key: "note".into(), value: "two words".into() }, 0);
    assert_eq!(gs.metadata.annotations.unwrap()["agones.dev/sdk-note"], "two words");
}

#[test]
fn status_ports_follow_policies_and_tcpudp_splits() {
    let mut spec = GameServerSpec {
        ports: vec![
            port("game", PortPolicy::Dynamic, Protocol::TcpUdp),
            port("query", PortPolicy::None, Protocol::Tcp),
            port("pass", PortPolicy::Passthrough, Protocol::Udp),
            port("fixed", PortPolicy::Static, Protocol::Udp),
        ],
        ..GameServerSpec::default()
    };
    spec.ports[0].host_port = Some(7001);
    spec.ports[2].host_port = Some(7002);
    spec.ports[2].container_port = Some(7002);
    spec.ports[3].host_port = Some(9000);
    let got: Vec<(String, i32)> = status_ports(&spec).into_iter().map(|p| (p.name, p.port)).collect();
    let want = [("game-tcp", 7001), ("game-udp", 7001), ("query", 7654), ("pass", 7002), ("fixed", 9000)];
    assert_eq!(got, want.map(|(n, p)| (n.to_owned(), p)));
}

#[test]
fn primary_address_prefers_external_dns_then_ip_then_internal() {
    let all = [
        addr("InternalIP", "10.0.0.1"),
        addr("InternalDNS", "node.internal"),
        addr("ExternalIP", "203.0.113.7"),
        addr("ExternalDNS", "node.example.com"),
    ];
    assert_eq!(primary_address(&all), Some("node.example.com"));
    assert_eq!(primary_address(&all[..3]), Some("203.0.113.7"));
    assert_eq!(primary_address(&all[..2]), Some("node.internal"));
    assert_eq!(primary_address(&all[..1]), Some("10.0.0.1"));
    assert_eq!(primary_address(&[addr("Hostname", "box")]), Some("box"));
    assert_eq!(primary_address(&[]), None);
}

#[test]
fn process_env_names_ports_by_runtime_network() {
    let mut gs = GameServerBuilder::new("gs-9")
        .ports(vec![
            port("game-port", PortPolicy::Dynamic, Protocol::Udp),
            port("rcon", PortPolicy::None, Protocol::Tcp),
        ])
        .build();
    gs.spec.ports[0].host_port = Some(7123);
    let host = env::game_process_env(&gs, NetworkMode::Host);
    let get = |vars: &[(String, String)], k: &str| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get(&host, env::AGONES_SDK_GRPC_PORT).as_deref(), Some("9357"));
    assert_eq!(get(&host, env::AGONES_SDK_HTTP_PORT).as_deref(), Some("9358"));
    assert_eq!(get(&host, env::STADION_GAMESERVER_NAME).as_deref(), Some("gs-9"));
    assert_eq!(get(&host, "STADION_PORT_GAME_PORT").as_deref(), Some("7123"));
    assert_eq!(get(&host, "STADION_PORT_RCON").as_deref(), Some("7654"));
    let container = env::game_process_env(&gs, NetworkMode::Container);
    assert_eq!(get(&container, "STADION_PORT_GAME_PORT").as_deref(), Some("7654"));
    assert_eq!(get(&container, "STADION_PUBLIC_PORT_GAME_PORT").as_deref(), Some("7123"));
}
