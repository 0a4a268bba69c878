//! The task that follows the change stream: every writer appends each change to
//! `{prefix}changes` in the same script as the write, and this task reads it (`XREAD BLOCK`)
//! from the last entry it passed on, handing other replicas' changes (and every new ticket,
//! its own included) to the service. When the
//! lease changes hands here, or this replica fell behind the trimmed stream, it reloads the
//! hashes and tells the service to start over from them ([`StoreEvent::Reset`]).

use std::sync::Arc;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{Keys, RETRY_WRITE, Shared, load};
use crate::store::{Change, StoreEvent};

/// How long one `XREAD` blocks (a change of the lease is noticed within it).
const BLOCK_MS: usize = 250;
/// Most entries one `XREAD` returns.
const READ_COUNT: usize = 1000;

/// The newest entry's id (`0-0` for an empty stream) and number: where a reader that just
/// loaded the hashes starts.
pub async fn stream_end(conn: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<(String, u64)> {
    let newest: StreamRangeReply = conn.xrevrange_count(&keys.changes, "+", "-", 1).await?;
    Ok(newest.ids.first().map_or_else(|| ("0-0".to_owned(), 0), |e| (e.id.clone(), e.get("s").unwrap_or(0))))
}

pub struct Tail {
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub shared: Arc<Shared>,
    pub role: watch::Receiver<Option<String>>,
    pub events: mpsc::UnboundedSender<StoreEvent>,
    /// The last entry passed on (or covered by the last load), and its number.
    pub last: String,
    pub number: u64,
}

impl Tail {
    pub async fn run(mut self) {
        let mut reload = false;
        loop {
            if self.events.is_closed() {
                return;
            }
            let role_changed = self.role.has_changed().unwrap_or(false);
            if role_changed || reload {
                let term = self.role.borrow_and_update().clone();
                match self.reset(term).await {
                    Ok(()) => reload = false,
                    Err(error) => {
                        tracing::warn!(store = %self.shared.location, %error, "cannot reload from Redis; retrying");
                        reload = true;
                        tokio::time::sleep(RETRY_WRITE).await;
                        continue;
                    }
                }
            }
            match self.read().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(store = %self.shared.location, "fell behind the trimmed change stream; reloading");
                    reload = true;
                }
                Err(error) => {
                    tracing::warn!(store = %self.shared.location, %error, "cannot read the change stream; retrying");
                    tokio::time::sleep(RETRY_WRITE).await;
                }
            }
        }
    }

    /// Loads everything and tells the service to start over from it in `term`.
    async fn reset(&mut self, term: Option<String>) -> redis::RedisResult<()> {
        let (last, number) = stream_end(&mut self.conn, &self.keys).await?;
        let stored = load(&mut self.conn, &self.keys).await?;
        (self.last, self.number) = (last, number);
        tracing::info!(store = %self.shared.location, matching = term.is_some(), tickets = stored.tickets.len(), "replica state reloaded from Redis");
        let _ = self.events.send(StoreEvent::Reset { term, stored });
        Ok(())
    }

    /// Passes on the entries after `last`; `false` when an entry's number shows some were
    /// trimmed before we read them.
    async fn read(&mut self) -> redis::RedisResult<bool> {
        let options = StreamReadOptions::default().block(BLOCK_MS).count(READ_COUNT);
        let reply: Option<StreamReadReply> =
            self.conn.xread_options(&[&self.keys.changes], &[&self.last], &options).await?;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let number: u64 = entry.get("s").unwrap_or(0);
            if number != self.number + 1 {
                return Ok(false);
            }
            (self.last, self.number) = (entry.id.clone(), number);
            let own = entry.get::<String>("o").as_deref() == Some(self.shared.origin.as_str());
            let change = match entry.get::<String>("n") {
                Some(created) => Some(created),
                // This replica's own writes are in its state already.
                None if own => continue,
                None => entry.get::<String>("c"),
            };
            let event = if let Some(json) = change {
                match serde_json::from_str::<Change>(&json) {
                    Ok(change) => StoreEvent::Change(change),
                    Err(error) => {
                        tracing::warn!(entry = %entry.id, %error, "change stream entry skipped: it does not parse");
                        continue;
                    }
                }
            } else if let Some(id) = entry.get::<String>("x").and_then(|id| Uuid::parse_str(&id).ok()) {
                StoreEvent::Cancel(id)
            } else {
                continue;
            };
            let _ = self.events.send(event);
        }
        Ok(true)
    }
}
