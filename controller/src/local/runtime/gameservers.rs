//! The GameServer controller of the local runtime: carries out the core's GameServer plans with
//! host ports, an in-process SDK sidecar and a child process per server. Timed plans (a
//! reservation or an allocation TTL running out) come back at their deadline through the queue.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::NodeAddress;
use stadion_crds::{GameServer, GameServerState, labels};
use stadion_sdk::server::{SdkListeners, ServeOptions, bind, serve};
use tokio::sync::{mpsc, watch};

use super::queue::{WorkQueue, split_key};
use super::{Shared, SidecarHandle, is_crash_at_start};
use crate::local::error::{Error, Result};
use crate::local::sandbox::{
    HANDOVER_TIMEOUT, SandboxCommand, receive_listeners, relayed_ports, sandbox_args, sdk_listeners,
};
use crate::local::sdk_backend::StoreBackend;
use crate::local::store::{StoreError, WatchEvent};
use crate::local::supervisor::{ExitOutcome, ProcessExit, ProcessSpec, process_spec};
use stadion_core::allocator::{CapacityEvent, wakes_waiting_matches};
use stadion_core::env::{AGONES_SDK_GRPC_PORT, AGONES_SDK_HTTP_PORT, NetworkMode, game_process_env};
use stadion_core::gameserver::{
    GameServerAction, GameServerDefaults, GameServerEvent, Transition, apply_event, gameserver_key, reconcile,
    without_finalizer,
};

/// Host the SDKs dial: the sidecars listen on loopback only, and naming the address (rather than
/// `localhost`) avoids SDKs that try `::1` first.
pub const AGONES_SDK_GRPC_HOST: &str = "AGONES_SDK_GRPC_HOST";

/// Servers reconciled before the controller looks at new events again.
const BATCH: usize = 64;

/// How long to wait before retrying a server whose ports could not be allocated.
const PORT_RETRY: Duration = Duration::from_secs(2);

/// Runs until `stop` turns true.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut exits: mpsc::UnboundedReceiver<ProcessExit>,
    mut stop: watch::Receiver<bool>,
) {
    let api = shared.store.api::<GameServer>();
    let watch = api.watch();
    let mut events = watch.events;
    let mut queue = WorkQueue::default();
    let mut states: HashMap<String, Option<GameServerState>> = HashMap::new();
    for gs in &watch.initial {
        queue.add(gameserver_key(gs));
    }
    loop {
        // A bounded batch, then back to the events: while a thousand servers start, their SDK
        // calls still reach the sidecars' watches promptly.
        let mut due = queue.take_due();
        let later = due.split_off(due.len().min(BATCH));
        for key in &due {
            reconcile_one(&shared, key, &mut queue).await;
        }
        queue.extend(later);
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            Some(event) = events.recv() => {
                observe(&shared, event, &mut queue, &mut states);
                // Take everything already waiting, so one reconcile covers a burst of writes.
                while let Ok(event) = events.try_recv() {
                    observe(&shared, event, &mut queue, &mut states);
                }
            }
            Some(exit) = exits.recv() => process_exited(&shared, exit, &mut queue),
            () = queue.next_timer() => {}
            () = std::future::ready(()), if queue.has_due() => {}
        }
    }
}

/// Feeds the sidecar's watch, notices servers turning Ready, and queues the key.
fn observe(
    shared: &Shared,
    event: WatchEvent<GameServer>,
    queue: &mut WorkQueue,
    states: &mut HashMap<String, Option<GameServerState>>,
) {
    let gs = event.object();
    let key = gameserver_key(gs);
    if let WatchEvent::Deleted(_) = event {
        states.remove(&key);
    } else {
        if let Some(sidecar) = shared.sidecars().get(&key) {
            sidecar.publish.send_replace(gs.clone());
        }
        let state = gs.state();
        let previous = states.insert(key.clone(), state);
        if wakes_waiting_matches(CapacityEvent::Changed { before: previous.flatten(), after: state }) {
            shared.capacity.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
    queue.add(key);
}

fn process_exited(shared: &Shared, exit: ProcessExit, queue: &mut WorkQueue) {
    if exit.stopped {
        // We asked for it: the teardown that did is already cleaning up.
        return;
    }
    let code = match exit.outcome {
        ExitOutcome::Code(code) => Some(code),
        ExitOutcome::Signal(_) => None,
    };
    tracing::info!(gameserver = %exit.key, ?exit.outcome, "game process exited on its own");
    note_crash_at_start(shared, &exit.key);
    // Nothing listens on its host ports any more: a neighbour may use them while this server
    // waits to be replaced.
    shared.ports().release(&exit.key);
    apply(shared, &exit.key, &GameServerEvent::ProcessExited { code });
    queue.add(exit.key);
}

/// Records a crash in the server's set's CrashLoopBackOff when the game exited before it got
/// Ready. Done before the exit is written, so the set's pass that the write triggers already
/// holds back the replacement.
fn note_crash_at_start(shared: &Shared, key: &str) {
    let (namespace, name) = split_key(key);
    let Some(gs) = shared.store.api::<GameServer>().try_get(namespace, name) else { return };
    let Some(set) = gs.metadata.labels.as_ref().and_then(|l| l.get(labels::GAMESERVERSET)) else { return };
    if gs.metadata.deletion_timestamp.is_none() && is_crash_at_start(gs.state()) {
        shared.crash_loops.record(&stadion_core::object_key(namespace, set), name, jiff::Timestamp::now());
    }
}

/// Applies an observed fact to the latest version of the server (atomically, so an SDK call
/// landing at the same moment is never lost).
fn apply(shared: &Shared, key: &str, event: &GameServerEvent) {
    let (namespace, name) = split_key(key);
    let now = jiff::Timestamp::now();
    let result = shared.store.api::<GameServer>().update_with::<StoreError>(namespace, name, |gs| {
        match apply_event(gs, event, now) {
            Transition::Changed(next) => *gs = *next,
            Transition::Ignored(why) => tracing::debug!(gameserver = %key, ?event, why, "event ignored"),
            Transition::Unchanged => {}
        }
        Ok(())
    });
    if let Err(error) = result
        && !error.is_not_found()
    {
        tracing::warn!(gameserver = %key, %error, "cannot record GameServer event");
    }
}

#[tracing::instrument(skip(shared, queue), level = "debug")]
async fn reconcile_one(shared: &Arc<Shared>, key: &str, queue: &mut WorkQueue) {
    let api = shared.store.api::<GameServer>();
    let (namespace, name) = split_key(key);
    let Some(gs) = api.try_get(namespace, name) else {
        // Gone without a teardown (it had no finalizer): make sure nothing of it survives.
        teardown(shared.clone(), key.to_owned(), None);
        return;
    };
    let defaults = GameServerDefaults { allocation_ttl: shared.config.allocation_ttl };
    let plan = reconcile(&gs, jiff::Timestamp::now(), defaults);
    let gs = match plan.update {
        Some(update) => match api.update(update) {
            Ok(written) => {
                if let Some(deadline) = plan.allocation_lapsed {
                    log_lapse(key, &written, deadline);
                }
                written
            }
            // Someone wrote first; their event re-queues the key with the fresh object.
            Err(error) if error.is_conflict() || error.is_not_found() => return,
            Err(error) => {
                tracing::warn!(gameserver = %key, %error, "cannot write GameServer");
                return;
            }
        },
        None => gs,
    };
    if let Some(at) = plan.requeue_at {
        queue.add_at_timestamp(key, at);
    }
    match plan.action {
        GameServerAction::Wait => {}
        GameServerAction::AllocatePorts => {
            let assignment = shared.ports().allocate(&gs, Some(&shared.config.node_name));
            match assignment {
                Ok(assignment) => apply(shared, key, &GameServerEvent::PortsAllocated(assignment)),
                Err(error) => {
                    tracing::warn!(gameserver = %key, %error, "cannot allocate host ports; retrying");
                    queue.add_after(key, PORT_RETRY);
                }
            }
        }
        GameServerAction::CreatePod => {
            if let Err(error) = start(shared, &gs).await {
                tracing::warn!(gameserver = %key, %error, "cannot start game server");
                // No process holds its host ports: free them now, not when the set deletes the
                // Error server 30 s later, or a broken fleet starves its healthy neighbours.
                shared.ports().release(key);
                apply(shared, key, &GameServerEvent::PodCreationFailed { reason: error.to_string() });
            }
        }
        GameServerAction::Delete => match api.delete(namespace, name, None) {
            Ok(_) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => tracing::warn!(gameserver = %key, %error, "cannot delete GameServer"),
        },
        GameServerAction::Teardown => teardown(shared.clone(), key.to_owned(), Some(gs)),
    }
}

/// Reports a server the allocation TTL just shut down. A warning: `stadion up` shows only
/// those, and a match that never came is worth seeing there.
fn log_lapse(key: &str, gs: &GameServer, deadline: jiff::Timestamp) {
    let last_allocated = gs.metadata.annotations.as_ref().and_then(|a| a.get(labels::LAST_ALLOCATED));
    tracing::warn!(
        gameserver = %key,
        %deadline,
        last_allocated = last_allocated.map_or("", String::as_str),
        "allocation TTL lapsed with no players connected: shutting the server down"
    );
}

/// Starts the game process and its sidecar, and records both facts. On failure nothing of the
/// server keeps running.
async fn start(shared: &Shared, gs: &Arc<GameServer>) -> Result<()> {
    let key = gameserver_key(gs);
    if shared.supervisor.is_running(&key) {
        // A previous round started it but could not record that: just record it now.
        record_started(shared, &key);
        return Ok(());
    }
    let listeners = match &shared.config.network_isolation {
        None => spawn_on_host(shared, gs, &key).await?,
        Some(sandbox) => spawn_in_sandbox(shared, gs, &key, sandbox).await?,
    };
    let (backend, publish) = StoreBackend::new(shared.store.api(), gs.clone());
    let options = ServeOptions { health_checks: shared.config.health_checks, ..ServeOptions::default() };
    let handle = match serve(Arc::new(backend), listeners, options) {
        Ok(handle) => handle,
        Err(source) => {
            shared.supervisor.stop(&key).await;
            return Err(Error::Sidecar { gameserver: key, source });
        }
    };
    shared.sidecars().insert(key.clone(), SidecarHandle { handle, publish });
    // The process may already have called Ready or exited: publish the latest object to the
    // sidecar (the events in between were not routed to it yet) before recording the start.
    if let Some(latest) = shared.store.api::<GameServer>().try_get(gs.namespace(), gs.name())
        && let Some(sidecar) = shared.sidecars().get(&key)
    {
        sidecar.publish.send_replace(latest);
    }
    record_started(shared, &key);
    Ok(())
}

/// The game on the host's network: its sidecar listens on free loopback ports (the spec's
/// 9357/9358 would collide between servers), named in the game's environment, and the game
/// listens on its host ports. The listeners are bound first, so the game's first SDK call waits
/// in their backlog rather than being refused.
async fn spawn_on_host(shared: &Shared, gs: &GameServer, key: &str) -> Result<SdkListeners> {
    let host = shared.config.sdk_host;
    let sidecar_error = |source| Error::Sidecar { gameserver: key.to_owned(), source };
    let listeners = bind(SocketAddr::new(host, 0), SocketAddr::new(host, 0)).await.map_err(sidecar_error)?;
    let port = |listener: &tokio::net::TcpListener| listener.local_addr().map(|a| a.port().to_string());
    let (grpc, http) = match (port(&listeners.grpc), port(&listeners.http)) {
        (Ok(grpc), Ok(http)) => (grpc, http),
        (Err(source), _) | (_, Err(source)) => return Err(Error::Sandbox { gameserver: key.to_owned(), source }),
    };
    let mut env = game_process_env(gs, NetworkMode::Host);
    env.retain(|(k, _)| k != AGONES_SDK_GRPC_PORT && k != AGONES_SDK_HTTP_PORT);
    env.push((AGONES_SDK_GRPC_HOST.to_owned(), host.to_string()));
    env.push((AGONES_SDK_GRPC_PORT.to_owned(), grpc));
    env.push((AGONES_SDK_HTTP_PORT.to_owned(), http));
    let spec = process_spec(gs, &shared.base_dir_for(gs), &env)?;
    shared.supervisor.spawn(key, &spec)?;
    Ok(listeners)
}

/// The game in its own network namespace, as in a pod: the sandbox binds the host ports,
/// enters the namespace and hands back the SDK listeners it bound on the spec's ports there;
/// the game listens on its container ports.
async fn spawn_in_sandbox(
    shared: &Shared,
    gs: &GameServer,
    key: &str,
    sandbox: &SandboxCommand,
) -> Result<SdkListeners> {
    let sandbox_error = |source| Error::Sandbox { gameserver: key.to_owned(), source };
    let sdk = gs.spec.sdk_server.clone().unwrap_or_default();
    let port =
        |port: i32| u16::try_from(port).map_err(|_| std::io::Error::other(format!("SDK port {port} is out of range")));
    let sdk_ports = (port(sdk.grpc_port()).map_err(sandbox_error)?, port(sdk.http_port()).map_err(sandbox_error)?);
    let mut env = game_process_env(gs, NetworkMode::Container);
    env.push((AGONES_SDK_GRPC_HOST.to_owned(), Ipv4Addr::LOCALHOST.to_string()));
    let game = process_spec(gs, &shared.base_dir_for(gs), &env)?;
    let args = sandbox_args(&relayed_ports(gs), sdk_ports, &game.program, &game.args);
    let spec = ProcessSpec { program: sandbox.program.clone(), args, ..game };
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(sandbox_error)?;
    shared.supervisor.spawn_with_stdin(key, &spec, Some(OwnedFd::from(theirs)))?;
    let received = async {
        ours.set_nonblocking(true)?;
        let ours = tokio::net::UnixStream::from_std(ours)?;
        let (grpc, http) = tokio::time::timeout(HANDOVER_TIMEOUT, receive_listeners(&ours))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no SDK listeners handed over in time"))??;
        sdk_listeners(grpc, http)
    };
    match received.await {
        Ok(listeners) => Ok(listeners),
        Err(source) => {
            shared.supervisor.stop(key).await;
            Err(sandbox_error(source))
        }
    }
}

fn record_started(shared: &Shared, key: &str) {
    apply(shared, key, &GameServerEvent::PodCreated);
    let addresses = vec![NodeAddress { type_: "InternalIP".to_owned(), address: shared.config.address.clone() }];
    apply(shared, key, &GameServerEvent::Scheduled { node_name: shared.config.node_name.clone(), addresses });
}

/// How long a deleted server's game may take to exit on its own before it is sent SIGTERM. In a
/// cluster the GameServer's deletion reaches the pod's kubelet through the API server and the
/// garbage collector, which takes about this long; a game that exits right after Shutdown()
/// therefore gets no signal, and one that reads its state first sees Shutdown, as in Agones.
const POD_DELETION_DELAY: Duration = Duration::from_secs(1);

/// The pod template's `terminationGracePeriodSeconds`, as a kubelet honours it.
fn termination_grace(gs: &GameServer) -> Option<Duration> {
    let seconds = gs.spec.template.spec.as_ref()?.termination_grace_period_seconds?;
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

/// Stops the process (with its grace period) and the sidecar, frees the host ports, then lets
/// the store remove the object. Runs in its own task so a slow game never stalls the others.
fn teardown(shared: Arc<Shared>, key: String, gs: Option<Arc<GameServer>>) {
    if !shared.tearing_down().insert(key.clone()) {
        return;
    }
    tokio::spawn(async move {
        // The sidecar keeps answering until the process is gone, so a game's last SDK calls
        // after Shutdown() (reading its state, say) still succeed.
        let grace = gs.as_deref().and_then(termination_grace).unwrap_or(shared.config.grace);
        shared.supervisor.stop_with(&key, POD_DELETION_DELAY, grace).await;
        let sidecar = shared.sidecars().remove(&key);
        if let Some(sidecar) = sidecar {
            sidecar.handle.shutdown().await;
        }
        shared.ports().release(&key);
        if let Some(gs) = gs {
            let api = shared.store.api::<GameServer>();
            let result = api.update_with::<StoreError>(gs.namespace(), gs.name(), |current| {
                *current = without_finalizer(current);
                Ok(())
            });
            if let Err(error) = result
                && !error.is_not_found()
            {
                tracing::warn!(gameserver = %key, %error, "cannot remove finalizer");
            }
        }
        shared.tearing_down().remove(&key);
        tracing::debug!(gameserver = %key, "torn down");
    });
}
