//! The FleetAutoscaler controller of the local runtime: runs the shared autoscaler executor
//! ([`crate::executor::execute_autoscaler`]) when an autoscaler is created or changed, and then
//! on its sync interval, as the executor's outcome asks (a fleet's changes trigger nothing, as
//! in Agones and the kube runtime). Each pass runs as its own task, one at a time per
//! autoscaler, so a slow webhook holds up only its own autoscaler.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use stadion_crds::FleetAutoscaler;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Shared;
use super::queue::{WorkQueue, key_of, schedule, split_key};
use crate::executor::{ERROR_BACKOFF, ExecError, Outcome, execute_autoscaler};

type Pass = (String, Result<Outcome, ExecError>);

/// Runs until `stop` turns true (passes still running are cancelled).
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let autoscalers = shared.store.api::<FleetAutoscaler>().watch();
    let mut events = autoscalers.events;
    let mut queue = WorkQueue::default();
    queue.extend(autoscalers.initial.iter().map(|fas| key_of(&fas.metadata)));
    let mut passes: JoinSet<Pass> = JoinSet::new();
    // Which autoscaler each running pass is for, and those that changed while it ran.
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut again: HashSet<String> = HashSet::new();
    loop {
        for key in queue.take_due() {
            if running.values().any(|k| *k == key) {
                again.insert(key);
                continue;
            }
            let (namespace, name) = split_key(&key);
            let Some(fas) = shared.store.api::<FleetAutoscaler>().try_get(namespace, name) else {
                queue.cancel(&key);
                continue;
            };
            let shared = shared.clone();
            let task_key = key.clone();
            let handle = passes.spawn(async move {
                let result = execute_autoscaler(&fas, shared.seams(), &shared.webhooks, jiff::Timestamp::now()).await;
                (task_key, result)
            });
            running.insert(handle.id(), key);
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            Some(joined) = passes.join_next_with_id() => {
                let key = match joined {
                    Ok((id, (key, result))) => {
                        running.remove(&id);
                        schedule(&mut queue, &key, &result);
                        key
                    }
                    Err(error) => {
                        // A pass that panicked decided nothing: come back after the back-off
                        // rather than never.
                        let Some(key) = running.remove(&error.id()) else { continue };
                        tracing::error!(autoscaler = %key, %error, "autoscaler pass failed");
                        queue.schedule(&key, Instant::now() + ERROR_BACKOFF);
                        key
                    }
                };
                if again.remove(&key) {
                    queue.add(key);
                }
            }
            Some(event) = events.recv() => queue.add(key_of(&event.object().metadata)),
            () = queue.next_timer() => {}
        }
    }
}
