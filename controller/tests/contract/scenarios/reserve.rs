//! SDK Reserve: allowed on an Allocated server (as Agones' SDK server allows it), and a
//! Reserve with a duration returns the server to Ready once it lapses.

use std::time::{Duration, Instant};

use stadion_crds::GameServerState;

use super::super::manifests::SetYaml;
use super::super::observe::{LIMIT, allocate_one, eventually, fleet_servers, settle};
use super::super::runtime::{Runtime, SdkCall};

pub async fn reserve_allocated_and_reserve_expiry(rt: &impl Runtime) {
    let who = rt.name();
    let fleet = "reserving";
    rt.apply(&SetYaml::fleet(fleet, 2).render()).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    settle(rt, fleet, 2, 0, 0).await;
    let allocated = allocate_one(rt, fleet).await;
    let servers = settle(rt, fleet, 1, 1, 0).await;
    let ready = servers.iter().find(|gs| gs.name() != allocated).expect("the other server").name().to_owned();

    // Reserve on the Allocated server: it becomes Reserved, with a deadline.
    rt.sdk(&allocated, SdkCall::Reserve(60))
        .await
        .unwrap_or_else(|e| panic!("[{who}] SDK Reserve on an Allocated server is accepted: {e}"));
    eventually(rt, LIMIT, "the Allocated server Reserved with reservedUntil", async || {
        let gs = fleet_servers(rt, fleet).await.into_iter().find(|gs| gs.name() == allocated)?;
        let status = gs.status?;
        (status.state == Some(GameServerState::Reserved) && status.reserved_until.is_some()).then_some(())
    })
    .await;

    // Reserve(2) on the Ready one: Reserved, then Ready again after the two seconds.
    let asked = Instant::now();
    rt.sdk(&ready, SdkCall::Reserve(2)).await.unwrap_or_else(|e| panic!("[{who}] SDK Reserve(2): {e}"));
    eventually(rt, LIMIT, "the Ready server Reserved", async || {
        let gs = fleet_servers(rt, fleet).await.into_iter().find(|gs| gs.name() == ready)?;
        (gs.state() == Some(GameServerState::Reserved) || asked.elapsed() > Duration::from_secs(2)).then_some(())
    })
    .await;
    let back =
        eventually(rt, Duration::from_secs(15), "the reserved server Ready again after its Reserve(2)", async || {
            let gs = fleet_servers(rt, fleet).await.into_iter().find(|gs| gs.name() == ready)?;
            (gs.state() == Some(GameServerState::Ready)).then_some(gs)
        })
        .await;
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "[{who}] Ready again after {:?}, before its Reserve(2) lapsed",
        asked.elapsed()
    );
    assert!(
        back.status.as_ref().and_then(|s| s.reserved_until.as_ref()).is_none(),
        "[{who}] reservedUntil is cleared once Ready again"
    );
    let still = fleet_servers(rt, fleet).await.into_iter().find(|gs| gs.name() == allocated).and_then(|gs| gs.state());
    assert_eq!(
        still,
        Some(GameServerState::Reserved),
        "[{who}] the Reserve(60) of the formerly Allocated server holds"
    );
}
