//! The embedded store's durable form: one JSON line per [`Change`] appended to
//! `<dir>/tickets.jsonl`, written and `fdatasync`ed by one writer thread in batches.
//!
//! Durability ([`StateSync`]): with `always` (the default), [`TicketStore::persisted`] resolves
//! only after every change recorded before it has been written and synced to disk, so a ticket
//! acknowledged to a client (201 on create, 200 on cancel) survives a crash of the process or
//! the machine. With an interval, it resolves once they are written to the file (a crash of the
//! process loses nothing, the kernel holds them) and they are synced within the interval of
//! the first unsynced write, on a thread of its own while the writer goes on appending, so a
//! crash of the machine loses at most that much. Changes the
//! matchmaker makes on its own (matched, assigned, timed out) are written in the next batch, a
//! few milliseconds later; a crash before that loses only those, and the restarted matchmaker
//! redoes them (a match whose assignment was lost adopts the server already labelled with its
//! id). The writer batches whatever accumulated while the previous batch was written, so a
//! burst of requests shares one write and one sync (group commit).
//!
//! Compaction: on open, the journal is folded into its live tickets and matches and rewritten
//! as a snapshot (a temporary file renamed over the journal, so a crash mid-way keeps the old
//! one); the writer compacts again whenever the file has grown past twice the last snapshot
//! (and at least [`COMPACT_MIN_BYTES`]). That compaction folds the journal's first bytes on a
//! thread of its own while the writer goes on appending, and the lines appended meanwhile are
//! copied after the snapshot when it replaces the journal, so no request waits for a large
//! journal to be rewritten. A `lock` file held with an exclusive lock keeps a
//! second matchmaker off the same folder.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;

use super::{Change, Fold, Persisted, StoreError, Stored, TicketStore};
use crate::config::StateSync;

/// The journal's file name inside the state folder.
pub const JOURNAL_FILE: &str = "tickets.jsonl";
/// The lock file's name inside the state folder.
pub const LOCK_FILE: &str = "lock";
/// The journal is never compacted below this size.
pub const COMPACT_MIN_BYTES: u64 = 8 * 1024 * 1024;
/// Pause before a failed write is tried again.
const RETRY_WRITE: Duration = Duration::from_millis(500);

/// Changes recorded but not yet handed to the writer.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The batch `bytes` will be written in.
    batch: Arc<Batch>,
    /// The batch the writer is writing and syncing now, if any.
    in_flight: Option<Arc<Batch>>,
    /// Why the last write failed, while the writer retries it.
    failing: Option<String>,
    closed: bool,
    /// A compaction's thread finished: the writer installs its snapshot.
    compacted: bool,
    /// How many batches were answered as written, before their sync (with a
    /// [`StateSync::Every`] interval), and how many of those a finished sync covers: the ones
    /// past `synced` are not on disk yet.
    written: u64,
    synced: u64,
}

/// One write and sync of whatever was recorded meanwhile: the callers of
/// [`TicketStore::persisted`] it holds wait on it, and each is woken once, when it is synced
/// (`Ok`) or its write failed (`Err`).
struct Batch(watch::Sender<Option<Result<(), String>>>);

impl Default for Batch {
    fn default() -> Self {
        Self(watch::channel(None).0)
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// The embedded store with a journal in a folder.
pub struct JournalStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    loaded: Mutex<Option<Stored>>,
    writer: Option<JoinHandle<()>>,
    _lock: File,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::new(path.display(), error)
}

impl JournalStore {
    /// Opens (creating it if needed) the state folder `dir`: takes its lock, reads and compacts
    /// the journal, and starts the writer, which syncs every change before it is acknowledged.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_syncing(dir, StateSync::Always)
    }

    /// [`JournalStore::open`], syncing as `sync` says.
    pub fn open_syncing(dir: impl AsRef<Path>, sync: StateSync) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, format!("cannot create the state folder: {e}")))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(|e| io_error(&lock_path, e))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => {
                io_error(&dir, "is in use by another matchmaker (its lock file is held)")
            }
            std::fs::TryLockError::Error(e) => io_error(&lock_path, e),
        })?;
        let path = dir.join(JOURNAL_FILE);
        let stored = read_journal(&path)?;
        let size = write_snapshot(&path, &stored)?;
        let file = OpenOptions::new().append(true).open(&path).map_err(|e| io_error(&path, e))?;
        let shared = Arc::new(Shared { pending: Mutex::new(Pending::default()), wake: Condvar::new() });
        let writer = Writer {
            path: path.clone(),
            file,
            size,
            snapshot: size,
            shared: shared.clone(),
            compaction: None,
            sync_every: sync.interval(),
            unsynced_since: None,
            syncer: sync.interval().and_then(|_| Syncer::start(&path, &shared)),
        };
        let writer = std::thread::Builder::new()
            .name("stadion-journal".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| io_error(&path, format!("cannot start the journal writer: {e}")))?;
        tracing::info!(dir = %dir.display(), %sync, tickets = stored.tickets.len(), matches = stored.matches.len(), "ticket journal opened");
        Ok(Self { dir, shared, loaded: Mutex::new(Some(stored)), writer: Some(writer), _lock: lock })
    }

    /// The state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl TicketStore for JournalStore {
    fn load(&self) -> Result<Stored, StoreError> {
        Ok(self.loaded.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default())
    }

    fn record(&self, change: Change) {
        let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Serializing our own data types cannot fail.
        if serde_json::to_writer(&mut pending.bytes, &change).is_ok() {
            pending.bytes.push(b'\n');
        }
        drop(pending);
        self.shared.wake.notify_one();
    }

    fn persisted(&self) -> Persisted {
        let location = self.dir.display().to_string();
        let pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(error) = &pending.failing {
            let error = StoreError::new(&location, error);
            return Box::pin(async move { Err(error) });
        }
        // The last change recorded is in the next batch, or in the one being written.
        let batch = if pending.bytes.is_empty() { pending.in_flight.as_ref() } else { Some(&pending.batch) };
        let Some(mut done) = batch.map(|b| b.0.subscribe()) else { return Box::pin(async { Ok(()) }) };
        drop(pending);
        Box::pin(async move {
            let result = done
                .wait_for(Option::is_some)
                .await
                .map_err(|_| StoreError::new(&location, "the journal writer stopped"))?
                .clone();
            result.unwrap_or(Ok(())).map_err(|error| StoreError::new(&location, error))
        })
    }

    fn describe(&self) -> String {
        format!("journal in {}", self.dir.display())
    }
}

impl Drop for JournalStore {
    fn drop(&mut self) {
        self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            // The writer flushes what is pending, then stops.
            let _ = writer.join();
        }
    }
}

/// The thread that owns the journal file.
struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    snapshot: u64,
    shared: Arc<Shared>,
    /// A compaction running on its own thread, so appends (and the requests waiting for
    /// them) never wait for the whole journal to be folded and rewritten.
    compaction: Option<Compaction>,
    /// `None`: every batch is synced before its callers are answered. Some: batches are
    /// answered once written, and synced at most this long after the first unsynced one.
    sync_every: Option<Duration>,
    /// When the oldest write not yet synced was made.
    unsynced_since: Option<Instant>,
    /// The thread that syncs written batches (with an interval), so appends, and the requests
    /// waiting for them, go on while the disk catches up.
    syncer: Option<Syncer>,
}

/// A thread that syncs the journal file it is handed, once per hand-off.
struct Syncer {
    /// A handle to the journal's file, and the count of batches written when it was handed.
    jobs: std::sync::mpsc::Sender<(File, u64)>,
    thread: JoinHandle<()>,
}

impl Syncer {
    fn start(path: &Path, shared: &Arc<Shared>) -> Option<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<(File, u64)>();
        let (path, shared) = (path.to_path_buf(), shared.clone());
        let spawned = std::thread::Builder::new().name("stadion-journal-sync".to_owned()).spawn(move || {
            for (file, written) in queue {
                while let Err(error) = file.sync_data() {
                    failed(&shared, &path, &error, None);
                }
                let mut pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                pending.failing = None;
                pending.synced = pending.synced.max(written);
            }
        });
        match spawned {
            Ok(thread) => Some(Self { jobs, thread }),
            Err(error) => {
                tracing::warn!(%error, "ticket journal synced by its writer: cannot start the sync thread");
                None
            }
        }
    }

    /// Lets the thread finish the syncs handed to it, then ends it.
    fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

/// A snapshot of the journal's first `upto` bytes being written to a temporary file.
struct Compaction {
    upto: u64,
    thread: JoinHandle<Result<(PathBuf, u64), StoreError>>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (bytes, batch, closed, compacted) = {
                let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                while pending.bytes.is_empty() && !pending.closed && !pending.compacted {
                    let Some(due) = self.sync_due() else {
                        pending = self.shared.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
                        continue;
                    };
                    let Some(left) = due.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                        break;
                    };
                    pending = self.shared.wake.wait_timeout(pending, left).unwrap_or_else(PoisonError::into_inner).0;
                }
                let compacted = std::mem::take(&mut pending.compacted);
                let bytes = std::mem::take(&mut pending.bytes);
                let batch = (!bytes.is_empty()).then(|| std::mem::take(&mut pending.batch));
                pending.in_flight = batch.clone();
                (bytes, batch, pending.closed, compacted)
            };
            if let Some(batch) = batch {
                self.append(&bytes, &batch);
            }
            if closed && self.sync_due().is_some() {
                self.sync();
            } else if self.sync_due().is_some_and(|due| due <= Instant::now()) {
                self.sync_beside();
            }
            if compacted || (closed && self.compaction.is_some()) {
                self.finish_compaction();
            } else if self.compaction.is_none() && self.size > COMPACT_MIN_BYTES.max(self.snapshot * 2) {
                self.start_compaction();
            }
            if closed && bytes.is_empty() && self.compaction.is_none() {
                if let Some(syncer) = self.syncer.take() {
                    syncer.stop();
                }
                return;
            }
        }
    }

    /// When the writes not yet synced must be.
    fn sync_due(&self) -> Option<Instant> {
        Some(self.unsynced_since? + self.sync_every?)
    }

    fn append(&mut self, bytes: &[u8], batch: &Batch) {
        // A failed write is retried whole: changes are upserts, so a line written twice
        // replays to the same state. Its callers, and every caller meanwhile, are told at once.
        let sync_now = self.sync_every.is_none();
        while let Err(error) =
            self.file.write_all(bytes).and_then(|()| if sync_now { self.file.sync_data() } else { Ok(()) })
        {
            self.failed(&error, Some(batch));
        }
        if !sync_now {
            self.unsynced_since.get_or_insert_with(Instant::now);
            self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).written += 1;
        }
        batch.0.send_replace(Some(Ok(())));
        let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.failing = None;
        pending.in_flight = None;
        drop(pending);
        self.size += bytes.len() as u64;
    }

    /// Syncs the writes answered before their sync (with a [`StateSync::Every`] interval), here.
    fn sync(&mut self) {
        while let Err(error) = self.file.sync_data() {
            self.failed(&error, None);
        }
        let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        (pending.failing, pending.synced) = (None, pending.written);
        drop(pending);
        self.unsynced_since = None;
    }

    /// [`Writer::sync`] on the syncer's thread, so the next batches are written meanwhile.
    fn sync_beside(&mut self) {
        let Some(syncer) = &self.syncer else { return self.sync() };
        let Ok(file) = self.file.try_clone() else { return self.sync() };
        let written = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).written;
        if syncer.jobs.send((file, written)).is_err() {
            return self.sync();
        }
        self.unsynced_since = None;
    }

    fn failed(&self, error: &std::io::Error, batch: Option<&Batch>) {
        failed(&self.shared, &self.path, error, batch);
    }

    /// Folds the journal as it is now into a snapshot, on a thread of its own; appends go on
    /// meanwhile and are copied after the snapshot when it is installed.
    fn start_compaction(&mut self) {
        // The file's own length, not `size`: a write retried after a partial one left more.
        let upto = self.file.metadata().map_or(self.size, |m| m.len());
        let (path, shared) = (self.path.clone(), self.shared.clone());
        let spawned = std::thread::Builder::new().name("stadion-journal-compact".to_owned()).spawn(move || {
            let result = compact_lines(&path, upto);
            shared.pending.lock().unwrap_or_else(PoisonError::into_inner).compacted = true;
            shared.wake.notify_one();
            result
        });
        match spawned {
            Ok(thread) => self.compaction = Some(Compaction { upto, thread }),
            Err(error) => {
                tracing::warn!(%error, "ticket journal not compacted: cannot start its thread");
                self.snapshot = self.size;
            }
        }
    }

    /// Installs a finished snapshot: the lines appended since it started are copied after it,
    /// then it replaces the journal.
    fn finish_compaction(&mut self) {
        let Some(Compaction { upto, thread }) = self.compaction.take() else { return };
        let snapshot = thread
            .join()
            .unwrap_or_else(|_| Err(io_error(&self.path, "the compaction thread panicked")))
            .and_then(|(temporary, size)| {
                let installed = self.install(&temporary, upto, size);
                if installed.is_err() {
                    let _ = std::fs::remove_file(&temporary);
                }
                installed
            });
        match snapshot {
            Ok((size, snapshot, file)) => {
                tracing::debug!(file = %self.path.display(), before = self.size, after = size, "ticket journal compacted");
                (self.file, self.size, self.snapshot) = (file, size, snapshot);
                // Everything written so far is in the snapshot and its tail, both synced.
                self.unsynced_since = None;
                let mut pending = self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                pending.synced = pending.written;
            }
            Err(error) => {
                tracing::warn!(%error, "ticket journal not compacted; appending to it as it is");
                // Do not try again before it has grown as much again.
                self.snapshot = self.size;
            }
        }
    }

    /// Appends the journal's bytes past `upto` to the snapshot `temporary` (`size` bytes) and
    /// renames it over the journal: its new size, its snapshot part, and the file to append to.
    fn install(&self, temporary: &Path, upto: u64, size: u64) -> Result<(u64, u64, File), StoreError> {
        let mut tail = File::open(&self.path).map_err(|e| io_error(&self.path, e))?;
        tail.seek(SeekFrom::Start(upto)).map_err(|e| io_error(&self.path, e))?;
        let mut out = OpenOptions::new().append(true).open(temporary).map_err(|e| io_error(temporary, e))?;
        let copied = std::io::copy(&mut tail, &mut out).map_err(|e| io_error(temporary, e))?;
        out.sync_data().map_err(|e| io_error(temporary, e))?;
        install(temporary, &self.path)?;
        Ok((size + copied, size, out))
    }
}

/// Reports a failed write or sync of the journal at `path` to the callers waiting for `batch`
/// and to every caller until it succeeds, then pauses before it is tried again.
fn failed(shared: &Shared, path: &Path, error: &std::io::Error, batch: Option<&Batch>) {
    tracing::error!(file = %path.display(), %error, "cannot write the ticket journal; retrying");
    shared.pending.lock().unwrap_or_else(PoisonError::into_inner).failing = Some(error.to_string());
    if let Some(batch) = batch {
        batch.0.send_replace(Some(Err(error.to_string())));
    }
    std::thread::sleep(RETRY_WRITE);
}

/// Writes the live lines of the journal's first `upto` bytes to its temporary file, as they
/// are: the last line of each ticket not forgotten and of each match not done. Only where
/// those lines are is held meanwhile, not the tickets, so compacting a large journal costs
/// the service little memory. Returns the temporary file and its size.
fn compact_lines(path: &Path, upto: u64) -> Result<(PathBuf, u64), StoreError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut tickets: HashMap<Uuid, (u64, usize)> = HashMap::new();
    let mut matches: HashMap<Uuid, (u64, usize)> = HashMap::new();
    let mut reader = BufReader::new((&file).take(upto));
    let (mut line, mut offset, mut number, mut skipped) = (Vec::new(), 0u64, 0usize, 0usize);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|e| io_error(path, e))?;
        if read == 0 {
            break;
        }
        let at = (offset, read);
        (offset, number) = (offset + read as u64, number + 1);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Parsed whole, as a load would, so a line kept here is one a load accepts.
        match serde_json::from_slice::<Change>(&line) {
            Ok(Change::Ticket(ticket)) => {
                if let Ok(id) = Uuid::parse_str(&ticket.ticket.id) {
                    tickets.insert(id, at);
                }
            }
            Ok(Change::Forget(id)) => {
                tickets.remove(&id);
            }
            Ok(Change::Match(m)) => {
                matches.insert(m.id, at);
            }
            Ok(Change::MatchDone(id)) => {
                matches.remove(&id);
            }
            Err(error) => {
                skipped += 1;
                tracing::warn!(file = %path.display(), line = number, %error, "journal line dropped by compaction");
            }
        }
    }
    let mut kept: Vec<(u64, usize)> = tickets.into_values().chain(matches.into_values()).collect();
    kept.sort_unstable();
    let temporary = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(File::create(&temporary).map_err(|e| io_error(&temporary, e))?);
    let mut size = 0u64;
    for (at, len) in kept {
        line.resize(len, 0);
        file.read_exact_at(&mut line, at).map_err(|e| io_error(path, e))?;
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        out.write_all(&line).map_err(|e| io_error(&temporary, e))?;
        size += line.len() as u64;
    }
    let file = out.into_inner().map_err(|e| io_error(&temporary, e.error()))?;
    file.sync_all().map_err(|e| io_error(&temporary, e))?;
    if skipped > 0 {
        tracing::warn!(file = %path.display(), skipped, "ticket journal had unreadable lines");
    }
    Ok((temporary, size))
}

/// Folds the journal at `path` (absent: empty). A line that does not parse — the torn tail of
/// a batch cut short by a power loss — is skipped with a warning.
fn read_journal(path: &Path) -> Result<Stored, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
        Err(e) => return Err(io_error(path, e)),
    };
    let mut fold = Fold::default();
    let mut skipped = 0usize;
    for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| io_error(path, e))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Change>(&line) {
            Ok(change) => fold.apply(change),
            Err(error) => {
                skipped += 1;
                tracing::warn!(file = %path.display(), line = number + 1, %error, "journal line skipped");
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(file = %path.display(), skipped, "ticket journal had unreadable lines");
    }
    Ok(fold.into_stored())
}

/// Replaces the journal at `path` with the lines of `stored`, atomically; returns its size.
fn write_snapshot(path: &Path, stored: &Stored) -> Result<u64, StoreError> {
    let (temporary, size) = write_temporary(path, stored)?;
    install(&temporary, path)?;
    Ok(size)
}

/// Writes the lines of `stored` to the journal's temporary file and syncs it: its path and size.
fn write_temporary(path: &Path, stored: &Stored) -> Result<(PathBuf, u64), StoreError> {
    let temporary = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(File::create(&temporary).map_err(|e| io_error(&temporary, e))?);
    let mut size = 0u64;
    let changes = stored
        .tickets
        .iter()
        .map(|t| Change::Ticket(Box::new(t.clone())))
        .chain(stored.matches.iter().map(|m| Change::Match(Box::new(m.clone()))));
    for change in changes {
        let mut line = serde_json::to_vec(&change).map_err(|e| io_error(&temporary, e))?;
        line.push(b'\n');
        out.write_all(&line).map_err(|e| io_error(&temporary, e))?;
        size += line.len() as u64;
    }
    let file = out.into_inner().map_err(|e| io_error(&temporary, e.error()))?;
    file.sync_all().map_err(|e| io_error(&temporary, e))?;
    Ok((temporary, size))
}

/// Renames the synced `temporary` over the journal at `path`, durably.
fn install(temporary: &Path, path: &Path) -> Result<(), StoreError> {
    std::fs::rename(temporary, path).map_err(|e| io_error(path, e))?;
    // The rename itself is durable only once the folder is synced.
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_whose_change_is_being_synced_waits_for_that_sync() {
        let dir = std::env::temp_dir().join(format!("stadion-journal-test-{}", Uuid::new_v4()));
        let store = JournalStore::open(&dir).unwrap();
        let mut synced = 0;
        for round in 0..50 {
            store.record(Change::Forget(Uuid::new_v4()));
            // Catch the writer between taking the change and finishing its sync.
            let in_flight = loop {
                let pending = store.shared.pending.lock().unwrap();
                if pending.bytes.is_empty() {
                    break pending.in_flight.clone();
                }
            };
            let persisted = store.persisted();
            persisted.await.unwrap();
            if let Some(batch) = in_flight {
                assert!(batch.0.borrow().is_some(), "round {round}: answered before its batch was synced");
                synced += 1;
            }
        }
        assert!(synced > 0, "the writer was never caught with a batch in flight");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn unsynced(store: &JournalStore) -> bool {
        let pending = store.shared.pending.lock().unwrap();
        pending.written > pending.synced
    }

    fn journal_text(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap()
    }

    #[tokio::test]
    async fn with_an_interval_a_change_is_answered_once_written_and_synced_within_the_interval() {
        let dir = std::env::temp_dir().join(format!("stadion-journal-test-{}", Uuid::new_v4()));
        // An hour: nothing but closing the journal syncs it during the test.
        let store = JournalStore::open_syncing(&dir, StateSync::Every(Duration::from_secs(3600))).unwrap();
        let id = Uuid::new_v4();
        store.record(Change::Forget(id));
        store.persisted().await.unwrap();
        assert!(journal_text(&dir).contains(&id.to_string()), "answered before the change was written");
        assert!(unsynced(&store), "the change was synced before it was answered");
        drop(store);
        let store = JournalStore::open_syncing(&dir, StateSync::Every(Duration::from_millis(20))).unwrap();
        assert!(!unsynced(&store), "closing the journal left a write unsynced");
        let id = Uuid::new_v4();
        store.record(Change::Forget(id));
        store.persisted().await.unwrap();
        assert!(journal_text(&dir).contains(&id.to_string()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while unsynced(&store) {
            assert!(Instant::now() < deadline, "a write was still unsynced 10 s after a 20 ms interval");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn by_default_a_change_is_synced_before_it_is_answered() {
        let dir = std::env::temp_dir().join(format!("stadion-journal-test-{}", Uuid::new_v4()));
        let store = JournalStore::open(&dir).unwrap();
        for _ in 0..20 {
            store.record(Change::Forget(Uuid::new_v4()));
            store.persisted().await.unwrap();
            assert!(!unsynced(&store), "a change was answered before its sync");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
