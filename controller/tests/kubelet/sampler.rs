//! Samples a namespace's GameServers while something happens (a rollout, a failover): how many
//! are live and Ready at once, and whether any Allocated server was touched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::{Api, ResourceExt};
use stadion_crds::{GameServer, GameServerState};

use super::cluster::live;

/// What the sampler saw during a rollout.
#[derive(Debug, Default)]
pub struct Samples {
    /// Samples taken.
    pub taken: usize,
    /// Most live (not being deleted) servers at once.
    pub max_live: usize,
    /// Fewest Ready servers at once.
    pub min_ready: usize,
    /// Every way an Allocated server was touched.
    pub touched: Vec<String>,
}

/// Samples the namespace's servers `every` so often until aborted; `allocated` are the (name,
/// uid) of servers that must stay Allocated, untouched.
pub fn sample(
    api: Api<GameServer>,
    allocated: Vec<(String, String)>,
    every: Duration,
    into: Arc<Mutex<Samples>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(list) = api.list(&Default::default()).await {
                let all = list.items;
                let alive = live(all.clone());
                let ready = alive.iter().filter(|gs| gs.state() == Some(GameServerState::Ready)).count();
                let mut samples = into.lock().unwrap();
                samples.taken += 1;
                samples.max_live = samples.max_live.max(alive.len());
                samples.min_ready = if samples.taken == 1 { ready } else { samples.min_ready.min(ready) };
                for (name, uid) in &allocated {
                    match all.iter().find(|gs| gs.name_any() == *name) {
                        None => samples.touched.push(format!("{name} deleted")),
                        Some(gs) if gs.uid().as_deref() != Some(uid) => {
                            samples.touched.push(format!("{name} replaced"))
                        }
                        Some(gs) if gs.metadata.deletion_timestamp.is_some() => {
                            samples.touched.push(format!("{name} being deleted"))
                        }
                        Some(gs) if gs.state() != Some(GameServerState::Allocated) => {
                            samples.touched.push(format!("{name} now {:?}", gs.state()))
                        }
                        Some(_) => {}
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}
