//! The Fleet controller of the local runtime: runs the shared fleet executor
//! ([`crate::executor::execute_fleet`]) on the embedded store whenever a fleet or one of its sets
//! changes, and when a pass asks to come back.

use std::sync::Arc;

use stadion_core::names::SeededNames;
use stadion_crds::{Fleet, GameServerSet};
use tokio::sync::watch;

use super::Shared;
use super::queue::OwnerTriggers;
use crate::executor::execute_fleet;

/// Runs until `stop` turns true.
pub(crate) async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut triggers = OwnerTriggers::<Fleet, GameServerSet>::new(&shared.store, stop);
    let mut names = SeededNames::new(rand::random());
    while let Some(due) = triggers.next_due().await {
        for key in due {
            let Some(fleet) = triggers.parent(&key) else { continue };
            let result = execute_fleet(&fleet, shared.seams(), &mut names, jiff::Timestamp::now()).await;
            triggers.finished(&key, &result);
        }
    }
}
