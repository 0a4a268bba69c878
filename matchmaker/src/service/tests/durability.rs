//! What reaches a server only once the store holds it.

use super::*;
use crate::store::{Change, Persisted, StoreError, Stored};

/// A store whose writes stay unsynced while its gate is shut, as a slow disk or Redis.
struct GatedStore {
    open: watch::Sender<bool>,
}

impl TicketStore for GatedStore {
    fn load(&self) -> Result<Stored, StoreError> {
        Ok(Stored::default())
    }

    fn record(&self, _change: Change) {}

    fn persisted(&self) -> Persisted {
        let mut open = self.open.subscribe();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        "gated".to_owned()
    }
}

#[tokio::test]
async fn a_late_ticket_takes_its_seat_only_once_the_store_holds_it() {
    let fleet = ListFleet::new(&["gs-1"], 4);
    let store = Arc::new(GatedStore { open: watch::channel(true).0 });
    let config = MatchmakerConfig::from_yaml_str(LOBBY).unwrap();
    let (mm, _stop, _) = run(Matchmaker::with_store(config, fleet.clone(), store.clone()).unwrap());
    let (alice, bob) = (submit(&mm, "alice", 1000.0).await, submit(&mm, "bob", 1010.0).await);
    assert_eq!(server_of(&settled(&mm, &alice).await), "gs-1");
    assert_eq!(server_of(&settled(&mm, &bob).await), "gs-1");

    store.open.send_replace(false);
    let late = mm.clone();
    let carol = tokio::spawn(async move { submit(&late, "carol", 1005.0).await });
    // Many ticks: the backfill into gs-1 is placed at once, but must not write yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fleet.list("gs-1"), ["alice", "bob"], "a crash now would lose the ticket, not her seat");

    store.open.send_replace(true);
    let carol = carol.await.unwrap();
    assert_eq!(server_of(&settled(&mm, &carol).await), "gs-1");
    assert_eq!(fleet.list("gs-1"), ["alice", "bob", "carol"]);
}
