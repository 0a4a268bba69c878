//! The task that writes recorded changes: each run of changes recorded in one term goes in
//! fenced batches under that term's token; a change recorded outside a term the lease still
//! holds is dropped, and whoever waits for it is answered with an error.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};

use redis::aio::ConnectionManager;

use super::{Keys, RETRY_WRITE, STREAM_LENGTH, Shared, scripts};
use crate::store::Change;

/// Most changes one script call writes.
const BATCH_CHANGES: usize = 1000;

/// One change as script arguments: op, id, stored JSON (empty for a removal), change JSON.
pub fn script_args(change: &Change) -> (&'static str, String, String, String) {
    // Serializing our own data types cannot fail.
    let json = serde_json::to_string(change).unwrap_or_default();
    match change {
        Change::Ticket(ticket) => {
            ("T", ticket.ticket.id.clone(), serde_json::to_string(ticket).unwrap_or_default(), json)
        }
        Change::Forget(id) => ("F", id.to_string(), String::new(), json),
        Change::Match(m) => ("M", m.id.to_string(), serde_json::to_string(m).unwrap_or_default(), json),
        Change::MatchDone(id) => ("D", id.to_string(), String::new(), json),
    }
}

fn object(change: &Change) -> (bool, String) {
    match change {
        Change::Ticket(ticket) => (true, ticket.ticket.id.clone()),
        Change::Forget(id) => (true, id.to_string()),
        Change::Match(m) => (false, m.id.to_string()),
        Change::MatchDone(id) => (false, id.to_string()),
    }
}

/// Keeps only the last change of each ticket and each match in `changes`, in order: a batch
/// writes every object's final form once.
pub fn last_per_object(changes: Vec<Change>) -> Vec<Change> {
    let mut seen: HashSet<(bool, String)> = HashSet::new();
    let mut kept: Vec<Change> = changes.into_iter().rev().filter(|change| seen.insert(object(change))).collect();
    kept.reverse();
    kept
}

/// How a batch ended.
enum Written {
    Yes,
    /// The term is over (another replica holds the lease): the batch is dropped.
    Fenced,
}

/// Changes recorded in one term, numbered `first` to `last`.
struct Run {
    term: Option<Arc<str>>,
    first: u64,
    last: u64,
    changes: Vec<Change>,
}

pub struct Writer {
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub shared: Arc<Shared>,
}

impl Writer {
    pub async fn run(mut self) {
        let script = redis::Script::new(scripts::WRITE);
        loop {
            let (changes, closed) = {
                let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                (std::mem::take(&mut pending.changes), pending.closed)
            };
            if changes.is_empty() {
                if closed {
                    break;
                }
                self.shared.wake.notified().await;
                continue;
            }
            // Runs of changes recorded in the same term, in order.
            let mut runs: Vec<Run> = Vec::new();
            for (seq, term, change) in changes {
                match runs.last_mut() {
                    Some(run) if run.term == term => {
                        run.last = seq;
                        run.changes.push(change);
                    }
                    _ => runs.push(Run { term, first: seq, last: seq, changes: vec![change] }),
                }
            }
            for Run { term, first, last, changes: run } in runs {
                let written = match &term {
                    Some(token) => self.write_run(&script, token, run).await,
                    None => Written::Fenced,
                };
                self.shared.durable.send_modify(|d| {
                    d.seq = last;
                    match written {
                        Written::Yes => d.error = None,
                        Written::Fenced => {
                            d.dropped = (first, last);
                            d.error = Some(
                                "this replica no longer holds the Redis store's matching lease (another replica matches now)"
                                    .to_owned(),
                            );
                        }
                    }
                });
            }
        }
        let token = self.shared.role.borrow().clone();
        if let Some(token) = token {
            super::lease::LeaseKeeper::release(&mut self.conn, &self.keys, &token).await;
        }
    }

    async fn write_run(&mut self, script: &redis::Script, token: &str, run: Vec<Change>) -> Written {
        for chunk in last_per_object(run).chunks(BATCH_CHANGES) {
            if let Written::Fenced = self.write(script, token, chunk).await {
                return Written::Fenced;
            }
        }
        Written::Yes
    }

    /// Writes one chunk, retrying until Redis takes it or the term is over.
    async fn write(&mut self, script: &redis::Script, token: &str, chunk: &[Change]) -> Written {
        loop {
            if !self.shared.in_term(token) {
                return Written::Fenced;
            }
            let mut invocation = script.key(&self.keys.lease);
            invocation
                .key(&self.keys.tickets)
                .key(&self.keys.matches)
                .key(&self.keys.changes)
                .key(&self.keys.counter)
                .arg(token)
                .arg(&self.shared.origin)
                .arg(STREAM_LENGTH)
                .arg(&self.keys.idem);
            for change in chunk {
                let (op, id, stored, json) = script_args(change);
                invocation.arg(op).arg(id).arg(stored).arg(json);
            }
            let result: redis::RedisResult<i64> = invocation.invoke_async(&mut self.conn).await;
            match result {
                Ok(1) => return Written::Yes,
                Ok(2) => {
                    tracing::warn!(store = %self.shared.location, "the lease lapsed; writing once it is taken back");
                    self.shared
                        .durable
                        .send_modify(|d| d.error = Some("the lease lapsed while Redis was unreachable".to_owned()));
                    tokio::time::sleep(RETRY_WRITE).await;
                }
                Ok(_) => {
                    tracing::error!(store = %self.shared.location, "a write was fenced off: the Redis store's lease went to another replica");
                    return Written::Fenced;
                }
                Err(error) => {
                    tracing::error!(store = %self.shared.location, %error, "cannot write tickets to Redis; retrying");
                    self.shared.durable.send_modify(|d| d.error = Some(format!("cannot write: {error}")));
                    tokio::time::sleep(RETRY_WRITE).await;
                }
            }
        }
    }
}
