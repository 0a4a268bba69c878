//! The live feed: one hub per dashboard recomputes the picture at most every [`FRAME_PERIOD`]
//! while someone watches, and sends each watcher the full picture once, then only what changed
//! (servers added, changed or removed; the fleet and matchmaker panels when they changed).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::{broadcast, watch};

use super::DashboardSource;
use super::matchmaker::{MatchmakerFeed, view};
use super::snapshot::{fleets, rows};

/// At most this many frames a second reach a watcher, however fast the fleet changes.
pub const FRAME_PERIOD: Duration = Duration::from_millis(250);

/// Deltas a slow watcher may fall behind before it is sent the full picture again.
const BACKLOG: usize = 64;

pub(super) struct Hub {
    source: Arc<dyn DashboardSource>,
    matchmaker: Option<Arc<dyn MatchmakerFeed>>,
    state: Mutex<Picture>,
    deltas: broadcast::Sender<Arc<Delta>>,
    closing: watch::Sender<bool>,
    ticking: AtomicBool,
}

/// The picture last sent, each part as the JSON the page reads.
#[derive(Default)]
struct Picture {
    seq: u64,
    rows: BTreeMap<String, String>,
    fleets: String,
    matchmaker: String,
}

/// What changed between two pictures, as the JSON of one `delta` event.
pub(super) struct Delta {
    seq: u64,
    json: String,
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn json_list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let mut out = String::from("[");
    for (n, item) in items.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

impl Hub {
    pub(super) fn new(source: Arc<dyn DashboardSource>, matchmaker: Option<Arc<dyn MatchmakerFeed>>) -> Self {
        let (deltas, _) = broadcast::channel(BACKLOG);
        let (closing, _) = watch::channel(false);
        Self { source, matchmaker, state: Mutex::default(), deltas, closing, ticking: AtomicBool::new(false) }
    }

    fn picture(&self) -> std::sync::MutexGuard<'_, Picture> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every live stream (the server is stopping).
    pub(super) fn close(&self) {
        let _ = self.closing.send(true);
    }

    /// Recomputes the picture and, when it changed, tells every watcher what changed.
    pub(super) fn refresh(&self) {
        let objects = self.source.objects();
        let now = unix_ms();
        let rows: BTreeMap<String, String> = rows(&objects)
            .into_iter()
            .map(|row| {
                let json = serde_json::to_string(&row).unwrap_or_default();
                (row.key, json)
            })
            .collect();
        let fleets = serde_json::to_string(&fleets(&objects)).unwrap_or_default();
        let matchmaker = match &self.matchmaker {
            Some(feed) => serde_json::to_string(&view(&feed.summary(), now)).unwrap_or_default(),
            None => "null".to_owned(),
        };
        let mut picture = self.picture();
        let upserts: Vec<&String> =
            rows.iter().filter(|(key, json)| picture.rows.get(*key) != Some(*json)).map(|(_, json)| json).collect();
        let removed: Vec<String> = picture
            .rows
            .keys()
            .filter(|key| !rows.contains_key(*key))
            .map(|key| serde_json::to_string(key).unwrap_or_default())
            .collect();
        let fleets_changed = picture.fleets != fleets;
        let matchmaker_changed = picture.matchmaker != matchmaker;
        if upserts.is_empty() && removed.is_empty() && !fleets_changed && !matchmaker_changed && picture.seq > 0 {
            return;
        }
        let seq = picture.seq + 1;
        let mut json = format!("{{\"seq\":{seq},\"nowMs\":{now}");
        if !upserts.is_empty() {
            json.push_str(",\"upsert\":");
            json.push_str(&json_list(upserts.into_iter()));
        }
        if !removed.is_empty() {
            json.push_str(",\"remove\":");
            json.push_str(&json_list(removed.iter()));
        }
        if fleets_changed {
            json.push_str(",\"fleets\":");
            json.push_str(&fleets);
        }
        if matchmaker_changed {
            json.push_str(",\"matchmaker\":");
            json.push_str(&matchmaker);
        }
        json.push('}');
        *picture = Picture { seq, rows, fleets, matchmaker };
        // No watcher is no error: the picture is kept for the next one.
        let _ = self.deltas.send(Arc::new(Delta { seq, json }));
    }

    /// The full picture as the JSON of one `snapshot` event, and its sequence number.
    pub(super) fn snapshot(&self) -> (u64, String) {
        self.refresh();
        let picture = self.picture();
        let json = format!(
            "{{\"seq\":{},\"nowMs\":{},\"fleets\":{},\"gameservers\":{},\"matchmaker\":{}}}",
            picture.seq,
            unix_ms(),
            picture.fleets,
            json_list(picture.rows.values()),
            picture.matchmaker
        );
        (picture.seq, json)
    }

    /// Starts the ticker the first time someone watches; it stops with the last handle.
    fn start_ticking(self: &Arc<Self>) {
        if self.ticking.swap(true, Ordering::SeqCst) {
            return;
        }
        let hub: Weak<Self> = Arc::downgrade(self);
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FRAME_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = closing.wait_for(|closing| *closing) => return,
                    _ = tick.tick() => {}
                }
                let Some(hub) = hub.upgrade() else { return };
                if hub.deltas.receiver_count() > 0 {
                    // Reading a thousand servers is a few milliseconds of work: off the reactor.
                    let _ = tokio::task::spawn_blocking(move || hub.refresh()).await;
                }
            }
        });
    }

    /// A watcher's stream: the full picture, then deltas newer than it; the full picture again
    /// after falling [`BACKLOG`] deltas behind. Ends when the hub closes.
    pub(super) fn stream(self: &Arc<Self>) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
        self.start_ticking();
        let receiver = self.deltas.subscribe();
        let (seq, json) = self.snapshot();
        let first = Event::default().event("snapshot").data(json);
        let watcher =
            Watcher { hub: self.clone(), receiver, seen: seq, closing: self.closing.subscribe(), first: Some(first) };
        let stream = futures::stream::unfold(watcher, |mut watcher| async move {
            let event = watcher.next().await?;
            Some((Ok(event), watcher))
        });
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }
}

struct Watcher {
    hub: Arc<Hub>,
    receiver: broadcast::Receiver<Arc<Delta>>,
    seen: u64,
    closing: watch::Receiver<bool>,
    first: Option<Event>,
}

impl Watcher {
    async fn next(&mut self) -> Option<Event> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            let received = tokio::select! {
                _ = self.closing.wait_for(|closing| *closing) => return None,
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(delta) if delta.seq <= self.seen => {}
                Ok(delta) => {
                    self.seen = delta.seq;
                    return Some(Event::default().event("delta").data(delta.json.clone()));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (seq, json) = self.hub.snapshot();
                    self.seen = seq;
                    return Some(Event::default().event("snapshot").data(json));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::tests::FixedSource;
    use stadion_crds::GameServerState;

    #[test]
    fn a_change_sends_only_the_changed_row() {
        let source = Arc::new(FixedSource::with_servers(1000));
        let hub = Hub::new(source.clone(), None);
        let mut deltas = hub.deltas.subscribe();
        let (seq, full) = hub.snapshot();
        assert!(full.len() > 100_000, "a thousand rows: {} bytes", full.len());
        eprintln!("the first picture of 1,000 servers is {} bytes", full.len());
        hub.refresh();
        assert!(deltas.try_recv().map(|d| d.seq).ok() == Some(seq), "the first picture was the only delta so far");
        assert!(deltas.try_recv().is_err(), "nothing changed, nothing sent");
        source.set_state(7, GameServerState::Allocated);
        hub.refresh();
        let delta = deltas.try_recv().expect("a delta");
        assert_eq!(delta.seq, seq + 1);
        assert!(delta.json.contains("\"state\":\"Allocated\""), "{}", delta.json);
        assert!(delta.json.contains("\"fleets\""), "the fleet's counts changed too");
        assert!(delta.json.len() < 2_000, "one server's change is {} bytes, not a snapshot", delta.json.len());
        eprintln!("one server's change is a delta of {} bytes", delta.json.len());
        source.remove(7);
        hub.refresh();
        let delta = deltas.try_recv().expect("a removal");
        assert!(delta.json.contains("\"remove\":[\"default/gs-0007\"]"), "{}", delta.json);
    }

    #[tokio::test]
    async fn a_watcher_gets_the_snapshot_then_deltas_and_ends_when_the_hub_closes() {
        let source = Arc::new(FixedSource::with_servers(3));
        let hub = Arc::new(Hub::new(source.clone(), None));
        let receiver = hub.deltas.subscribe();
        let (seq, _) = hub.snapshot();
        let mut watcher =
            Watcher { hub: hub.clone(), receiver, seen: seq, closing: hub.closing.subscribe(), first: None };
        source.set_state(1, GameServerState::Allocated);
        hub.refresh();
        let next = tokio::time::timeout(Duration::from_secs(1), watcher.next()).await.expect("in time");
        assert!(next.is_some());
        hub.close();
        let end = tokio::time::timeout(Duration::from_secs(1), watcher.next()).await.expect("in time");
        assert!(end.is_none(), "closed");
    }
}
