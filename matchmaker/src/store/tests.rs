use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use super::journal::{COMPACT_MIN_BYTES, JOURNAL_FILE};
use super::*;
use crate::ticket::{Player, TicketState};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("stadion-store-test-{}", Uuid::new_v4()));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ticket(player: &str, state: TicketState, enqueued_at: Millis) -> StoredTicket {
    StoredTicket {
        ticket: Ticket {
            id: Uuid::new_v4().to_string(),
            queue: "duel".to_owned(),
            state,
            players: vec![Player {
                id: player.to_owned(),
                attributes: Default::default(),
                latencies: Default::default(),
            }],
            idempotency_key: Some(format!("key-{player}")),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            updated_at: "2026-01-01T00:00:00Z".to_owned(),
            match_info: None,
            assignment: None,
            reason: None,
        },
        enqueued_at,
        deadline: enqueued_at + 60_000,
        forget_at: None,
        match_id: None,
    }
}

fn uuid(t: &StoredTicket) -> Uuid {
    Uuid::parse_str(&t.ticket.id).unwrap()
}

#[tokio::test]
async fn a_reopened_journal_holds_the_latest_state_of_every_live_ticket_and_match() {
    let dir = TempDir::new();
    let alice = ticket("alice", TicketState::Searching, 1);
    let mut bob = ticket("bob", TicketState::Searching, 2);
    let carol = ticket("carol", TicketState::Searching, 3);
    let info = MatchInfo { id: Uuid::new_v4().to_string(), teams: vec![], region: None, formed_at: "x".to_owned() };
    let waiting =
        StoredMatch { id: Uuid::new_v4(), queue: "duel".to_owned(), tickets: vec![uuid(&bob)], info, open: None };
    {
        let store = JournalStore::open(&dir.0).unwrap();
        assert!(store.load().unwrap().is_empty());
        store.record(Change::Ticket(Box::new(alice.clone())));
        store.record(Change::Ticket(Box::new(bob.clone())));
        store.record(Change::Ticket(Box::new(carol.clone())));
        bob.ticket.state = TicketState::Matched;
        bob.match_id = Some(waiting.id);
        store.record(Change::Match(Box::new(waiting.clone())));
        store.record(Change::Ticket(Box::new(bob.clone())));
        store.record(Change::Forget(uuid(&carol)));
        let done = StoredMatch { id: Uuid::new_v4(), ..waiting.clone() };
        store.record(Change::Match(Box::new(done.clone())));
        store.record(Change::MatchDone(done.id));
        store.persisted().await.unwrap();
    }
    let store = JournalStore::open(&dir.0).unwrap();
    let stored = store.load().unwrap();
    assert_eq!(stored.tickets, vec![alice, bob], "latest state of each live ticket, oldest first");
    assert_eq!(stored.matches, vec![waiting]);
    // Opening compacted the journal to exactly the live lines.
    let text = std::fs::read_to_string(dir.0.join(JOURNAL_FILE)).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[tokio::test]
async fn persisted_means_written_to_the_file() {
    let dir = TempDir::new();
    let store = JournalStore::open(&dir.0).unwrap();
    let alice = ticket("alice", TicketState::Searching, 1);
    store.record(Change::Ticket(Box::new(alice.clone())));
    store.persisted().await.unwrap();
    // Read behind the store's back, as a restarted process would after a kill -9.
    let text = std::fs::read_to_string(dir.0.join(JOURNAL_FILE)).unwrap();
    let change: Change = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(change, Change::Ticket(Box::new(alice)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_of_persisted_finds_its_change_in_the_file_under_concurrent_writes() {
    let dir = TempDir::new();
    let store = Arc::new(JournalStore::open(&dir.0).unwrap());
    let path = dir.0.join(JOURNAL_FILE);
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (store, path) = (store.clone(), path.clone());
        callers.spawn(async move {
            // Staggered, so callers find a batch in flight as well as one still pending.
            tokio::time::sleep(std::time::Duration::from_micros(50 * (i % 20))).await;
            let stored = ticket(&format!("p{i}"), TicketState::Searching, i);
            store.record(Change::Ticket(Box::new(stored.clone())));
            store.persisted().await.unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(&stored.ticket.id), "caller {i} was answered before its line was written");
        });
    }
    while let Some(caller) = callers.join_next().await {
        caller.unwrap();
    }
}

#[test]
fn a_torn_last_line_is_skipped_and_the_rest_kept() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let alice = ticket("alice", TicketState::Assigned, 1);
    let mut text = serde_json::to_string(&Change::Ticket(Box::new(alice.clone()))).unwrap();
    text.push('\n');
    text.push_str(r#"{"op":"ticket","v":{"ticket":{"id":"#);
    std::fs::write(dir.0.join(JOURNAL_FILE), text).unwrap();
    let store = JournalStore::open(&dir.0).unwrap();
    assert_eq!(store.load().unwrap().tickets, vec![alice]);
}

#[test]
fn a_second_matchmaker_cannot_open_the_same_folder() {
    let dir = TempDir::new();
    let _first = JournalStore::open(&dir.0).unwrap();
    let error = JournalStore::open(&dir.0).unwrap_err();
    assert!(error.message.contains("in use by another matchmaker"), "{error}");
}

#[tokio::test]
async fn the_writer_compacts_a_journal_grown_past_twice_its_snapshot_while_appends_go_on() {
    let dir = TempDir::new();
    let store = JournalStore::open(&dir.0).unwrap();
    let mut alice = ticket("alice", TicketState::Searching, 1);
    let path = dir.0.join(JOURNAL_FILE);
    // Rewrite one ticket until the journal passes the compaction threshold.
    let line = serde_json::to_vec(&Change::Ticket(Box::new(alice.clone()))).unwrap().len() as u64 + 1;
    for i in 0..(COMPACT_MIN_BYTES / line * 3 / 2) {
        alice.deadline = i;
        store.record(Change::Ticket(Box::new(alice.clone())));
    }
    store.persisted().await.unwrap();
    // Written while the snapshot is (or is about to be) folded on its own thread.
    let bob = ticket("bob", TicketState::Searching, 2);
    store.record(Change::Ticket(Box::new(bob.clone())));
    store.persisted().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let size = std::fs::metadata(&path).unwrap().len();
        if size < COMPACT_MIN_BYTES {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "journal not compacted: {size} bytes");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And after the snapshot replaced the journal.
    let carol = ticket("carol", TicketState::Searching, 3);
    store.record(Change::Ticket(Box::new(carol.clone())));
    store.persisted().await.unwrap();
    drop(store);
    let stored = JournalStore::open(&dir.0).unwrap().load().unwrap();
    assert_eq!(stored.tickets, vec![alice, bob, carol], "the last write of each survives compaction");
}

#[tokio::test]
async fn the_memory_store_keeps_nothing() {
    let store = MemoryStore;
    store.record(Change::Ticket(Box::new(ticket("alice", TicketState::Searching, 1))));
    store.persisted().await.unwrap();
    assert!(store.load().unwrap().is_empty());
}
