//! Applying an edited queue configuration to a running matchmaker: new queues open, removed
//! ones close, changed ones take their new rules, and tickets in unchanged queues never notice.

use std::collections::HashMap;

use super::{QueueRuntime, State};
use crate::config::QueueConfig;
use crate::engine::{EngineTicket, Millis, RegionId, TicketKey};
use crate::service::submit;
use crate::ticket::{TicketRequest, TicketState};

/// What a reload changed, by queue name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueChanges {
    /// Queues that did not exist before.
    pub added: Vec<String>,
    /// Queues whose settings changed; their searching tickets are re-checked against them.
    pub changed: Vec<String>,
    /// Queues no longer configured; their searching tickets failed.
    pub removed: Vec<String>,
    /// Searching tickets failed because their queue went away or they no longer fit it.
    pub failed_tickets: usize,
}

impl QueueChanges {
    /// Whether any queue was added, changed or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Queue settings compare by their serialized form (the config types are data, not `Eq`).
fn same_settings(a: &QueueConfig, b: &QueueConfig) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

impl State {
    /// Switches to `queues` (already validated) and `retention` at `now`. Matches already
    /// formed keep the request they were formed with.
    pub fn reconfigure(&mut self, queues: &[QueueConfig], retention: Millis, now: Millis) -> QueueChanges {
        self.retention = retention;
        let mut changes = QueueChanges::default();
        let mut old: HashMap<String, QueueRuntime> = std::mem::take(&mut self.queues);
        let mut recheck = Vec::new();
        for config in queues {
            match old.remove(&config.name) {
                Some(runtime) if same_settings(&runtime.config, config) => {
                    self.queues.insert(config.name.clone(), runtime);
                }
                previous => {
                    self.queues.insert(config.name.clone(), QueueRuntime::new(config));
                    if previous.is_some() {
                        changes.changed.push(config.name.clone());
                        recheck.push(config.name.clone());
                    } else {
                        changes.added.push(config.name.clone());
                    }
                }
            }
        }
        changes.removed = old.into_keys().collect();
        // Running matches of a changed or removed queue no longer take late joiners.
        self.prune_running();
        changes.removed.sort();
        let searching: Vec<(TicketKey, String)> = self
            .tickets
            .iter()
            .filter(|(_, record)| record.view.state == TicketState::Searching)
            .filter(|(_, record)| recheck.contains(&record.view.queue) || changes.removed.contains(&record.view.queue))
            .map(|(key, record)| (*key, record.view.queue.clone()))
            .collect();
        for (key, queue) in searching {
            if !self.requeue(key, &queue) {
                let reason = match self.queues.contains_key(&queue) {
                    true => format!("no longer fits queue `{queue}` after a configuration change"),
                    false => format!("queue `{queue}` was removed from the configuration"),
                };
                self.transition(key, TicketState::Failed, now, |t| t.reason = Some(reason));
                changes.failed_tickets += 1;
            }
        }
        changes
    }

    /// Puts a searching ticket into its queue's (new) pool, recomputed for the queue's rules
    /// and keeping its wait; `false` when the queue is gone or the ticket no longer fits it.
    pub(super) fn requeue(&mut self, key: TicketKey, queue: &str) -> bool {
        let Some(engine) = self.engine_ticket(key, queue) else { return false };
        match self.queues.get_mut(queue) {
            Some(runtime) => runtime.pool.insert(engine),
            None => false,
        }
    }

    /// The engine form of ticket `key` under `queue`'s current rules (`None`: it no longer
    /// fits them, or the queue is gone).
    pub(super) fn engine_ticket(&mut self, key: TicketKey, queue: &str) -> Option<EngineTicket> {
        let config = self.queues.get(queue).map(|q| q.config.clone())?;
        let record = self.tickets.get(&key)?;
        let enqueued_at = record.enqueued_at;
        let request = TicketRequest {
            queue: record.view.queue.clone(),
            players: record.view.players.clone(),
            idempotency_key: record.view.idempotency_key.clone(),
        };
        let prepared = submit::prepare(request, None, Some(&config)).ok()?;
        let mut latencies: Vec<(RegionId, f64)> =
            prepared.latencies.iter().map(|(name, ms)| (self.intern_region(name), *ms)).collect();
        latencies.sort_by_key(|(r, _)| *r);
        Some(EngineTicket { key, enqueued_at, size: prepared.size, skill: prepared.skill, latencies })
    }
}
