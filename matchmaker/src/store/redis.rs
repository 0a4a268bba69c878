//! The Redis ticket store (`--redis-url`, `redis:` in the config): tickets and waiting matches
//! in two Redis hashes, shared by any number of replicas, one of which matches at a time.
//!
//! Keys (under [`KEY_PREFIX`]): `tickets` (ticket id → [`StoredTicket`] JSON), `matches`
//! (match id → [`StoredMatch`] JSON), `changes` (a stream: every write appends its changes in
//! the same script, trimmed to about [`STREAM_LENGTH`] entries, each numbered from the counter
//! `changes-count`), `idem:{key}` (the ticket an
//! idempotency key names, for every replica), `lease` (the fencing token of the replica that
//! matches) and `fence` (a counter, increased on every acquisition of the lease).
//!
//! The lease ([`lease`]): a replica takes it on start if it is free (`SET lease token NX PX`)
//! and renews it every [`LEASE_RENEW`]; the others follow, trying for it every
//! [`LEASE_RETRY`], so a killed holder's lease passes on within [`LEASE_TTL`] and a retry. Its
//! token is the counter's new value and a random id. Every change the service records is
//! stamped with the term it was recorded in, and written by one fenced script that first
//! checks the lease still holds that token: a replica that lost the lease (paused,
//! partitioned) can never overwrite what the new holder wrote; its writes are dropped and
//! whoever waits for them is answered 503.
//!
//! Followers ([`tail`]) load the hashes, then apply every other replica's changes from the
//! stream; when the lease changes hands (or they fell behind the trimmed stream) they load
//! again and the service starts over ([`StoreEvent::Reset`]). Any replica creates tickets
//! ([`TicketStore::create`], not fenced: the idempotency key is taken with `SET NX` in the
//! same script) and asks the holder to cancel one ([`TicketStore::request_cancel`], an entry
//! in the stream).
//!
//! Durability: [`TicketStore::persisted`] resolves once every change recorded before it is in
//! Redis (as durable as the server's own persistence settings make it). While Redis is
//! unreachable, the writer retries every [`RETRY_WRITE`] on a reconnecting connection and
//! `persisted` fails at once with the last error, so the API answers 503 JSON rather than
//! hang; the changes are written when Redis is back.

mod lease;
mod scripts;
mod tail;
mod writer;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{
    Change, Created, Creation, Fold, Persisted, StoreError, StoreEvent, Stored, StoredMatch, StoredTicket, TicketStore,
};

/// Every key of the store starts with this.
pub const KEY_PREFIX: &str = "stadion:matchmaker:";
/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often the holder renews its lease.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);
/// How often a follower tries to take the lease.
pub const LEASE_RETRY: Duration = Duration::from_millis(500);
/// About how many entries the change stream keeps (`XADD MAXLEN ~`); a follower further
/// behind than this reloads the hashes.
pub const STREAM_LENGTH: usize = 100_000;
/// Pause before a failed write is tried again.
const RETRY_WRITE: Duration = Duration::from_millis(500);
/// Longest wait for one Redis command (or a connection) before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The store's keys.
#[derive(Clone, Debug)]
struct Keys {
    tickets: String,
    matches: String,
    changes: String,
    /// The number of the stream's last entry.
    counter: String,
    /// Prefix of the idempotency keys.
    idem: String,
    lease: String,
    fence: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            tickets: format!("{prefix}tickets"),
            matches: format!("{prefix}matches"),
            changes: format!("{prefix}changes"),
            counter: format!("{prefix}changes-count"),
            idem: format!("{prefix}idem:"),
            lease: format!("{prefix}lease"),
            fence: format!("{prefix}fence"),
        }
    }
}

/// Changes recorded but not yet taken by the writer: each with its number and the term
/// (lease token) the service recorded it in.
#[derive(Default)]
struct Pending {
    changes: Vec<(u64, Option<Arc<str>>, Change)>,
    /// Number of changes recorded so far.
    seq: u64,
    closed: bool,
}

/// What the writer has made durable.
#[derive(Clone, Debug, Default)]
struct Durable {
    seq: u64,
    error: Option<String>,
    /// The last run of changes dropped because their term was over (first and last number).
    dropped: (u64, u64),
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    durable: watch::Sender<Durable>,
    location: String,
    /// This replica's id in the change stream (its own entries are not applied again).
    origin: String,
    /// The lease's token while this replica holds it (published by the keeper).
    role: watch::Sender<Option<String>>,
    /// The term the service runs in now, stamped on every change it records.
    term: Mutex<Option<Arc<str>>>,
}

impl Shared {
    /// Whether changes recorded under `token` may still be written.
    fn in_term(&self, token: &str) -> bool {
        self.role.borrow().as_deref() == Some(token)
    }
}

/// Tickets and waiting matches in Redis.
pub struct RedisStore {
    shared: Arc<Shared>,
    durable: watch::Receiver<Durable>,
    loaded: Mutex<Option<Stored>>,
    /// The lease's token when this replica took it on start.
    initial: Option<String>,
    conn: ConnectionManager,
    keys: Keys,
    events: Mutex<Option<mpsc::UnboundedReceiver<StoreEvent>>>,
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
    /// Connects to `url`, takes the matching lease if it is free (otherwise this replica
    /// follows the one holding it), and reads every ticket and match. Fails, naming the URL,
    /// when Redis cannot be reached.
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
        let connect = || async {
            client
                .get_connection_manager_with_config(config.clone())
                .await
                .map_err(|e| error(format!("cannot connect: {e}")))
        };
        let mut conn = connect().await?;
        // The stream reader blocks in XREAD: on its own connection.
        let tail_conn = connect().await?;
        let keys = Keys::new(prefix);
        let held = lease::try_acquire(&mut conn, &keys).await.map_err(error)?;
        let read = |e: redis::RedisError| error(format!("cannot read the tickets: {e}"));
        let (last, number) = tail::stream_end(&mut conn, &keys).await.map_err(read)?;
        let stored = load(&mut conn, &keys).await.map_err(read)?;
        match &held {
            Some(held) => {
                tracing::info!(url = %location, tickets = stored.tickets.len(), matches = stored.matches.len(), fence = held.fence, "redis ticket store opened; this replica holds the matching lease")
            }
            None => {
                tracing::info!(url = %location, tickets = stored.tickets.len(), "redis ticket store opened; another replica holds the matching lease, this one follows")
            }
        }
        let (durable_tx, durable) = watch::channel(Durable::default());
        let initial = held.as_ref().map(|h| h.token.clone());
        let (role, role_rx) = watch::channel(initial.clone());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            durable: durable_tx,
            location: format!("redis {location}"),
            origin: Uuid::new_v4().to_string(),
            role,
            term: Mutex::new(None),
        });
        let (events_tx, events) = mpsc::unbounded_channel();
        let writer = writer::Writer { conn: conn.clone(), keys: keys.clone(), shared: shared.clone() };
        let keeper = lease::LeaseKeeper { conn: conn.clone(), keys: keys.clone(), held, shared: shared.clone() };
        let tail = tail::Tail {
            conn: tail_conn,
            keys: keys.clone(),
            shared: shared.clone(),
            role: role_rx,
            events: events_tx,
            last,
            number,
        };
        let tasks = vec![tokio::spawn(writer.run()), tokio::spawn(keeper.run()), tokio::spawn(tail.run())];
        Ok(Self {
            shared,
            durable,
            loaded: Mutex::new(Some(stored)),
            initial,
            conn,
            keys,
            events: Mutex::new(Some(events)),
            tasks,
        })
    }

    /// The fencing token this replica holds the lease with, if it does now.
    pub fn token(&self) -> Option<String> {
        self.shared.role.borrow().clone()
    }
}

impl TicketStore for RedisStore {
    fn load(&self) -> Result<Stored, StoreError> {
        Ok(self.loaded.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default())
    }

    fn record(&self, change: Change) {
        let term = self.shared.term.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.seq += 1;
        let seq = pending.seq;
        pending.changes.push((seq, term, change));
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
            let dropped = done.dropped.0 <= target && target <= done.dropped.1 && target > 0;
            match done.error {
                Some(error) if done.seq < target || dropped => Err(StoreError::new(&location, error)),
                _ => Ok(()),
            }
        })
    }

    fn describe(&self) -> String {
        self.shared.location.clone()
    }

    fn term(&self) -> Option<String> {
        self.initial.clone()
    }

    fn begin_term(&self, term: Option<&str>) {
        *self.shared.term.lock().unwrap_or_else(PoisonError::into_inner) = term.map(Arc::from);
    }

    fn create(&self, ticket: &StoredTicket) -> Option<Creation> {
        let mut conn = self.conn.clone();
        let keys = self.keys.clone();
        let origin = self.shared.origin.clone();
        let location = self.shared.location.clone();
        let id = ticket.ticket.id.clone();
        let stored = serde_json::to_string(ticket).unwrap_or_default();
        let change = serde_json::to_string(&Change::Ticket(Box::new(ticket.clone()))).unwrap_or_default();
        let idem = ticket.ticket.idempotency_key.as_ref().map(|key| format!("{}{key}", keys.idem));
        Some(Box::pin(async move {
            let script = redis::Script::new(scripts::CREATE);
            let mut invocation = script.key(&keys.tickets);
            invocation.key(&keys.changes).key(&keys.counter);
            if let Some(idem) = &idem {
                invocation.key(idem);
            }
            invocation.arg(&id).arg(stored).arg(change).arg(origin).arg(STREAM_LENGTH);
            let named: String = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| StoreError::new(&location, format!("cannot write the ticket: {e}")))?;
            match Uuid::parse_str(&named) {
                Ok(existing) if named != id => Ok(Created::Existing(existing)),
                _ => Ok(Created::New),
            }
        }))
    }

    fn request_cancel(&self, id: Uuid) -> Option<Persisted> {
        let mut conn = self.conn.clone();
        let keys = self.keys.clone();
        let origin = self.shared.origin.clone();
        let location = self.shared.location.clone();
        Some(Box::pin(async move {
            let _: i64 = redis::Script::new(scripts::CANCEL)
                .key(&keys.changes)
                .key(&keys.counter)
                .arg(origin)
                .arg(id.to_string())
                .arg(STREAM_LENGTH)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| StoreError::new(&location, format!("cannot ask for the cancellation: {e}")))?;
            Ok(())
        }))
    }

    fn events(&self) -> Option<mpsc::UnboundedReceiver<StoreEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The writer flushes what is pending and gives the lease up, so another replica takes
        // over at once; the keeper and the reader stop.
        self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.shared.wake.notify_one();
        for task in self.tasks.iter().skip(1) {
            task.abort();
        }
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
            Ok(m) => fold.apply(Change::Match(Box::new(m))),
            Err(error) => tracing::warn!(r#match = %id, %error, "stored match skipped: it does not parse"),
        }
    }
    Ok(fold.into_stored())
}

#[cfg(test)]
mod tests {
    use super::writer::last_per_object;
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
