//! The GameServerSet controller of the local runtime: runs the shared set executor
//! ([`crate::executor::execute_set`]) on the embedded store whenever a set or one of its servers
//! changes, and when a pass asks to come back.

use std::sync::Arc;

use stadion_core::gameserverset::SetScalingOptions;
use stadion_core::names::SeededNames;
use stadion_crds::{GameServer, GameServerSet};
use tokio::sync::watch;

use super::Shared;
use super::queue::OwnerTriggers;
use crate::executor::execute_set;

/// Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut triggers = OwnerTriggers::<GameServerSet, GameServer>::new(&shared.store, stop);
    let mut names = SeededNames::new(rand::random());
    let options = SetScalingOptions::default();
    while let Some(due) = triggers.next_due().await {
        for key in due {
            let Some(set) = triggers.parent(&key) else { continue };
            let result = execute_set(&set, shared.seams(), &mut names, jiff::Timestamp::now(), &options).await;
            triggers.finished(&key, &result);
        }
    }
}
