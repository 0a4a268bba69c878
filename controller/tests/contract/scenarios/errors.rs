//! A server that cannot start is in Error, and its set holds it for 30 s, counted toward
//! replicas (so a broken template does not spin up servers in a hot loop), then replaces it.

use std::collections::BTreeSet;
use std::time::Duration;

use stadion_crds::GameServerState;

use super::super::manifests::{MISSING_GAME, SetYaml};
use super::super::observe::{LIMIT, count, created, describe, eventually, fleet_servers, names, until};
use super::super::runtime::Runtime;

/// How long an Error server is held before its set deletes it (Agones: 30 s).
const HOLD: Duration = Duration::from_secs(30);

/// A fleet of 2 whose game command does not exist.
pub async fn error_server_held_then_replaced(rt: &impl Runtime) {
    let who = rt.name();
    let fleet = "broken";
    rt.apply(&SetYaml::fleet(fleet, 2).command(MISSING_GAME).render())
        .await
        .unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    let first = until(rt, LIMIT, "2 servers in Error", async || {
        let all = fleet_servers(rt, fleet).await;
        if count(&all, GameServerState::Error) >= 2 { Ok(all) } else { Err(describe(&all)) }
    })
    .await;
    assert_eq!(
        first.len(),
        2,
        "[{who}] Error servers count toward replicas while held, so a set of 2 creates no more: {}",
        describe(&first)
    );
    let originals: BTreeSet<String> = names(&first);
    let oldest = first.iter().map(created).min().expect("two servers");
    eventually(rt, LIMIT, "fleet status counting the 2 Error servers as replicas", async || {
        (rt.fleet(fleet).await?.status?.replicas == 2).then_some(())
    })
    .await;

    // Held: nothing replaces them before the hold is nearly over.
    let held_until = oldest + jiff::SignedDuration::try_from(HOLD - Duration::from_secs(5)).expect("a duration");
    while jiff::Timestamp::now() < held_until {
        let all = fleet_servers(rt, fleet).await;
        assert_eq!(
            names(&all),
            originals,
            "[{who}] the Error servers are held (and nothing else created) for {HOLD:?}; {} s after creation saw {}",
            (jiff::Timestamp::now() - oldest).get_seconds(),
            describe(&all)
        );
        let status = rt.fleet(fleet).await.and_then(|f| f.status).map(|s| s.replicas);
        assert_eq!(status, Some(2), "[{who}] held Error servers count toward the fleet's replicas");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Then replaced: the originals go and new servers take their place.
    until(rt, HOLD + LIMIT, "the Error servers replaced after the hold", async || {
        let all = fleet_servers(rt, fleet).await;
        if names(&all).is_disjoint(&originals) && all.len() == 2 { Ok(()) } else { Err(describe(&all)) }
    })
    .await;
}
