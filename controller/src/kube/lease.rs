//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Every replica starts, watches and serves health; only the holder of the Lease writes. The
//! decision (acquire, renew, follow) is the pure [`decide`]; [`LeaderElection`] does the I/O,
//! with each write guarded by the Lease's resourceVersion so two replicas can never both think
//! they won the same round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{Error, Result};

/// Name of the Lease the controller replicas compete for.
pub const LEASE_NAME: &str = "stadion-controller";
/// How long a holder's claim lasts without a renewal.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (well inside the duration, so one slow call does not lose it).
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(5);
/// How often a follower checks whether the Lease has expired.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// What a replica should do with the Lease it observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease exists: create one naming us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    Acquire,
    /// Someone else holds a live claim until `expires`.
    Follow {
        /// The current holder.
        holder: String,
        /// When its claim runs out unless renewed.
        expires: Timestamp,
    },
}

/// Decides what `identity` should do given the observed Lease spec (`None`: no Lease) at `now`.
/// A claim with no renew time or duration counts as expired, so a half-written Lease cannot
/// block election forever.
pub fn decide(observed: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = observed else { return LeaseDecision::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::Acquire;
    }
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return LeaseDecision::Acquire;
    };
    let expires = renewed.0.checked_add(SignedDuration::from_secs(i64::from(seconds.max(0)))).unwrap_or(Timestamp::MAX);
    if expires <= now { LeaseDecision::Acquire } else { LeaseDecision::Follow { holder: holder.to_owned(), expires } }
}

/// The Lease spec after `identity` carries out `decision` at `now` (`None` when following).
pub fn claimed_spec(
    previous: Option<&LeaseSpec>,
    decision: &LeaseDecision,
    identity: &str,
    now: Timestamp,
    duration: Duration,
) -> Option<LeaseSpec> {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let previous = previous.cloned().unwrap_or_default();
    match decision {
        LeaseDecision::Follow { .. } => None,
        LeaseDecision::Renew => {
            Some(LeaseSpec { renew_time: Some(MicroTime(now)), lease_duration_seconds: Some(seconds), ..previous })
        }
        LeaseDecision::Create | LeaseDecision::Acquire => Some(LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(
                previous.lease_transitions.unwrap_or(0) + i32::from(matches!(decision, LeaseDecision::Acquire)),
            ),
            ..previous
        }),
    }
}

/// A read handle on whether this replica currently leads.
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// Always the leader: for a single replica run with leader election off, and for tests.
    pub fn always() -> Self {
        Self(watch::channel(true).1)
    }

    /// Leadership as published on `rx` (tests, and embedding the election elsewhere).
    pub fn from_receiver(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// Whether this replica may write right now.
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// A receiver that changes whenever leadership flips.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

/// Competes for the Lease and keeps [`Leadership`] up to date.
pub struct LeaderElection {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    renew_interval: Duration,
    retry_interval: Duration,
    tx: watch::Sender<bool>,
}

impl LeaderElection {
    /// An election for [`LEASE_NAME`] through `api` (the controller's own namespace).
    pub fn new(api: Api<Lease>, identity: impl Into<String>) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(false);
        let election = Self {
            api,
            identity: identity.into(),
            duration: DEFAULT_LEASE_DURATION,
            renew_interval: DEFAULT_RENEW_INTERVAL,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            tx,
        };
        (election, Leadership(rx))
    }

    /// Overrides the lease duration and the renew/retry intervals (tests use short ones).
    pub fn with_timing(mut self, duration: Duration, renew: Duration, retry: Duration) -> Self {
        self.duration = duration;
        self.renew_interval = renew;
        self.retry_interval = retry;
        self
    }

    /// One round: read the Lease, decide, write if we lead or take over. Returns whether we
    /// lead afterwards. A 409 means another replica wrote first this round: we follow.
    pub async fn step(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(LEASE_NAME).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.identity, now);
        let Some(next) = claimed_spec(spec, &decision, &self.identity, now, self.duration) else {
            if let LeaseDecision::Follow { holder, .. } = &decision {
                debug!(%holder, "following the current leader");
            }
            return Ok(false);
        };
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(LEASE_NAME.to_owned()), ..ObjectMeta::default() },
                    spec: Some(next),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            Some(mut lease) => {
                // resourceVersion stays as read: a concurrent writer makes this a 409.
                lease.spec = Some(next);
                self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await.map(|_| ())
            }
        };
        match written {
            Ok(()) => {
                if decision != LeaseDecision::Renew {
                    info!(identity = %self.identity, ?decision, "acquired the controller lease");
                }
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Runs the election until `shutdown` resolves, then releases the Lease if held so the
    /// next replica takes over at once instead of after the full duration.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            let leading = match self.step().await {
                Ok(leading) => {
                    if leading {
                        last_renewal = tokio::time::Instant::now();
                    }
                    leading
                }
                Err(error) => {
                    warn!(%error, "leader election round failed");
                    // Keep leading through a blip, but never past our own claim's expiry.
                    *self.tx.borrow() && last_renewal.elapsed() < self.duration
                }
            };
            self.tx.send_if_modified(|was| std::mem::replace(was, leading) != leading);
            let wait = if leading { self.renew_interval } else { self.retry_interval };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if *self.tx.borrow() {
            self.tx.send_replace(false);
            if let Err(error) = self.release().await {
                warn!(%error, "could not release the controller lease; it expires on its own");
            }
        }
    }

    async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await?;
        info!(identity = %self.identity, "released the controller lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fixtures::{ApiServer, Expect};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn held(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", at(0)), LeaseDecision::Create);
        assert_eq!(decide(Some(&held("a", 0, 15)), "a", at(100)), LeaseDecision::Renew);
        assert_eq!(
            decide(Some(&held("b", 0, 15)), "a", at(14)),
            LeaseDecision::Follow { holder: "b".into(), expires: at(15) }
        );
        assert_eq!(decide(Some(&held("b", 0, 15)), "a", at(15)), LeaseDecision::Acquire);
        assert_eq!(decide(Some(&LeaseSpec::default()), "a", at(0)), LeaseDecision::Acquire);
        let no_renew = LeaseSpec { holder_identity: Some("b".into()), ..LeaseSpec::default() };
        assert_eq!(decide(Some(&no_renew), "a", at(0)), LeaseDecision::Acquire);
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_does_not() {
        let d = Duration::from_secs(15);
        let prev = LeaseSpec { lease_transitions: Some(3), ..held("b", 0, 15) };
        let taken = claimed_spec(Some(&prev), &LeaseDecision::Acquire, "a", at(20), d).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(20))));
        let renewed = claimed_spec(Some(&taken), &LeaseDecision::Renew, "a", at(25), d).unwrap();
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(20))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(25))));
        let follow = LeaseDecision::Follow { holder: "b".into(), expires: at(1) };
        assert!(claimed_spec(Some(&prev), &follow, "a", at(0), d).is_none());
    }

    #[tokio::test]
    async fn step_creates_the_lease_when_missing() {
        let (client, server) = ApiServer::start();
        let api: Api<Lease> = Api::namespaced(client, "stadion-system");
        let (election, _leadership) = LeaderElection::new(api, "replica-a");
        let path = "/apis/coordination.k8s.io/v1/namespaces/stadion-system/leases";
        let script = server.run(vec![
            Expect::get(&format!("{path}/{LEASE_NAME}")).respond_status(404),
            Expect::post(path).check(|body| assert_eq!(body["spec"]["holderIdentity"], "replica-a")).respond_echo(),
        ]);
        assert!(election.step().await.unwrap());
        script.await.unwrap();
    }

    #[tokio::test]
    async fn losing_the_race_means_following() {
        let (client, server) = ApiServer::start();
        let api: Api<Lease> = Api::namespaced(client, "stadion-system");
        let (election, _leadership) = LeaderElection::new(api, "replica-a");
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/stadion-system/leases/{LEASE_NAME}");
        let expired = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            spec: Some(held("replica-b", -100, 15)),
        };
        let script = server.run(vec![
            Expect::get(&path).respond_json(&expired),
            Expect::put(&path)
                .check(|body| {
                    assert_eq!(body["metadata"]["resourceVersion"], "7");
                    assert_eq!(body["spec"]["holderIdentity"], "replica-a");
                })
                .respond_status(409),
        ]);
        assert!(!election.step().await.unwrap());
        script.await.unwrap();
    }

    #[tokio::test]
    async fn run_leads_then_releases_on_shutdown() {
        let (client, server) = ApiServer::start();
        let api: Api<Lease> = Api::namespaced(client, "stadion-system");
        let (election, leadership) = LeaderElection::new(api, "replica-a");
        let path = "/apis/coordination.k8s.io/v1/namespaces/stadion-system/leases";
        let held = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                resource_version: Some("3".into()),
                ..ObjectMeta::default()
            },
            spec: Some(held("replica-a", 0, 15)),
        };
        let script = server.run(vec![
            Expect::get(&format!("{path}/{LEASE_NAME}")).respond_status(404),
            Expect::post(path).respond_echo(),
            Expect::get(&format!("{path}/{LEASE_NAME}")).respond_json(&held),
            Expect::put(&format!("{path}/{LEASE_NAME}"))
                .check(|body| {
                    assert!(body["spec"]["holderIdentity"].is_null(), "released: {body}");
                    assert_eq!(body["metadata"]["resourceVersion"], "3");
                })
                .respond_echo(),
        ]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(election.run(async {
            let _ = stopped.await;
        }));
        let mut leading = leadership.subscribe();
        leading.wait_for(|l| *l).await.unwrap();
        assert!(leadership.is_leader());
        stop.send(()).unwrap();
        running.await.unwrap();
        assert!(!leadership.is_leader(), "stops writing before it lets go");
        script.await.unwrap();
    }
}
