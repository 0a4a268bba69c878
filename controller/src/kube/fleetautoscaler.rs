//! The FleetAutoscaler reconciler: a kube-runtime wrapper around the shared autoscaler executor
//! ([`crate::executor::execute_autoscaler`]), which runs the policy on the autoscaler's sync
//! interval (the requeue it asks for), resizes the fleet and writes the autoscaler's status.
//! Only the leader runs it.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use stadion_crds::FleetAutoscaler;

use super::context::{Context, action, exec_error_policy};
use crate::executor::{self, ExecError, execute_autoscaler};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = executor::AUTOSCALERS;

/// Reconciles one FleetAutoscaler.
pub async fn reconcile(fas: Arc<FleetAutoscaler>, ctx: Arc<Context>) -> Result<Action, ExecError> {
    if !ctx.may_write() {
        return Ok(Action::await_change());
    }
    Ok(action(execute_autoscaler(&fas, ctx.seams(), &ctx.webhooks, Timestamp::now()).await?))
}

/// Requeue policy after an error.
pub fn error_policy(_fas: Arc<FleetAutoscaler>, error: &ExecError, _ctx: Arc<Context>) -> Action {
    exec_error_policy(error)
}

#[cfg(test)]
mod tests;
