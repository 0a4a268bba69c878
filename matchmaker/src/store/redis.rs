//! The Redis ticket store (`--redis-url`, `redis:` in the config): tickets and waiting matches
//! in two Redis hashes, written by one task in batches, each batch one fenced Lua script.
//!
//! Keys (under [`KEY_PREFIX`]): `tickets` (ticket id → [`StoredTicket`] JSON), `matches`
//! (match id → [`StoredMatch`] JSON), `lease` (the fencing token of the matchmaker that owns
//! the data) and `fence` (a counter, increased on every acquisition of the lease).
//!
//! Ownership: a matchmaker takes the lease on start (`SET lease token NX PX`), waiting up to
//! [`LEASE_TTL`] plus a margin for the lease of a killed predecessor to lapse, and renews it
//! every [`LEASE_RENEW`]. Its token is the counter's new value and a random id; every batch
//! checks, in the same script, that the lease still holds that token, so a matchmaker that lost
//! its lease (paused, partitioned, or a second one started on the same data) can never
//! overwrite what the new owner wrote: its writes fail, and every request that waits for them
//! is answered 503.
//!
//! Durability: [`TicketStore::persisted`] resolves once every change recorded before it is in
//! Redis (as durable as the server's own persistence settings make it). While Redis is
//! unreachable, the writer retries every [`RETRY_WRITE`] on a reconnecting connection and
//! `persisted` fails at once with the last error, so the API answers 503 JSON rather than
//! hang; the changes are written when Redis is back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Change, Fold, Persisted, StoreError, Stored, StoredMatch, StoredTicket, TicketStore};

/// Every key of the store starts with this.
pub const KEY_PREFIX: &str = "stadion:matchmaker:";
/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often the owner renews its lease.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);
/// Pause before a failed write is tried again.
const RETRY_WRITE: Duration = Duration::from_millis(500);
/// Longest wait for one Redis command (or a connection) before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Most changes one script call writes.
const BATCH_CHANGES: usize = 1000;

/// Writes a batch if the lease still holds our token. KEYS: lease, tickets, matches.
/// ARGV: token, then (op, id, json) triples: `T` ticket, `F` forget, `M` match, `D` match done.
/// Returns 1 when written, 0 when another token holds the lease, 2 when none does (it lapsed
/// while Redis was unreachable, or Redis lost its data; the keeper takes it back).
const WRITE_SCRIPT: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return 2 end
if held ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 3 do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'T' then redis.call('HSET', KEYS[2], id, ARGV[i + 2])
  elseif op == 'F' then redis.call('HDEL', KEYS[2], id)
  elseif op == 'M' then redis.call('HSET', KEYS[3], id, ARGV[i + 2])
  else redis.call('HDEL', KEYS[3], id) end
end
return 1
";

/// Renews the lease while it holds our token. Where it lapsed (Redis was unreachable for
/// longer than its TTL) and nobody took it since (the counter is still ours, or Redis lost
/// every key), takes it back. KEYS: lease, fence. ARGV: token, fence number, TTL in ms.
const RENEW_SCRIPT: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if held then return 0 end
local fence = redis.call('GET', KEYS[2])
if fence and fence ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 2
";

/// Gives the lease up if it still holds our token. KEYS: lease. ARGV: token.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The store's keys.
#[derive(Clone, Debug)]
struct Keys {
    tickets: String,
    matches: String,
    lease: String,
    fence: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            tickets: format!("{prefix}tickets"),
            matches: format!("{prefix}matches"),
            lease: format!("{prefix}lease"),
            fence: format!("{prefix}fence"),
        }
    }
}

/// Changes recorded but not yet taken by the writer.
#[derive(Default)]
struct Pending {
    changes: Vec<Change>,
    /// Number of changes recorded so far.
    seq: u64,
    closed: bool,
}

/// What the writer has made durable.
#[derive(Clone, Debug, Default)]
struct Durable {
    seq: u64,
    error: Option<String>,
    /// The lease went to another matchmaker: nothing will be written any more.
    fenced: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    durable: watch::Sender<Durable>,
    location: String,
}

impl Shared {
    fn fence_out(&self, why: &str) {
        tracing::error!(store = %self.location, "{why}; this matchmaker no longer writes tickets — restart it");
        self.durable.send_modify(|d| {
            d.fenced = true;
            d.error = Some(format!("{why}; restart this matchmaker"));
        });
    }
}

/// Tickets and waiting matches in Redis.
pub struct RedisStore {
    shared: Arc<Shared>,
    durable: watch::Receiver<Durable>,
    loaded: Mutex<Option<Stored>>,
    token: String,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("url", &self.shared.location).finish_non_exhaustive()
    }
}

/// `url` without its password, for logs and errors.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***@{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl RedisStore {
    /// Connects to `url`, takes the lease (waiting for a killed owner's to lapse), and reads
    /// every ticket and match. Fails, naming the URL, when Redis cannot be reached or another
    /// live matchmaker holds the lease.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_prefix(url, KEY_PREFIX).await
    }

    /// [`RedisStore::connect`] with keys under `prefix` (tests share one Redis this way).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let location = redacted(url);
        let error = |message: String| StoreError::new(format!("redis {location}"), message);
        let client = redis::Client::open(url).map_err(|e| error(format!("not a usable Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| error(format!("cannot connect: {e}")))?;
        let keys = Keys::new(prefix);
        let (token, fence) = acquire_lease(&mut conn, &keys).await.map_err(error)?;
        let stored = load(&mut conn, &keys).await.map_err(|e| error(format!("cannot read the tickets: {e}")))?;
        tracing::info!(url = %location, tickets = stored.tickets.len(), matches = stored.matches.len(), fence, "redis ticket store opened");
        let (durable_tx, durable) = watch::channel(Durable::default());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            durable: durable_tx,
            location: format!("redis {location}"),
        });
        let writer = Writer { conn: conn.clone(), keys: keys.clone(), token: token.clone(), shared: shared.clone() };
        let lease = LeaseKeeper { conn, keys, token: token.clone(), fence, shared: shared.clone() };
        let tasks = vec![tokio::spawn(writer.run()), tokio::spawn(lease.run())];
        Ok(Self { shared, durable, loaded: Mutex::new(Some(stored)), token, tasks })
    }

    /// The fencing token this store writes under (the lease's value).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl TicketStore for RedisStore {
    fn load(&self) -> Result<Stored, StoreError> {
        Ok(self.loaded.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default())
    }

    fn record(&self, change: Change) {
        let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.changes.push(change);
        pending.seq += 1;
        drop(pending);
        self.shared.wake.notify_one();
    }

    fn persisted(&self) -> Persisted {
        let target = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).seq;
        let mut durable = self.durable.clone();
        let location = self.shared.location.clone();
        Box::pin(async move {
            let done = durable
                .wait_for(|d| d.seq >= target || d.error.is_some())
                .await
                .map_err(|_| StoreError::new(&location, "the Redis writer stopped"))?
                .clone();
            match done.error {
                Some(error) if done.seq < target || done.fenced => Err(StoreError::new(&location, error)),
                _ => Ok(()),
            }
        })
    }

    fn describe(&self) -> String {
        self.shared.location.clone()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The writer flushes what is pending and gives the lease up; the keeper stops.
        self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.shared.wake.notify_one();
        if let Some(keeper) = self.tasks.get(1) {
            keeper.abort();
        }
    }
}

/// Takes the lease: a new counter value and a random id, set only where no lease is held.
/// Waits a little longer than one TTL for the lease of a matchmaker that was killed.
async fn acquire_lease(conn: &mut ConnectionManager, keys: &Keys) -> Result<(String, u64), String> {
    let deadline = tokio::time::Instant::now() + LEASE_TTL + Duration::from_secs(2);
    let ttl = LEASE_TTL.as_millis() as u64;
    loop {
        let holder: Option<String> = conn.get(&keys.lease).await.map_err(|e| format!("cannot read the lease: {e}"))?;
        if holder.is_none() {
            let fence: u64 = conn.incr(&keys.fence, 1).await.map_err(|e| format!("cannot take the lease: {e}"))?;
            let token = format!("{fence}:{}", Uuid::new_v4());
            let taken: Option<String> = redis::cmd("SET")
                .arg(&keys.lease)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query_async(conn)
                .await
                .map_err(|e| format!("cannot take the lease: {e}"))?;
            if taken.is_some() {
                return Ok((token, fence));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "is in use by another matchmaker (it holds `{}`: {}); run one matchmaker per Redis store",
                keys.lease,
                holder.unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every ticket and match in the store, in the order the service resumes them.
async fn load(conn: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<Stored> {
    let tickets: Vec<(String, String)> = conn.hgetall(&keys.tickets).await?;
    let matches: Vec<(String, String)> = conn.hgetall(&keys.matches).await?;
    let mut fold = Fold::default();
    for (id, json) in tickets {
        match serde_json::from_str::<StoredTicket>(&json) {
            Ok(ticket) => fold.apply(Change::Ticket(Box::new(ticket))),
            Err(error) => tracing::warn!(ticket = %id, %error, "stored ticket skipped: it does not parse"),
        }
    }
    for (id, json) in matches {
        match serde_json::from_str::<StoredMatch>(&json) {
            Ok(m) => fold.apply(Change::Match(m)),
            Err(error) => tracing::warn!(r#match = %id, %error, "stored match skipped: it does not parse"),
        }
    }
    Ok(fold.into_stored())
}

/// One change as script arguments: op, id, JSON (empty for a removal).
fn script_args(change: &Change) -> (&'static str, String, String) {
    // Serializing our own data types cannot fail.
    match change {
        Change::Ticket(ticket) => ("T", ticket.ticket.id.clone(), serde_json::to_string(ticket).unwrap_or_default()),
        Change::Forget(id) => ("F", id.to_string(), String::new()),
        Change::Match(m) => ("M", m.id.to_string(), serde_json::to_string(m).unwrap_or_default()),
        Change::MatchDone(id) => ("D", id.to_string(), String::new()),
    }
}

/// Keeps only the last change of each ticket and each match in `changes`, in order: a batch
/// writes every object's final form once.
fn last_per_object(changes: Vec<Change>) -> Vec<Change> {
    let mut seen: HashSet<(bool, String)> = HashSet::new();
    let mut kept: Vec<Change> = changes
        .into_iter()
        .rev()
        .filter(|change| {
            let (op, id, _) = script_args(change);
            seen.insert((matches!(op, "T" | "F"), id))
        })
        .collect();
    kept.reverse();
    kept
}

/// The task that writes recorded changes.
struct Writer {
    conn: ConnectionManager,
    keys: Keys,
    token: String,
    shared: Arc<Shared>,
}

impl Writer {
    async fn run(mut self) {
        let script = redis::Script::new(WRITE_SCRIPT);
        loop {
            let (changes, seq, closed) = {
                let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                (std::mem::take(&mut pending.changes), pending.seq, pending.closed)
            };
            if changes.is_empty() {
                if closed {
                    break;
                }
                self.shared.wake.notified().await;
                continue;
            }
            if self.shared.durable.borrow().fenced {
                continue;
            }
            let changes = last_per_object(changes);
            for chunk in changes.chunks(BATCH_CHANGES) {
                if !self.write(&script, chunk).await {
                    break;
                }
            }
            if !self.shared.durable.borrow().fenced {
                self.shared.durable.send_modify(|d| {
                    d.seq = seq;
                    d.error = None;
                });
            }
        }
        let released: redis::RedisResult<i64> = redis::Script::new(RELEASE_SCRIPT)
            .key(&self.keys.lease)
            .arg(&self.token)
            .invoke_async(&mut self.conn)
            .await;
        if let Err(error) = released {
            tracing::debug!(%error, "lease not released; it lapses on its own");
        }
    }

    /// Writes one chunk, retrying until Redis takes it; `false` once the lease is lost.
    async fn write(&mut self, script: &redis::Script, chunk: &[Change]) -> bool {
        loop {
            let mut invocation = script.key(&self.keys.lease);
            invocation.key(&self.keys.tickets).key(&self.keys.matches).arg(&self.token);
            for change in chunk {
                let (op, id, json) = script_args(change);
                invocation.arg(op).arg(id).arg(json);
            }
            let result: redis::RedisResult<i64> = invocation.invoke_async(&mut self.conn).await;
            match result {
                Ok(1) => return true,
                Ok(2) => {
                    tracing::warn!(store = %self.shared.location, "the lease lapsed; writing once it is taken back");
                    self.shared
                        .durable
                        .send_modify(|d| d.error = Some("the lease lapsed while Redis was unreachable".to_owned()));
                    tokio::time::sleep(RETRY_WRITE).await;
                }
                Ok(_) => {
                    self.shared.fence_out("the Redis store's lease went to another matchmaker");
                    return false;
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

/// The task that renews the lease.
struct LeaseKeeper {
    conn: ConnectionManager,
    keys: Keys,
    token: String,
    fence: u64,
    shared: Arc<Shared>,
}

impl LeaseKeeper {
    async fn run(mut self) {
        let script = redis::Script::new(RENEW_SCRIPT);
        let ttl = LEASE_TTL.as_millis() as u64;
        let mut tick = tokio::time::interval(LEASE_RENEW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result: redis::RedisResult<i64> = script
                .key(&self.keys.lease)
                .key(&self.keys.fence)
                .arg(&self.token)
                .arg(self.fence)
                .arg(ttl)
                .invoke_async(&mut self.conn)
                .await;
            match result {
                Ok(1) => {}
                Ok(2) => {
                    tracing::warn!(store = %self.shared.location, "the lease lapsed while Redis was unreachable; taken back")
                }
                Ok(_) => {
                    self.shared.fence_out("the Redis store's lease went to another matchmaker");
                    return;
                }
                Err(error) => tracing::warn!(store = %self.shared.location, %error, "cannot renew the lease; retrying"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(redacted("redis://:secret@cache:6379/0"), "redis://***@cache:6379/0");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn a_batch_writes_each_object_once_in_its_last_form() {
        let id = Uuid::new_v4();
        let other = Uuid::new_v4();
        let kept =
            last_per_object(vec![Change::MatchDone(id), Change::Forget(id), Change::Forget(other), Change::Forget(id)]);
        assert_eq!(kept, vec![Change::MatchDone(id), Change::Forget(other), Change::Forget(id)]);
    }
}
