//! Which servers are a set's: its children by controller owner reference, nothing else. A
//! GameServer made by hand, named and labelled like the set's own but with no owner
//! reference, is never counted, scaled down or deleted with the set.

use std::time::{Duration, Instant};

use stadion_crds::{GameServer, GameServerSet, GameServerState, labels};

use super::super::manifests::{SetYaml, gameserver};
use super::super::observe::{LIMIT, describe, eventually, state_of, until};
use super::super::runtime::{ObjectKind, Runtime};

const SET: &str = "owned";
const HAND: &str = "owned-byhand";

fn controlled_by(gs: &GameServer, set: &GameServerSet) -> bool {
    gs.metadata.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == "GameServerSet"
            && r.api_version == "agones.dev/v1"
            && r.name == SET
            && Some(&r.uid) == set.metadata.uid.as_ref()
    })
}

async fn live(rt: &impl Runtime) -> Vec<GameServer> {
    rt.gameservers().await.into_iter().filter(|gs| gs.metadata.deletion_timestamp.is_none()).collect()
}

async fn the_set(rt: &impl Runtime) -> Option<GameServerSet> {
    rt.gameserversets().await.into_iter().find(|s| s.metadata.name.as_deref() == Some(SET))
}

/// Checks `holds` every 200 ms for `period`.
async fn for_a_while(
    rt: &impl Runtime,
    period: Duration,
    what: &str,
    mut holds: impl AsyncFnMut() -> Result<(), String>,
) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if let Err(seen) = holds().await {
            panic!("[{}] {what}: {seen}", rt.name());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn owner_references_and_orphans(rt: &impl Runtime) {
    let who = rt.name();
    // The stranger first, so a set that went by labels would see it before creating anything.
    let yaml = format!("{}---\n{}", gameserver(HAND, &[(labels::GAMESERVERSET, SET)]), SetYaml::set(SET, 2).render());
    rt.apply(&yaml).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    let set = until(rt, LIMIT, "the set's 2 servers and the hand-made one, 3 Ready", async || {
        let all = live(rt).await;
        let ready = all.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
        match the_set(rt).await {
            Some(set) if all.len() == 3 && ready == 3 => Ok(set),
            set => {
                let status = set.and_then(|s| s.status).map(|s| (s.replicas, s.ready_replicas));
                Err(format!("{}; set status (replicas, ready) {status:?}", describe(&all)))
            }
        }
    })
    .await;
    let all = live(rt).await;
    let children: Vec<&GameServer> = all.iter().filter(|gs| controlled_by(gs, &set)).collect();
    assert_eq!(children.len(), 2, "[{who}] the set created its 2 servers, controlled by owner reference");
    let hand = all.iter().find(|gs| gs.name() == HAND).expect("the hand-made server");
    assert!(
        hand.metadata.owner_references.iter().flatten().next().is_none(),
        "[{who}] nobody adopted the hand-made server"
    );
    for child in &children {
        assert!(child.name().starts_with(&format!("{SET}-")), "[{who}] a child is named after its set");
        let label = child.metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET));
        assert_eq!(label.map(String::as_str), Some(SET), "[{who}] a child carries the set label");
    }
    eventually(rt, LIMIT, "set status: 2 replicas, 2 Ready", async || {
        let status = the_set(rt).await?.status?;
        (status.replicas == 2 && status.ready_replicas == 2).then_some(())
    })
    .await;
    for_a_while(rt, Duration::from_secs(2), "the set counts only its own children", async || {
        let status = the_set(rt).await.and_then(|s| s.status).ok_or("no set status")?;
        let servers = live(rt).await.len();
        if (status.replicas, status.ready_replicas, servers) == (2, 2, 3) {
            Ok(())
        } else {
            Err(format!("set status {} replicas / {} ready, {servers} servers", status.replicas, status.ready_replicas))
        }
    })
    .await;

    // Scale to zero: its children go, the stranger stays Ready.
    rt.apply(&SetYaml::set(SET, 0).render()).await.unwrap_or_else(|e| panic!("[{who}] scale the set to 0: {e}"));
    eventually(rt, LIMIT, "the set's children gone", async || {
        let all = live(rt).await;
        (all.len() == 1 && all[0].name() == HAND).then_some(())
    })
    .await;
    for_a_while(rt, Duration::from_secs(2), "a set scaled to 0 leaves the hand-made server alone", async || {
        match state_of(&live(rt).await, HAND) {
            Some(GameServerState::Ready) => Ok(()),
            other => Err(format!("{HAND} is {other:?}")),
        }
    })
    .await;

    // Delete the set: it goes; the stranger is not its dependent.
    rt.delete(ObjectKind::GameServerSet, SET).await.unwrap_or_else(|e| panic!("[{who}] delete the set: {e}"));
    eventually(rt, LIMIT, "the set deleted", async || the_set(rt).await.is_none().then_some(())).await;
    for_a_while(rt, Duration::from_secs(2), "deleting a set leaves a server it does not own", async || match state_of(
        &live(rt).await,
        HAND,
    ) {
        Some(GameServerState::Ready) => Ok(()),
        other => Err(format!("{HAND} is {other:?}")),
    })
    .await;
}
