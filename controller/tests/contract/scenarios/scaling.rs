//! Scaling a fleet up and down: replicas are reached; scale-down takes only Ready servers,
//! never Allocated or Reserved ones, and in the scheduling's order. With every server on one
//! node, Packed shuts the newest down first (it empties nodes, and within a node takes the
//! newest) and Distributed the oldest.

use std::collections::BTreeSet;
use std::time::Duration;

use stadion_crds::{GameServer, GameServerState};

use super::super::manifests::SetYaml;
use super::super::observe::{LIMIT, allocate_one, created, eventually, names_in, settle};
use super::super::runtime::{Runtime, SdkCall};

/// Packed: replicas reached, Allocated/Reserved kept, newest Ready servers removed first.
pub async fn scale_packed(rt: &impl Runtime) {
    scale(rt, "scale-packed", "Packed").await;
}

/// Distributed: replicas reached, Allocated/Reserved kept, oldest Ready servers removed first.
pub async fn scale_distributed(rt: &impl Runtime) {
    scale(rt, "scale-distributed", "Distributed").await;
}

async fn scale(rt: &impl Runtime, fleet: &str, scheduling: &'static str) {
    let who = rt.name();
    let manifest = SetYaml::fleet(fleet, 3).scheduling(scheduling);
    rt.apply(&manifest.render()).await.unwrap_or_else(|e| panic!("[{who}] apply {fleet}: {e}"));
    settle(rt, fleet, 3, 0, 0).await;
    // A second batch at least a second younger (creation timestamps have second precision).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rt.apply(&manifest.clone().replicas(6).render()).await.unwrap_or_else(|e| panic!("[{who}] scale up: {e}"));
    let six = settle(rt, fleet, 6, 0, 0).await;
    eventually(rt, LIMIT, "fleet status: 6 replicas, 6 Ready", async || {
        let status = rt.fleet(fleet).await?.status?;
        (status.replicas == 6 && status.ready_replicas == 6).then_some(())
    })
    .await;

    let allocated = allocate_one(rt, fleet).await;
    // Reserve the youngest other server: the one Packed would otherwise take first.
    let mut others: Vec<&GameServer> = six.iter().filter(|gs| gs.name() != allocated).collect();
    others.sort_by_key(|gs| (created(gs), gs.name().to_owned()));
    let reserved = others.last().expect("five other servers").name().to_owned();
    rt.sdk(&reserved, SdkCall::Reserve(0)).await.unwrap_or_else(|e| panic!("[{who}] SDK Reserve: {e}"));
    let before = settle(rt, fleet, 4, 1, 1).await;
    let ready_before: Vec<&GameServer> =
        before.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).collect();

    // Down by two: two of the four Ready servers go.
    rt.apply(&manifest.clone().replicas(4).render()).await.unwrap_or_else(|e| panic!("[{who}] scale down: {e}"));
    let after = settle(rt, fleet, 2, 1, 1).await;
    assert_eq!(
        names_in(&after, GameServerState::Allocated),
        BTreeSet::from([allocated.clone()]),
        "[{who}] the Allocated server stays"
    );
    assert_eq!(
        names_in(&after, GameServerState::Reserved),
        BTreeSet::from([reserved.clone()]),
        "[{who}] the Reserved server stays"
    );
    let survivors = names_in(&after, GameServerState::Ready);
    let removed: Vec<&GameServer> = ready_before.iter().copied().filter(|gs| !survivors.contains(gs.name())).collect();
    assert_eq!(removed.len(), 2, "[{who}] scaling 6 -> 4 removes two Ready servers and creates none");
    for gone in &removed {
        for kept in ready_before.iter().filter(|gs| survivors.contains(gs.name())) {
            let (gone_at, kept_at) = (created(gone), created(kept));
            match scheduling {
                "Packed" => assert!(
                    gone_at >= kept_at,
                    "[{who}] Packed on one node removes the newest Ready servers first, but removed {} (created {gone_at}) and kept {} (created {kept_at})",
                    gone.name(),
                    kept.name()
                ),
                _ => assert!(
                    gone_at <= kept_at,
                    "[{who}] Distributed removes the oldest Ready servers first, but removed {} (created {gone_at}) and kept {} (created {kept_at})",
                    gone.name(),
                    kept.name()
                ),
            }
        }
    }

    // To zero: every Ready server goes; the Allocated and the Reserved one still stay.
    rt.apply(&manifest.clone().replicas(0).render()).await.unwrap_or_else(|e| panic!("[{who}] scale to 0: {e}"));
    let last = settle(rt, fleet, 0, 1, 1).await;
    assert_eq!(
        names_in(&last, GameServerState::Allocated),
        BTreeSet::from([allocated]),
        "[{who}] the Allocated server survives scale to 0"
    );
    assert_eq!(
        names_in(&last, GameServerState::Reserved),
        BTreeSet::from([reserved]),
        "[{who}] the Reserved server survives scale to 0"
    );
    eventually(rt, LIMIT, "fleet status: 2 replicas (1 Allocated, 1 Reserved), 0 Ready", async || {
        let status = rt.fleet(fleet).await?.status?;
        let counted = (status.replicas, status.ready_replicas, status.allocated_replicas, status.reserved_replicas);
        (counted == (2, 0, 1, 1)).then_some(())
    })
    .await;
}
