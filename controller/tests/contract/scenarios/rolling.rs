//! A rolling update with Allocated servers present: it completes, the Allocated servers of the
//! old template are never touched while their sessions run, and the surge and unavailability
//! limits hold at every moment we look.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stadion_crds::{GameServer, GameServerState, labels};

use super::super::manifests::SetYaml;
use super::super::observe::{LIMIT, allocate_one, count, eventually, fleet_servers, settle, state_of};
use super::super::runtime::{Runtime, SdkCall};

const REPLICAS: usize = 4;
const MAX_SURGE: usize = 1;
const MAX_UNAVAILABLE: usize = 1;

fn version(gs: &GameServer) -> &str {
    gs.metadata.labels.as_ref().and_then(|l| l.get("version")).map_or("", String::as_str)
}

/// Template v1 → v2 on a fleet of 4 with 2 Allocated, maxSurge 1 and maxUnavailable 1.
pub async fn rolling_update_keeps_allocated(rt: &impl Runtime) {
    let who = rt.name();
    let fleet = "rolling";
    let v1 = SetYaml::fleet(fleet, 4).rolling("1", "1").template_label("version", "v1");
    rt.apply(&v1.render()).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    settle(rt, fleet, 4, 0, 0).await;
    let allocated: BTreeSet<String> = [allocate_one(rt, fleet).await, allocate_one(rt, fleet).await].into();
    let before = settle(rt, fleet, 2, 2, 0).await;
    let old_set = before[0].metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET)).cloned();

    let v2 = SetYaml::fleet(fleet, 4).rolling("1", "1").template_label("version", "v2");
    rt.apply(&v2.render()).await.unwrap_or_else(|e| panic!("[{who}] apply the new template: {e}"));
    // Allocated servers count as available, so Ready may dip by maxUnavailable at most.
    let min_ready = REPLICAS - allocated.len() - MAX_UNAVAILABLE;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = fleet_servers(rt, fleet).await;
        let counted: Vec<&GameServer> =
            all.iter().filter(|gs| gs.state().is_none_or(GameServerState::is_active)).collect();
        assert!(
            counted.len() <= REPLICAS + MAX_SURGE,
            "[{who}] maxSurge {MAX_SURGE}: at most {} servers during the update, saw {}: {:?}",
            REPLICAS + MAX_SURGE,
            counted.len(),
            counted.iter().map(|gs| (gs.name(), gs.state())).collect::<Vec<_>>()
        );
        let ready = count(&all, GameServerState::Ready);
        assert!(ready >= min_ready, "[{who}] maxUnavailable {MAX_UNAVAILABLE}: Ready fell to {ready} (< {min_ready})");
        for name in &allocated {
            assert_eq!(
                state_of(&all, name),
                Some(GameServerState::Allocated),
                "[{who}] Allocated server {name} was touched by the rolling update"
            );
        }
        let done = all.len() == REPLICAS
            && all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).all(|gs| version(gs) == "v2")
            && count(&all, GameServerState::Ready) == REPLICAS - allocated.len()
            && all.iter().filter(|gs| allocated.contains(gs.name())).all(|gs| version(gs) == "v1");
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{who}] the rolling update did not complete within 60 s: {:?}",
            all.iter().map(|gs| (gs.name(), gs.state(), version(gs))).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The sessions end: the old set empties and goes, the new one grows to every replica.
    for name in &allocated {
        rt.sdk(name, SdkCall::Shutdown).await.unwrap_or_else(|e| panic!("[{who}] SDK Shutdown of {name}: {e}"));
    }
    let after = settle(rt, fleet, 4, 0, 0).await;
    assert!(after.iter().all(|gs| version(gs) == "v2"), "[{who}] every server runs the new template");
    eventually(rt, LIMIT, "the fleet's old GameServerSet deleted, one set left", async || {
        let sets: Vec<_> = rt
            .gameserversets()
            .await
            .into_iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .filter(|s| s.metadata.labels.as_ref().and_then(|l| l.get(labels::FLEET)).is_some_and(|f| f == fleet))
            .collect();
        let old_gone = sets.iter().all(|s| Some(s.metadata.name.clone().unwrap_or_default()) != old_set);
        (sets.len() == 1 && old_gone).then_some(())
    })
    .await;
}
