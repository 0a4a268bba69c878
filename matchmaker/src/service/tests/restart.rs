//! Restarts and failovers in the middle of a backfill, on a journal and on Redis: what the
//! next matchmaker does with the tickets and matches the last one left.

use super::*;

/// Where a test's matchmakers keep their tickets across a restart.
enum Kept {
    /// `stateDir`: a restart on the same folder.
    Journal(std::path::PathBuf),
    /// Redis: the next matchmaker takes the lease over once the first one's lapses.
    Redis(redis_server::RedisServer),
}

impl Kept {
    fn journal() -> Self {
        Self::Journal(std::env::temp_dir().join(format!("stadion-mm-backfill-{}", Uuid::new_v4())))
    }

    /// A fresh journal folder, then a fresh Redis: each scenario runs on both stores.
    fn both() -> [Self; 2] {
        [Self::journal(), Self::Redis(redis_server::RedisServer::start())]
    }

    async fn start(&self, fleet: Arc<ListFleet>) -> (Matchmaker, tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
        let mut config = MatchmakerConfig::from_yaml_str(LOBBY).unwrap();
        match self {
            Self::Journal(dir) => config.state_dir = Some(dir.clone()),
            Self::Redis(redis) => config.redis = Some(redis.url()),
        }
        run(Matchmaker::open(config, fleet).await.unwrap())
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Self::Journal(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `scenario` on a fresh journal, then on a fresh Redis.
async fn on_both_stores(scenario: impl AsyncFn(Kept)) {
    for kept in Kept::both() {
        scenario(kept).await;
    }
}

/// Waits until ticket `id` is `state`.
async fn reaches(mm: &Matchmaker, id: &str, state: TicketState) {
    for _ in 0..500 {
        if mm.ticket(id).is_ok_and(|t| t.state == state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("ticket {id} never became {state:?}: {:?}", mm.ticket(id));
}

/// A matchmaker stopped in the middle of a late ticket's backfill, its write to the server
/// landed (`landed`) or not, and another started on what it kept.
async fn restart_during_a_backfill(landed: bool, kept: Kept) {
    let fleet = ListFleet::new(&["gs-1", "gs-2"], 3);
    let (mm, stop, running) = kept.start(fleet.clone()).await;
    let alice = a_match_on(&mm, ["alice", "bob"], "gs-1").await;
    *fleet.stall.lock().unwrap() = Some(landed);
    let carol = submit(&mm, "carol", 1000.0).await;
    fleet.stalled(1).await;
    assert_eq!(mm.ticket(&carol).unwrap().state, TicketState::Matched);
    let expected: &[&str] = if landed { &["alice", "bob", "carol"] } else { &["alice", "bob"] };
    assert_eq!(fleet.list("gs-1"), expected);
    // The matchmaker dies with the call in flight.
    stop.send(()).unwrap();
    running.await.unwrap();
    drop(mm);
    *fleet.stall.lock().unwrap() = None;

    let (mm, _stop, _) = kept.start(fleet.clone()).await;
    let carol = settled(&mm, &carol).await;
    assert_eq!(server_of(&carol), "gs-1", "{carol:?}");
    let match_id = &alice.assignment.as_ref().unwrap().match_id;
    assert_eq!(&carol.assignment.as_ref().unwrap().match_id, match_id, "the same running match");
    assert_eq!(fleet.list("gs-1"), ["alice", "bob", "carol"], "her seat taken exactly once");
    // The server is full now (a landed write left no room, so only finding carol on the list
    // could assign her): the next two form a new match on the other server.
    let dave = submit(&mm, "dave", 1000.0).await;
    let erin = submit(&mm, "erin", 1000.0).await;
    assert_eq!(server_of(&settled(&mm, &dave).await), "gs-2");
    assert_eq!(server_of(&settled(&mm, &erin).await), "gs-2");
    assert_eq!(fleet.list("gs-1").len(), 3, "never past capacity");
}

#[tokio::test]
async fn a_backfill_whose_write_landed_before_a_restart_is_adopted_not_seated_twice() {
    on_both_stores(async |kept| restart_during_a_backfill(true, kept).await).await;
}

#[tokio::test]
async fn a_backfill_cut_off_by_a_restart_is_placed_again_in_the_reopened_match() {
    on_both_stores(async |kept| restart_during_a_backfill(false, kept).await).await;
}

/// A matchmaker stopped while a late ticket's write was in flight into a running match that
/// closed meanwhile (the game filled its other seats itself, so the next late ticket was
/// refused), its write landed (`landed`) or not, and another started on what it kept.
async fn restart_after_the_match_closed_during_a_backfill(landed: bool, kept: Kept) {
    let fleet = ListFleet::new(&["gs-1", "gs-2"], 4);
    let (mm, stop, running) = kept.start(fleet.clone()).await;
    let alice = a_match_on(&mm, ["alice", "bob"], "gs-1").await;
    *fleet.stall.lock().unwrap() = Some(landed);
    let carol = submit(&mm, "carol", 1000.0).await;
    fleet.stalled(1).await;
    *fleet.stall.lock().unwrap() = None;
    fleet.edit("gs-1", |gs| {
        let list = gs.status.as_mut().unwrap().lists.get_mut("players").unwrap();
        for bot in 1..=list.capacity - list.values.len() as i64 {
            list.values.push(format!("bot-{bot}"));
        }
    });
    let dave = submit(&mm, "dave", 1000.0).await;
    for _ in 0..500 {
        if mm.with_state(|s| s.open_matches()) == 0 && mm.ticket(&dave).unwrap().state == TicketState::Searching {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mm.with_state(|s| s.open_matches()), 0, "dave's refusal closed the match");
    assert_eq!(mm.ticket(&dave).unwrap().state, TicketState::Searching);
    assert_eq!(mm.ticket(&carol).unwrap().state, TicketState::Matched, "still on her way in");
    mm.persisted().await.unwrap();
    // The matchmaker dies with carol's call in flight.
    stop.send(()).unwrap();
    running.await.unwrap();
    drop(mm);
    // A bot leaves: the server has a seat again, yet the match stays closed.
    fleet.edit("gs-1", |gs| {
        gs.status.as_mut().unwrap().lists.get_mut("players").unwrap().values.pop();
    });
    let on_gs1 = fleet.list("gs-1");

    let (mm, _stop, _) = kept.start(fleet.clone()).await;
    let carol = settled(&mm, &carol).await;
    if landed {
        assert_eq!(server_of(&carol), "gs-1", "her seat was taken: {carol:?}");
        let match_id = &alice.assignment.as_ref().unwrap().match_id;
        assert_eq!(&carol.assignment.as_ref().unwrap().match_id, match_id, "the same running match");
        assert_eq!(fleet.list("gs-1"), on_gs1, "seated once, by the write before the restart");
        assert_eq!(mm.with_state(|s| s.open_matches()), 0, "the closed match is not reopened");
        // Dave waits alone; with erin he starts a match on the other server, without carol.
        let erin = submit(&mm, "erin", 1000.0).await;
        assert_eq!(server_of(&settled(&mm, &dave).await), "gs-2");
        assert_eq!(server_of(&settled(&mm, &erin).await), "gs-2");
        assert_eq!(fleet.list("gs-2"), ["dave", "erin"]);
    } else {
        // Not on the server: she searches again, and starts a match with dave on the other one
        // rather than take the free seat of the closed match.
        assert_eq!(server_of(&carol), "gs-2", "{carol:?}");
        assert_eq!(server_of(&settled(&mm, &dave).await), "gs-2");
        assert_eq!(fleet.list("gs-2"), ["carol", "dave"]);
        assert_eq!(fleet.list("gs-1"), on_gs1, "nobody joins the closed match");
    }
    assert_eq!(mm.with_state(|s| s.backfills_in_flight()), 0);
}

#[tokio::test]
async fn a_landed_backfill_into_a_match_that_closed_before_a_restart_is_assigned_there() {
    on_both_stores(async |kept| restart_after_the_match_closed_during_a_backfill(true, kept).await).await;
}

#[tokio::test]
async fn a_cut_off_backfill_into_a_match_that_closed_before_a_restart_searches_again() {
    on_both_stores(async |kept| restart_after_the_match_closed_during_a_backfill(false, kept).await).await;
}

#[tokio::test]
async fn a_match_resumed_after_a_restart_takes_late_joiners_once_it_has_its_server() {
    let kept = Kept::journal();
    // No server yet: the match waits for one when the matchmaker stops.
    let (mm, stop, running) = kept.start(ListFleet::new(&[], 3)).await;
    let alice = submit(&mm, "alice", 1000.0).await;
    submit(&mm, "bob", 1010.0).await;
    reaches(&mm, &alice, TicketState::Matched).await;
    stop.send(()).unwrap();
    running.await.unwrap();
    drop(mm);

    let fleet = ListFleet::new(&["gs-1", "gs-2"], 3);
    let (mm, _stop, _) = kept.start(fleet.clone()).await;
    assert_eq!(server_of(&settled(&mm, &alice).await), "gs-1");
    // Outside the windows it formed with (1000..1010, spread 100): not placed.
    let far = submit(&mm, "far", 1150.0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mm.ticket(&far).unwrap().state, TicketState::Searching);
    // Within them: joins the running match rather than starting one with `far`.
    let carol = settled(&mm, &submit(&mm, "carol", 1090.0).await).await;
    assert_eq!(server_of(&carol), "gs-1");
    assert_eq!(fleet.list("gs-1"), ["alice", "bob", "carol"]);
    assert_eq!(mm.ticket(&far).unwrap().state, TicketState::Searching);
}
