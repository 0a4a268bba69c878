//! A Buffer autoscaler keeps its buffer of Ready servers above the Allocated ones: an
//! allocation grows the fleet by one.

use stadion_crds::GameServerState;

use super::super::manifests::{SetYaml, buffer_autoscaler};
use super::super::observe::{LIMIT, allocate_one, eventually, settle, state_of};
use super::super::runtime::Runtime;

pub async fn autoscaler_follows_allocation(rt: &impl Runtime) {
    let who = rt.name();
    let fleet = "buffered";
    let yaml = format!("{}---\n{}", SetYaml::fleet(fleet, 1).render(), buffer_autoscaler("buffered", fleet, 2, 2, 10));
    rt.apply(&yaml).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    // The autoscaler takes the fleet from 1 to its buffer of 2.
    settle(rt, fleet, 2, 0, 0).await;
    eventually(rt, LIMIT, "fleet spec.replicas 2 (the buffer)", async || {
        (rt.fleet(fleet).await?.spec.replicas == 2).then_some(())
    })
    .await;

    let allocated = allocate_one(rt, fleet).await;
    let servers = settle(rt, fleet, 2, 1, 0).await;
    assert_eq!(state_of(&servers, &allocated), Some(GameServerState::Allocated), "[{who}] the allocated server stays");
    eventually(rt, LIMIT, "fleet spec.replicas 3 (1 Allocated + buffer 2)", async || {
        (rt.fleet(fleet).await?.spec.replicas == 3).then_some(())
    })
    .await;
    let status = eventually(rt, LIMIT, "autoscaler status 3 current / 3 desired", async || {
        let status = rt.autoscaler("buffered").await?.status?;
        (status.current_replicas == 3 && status.desired_replicas == 3).then_some(status)
    })
    .await;
    assert!(status.able_to_scale, "[{who}] the autoscaler reports it was able to scale");
    assert!(!status.scaling_limited, "[{who}] 3 is within [2, 10]: not limited");
    assert!(status.last_scale_time.is_some(), "[{who}] the autoscaler records when it scaled: {status:?}");
}
