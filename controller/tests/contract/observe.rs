//! Reading a runtime the way a user watching `kubectl get` would: polling until something
//! holds, and small views over the servers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stadion_core::allocator::{AdmittedAllocation, AllocateError, AllocationOutcome, admit_allocation};
use stadion_crds::allocation::{GameServerAllocationSpec, GameServerSelector};
use stadion_crds::{Fleet, GameServer, GameServerAllocation, GameServerState, labels};

use super::runtime::Runtime;

/// How long anything that should happen "soon" may take (servers start, sets settle).
pub const LIMIT: Duration = Duration::from_secs(45);

/// Polls `check` every 100 ms until it answers `Some`, failing after `limit` with `what` and
/// the runtime's name.
pub async fn eventually<T>(
    rt: &impl Runtime,
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "[{}] timed out after {limit:?} waiting for: {what}", rt.name());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`eventually`], with `check` saying what it saw instead (`Err`), which the failure
/// reports.
pub async fn until<T>(
    rt: &impl Runtime,
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("[{}] timed out after {limit:?} waiting for: {what}; last saw {seen}", rt.name())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `servers` as (name, state) pairs, for messages.
pub fn describe(servers: &[GameServer]) -> String {
    const SHOWN: usize = 8;
    let pairs: Vec<String> = servers
        .iter()
        .take(SHOWN)
        .map(|gs| format!("{}={}", gs.name(), gs.state().map_or("(none)", GameServerState::as_str)))
        .collect();
    let more = servers.len().saturating_sub(SHOWN);
    let more = if more > 0 { format!(", … {more} more") } else { String::new() };
    format!("{} servers [{}{more}]", servers.len(), pairs.join(", "))
}

/// Whether `gs` carries `label=value`.
pub fn labelled(gs: &GameServer, label: &str, value: &str) -> bool {
    gs.metadata.labels.as_ref().and_then(|l| l.get(label)).is_some_and(|v| v == value)
}

/// The servers of fleet `fleet` that are not being deleted.
pub async fn fleet_servers(rt: &impl Runtime, fleet: &str) -> Vec<GameServer> {
    rt.gameservers()
        .await
        .into_iter()
        .filter(|gs| gs.metadata.deletion_timestamp.is_none() && labelled(gs, labels::FLEET, fleet))
        .collect()
}

/// How many of `servers` are in `state`.
pub fn count(servers: &[GameServer], state: GameServerState) -> usize {
    servers.iter().filter(|gs| gs.state() == Some(state)).count()
}

/// Names of `servers` in `state`.
pub fn names_in(servers: &[GameServer], state: GameServerState) -> BTreeSet<String> {
    servers.iter().filter(|gs| gs.state() == Some(state)).map(|gs| gs.name().to_owned()).collect()
}

/// Names of `servers`.
pub fn names(servers: &[GameServer]) -> BTreeSet<String> {
    servers.iter().map(|gs| gs.name().to_owned()).collect()
}

/// Waits until fleet `fleet` has exactly `ready` Ready, `allocated` Allocated and `reserved`
/// Reserved servers and nothing else (nothing starting, nothing shutting down).
pub async fn settle(
    rt: &impl Runtime,
    fleet: &str,
    ready: usize,
    allocated: usize,
    reserved: usize,
) -> Vec<GameServer> {
    let what = format!("fleet {fleet}: exactly {ready} Ready, {allocated} Allocated, {reserved} Reserved");
    until(rt, LIMIT, &what, async || {
        let all = fleet_servers(rt, fleet).await;
        let settled = count(&all, GameServerState::Ready) == ready
            && count(&all, GameServerState::Allocated) == allocated
            && count(&all, GameServerState::Reserved) == reserved
            && all.len() == ready + allocated + reserved;
        if settled { Ok(all) } else { Err(describe(&all)) }
    })
    .await
}

/// An allocation request for a Ready server of fleet `fleet`, in the runtime's namespace.
pub fn request(rt: &impl Runtime, fleet: &str) -> AdmittedAllocation {
    let mut selector = GameServerSelector::default();
    selector.label_selector.match_labels = Some([(labels::FLEET.to_owned(), fleet.to_owned())].into());
    let mut request =
        GameServerAllocation::new(GameServerAllocationSpec { selectors: vec![selector], ..Default::default() });
    request.metadata.namespace = Some(rt.namespace().to_owned());
    admit_allocation(request).expect("the scenario's request is valid")
}

/// One allocation from fleet `fleet`.
pub async fn allocate(rt: &impl Runtime, fleet: &str) -> Result<AllocationOutcome, AllocateError> {
    rt.allocator().allocate(request(rt, fleet)).await
}

/// Allocates one server of fleet `fleet` (which has Ready servers), returning its name. An
/// allocator reading a watch cache may not see a server turned Ready a moment ago, so a few
/// UnAllocated answers are tolerated; errors are not.
pub async fn allocate_one(rt: &impl Runtime, fleet: &str) -> String {
    let what = format!("an allocation from fleet {fleet}");
    eventually(rt, Duration::from_secs(10), &what, async || match allocate(rt, fleet).await {
        Ok(AllocationOutcome::Allocated(status)) => Some(status.game_server_name),
        Ok(_) => None,
        Err(error) => panic!("[{}] allocation failed: {error}", rt.name()),
    })
    .await
}

/// The `type_` condition of `fleet`: (status, reason, message).
pub fn fleet_condition(fleet: &Fleet, type_: &str) -> Option<(String, String, String)> {
    let condition = fleet.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    let status = serde_json::to_value(condition.status).ok()?.as_str()?.to_owned();
    Some((status, condition.reason.clone(), condition.message.clone()))
}

/// When `gs` was created.
pub fn created(gs: &GameServer) -> jiff::Timestamp {
    gs.metadata.creation_timestamp.as_ref().map(|t| t.0).expect("a stored object has a creationTimestamp")
}

/// The state of server `name` among `servers` (None: gone).
pub fn state_of(servers: &[GameServer], name: &str) -> Option<GameServerState> {
    servers.iter().find(|gs| gs.name() == name).and_then(GameServer::state)
}
