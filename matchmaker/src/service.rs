//! The matchmaker service: tickets, the engine loop and allocation, behind [`Matchmaker`].
//!
//! Synchronous state lives behind one mutex ([`state::State`]), which records every change in
//! a [`TicketStore`]; the background loop ([`Matchmaker::run`]) ticks the engine and spawns one
//! allocation task per match. The HTTP layer only calls the methods here.

mod admission;
mod allocation;
mod matcher;
mod replica;
mod state;
mod submit;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};

use stadion_crds::FieldErrors;
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationState, GameServerAllocationStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use uuid::Uuid;

use crate::agones_allocation::AgonesAllocationService;
use admission::{Admission, Admit, Admitted};
use matcher::Matcher;

use crate::config::MatchmakerConfig;
use crate::config::validate::dns_label;
use crate::engine::Millis;
use crate::metrics::Metrics;
use crate::store::{JournalStore, MemoryStore, RedisStore, StoreEvent, TicketStore};
use crate::ticket::{Ticket, TicketRequest};
use crate::{AllocateError, AllocationOutcome, Allocator, Error};
use stadion_core::allocator::admit_allocation;

pub use allocation::Backoff;
pub use state::QueueChanges;

/// The matchmaker: cheap to clone, every clone shares the same state.
#[derive(Clone)]
pub struct Matchmaker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration in force; [`Matchmaker::reconfigure`] swaps it.
    config: RwLock<Arc<MatchmakerConfig>>,
    allocator: Arc<dyn Allocator>,
    state: Mutex<state::State>,
    /// New tickets' admission, taken without the state lock.
    admission: Arc<Admission>,
    metrics: Arc<Metrics>,
    store: Arc<dyn TicketStore>,
    /// Matches formed outside a tick (on arrival, or restored from the store) for the loop
    /// to allocate.
    jobs: mpsc::UnboundedSender<state::Job>,
    /// The loop's end of `jobs`, taken when it starts.
    job_queue: Mutex<Option<mpsc::UnboundedReceiver<state::Job>>>,
    /// What other replicas change, on a store several share (see [`replica`]); taken by the
    /// loop. `None` on a store only this process uses.
    store_events: Mutex<Option<mpsc::UnboundedReceiver<StoreEvent>>>,
    /// The store is shared with other replicas.
    shared: bool,
    /// The clock: Unix milliseconds when the matchmaker started, plus monotonic time since.
    base: Millis,
    epoch: Instant,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Matchmaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matchmaker").field("queues", &self.config().queues.len()).finish_non_exhaustive()
    }
}

impl Matchmaker {
    /// A matchmaker for `config` (validated again here) allocating through `allocator`, with
    /// its tickets in memory, or journaled in `config.state_dir` when set (resuming what the
    /// journal holds).
    /// A config naming a Redis store needs [`Matchmaker::open`], which can connect.
    pub fn new(config: MatchmakerConfig, allocator: Arc<dyn Allocator>) -> Result<Self, Error> {
        config.validate()?;
        let store: Arc<dyn TicketStore> = match (&config.state_dir, &config.redis) {
            (_, Some(url)) => {
                return Err(Error::Store(crate::store::StoreError {
                    location: format!("redis {}", crate::store::redacted(url)),
                    message: "a Redis store is opened with Matchmaker::open".to_owned(),
                }));
            }
            (Some(dir), None) => Arc::new(JournalStore::open_syncing(dir, config.state_sync.unwrap_or_default())?),
            (None, None) => Arc::new(MemoryStore),
        };
        Self::with_store(config, allocator, store)
    }

    /// [`Matchmaker::new`] for every store: with `config.redis` set, connects to Redis and
    /// resumes what it holds (failing, naming the URL, when it cannot be reached).
    pub async fn open(config: MatchmakerConfig, allocator: Arc<dyn Allocator>) -> Result<Self, Error> {
        config.validate()?;
        match &config.redis {
            Some(url) => {
                let store = Arc::new(RedisStore::connect(url).await?);
                Self::with_store(config, allocator, store)
            }
            None => Self::new(config, allocator),
        }
    }

    /// A matchmaker keeping its tickets in `store`, resuming every ticket and waiting match the
    /// store holds (matches are allocated again once [`Matchmaker::run`] starts).
    pub fn with_store(
        config: MatchmakerConfig,
        allocator: Arc<dyn Allocator>,
        store: Arc<dyn TicketStore>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let stored = store.load()?;
        let metrics = Arc::new(Metrics::new());
        let retention = config.assigned_retention.as_millis() as Millis;
        let mut state = state::State::new(&config.queues, retention, metrics.clone(), store.clone());
        let term = store.term();
        state.set_matching(term.is_some());
        store.begin_term(term.as_deref());
        let store_events = store.events();
        let base = unix_millis();
        let (jobs, job_queue) = mpsc::unbounded_channel();
        for job in state.restore(stored, base) {
            let _ = jobs.send(job);
        }
        tracing::info!(store = %store.describe(), "matchmaker ticket store");
        let (closing, _) = watch::channel(false);
        let config = RwLock::new(Arc::new(config));
        let admission = state.admission();
        let inner = Inner {
            config,
            allocator,
            state: Mutex::new(state),
            admission,
            metrics,
            store,
            jobs,
            job_queue: Mutex::new(Some(job_queue)),
            shared: store_events.is_some(),
            store_events: Mutex::new(store_events),
            base,
            epoch: Instant::now(),
            closing,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The configuration it runs with now.
    pub fn config(&self) -> Arc<MatchmakerConfig> {
        self.inner.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Switches a running matchmaker to `config` (validated here first; on error nothing
    /// changes): queues are added, changed or removed, tickets in unchanged queues keep
    /// waiting as they were, searching tickets of a changed queue are re-checked against its
    /// new rules (failed if they no longer fit), those of a removed queue fail. Matches already
    /// formed are allocated as formed. `tickInterval` and `assignedRetention` apply at once;
    /// the `http` section (body limit, auth) is bound when the server starts, so a change there
    /// waits for a restart and is reported in [`Reconfigured::http_changed`].
    pub fn reconfigure(&self, mut config: MatchmakerConfig) -> Result<Reconfigured, Error> {
        config.validate()?;
        let previous = self.config();
        // The store stays the one opened at start.
        if config.state_dir.is_some() && config.state_dir != previous.state_dir {
            tracing::warn!(now = ?previous.state_dir, edited = ?config.state_dir, "stateDir changes apply when the matchmaker restarts");
        }
        config.state_dir.clone_from(&previous.state_dir);
        if config.state_sync.is_some() && config.state_sync != previous.state_sync {
            tracing::warn!(now = ?previous.state_sync, edited = ?config.state_sync, "stateSync changes apply when the matchmaker restarts");
        }
        config.state_sync = previous.state_sync;
        if config.redis.is_some() && config.redis != previous.redis {
            tracing::warn!("redis changes apply when the matchmaker restarts");
        }
        config.redis.clone_from(&previous.redis);
        let http_changed = serde_json::to_value(&previous.http).ok() != serde_json::to_value(&config.http).ok()
            || previous.http.tokens != config.http.tokens;
        let retention = config.assigned_retention.as_millis() as Millis;
        let now = self.now();
        let queues = self.with_state(|state| state.reconfigure(&config.queues, retention, now));
        *self.inner.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        tracing::info!(added = ?queues.added, changed = ?queues.changed, removed = ?queues.removed, failed_tickets = queues.failed_tickets, "matchmaker configuration reloaded");
        Ok(Reconfigured { queues, http_changed })
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn now(&self) -> Millis {
        self.inner.base + self.inner.epoch.elapsed().as_millis() as Millis
    }

    /// Resolves once every change made so far is durable in the store.
    async fn persisted(&self) -> Result<(), Error> {
        self.inner.store.persisted().await.map_err(Error::Store)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut state::State) -> T) -> T {
        // A panic while holding the lock leaves state that is still internally consistent
        // per transition, so keep serving rather than poisoning every later request.
        let mut guard = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Tickets admitted meanwhile enter first, so every reader sees them.
        guard.drain_inbox();
        let result = f(&mut guard);
        // Matches formed and backfills placed by this change go to the loop.
        let arrivals = guard.take_arrivals();
        drop(guard);
        for job in arrivals {
            let _ = self.inner.jobs.send(job);
        }
        result
    }

    /// Creates a ticket (`true`), or returns the earlier one for the same idempotency key
    /// (`false`). `header_key` is the `Idempotency-Key` header, if any. Returns once the store
    /// holds the ticket durably.
    ///
    /// Validation and admission (idempotency, live players) never take the state lock, so a
    /// submission never waits for a matching round: when a round's slice holds the lock, the
    /// ticket waits in the admission inbox and the next holder of the lock matches it.
    pub async fn submit(&self, request: TicketRequest, header_key: Option<String>) -> Result<(Ticket, bool), Error> {
        let config = self.config();
        let queue = config.queue(&request.queue);
        let prepared = submit::prepare(request, header_key, queue)?;
        let now = self.now();
        let timeout = queue.map_or(0, |q| q.ticket_timeout.as_millis() as Millis);
        let admitted = Admitted::new(prepared, now, now + timeout);
        if self.inner.shared {
            return self.submit_shared(admitted).await;
        }
        let id = admitted.id;
        let mut view = admitted.view.clone();
        match self.inner.admission.admit(admitted, self.inner.store.as_ref())? {
            // A retry: the earlier ticket as it is now, once the store holds it (the first
            // attempt may have been answered 503 before its write reached the store).
            Admit::Existing(existing) => {
                self.persisted().await?;
                return Ok((self.ticket(&existing.to_string())?, false));
            }
            Admit::New => {}
        }
        if let Some(current) = self.match_if_idle(id) {
            view = current;
        }
        self.persisted().await?;
        Ok((view, true))
    }

    /// Moves admitted tickets into the state and matches them now, unless a round's slice holds
    /// the state lock (it then does so itself); returns ticket `id` as it is afterwards if that
    /// is no longer as admitted (searching).
    fn match_if_idle(&self, id: Uuid) -> Option<Ticket> {
        let mut state = match self.inner.state.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        state.drain_inbox();
        let current = state.ticket_if_moved_on(id);
        let arrivals = state.take_arrivals();
        drop(state);
        for job in arrivals {
            let _ = self.inner.jobs.send(job);
        }
        current
    }

    /// The ticket with `id`.
    pub fn ticket(&self, id: &str) -> Result<Ticket, Error> {
        self.with_state(|state| state.ticket(id))
    }

    /// Cancels a ticket not yet assigned (`Conflict` if it is assigned, timed out or failed).
    /// Returns once the store holds the cancellation durably.
    /// On a replica that does not match (see [`replica`]), the one that does decides.
    pub async fn cancel(&self, id: &str) -> Result<Ticket, Error> {
        if self.inner.shared && !self.is_matching() {
            return self.cancel_forwarded(id).await;
        }
        let now = self.now();
        let cancelled = self.with_state(|state| state.cancel(id, now))?;
        self.persisted().await?;
        Ok(cancelled)
    }

    /// The ticket's state now and on every change; the sender closes when it is forgotten.
    pub fn watch(&self, id: &str) -> Result<watch::Receiver<Arc<Ticket>>, Error> {
        self.with_state(|state| state.watch(id))
    }

    /// Allocates a server directly (for backends that match on their own).
    pub async fn allocate(&self, mut request: GameServerAllocation) -> Result<GameServerAllocationStatus, Error> {
        check_direct_allocation(&mut request)?;
        let metrics = &self.inner.metrics;
        // This route's one admission of the request: defaults and every rule, in core.
        let admitted = admit_allocation(request).map_err(|errors| {
            metrics.allocation_failure("direct", "invalid");
            Error::Invalid(errors)
        })?;
        let result = self.inner.allocator.allocate(admitted).await;
        match result {
            Ok(AllocationOutcome::Allocated(mut status)) => {
                metrics.allocation("direct");
                status.state = GameServerAllocationState::Allocated;
                Ok(status)
            }
            Ok(AllocationOutcome::UnAllocated) => {
                metrics.allocation_failure("direct", "unavailable");
                Err(Error::Unavailable)
            }
            Ok(AllocationOutcome::Contention) => {
                metrics.allocation_failure("direct", "contention");
                Err(Error::Contention)
            }
            Err(AllocateError::Invalid(errors)) => {
                metrics.allocation_failure("direct", "invalid");
                Err(Error::Invalid(errors))
            }
            Err(AllocateError::Backend(message)) => {
                metrics.allocation_failure("direct", "backend");
                Err(Error::Backend(message))
            }
        }
    }

    /// Agones' allocation API (gRPC and REST) over this matchmaker's allocator and metrics.
    pub fn agones_allocation(&self) -> AgonesAllocationService {
        AgonesAllocationService::new(self.inner.allocator.clone(), self.inner.metrics.clone())
    }

    /// Runs one engine round now (the background loop calls this every `tickInterval`) in
    /// slices of [`ROUND_SLICE`] anchors, releasing the state lock between them, and starts
    /// allocating the matches it formed (and those formed on arrival meanwhile) on `tasks`.
    async fn tick(
        &self,
        matcher: &Matcher,
        tasks: &mut JoinSet<()>,
        arrivals: &mut mpsc::UnboundedReceiver<state::Job>,
    ) {
        let now = self.now();
        let mut round = self.with_state(|state| state.begin_round(now));
        while !round.is_done() {
            // A slice is CPU-bound; keep it off the async workers that serve HTTP, on a
            // thread that yields the CPU to them.
            let matchmaker = self.clone();
            let slice = matcher
                .run(move || {
                    let jobs = matchmaker.with_state(|state| state.step(&mut round, ROUND_SLICE));
                    (round, jobs)
                })
                .await;
            let jobs = match slice {
                Ok((next, jobs)) => {
                    round = next;
                    jobs
                }
                Err(error) => {
                    tracing::error!(%error, "engine round cut short");
                    return;
                }
            };
            for job in jobs {
                tasks.spawn(allocation::run(self.clone(), job));
            }
            while let Ok(job) = arrivals.try_recv() {
                tasks.spawn(allocation::run(self.clone(), job));
            }
        }
    }

    /// Starts the background loop (engine ticks, timeouts, retention, allocations) until
    /// `shutdown` resolves; in-flight allocation tasks are then stopped.
    pub fn run(&self, shutdown: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        let matchmaker = self.clone();
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            let taken = matchmaker.inner.job_queue.lock().unwrap_or_else(PoisonError::into_inner).take();
            let Some(mut arrivals) = taken else {
                tracing::error!("the matchmaker loop is already running");
                return;
            };
            let matcher = match Matcher::start() {
                Ok(matcher) => matcher,
                Err(error) => {
                    tracing::error!(%error, "cannot start the matching thread; the matchmaker loop stops");
                    return;
                }
            };
            let ticks = |period| {
                let mut interval = tokio::time::interval(period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            };
            let mut interval = ticks(matchmaker.config().tick_interval);
            let taken = matchmaker.inner.store_events.lock().unwrap_or_else(PoisonError::into_inner).take();
            let (mut store_events, shared) = match taken {
                Some(events) => (events, true),
                // Never yields: nothing is shared.
                None => (mpsc::unbounded_channel().1, false),
            };
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = interval.tick() => {
                        // A follower neither times out nor matches: the replica that matches does.
                        if !shared || matchmaker.is_matching() {
                            matchmaker.tick(&matcher, &mut tasks, &mut arrivals).await;
                        }
                    }
                    Some(event) = store_events.recv(), if shared => {
                        matchmaker.on_store_event(event, &mut tasks, &mut arrivals).await;
                    }
                    Some(job) = arrivals.recv() => {
                        tasks.spawn(allocation::run(matchmaker.clone(), job));
                    }
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                }
                // A reloaded configuration may have a new tickInterval.
                let period = matchmaker.config().tick_interval;
                if period != interval.period() {
                    interval = ticks(period);
                }
            }
            tasks.shutdown().await;
            tracing::info!("matchmaker loop stopped");
        })
    }

    /// Ends every open event stream, so a graceful HTTP shutdown is not held up by them.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`Matchmaker::close`] has been called.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }
}

/// Anchors one slice of a round tries while holding the state lock (about a millisecond of
/// work), so a submission never waits behind a large backlog's round.
const ROUND_SLICE: usize = 256;

/// The wall clock in Unix milliseconds (0 before 1970, which no real clock reports).
fn unix_millis() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// What [`Matchmaker::reconfigure`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Queues added, changed and removed, and the searching tickets that failed for it.
    pub queues: QueueChanges,
    /// The `http` section differs; it applies when the matchmaker restarts.
    pub http_changed: bool,
}

/// Checks the envelope, which admission does not: kind, apiVersion and namespace.
fn check_direct_allocation(request: &mut GameServerAllocation) -> Result<(), Error> {
    let mut errors = FieldErrors::default();
    if !request.api_version.is_empty() && request.api_version != "allocation.agones.dev/v1" {
        errors.push("apiVersion", "must be allocation.agones.dev/v1");
    }
    if !request.kind.is_empty() && request.kind != "GameServerAllocation" {
        errors.push("kind", "must be GameServerAllocation");
    }
    let namespace = request.metadata.namespace.get_or_insert_with(|| "default".to_owned());
    if let Err(message) = dns_label(namespace) {
        errors.push("metadata.namespace", message);
    }
    errors.into_result().map_err(Error::Invalid)
}

#[cfg(test)]
mod tests;
