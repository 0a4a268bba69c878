//! Component test: in the local runtime a reservation ends through the GameServer controller (the
//! core reconcile, requeued at `reservedUntil`), the one owner of Reserved expiry. The sidecar only
//! writes the deadline, so a reservation ends on time even if no sidecar is left to end it.

mod local_runtime;

use std::time::{Duration, Instant};

use local_runtime::{apply, eventually, fleet_yaml, servers, with_runtime};
use stadion_controller::local::LocalRuntime;
use stadion_controller::local::store::StoreError;
use stadion_core::gameserver::{GameServerEvent, apply_event};
use stadion_crds::{GameServer, GameServerState, labels};

const LIMIT: Duration = Duration::from_secs(20);

fn current(runtime: &LocalRuntime, name: &str) -> Option<std::sync::Arc<GameServer>> {
    runtime.store().api::<GameServer>().try_get("default", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_ends_a_reservation_at_its_deadline() {
    with_runtime(|runtime| async move {
        apply(&runtime, &fleet_yaml("reserving", 1, &[]));
        let name = eventually(LIMIT, "a Ready server", || {
            let all = servers(runtime.store(), labels::FLEET, "reserving");
            all.iter().find(|gs| gs.state() == Some(GameServerState::Ready)).map(|gs| gs.name().to_owned())
        })
        .await;

        // Exactly what the sidecar stores for SDK Reserve(1): the core transition, no timer.
        let reserved_at = Instant::now();
        runtime
            .store()
            .api::<GameServer>()
            .update_with::<StoreError>("default", &name, |gs| {
                let event = GameServerEvent::SdkReserve { seconds: 1 };
                *gs = apply_event(gs, &event, jiff::Timestamp::now()).into_changed().expect("Ready can be reserved");
                Ok(())
            })
            .expect("reserved");
        assert_eq!(current(&runtime, &name).and_then(|gs| gs.state()), Some(GameServerState::Reserved));

        let back = eventually(LIMIT, "the reservation to end", || {
            current(&runtime, &name).filter(|gs| gs.state() == Some(GameServerState::Ready))
        })
        .await;
        let took = reserved_at.elapsed();
        assert!(took >= Duration::from_millis(950), "ended {took:?} after a 1 s reservation: too early");
        assert!(took < Duration::from_secs(5), "ended {took:?} after a 1 s reservation: not at its deadline");
        assert!(back.status.as_ref().and_then(|s| s.reserved_until.as_ref()).is_none(), "reservedUntil cleared");
        runtime
    })
    .await;
}
