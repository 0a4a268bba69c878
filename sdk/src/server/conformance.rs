//! Agones' SDK conformance mode (`sdk-server --test=ready,allocate,… --timeout=N`): the sidecar
//! records which calls a client made and, when the run ends, compares that set with the expected
//! one. The official SDKs' conformance clients are written against this contract.
//!
//! Call names are the lowercase rpc names, except `GetGameServer` (`gameserver`) and
//! `WatchGameServer` (`watch`), and UpdateCounter, which is recorded per field set as Agones'
//! local SDK server does: `setcapacitycounter`, `setcountcounter`, `updatecounter` (a diff). `setlabel` counts only when the value is the GameServer's
//! creation timestamp (unix seconds) and `setannotation` only when it is the GameServer's uid:
//! that is how the clients prove they read their GameServer correctly.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use stadion_crds::GameServer;
use tokio::sync::watch;

use super::{CallObserver, SdkCall};

/// Records the conformance names of the calls a sidecar serves.
#[derive(Debug)]
pub struct ConformanceRecorder {
    game_server: watch::Receiver<Arc<GameServer>>,
    received: Mutex<BTreeSet<String>>,
    rejected: Mutex<Vec<String>>,
}

/// How a conformance run ended when it did not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance test failed: expected {expected:?}, received {received:?}{}", rejected_note(.rejected))]
pub struct ConformanceMismatch {
    /// The expected call names.
    pub expected: BTreeSet<String>,
    /// The call names received.
    pub received: BTreeSet<String>,
    /// Calls not counted because their value was not the expected one.
    pub rejected: Vec<String>,
}

fn rejected_note(rejected: &[String]) -> String {
    if rejected.is_empty() { String::new() } else { format!("; not counted: {}", rejected.join("; ")) }
}

impl ConformanceRecorder {
    /// A recorder that reads the GameServer (for the creation timestamp and uid) from `game_server`.
    pub fn new(game_server: watch::Receiver<Arc<GameServer>>) -> Arc<Self> {
        Arc::new(Self { game_server, received: Mutex::default(), rejected: Mutex::default() })
    }

    /// The observer to give the sidecar ([`ServeOptions::observer`](super::ServeOptions)).
    pub fn observer(self: &Arc<Self>) -> CallObserver {
        let recorder = self.clone();
        Arc::new(move |call: &SdkCall| recorder.record(call))
    }

    /// Records one call.
    pub fn record(&self, call: &SdkCall) {
        let names = conformance_names(call);
        let name = names.join(",");
        let gs = self.game_server.borrow().clone();
        let check = match call {
            SdkCall::SetLabel { value, .. } => {
                let created = gs.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second().to_string());
                Some((value, created.unwrap_or_default(), "creation timestamp"))
            }
            SdkCall::SetAnnotation { value, .. } => Some((value, gs.metadata.uid.clone().unwrap_or_default(), "uid")),
            _ => None,
        };
        if let Some((value, wanted, what)) = check
            && *value != wanted
        {
            lock(&self.rejected).push(format!("{name} value {value:?} is not the {what} {wanted:?}"));
            return;
        }
        lock(&self.received).extend(names);
    }

    /// The call names received so far.
    pub fn received(&self) -> BTreeSet<String> {
        lock(&self.received).clone()
    }

    /// Compares what was received with `expected` (a set: order and repeats do not matter).
    pub fn verdict<S: AsRef<str>>(&self, expected: &[S]) -> Result<BTreeSet<String>, ConformanceMismatch> {
        let expected: BTreeSet<String> =
            expected.iter().map(|s| s.as_ref().trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        let received = self.received();
        if expected == received {
            Ok(received)
        } else {
            Err(ConformanceMismatch { expected, received, rejected: lock(&self.rejected).clone() })
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is one insert or clone: a poisoned lock still holds whole data.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The names a conformance run expects for `call` (UpdateCounter: one per field it sets).
pub fn conformance_names(call: &SdkCall) -> Vec<String> {
    match call {
        SdkCall::GetGameServer => vec!["gameserver".to_owned()],
        SdkCall::WatchGameServer => vec!["watch".to_owned()],
        SdkCall::UpdateCounter { count, capacity, diff, .. } => {
            let mut names = Vec::new();
            if capacity.is_some() {
                names.push("setcapacitycounter".to_owned());
            }
            if count.is_some() {
                names.push("setcountcounter".to_owned());
            }
            if *diff != 0 {
                names.push("updatecounter".to_owned());
            }
            names
        }
        other => vec![other.rpc().to_ascii_lowercase()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stadion_crds::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn recorder() -> Arc<ConformanceRecorder> {
        let mut gs = GameServer::new("local", Default::default());
        gs.metadata.uid = Some("uid-1".into());
        gs.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(1_700_000_000).unwrap()));
        let (_tx, rx) = watch::channel(Arc::new(gs));
        ConformanceRecorder::new(rx)
    }

    #[test]
    fn names_follow_agones_and_the_set_must_match_exactly() {
        let r = recorder();
        for call in [
            SdkCall::Ready,
            SdkCall::GetGameServer,
            SdkCall::WatchGameServer,
            SdkCall::Health,
            SdkCall::Health,
            SdkCall::Reserve { seconds: 5 },
            SdkCall::SetLabel { key: "creation".into(), value: "1700000000".into() },
            SdkCall::SetAnnotation { key: "uid".into(), value: "uid-1".into() },
        ] {
            r.record(&call);
        }
        let expected = ["ready", "gameserver", "watch", "health", "reserve", "setlabel", "setannotation"];
        assert!(r.verdict(&expected).is_ok());
        let missing = r.verdict(&[&expected[..], &["shutdown"]].concat()).unwrap_err();
        assert!(!missing.received.contains("shutdown"));
        let unexpected = r.verdict(&expected[..6]).unwrap_err();
        assert!(unexpected.received.contains("setannotation"));
    }

    #[test]
    fn counter_updates_are_named_by_the_fields_they_set() {
        let r = recorder();
        let update = |count, capacity, diff| SdkCall::UpdateCounter { name: "rooms".into(), count, capacity, diff };
        r.record(&update(None, Some(42), -1));
        assert_eq!(r.received(), ["setcapacitycounter", "updatecounter"].map(String::from).into());
        r.record(&update(Some(40), Some(42), 0));
        r.record(&SdkCall::GetCounter { name: "rooms".into() });
        let expected = ["setcapacitycounter", "setcountcounter", "updatecounter", "getcounter"];
        assert!(r.verdict(&expected).is_ok(), "{:?}", r.received());
    }

    #[test]
    fn label_and_annotation_count_only_with_the_right_values() {
        let r = recorder();
        r.record(&SdkCall::SetLabel { key: "creation".into(), value: "123".into() });
        r.record(&SdkCall::SetAnnotation { key: "uid".into(), value: "someone-else".into() });
        let mismatch = r.verdict(&["setlabel", "setannotation"]).unwrap_err();
        assert!(mismatch.received.is_empty());
        assert_eq!(mismatch.rejected.len(), 2);
        assert!(mismatch.to_string().contains("creation timestamp"), "{mismatch}");
    }
}
