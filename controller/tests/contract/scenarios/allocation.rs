//! Allocation under contention: 32 callers at once over 4 Ready servers. Each server goes to
//! exactly one caller, and every other caller is told UnAllocated or Contention — never an
//! error, never a server someone else got.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use stadion_core::allocator::AllocationOutcome;
use stadion_crds::GameServerState;

use super::super::manifests::SetYaml;
use super::super::observe::{allocate, eventually, names_in, request, settle};
use super::super::runtime::Runtime;

const CALLERS: usize = 32;
const SERVERS: usize = 4;

pub async fn allocation_under_contention(rt: &impl Runtime) {
    let who = rt.name();
    let fleet = "contended";
    rt.apply(&SetYaml::fleet(fleet, SERVERS as i32).render()).await.unwrap_or_else(|e| panic!("[{who}] apply: {e}"));
    settle(rt, fleet, SERVERS, 0, 0).await;
    // An allocator choosing from a watch cache gets a moment to see the last server turn Ready.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let allocator = rt.allocator();
    let start = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (allocator, start, request) = (allocator.clone(), start.clone(), request(rt, fleet));
            tokio::spawn(async move {
                start.wait().await;
                allocator.allocate(request).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let (mut unallocated, mut contention) = (0, 0);
    for caller in callers {
        match caller.await.expect("an allocating task") {
            Ok(AllocationOutcome::Allocated(status)) => winners.push(status.game_server_name),
            Ok(AllocationOutcome::UnAllocated) => unallocated += 1,
            Ok(AllocationOutcome::Contention) => contention += 1,
            Err(error) => {
                panic!("[{who}] a losing allocation must be UnAllocated or Contention, not an error: {error}")
            }
        }
    }
    let distinct: BTreeSet<String> = winners.iter().cloned().collect();
    assert_eq!(distinct.len(), winners.len(), "[{who}] a server was handed to two callers: {winners:?}");
    assert_eq!(
        winners.len(),
        SERVERS,
        "[{who}] each of the {SERVERS} Ready servers goes to one of {CALLERS} callers (UnAllocated {unallocated}, Contention {contention})"
    );
    let stored = settle(rt, fleet, 0, SERVERS, 0).await;
    assert_eq!(
        names_in(&stored, GameServerState::Allocated),
        distinct,
        "[{who}] the winners are the Allocated servers"
    );

    // With none Ready, the answer settles on UnAllocated (Contention while a cache catches up).
    eventually(
        rt,
        Duration::from_secs(10),
        "an UnAllocated answer once every server is taken",
        async || match allocate(rt, fleet).await {
            Ok(AllocationOutcome::UnAllocated) => Some(()),
            Ok(AllocationOutcome::Contention) => None,
            Ok(AllocationOutcome::Allocated(status)) => {
                panic!("[{who}] allocated {} although every server was taken", status.game_server_name)
            }
            Err(error) => panic!("[{who}] allocation failed: {error}"),
        },
    )
    .await;
}
