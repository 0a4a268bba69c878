//! The Fleet reconciler: a kube-runtime wrapper around the shared fleet executor
//! ([`crate::executor::execute_fleet`]), which admits the fleet, carries out the core's rollout
//! and writes its status through the API-server stores. Only the leader runs it.
//! `kubectl scale fleet` works through the CRD's scale subresource: it changes `spec.replicas`,
//! which is all the plan reads.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use stadion_core::names::SeededNames;
use stadion_crds::Fleet;

use super::context::{Context, action, exec_error_policy};
use crate::executor::{self, ExecError, execute_fleet};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = executor::FLEETS;

/// Reconciles one Fleet.
pub async fn reconcile(fleet: Arc<Fleet>, ctx: Arc<Context>) -> Result<Action, ExecError> {
    if !ctx.may_write() {
        return Ok(Action::await_change());
    }
    let mut names = SeededNames::new(rand::random());
    Ok(action(execute_fleet(&fleet, ctx.seams(), &mut names, Timestamp::now()).await?))
}

/// Requeue policy after an error.
pub fn error_policy(_fleet: Arc<Fleet>, error: &ExecError, _ctx: Arc<Context>) -> Action {
    exec_error_policy(error)
}

#[cfg(test)]
mod tests;
