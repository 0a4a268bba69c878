//! The executors: how a GameServerSet, Fleet or FleetAutoscaler pass is carried out, written
//! once against the core's seams ([`ObjectStore`], [`Recorder`]) so the local runtime and the
//! kube runtime cannot drift apart. A runtime only decides when a pass runs (its queue, its
//! watches, leadership) and turns the [`Outcome`] into its own requeue.
//!
//! Every policy a pass follows is decided once, here or in the module it concerns:
//! - retries and errors: `Writes::settle`;
//! - when to come back: `Writes::outcome` and the constants below;
//! - recording a pass (metrics, the Warning Event of a failed one): `observed`;
//! - admission of sets and fleets (defaults written back, `Valid`): `admit_owner`;
//! - ownership (children by controller owner reference), node load and status writes: the
//!   kind's module ([`sets`], [`fleets`], [`autoscalers`]).

mod autoscalers;
mod fleets;
mod sets;

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use stadion_core::admission::{Admissible, HasConditions, admit, with_validity};
use stadion_core::object_key;
use stadion_core::store::{
    EventSubject, EventType, ObjectStore, Recorder, StoreError, StoreResult, StoredObject, reason,
};
use stadion_crds::{Fleet, FleetAutoscaler, GameServer, GameServerSet};
use tracing::Instrument;

pub use autoscalers::{WebhookClient, execute_autoscaler};
pub use fleets::execute_fleet;
pub use sets::execute_set;

/// Name of the GameServerSet executor in metrics and logs.
pub const SETS: &str = "gameserverset";
/// Name of the Fleet executor in metrics and logs.
pub const FLEETS: &str = "fleet";
/// Name of the FleetAutoscaler executor in metrics and logs.
pub const AUTOSCALERS: &str = "fleetautoscaler";

/// After a lost write race (Conflict, AlreadyExists): long enough for a watch cache to show the
/// winning write, so the re-plan does not lose the same race again.
pub const RETRY_SOON: Duration = Duration::from_millis(200);
/// After a failed pass: a broken store is not hammered.
pub const ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// After a pass that changed children: their change events bring the parent back anyway; this
/// covers one that got lost.
pub const SETTLE_CHECK: Duration = Duration::from_secs(5);
/// A settled parent is looked at again this often, so a missed change cannot strand it.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Where the executors read and write, and where they report: one object store per kind and
/// the recorder. The local runtime passes its embedded store for every kind; the kube runtime
/// its API-server stores.
#[derive(Clone, Copy)]
pub struct Seams<'a> {
    /// GameServers.
    pub gameservers: &'a dyn ObjectStore<GameServer>,
    /// GameServerSets.
    pub sets: &'a dyn ObjectStore<GameServerSet>,
    /// Fleets.
    pub fleets: &'a dyn ObjectStore<Fleet>,
    /// FleetAutoscalers.
    pub autoscalers: &'a dyn ObjectStore<FleetAutoscaler>,
    /// Events and reconcile metrics.
    pub recorder: &'a dyn Recorder,
}

/// What a finished pass asks of its runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Run another pass on this object after the delay.
    RequeueAfter(Duration),
    /// Nothing to do until the object changes.
    AwaitChange,
}

/// The store operation a pass was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Reading the objects the pass decides from.
    Read,
    /// Creating an object.
    Create,
    /// Replacing an object (guarded by its resourceVersion).
    Replace,
    /// Writing an object's status.
    ReplaceStatus,
    /// Deleting an object.
    Delete,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Replace => "update",
            Self::ReplaceStatus => "update the status of",
            Self::Delete => "delete",
        }
    }
}

/// A pass that had to stop: the store refused something other than a lost race or a vanished
/// object. The runtime backs off ([`ERROR_BACKOFF`]); the pass was already recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} {kind} {key}: {source}", operation.verb())]
pub struct ExecError {
    /// What was being done.
    pub operation: Operation,
    /// The kind of the object it was done to.
    pub kind: &'static str,
    /// `namespace/name` of that object (the namespace alone for a list).
    pub key: String,
    /// What the store said.
    #[source]
    pub source: StoreError,
}

impl ExecError {
    /// A short stable label for metrics (`error` of the reconcile error counter).
    pub fn kind(&self) -> &'static str {
        match self.operation {
            Operation::Read => "read_failed",
            Operation::Create => "create_failed",
            Operation::Replace | Operation::ReplaceStatus => "update_failed",
            Operation::Delete => "delete_failed",
        }
    }

    /// The Event reason that reports it (Kubernetes' `Failed*`).
    pub fn reason(&self) -> &'static str {
        match self.operation {
            Operation::Read => reason::FAILED_READ,
            Operation::Create => reason::FAILED_CREATE,
            Operation::Replace | Operation::ReplaceStatus => reason::FAILED_UPDATE,
            Operation::Delete => reason::FAILED_DELETE,
        }
    }

    /// How long the runtime waits before the next pass on the object.
    pub fn backoff(&self) -> Duration {
        ERROR_BACKOFF
    }
}

/// Bookkeeping of one pass's writes: whether one lost a race.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    retry_soon: bool,
}

impl Writes {
    /// The retry policy of every executor, decided here once:
    /// - Conflict or AlreadyExists: another writer got there first. The pass carries on with
    ///   what else it planned and asks to run again soon, when it re-plans from fresh state;
    ///   forcing its stale decision through could undo an allocation.
    /// - NotFound on a replace, status write or delete: the object is already gone (or going),
    ///   which is what a delete wanted and makes an update moot.
    /// - Anything else stops the pass and is returned to the runtime, which backs off; the
    ///   failure is recorded by `observed`. Nothing is dropped silently.
    ///
    /// `Ok(Some(_))` is a write that happened; `Ok(None)` one that was settled without it.
    pub(crate) fn settle<T, K: StoredObject>(
        &mut self,
        operation: Operation,
        key: &str,
        result: StoreResult<T>,
    ) -> Result<Option<T>, ExecError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                tracing::debug!(kind = K::KIND, key, ?operation, "lost a write race; re-planning soon");
                self.retry_soon = true;
                Ok(None)
            }
            Err(StoreError::NotFound { .. })
                if matches!(operation, Operation::Replace | Operation::ReplaceStatus | Operation::Delete) =>
            {
                Ok(None)
            }
            Err(source) => Err(ExecError { operation, kind: K::KIND, key: key.to_owned(), source }),
        }
    }

    /// `planned`, unless a write lost a race: then soon.
    pub(crate) fn outcome(&self, planned: Outcome) -> Outcome {
        match planned {
            _ if !self.retry_soon => planned,
            Outcome::RequeueAfter(after) => Outcome::RequeueAfter(after.min(RETRY_SOON)),
            Outcome::AwaitChange => Outcome::RequeueAfter(RETRY_SOON),
        }
    }
}

/// A read the pass cannot do without: any failure stops it (there is nothing to decide from).
pub(crate) fn read<T, K: StoredObject>(scope: &str, result: StoreResult<T>) -> Result<T, ExecError> {
    result.map_err(|source| ExecError { operation: Operation::Read, kind: K::KIND, key: scope.to_owned(), source })
}

/// How long from `now` until `at` (zero when past).
pub(crate) fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// `namespace/name` of `object`.
pub(crate) fn key_of<K: StoredObject>(object: &K) -> String {
    object_key(object.namespace_or_default(), object.name_or_empty())
}

/// Runs one pass of `controller` on `object` inside a span, and records it: the reconcile
/// metric always, and for a failed pass a Warning Event on the object with the failure. The
/// runtimes' own wrappers only map the result onto their requeue.
pub(crate) async fn observed<K: StoredObject>(
    controller: &'static str,
    object: &K,
    recorder: &dyn Recorder,
    work: impl Future<Output = Result<Outcome, ExecError>>,
) -> Result<Outcome, ExecError> {
    let key = key_of(object);
    let span = tracing::info_span!("reconcile", controller, kind = K::KIND, object = %key);
    let started = Instant::now();
    let result = work.instrument(span).await;
    match &result {
        Ok(_) => recorder.reconciled(controller, started.elapsed(), None),
        Err(error) => {
            let subject = EventSubject::of(object);
            recorder.event(&subject, EventType::Warning, error.reason(), error.to_string()).await;
            recorder.reconciled(controller, started.elapsed(), Some(error.kind()));
        }
    }
    result
}

/// Admission of a GameServerSet or Fleet, the one place both runtimes run it (through
/// [`stadion_core::admission`]): an object stored without its defaults gets them written back,
/// and the pass ends (the write's change event brings the defaulted object back); an invalid
/// one gets `Valid=False` with every problem, plus a Warning Event, both only when that changes,
/// and the pass ends until the object changes. `None`: admitted, carry on.
pub(crate) async fn admit_owner<K>(
    object: &K,
    store: &dyn ObjectStore<K>,
    recorder: &dyn Recorder,
    now: Timestamp,
    writes: &mut Writes,
) -> Result<Option<Outcome>, ExecError>
where
    K: Admissible + HasConditions + StoredObject,
{
    let key = key_of(object);
    let admitted = admit(object);
    if admitted.defaulted {
        writes.settle::<_, K>(Operation::Replace, &key, store.replace(&admitted.object).await)?;
        return Ok(Some(writes.outcome(Outcome::AwaitChange)));
    }
    if admitted.is_valid() {
        return Ok(None);
    }
    if let Some(marked) = with_validity(object, &admitted.errors, now)
        && writes.settle::<_, K>(Operation::ReplaceStatus, &key, store.replace_status(&marked).await)?.is_some()
    {
        tracing::warn!(kind = K::KIND, object = %key, errors = %admitted.errors, "spec is invalid");
        let subject = EventSubject::of(object);
        recorder.event(&subject, EventType::Warning, reason::VALIDATION_FAILED, admitted.errors.to_string()).await;
    }
    Ok(Some(writes.outcome(Outcome::AwaitChange)))
}

#[cfg(test)]
mod tests;
