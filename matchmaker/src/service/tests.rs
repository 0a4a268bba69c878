//! Service tests: backfill through the allocation path, and ingest that never waits for a round.
//!
//! [`ListFleet`] is a fleet in memory that allocates exactly as the runtimes do — core's
//! `candidates` and `apply_allocation` — and writes with a compare-and-swap on the
//! resourceVersion that can lose to a concurrent writer, so backfill races are real races.

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use stadion_core::NodeLoad;
use stadion_core::allocation::candidates;
use stadion_core::allocator::AdmittedAllocation;
use stadion_core::testing::GameServerBuilder;
use stadion_crds::{GameServer, GameServerState};
use tokio::sync::watch;

use super::*;
use crate::ticket::{AttributeValue, Player, TicketState};

#[path = "../../tests/support/redis.rs"]
mod redis_server;

/// Servers in memory, allocated by core's rules with a compare-and-swap.
struct ListFleet {
    servers: StdMutex<Vec<GameServer>>,
    capacity: watch::Sender<u64>,
    /// While set, a backfill (a request for an Allocated server) is never answered, as when
    /// the matchmaker dies during the call: `true` once its write landed, `false` before.
    stall: StdMutex<Option<bool>>,
    /// While set, the next backfill waits for it before it reaches the server (a slow call);
    /// that one request takes it.
    held: StdMutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Backfill requests stalled or held so far.
    stalled: std::sync::atomic::AtomicUsize,
}

impl ListFleet {
    /// Ready servers `names`, each with a `players` list of `capacity`.
    fn new(names: &[&str], capacity: i64) -> Arc<Self> {
        let servers = names
            .iter()
            .map(|name| {
                let mut gs =
                    GameServerBuilder::new(name).state(GameServerState::Ready).list("players", capacity, &[]).build();
                gs.metadata.namespace = Some("default".to_owned());
                gs.metadata.resource_version = Some("1".to_owned());
                gs
            })
            .collect();
        Arc::new(Self {
            servers: StdMutex::new(servers),
            capacity: watch::channel(0).0,
            stall: StdMutex::new(None),
            held: StdMutex::new(None),
            stalled: Default::default(),
        })
    }

    fn server(&self, name: &str) -> GameServer {
        self.servers.lock().unwrap().iter().find(|gs| gs.metadata.name.as_deref() == Some(name)).unwrap().clone()
    }

    /// The `players` list's values, sorted.
    fn list(&self, name: &str) -> Vec<String> {
        let status = self.server(name).status.unwrap_or_default();
        let mut values = status.lists.get("players").map(|l| l.values.clone()).unwrap_or_default();
        values.sort();
        values
    }

    /// The server's resourceVersion: one more on every write.
    fn version(&self, name: &str) -> u64 {
        self.server(name).metadata.resource_version.and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Waits until `stalled` backfill requests have been stalled or held.
    async fn stalled(&self, stalled: usize) {
        for _ in 0..500 {
            if self.stalled.load(std::sync::atomic::Ordering::SeqCst) == stalled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{stalled} backfill requests never reached the server");
    }

    /// Changes a server behind the matchmaker's back (the game, through its SDK).
    fn edit(&self, name: &str, change: impl FnOnce(&mut GameServer)) {
        let mut servers = self.servers.lock().unwrap();
        let gs = servers.iter_mut().find(|gs| gs.metadata.name.as_deref() == Some(name)).unwrap();
        change(gs);
        bump(gs);
    }
}

impl ListFleet {
    /// Writes `gs` if nobody changed it since it was read (its resourceVersion).
    fn write(&self, gs: GameServer) -> bool {
        let mut servers = self.servers.lock().unwrap();
        let Some(current) = servers.iter_mut().find(|s| s.metadata.name == gs.metadata.name) else { return false };
        if current.metadata.resource_version != gs.metadata.resource_version {
            return false;
        }
        *current = gs;
        bump(current);
        true
    }
}

fn bump(gs: &mut GameServer) {
    let version: u64 = gs.metadata.resource_version.as_deref().unwrap_or("0").parse().unwrap_or(0);
    gs.metadata.resource_version = Some((version + 1).to_string());
}

#[async_trait]
impl Allocator for ListFleet {
    async fn allocate(&self, request: AdmittedAllocation) -> Result<AllocationOutcome, AllocateError> {
        let backfill = request.request().spec.selectors.first().and_then(|s| s.game_server_state)
            == Some(GameServerState::Allocated);
        let held = if backfill { self.held.lock().unwrap().take() } else { None };
        if let Some(release) = held {
            self.stalled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = release.await;
        }
        let observed = self.servers.lock().unwrap().clone();
        let attempt = {
            let nodes = NodeLoad::from_gameservers(observed.iter());
            let found = candidates(request.request(), &observed, &nodes, 7).map_err(|e| {
                let mut errors = FieldErrors::default();
                errors.push("spec.selectors", e.to_string());
                AllocateError::Invalid(errors)
            })?;
            let Some(candidate) = found.first() else { return Ok(AllocationOutcome::UnAllocated) };
            candidate.allocate(&request.request().spec, jiff::Timestamp::now())
        };
        // Other writers may run between the read and the write, as against a real API server.
        tokio::task::yield_now().await;
        let stall = *self.stall.lock().unwrap();
        if let (true, Some(landed)) = (backfill, stall) {
            if landed {
                self.write(attempt.gameserver);
            }
            self.stalled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return std::future::pending().await;
        }
        match self.write(attempt.gameserver) {
            true => Ok(AllocationOutcome::Allocated(attempt.status)),
            false => Ok(AllocationOutcome::Contention),
        }
    }

    fn capacity_changes(&self) -> watch::Receiver<u64> {
        self.capacity.subscribe()
    }
}

const LOBBY: &str = "tickInterval: 20ms\nqueues:\n  - name: lobby\n    players: {min: 2, max: 2}\n    skill: {attribute: skill, initialSpread: 100, maxSpread: 100}\n    backfill: {list: players}\n";

fn request(player: &str, skill: f64) -> TicketRequest {
    TicketRequest {
        queue: "lobby".to_owned(),
        players: vec![Player {
            id: player.to_owned(),
            attributes: [("skill".to_owned(), AttributeValue::Number(skill))].into(),
            latencies: Default::default(),
        }],
        idempotency_key: None,
    }
}

fn start(yaml: &str, fleet: Arc<ListFleet>) -> (Matchmaker, tokio::sync::oneshot::Sender<()>) {
    let (mm, stop, _) = run(Matchmaker::new(MatchmakerConfig::from_yaml_str(yaml).unwrap(), fleet).unwrap());
    (mm, stop)
}

/// Runs `mm` until the sender is used (or dropped); the handle ends with its loop.
fn run(mm: Matchmaker) -> (Matchmaker, tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = mm.run(async move {
        let _ = stopped.await;
    });
    (mm, stop, running)
}

async fn submit(mm: &Matchmaker, player: &str, skill: f64) -> String {
    mm.submit(request(player, skill), None).await.unwrap().0.id
}

/// Waits until ticket `id` is in a state other than searching/matched.
async fn settled(mm: &Matchmaker, id: &str) -> Ticket {
    for _ in 0..1000 {
        let ticket = mm.ticket(id).unwrap();
        if ticket.state.is_terminal() {
            return ticket;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("ticket {id} never settled: {:?}", mm.ticket(id));
}

/// Two tickets that form a match on arrival: the first one, once the match runs on `server`.
async fn a_match_on(mm: &Matchmaker, players: [&str; 2], server: &str) -> Ticket {
    let first = submit(mm, players[0], 1000.0).await;
    submit(mm, players[1], 1000.0).await;
    let first = settled(mm, &first).await;
    assert_eq!(server_of(&first), server, "{first:?}");
    first
}

fn server_of(ticket: &Ticket) -> &str {
    assert_eq!(ticket.state, TicketState::Assigned, "{ticket:?}");
    &ticket.assignment.as_ref().unwrap().game_server_name
}

#[tokio::test]
async fn a_late_ticket_joins_the_running_match_on_its_server_until_the_list_is_full() {
    let fleet = ListFleet::new(&["gs-1", "gs-2"], 4);
    let (mm, _stop) = start(LOBBY, fleet.clone());
    let alice = submit(&mm, "alice", 1000.0).await;
    let bob = submit(&mm, "bob", 1010.0).await;
    let alice = settled(&mm, &alice).await;
    let first = server_of(&alice).to_owned();
    assert_eq!(server_of(&settled(&mm, &bob).await), first);
    assert_eq!(fleet.list(&first), ["alice", "bob"], "the match's players take their seats on allocation");

    // Carol alone could not start a match (min 2), but the running match has room.
    let carol = settled(&mm, &submit(&mm, "carol", 1050.0).await).await;
    assert_eq!(server_of(&carol), first);
    let assignment = carol.assignment.as_ref().unwrap();
    assert_eq!(assignment.match_id, alice.assignment.as_ref().unwrap().match_id, "the same match");
    let mut team = assignment.teams[0].clone();
    team.sort();
    assert_eq!((assignment.teams.len(), team), (1, vec!["alice".to_owned(), "bob".to_owned(), "carol".to_owned()]));
    assert_eq!(assignment.teams[0].last().map(String::as_str), Some("carol"), "late joiners come last");
    assert_eq!(fleet.list(&first), ["alice", "bob", "carol"], "the game sees her in its list");

    // Outside the skill window the match formed with (1000..1010, spread 100): not placed.
    let far = submit(&mm, "far", 1150.0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mm.ticket(&far).unwrap().state, TicketState::Searching);

    let dave = settled(&mm, &submit(&mm, "dave", 990.0).await).await;
    assert_eq!(server_of(&dave), first);
    assert_eq!(fleet.list(&first).len(), 4);

    // The list is full: the next two form a new match on the other server.
    let erin = submit(&mm, "erin", 1000.0).await;
    let frank = submit(&mm, "frank", 1000.0).await;
    let (erin, frank) = (settled(&mm, &erin).await, settled(&mm, &frank).await);
    assert_ne!(server_of(&erin), first);
    assert_eq!(server_of(&frank), server_of(&erin));
    assert_eq!(fleet.list(&first).len(), 4, "never past capacity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_late_tickets_never_overfill_the_server() {
    let fleet = ListFleet::new(&["gs-1"], 20);
    let (mm, _stop) = start(LOBBY, fleet.clone());
    a_match_on(&mm, ["p-a", "p-b"], "gs-1").await;
    // The game seats three bots itself: the matchmaker still believes 18 seats are free.
    fleet.edit("gs-1", |gs| {
        let list = gs.status.as_mut().unwrap().lists.get_mut("players").unwrap();
        list.values.extend(["bot-1", "bot-2", "bot-3"].map(String::from));
    });

    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let mm = mm.clone();
            tokio::spawn(async move { submit(&mm, &format!("late-{i}"), 1000.0).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    // Let every backfill get its answer; the rest wait, matched, for a server that never comes.
    for _ in 0..1000 {
        if mm.with_state(|s| s.backfills_in_flight()) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mm.with_state(|s| s.backfills_in_flight()), 0);
    let on_server: Vec<Ticket> =
        ids.iter().map(|id| mm.ticket(id).unwrap()).filter(|t| t.state == TicketState::Assigned).collect();
    let list = fleet.list("gs-1");
    assert!(list.len() <= 20, "overfilled: {list:?}");
    assert_eq!(list.len(), 20, "every free seat was taken: {list:?}");
    let mut assigned: Vec<String> = on_server.iter().map(|t| t.players[0].id.clone()).collect();
    assert!(on_server.iter().all(|t| server_of(t) == "gs-1"));
    assigned.sort();
    let mut late_on_list: Vec<String> = list.iter().filter(|v| v.starts_with("late-")).cloned().collect();
    late_on_list.sort();
    assert_eq!(assigned, late_on_list, "exactly the assigned tickets hold seats");
    assert_eq!(assigned.len(), 15, "20 seats − 2 players − 3 bots");
}

#[tokio::test]
async fn a_server_that_left_its_match_closes_it_and_the_ticket_searches_again() {
    let fleet = ListFleet::new(&["gs-1", "gs-2"], 8);
    let (mm, _stop) = start(LOBBY, fleet.clone());
    a_match_on(&mm, ["a", "b"], "gs-1").await;
    // The match ended: the game called Ready (or the server shut down).
    fleet.edit("gs-1", |gs| gs.status.as_mut().unwrap().state = Some(GameServerState::Shutdown));
    let c = submit(&mm, "c", 1000.0).await;
    // Refused by the server, it searches again and starts a match with the next ticket.
    for _ in 0..200 {
        if mm.ticket(&c).unwrap().state == TicketState::Searching {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mm.ticket(&c).unwrap().state, TicketState::Searching);
    assert_eq!(mm.with_state(|s| s.open_matches()), 0, "the match is closed to joiners");
    let d = submit(&mm, "d", 1000.0).await;
    assert_eq!(server_of(&settled(&mm, &c).await), "gs-2");
    assert_eq!(server_of(&settled(&mm, &d).await), "gs-2");
    assert_eq!(fleet.list("gs-1"), ["a", "b"]);
}

#[tokio::test]
async fn a_ticket_cancelled_while_its_write_fills_the_server_has_its_players_taken_off_again() {
    let fleet = ListFleet::new(&["gs-1"], 3);
    let (mm, _stop) = start(LOBBY, fleet.clone());
    a_match_on(&mm, ["alice", "bob"], "gs-1").await;
    assert_eq!(mm.with_state(|s| s.open_matches()), 1, "open with one seat left");
    let (release, held) = tokio::sync::oneshot::channel();
    *fleet.held.lock().unwrap() = Some(held);
    let carol = submit(&mm, "carol", 1000.0).await;
    fleet.stalled(1).await;
    // Cancelled while her players are on their way to the server.
    assert_eq!(mm.cancel(&carol).await.unwrap().state, TicketState::Cancelled);
    let before = fleet.version("gs-1");
    release.send(()).unwrap();
    // Her write lands and takes the last seat; the undo is the write after it.
    for _ in 0..500 {
        if fleet.version("gs-1") >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fleet.list("gs-1"), ["alice", "bob"], "carol's seat is given back");
    assert_eq!(fleet.version("gs-1"), before + 2, "written twice: her seat taken, then given back");
    assert_eq!(mm.with_state(|s| s.open_matches()), 0, "the write that filled the server closed the match");
    assert_eq!(mm.with_state(|s| s.backfills_in_flight()), 0);
    let carol = mm.ticket(&carol).unwrap();
    assert_eq!(carol.state, TicketState::Cancelled, "{carol:?}");
    assert!(carol.assignment.is_none(), "{carol:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_is_answered_while_a_round_holds_the_state_lock() {
    let fleet = ListFleet::new(&[], 4);
    let yaml = "queues:\n  - name: lobby\n    players: {min: 2, max: 2}\n    skill: {attribute: skill, initialSpread: 0, maxSpread: 0}\n";
    let (mm, _stop) = start(yaml, fleet);
    // A backlog that never matches (every skill differs and the spread is 0).
    for i in 0..2_000 {
        submit(&mm, &format!("backlog-{i}"), f64::from(i)).await;
    }
    // What a round's slice does: hold the state lock.
    let held = mm.inner.state.lock().unwrap();
    let (answered, answers) = std::sync::mpsc::channel();
    let submitter = mm.clone();
    // On a thread of its own, so no worker the test or the loop may block is needed.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let created = submitter.submit(request("newcomer", 5_000.0), Some("key-1".to_owned())).await;
            let _ = answered.send(created.map(|(t, new)| (t.state, new)));
            let conflict = submitter.submit(request("newcomer", 5_000.0), None).await;
            let _ = answered.send(conflict.map(|(t, new)| (t.state, new)));
        });
    });
    // A wait that only fails if the submission waits for the lock (it would never end).
    let created = answers.recv_timeout(Duration::from_secs(30)).expect("answered while the lock is held");
    assert_eq!(created.unwrap(), (TicketState::Searching, true));
    let conflict = answers.recv_timeout(Duration::from_secs(30)).expect("answered while the lock is held");
    assert!(matches!(conflict, Err(Error::Conflict { .. })), "one live ticket per player: {conflict:?}");
    drop(held);

    // Once the round lets go, the ticket is in the state, and it matches on arrival like any.
    let partner = mm.submit(request("partner", 5_000.0), None).await.unwrap().0;
    let newcomer = mm.submit(request("newcomer", 5_000.0), Some("key-1".to_owned())).await.unwrap();
    assert!(!newcomer.1, "the idempotency key returns the same ticket");
    assert_eq!(newcomer.0.state, TicketState::Matched, "{:?}", newcomer.0);
    assert_eq!(mm.ticket(&partner.id).unwrap().state, TicketState::Matched);
}

mod durability;
mod restart;
