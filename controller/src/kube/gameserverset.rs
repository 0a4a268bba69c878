//! The GameServerSet reconciler: a kube-runtime wrapper around the shared set executor
//! ([`crate::executor::execute_set`]), which admits the set, carries out the core's plan and
//! writes its status through the API-server stores. Only the leader runs it.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use stadion_core::gameserverset::SetScalingOptions;
use stadion_core::names::SeededNames;
use stadion_crds::GameServerSet;

use super::context::{Context, action, exec_error_policy};
use crate::executor::{self, ExecError, execute_set};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = executor::SETS;

/// Reconciles one GameServerSet.
pub async fn reconcile(set: Arc<GameServerSet>, ctx: Arc<Context>) -> Result<Action, ExecError> {
    if !ctx.may_write() {
        return Ok(Action::await_change());
    }
    // A fresh seed per pass: names only need to be unlikely to collide, and a collision is a
    // lost race the executor re-plans.
    let mut names = SeededNames::new(rand::random());
    let outcome = execute_set(&set, ctx.seams(), &mut names, Timestamp::now(), &SetScalingOptions::default()).await?;
    Ok(action(outcome))
}

/// Requeue policy after an error.
pub fn error_policy(_set: Arc<GameServerSet>, error: &ExecError, _ctx: Arc<Context>) -> Action {
    exec_error_policy(error)
}

#[cfg(test)]
mod tests;
