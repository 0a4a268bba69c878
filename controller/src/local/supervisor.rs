//! Runs game processes: one child per GameServer, each in its own process group.
//!
//! The process group is the unit of everything: a game may start helpers (a shell wrapper, a
//! log shipper), and stopping the server must stop all of them, like a container's cgroup would.
//! Stopping sends SIGTERM to the group, waits up to the grace period for the game to exit, then
//! SIGKILLs the group. When the game process itself exits (asked to or not) whatever is left of
//! its group is SIGKILLed too, as a container runtime does when the main process ends.
//! Should the supervising process itself be SIGKILLed, the optional [`OrphanGuard`]
//! stops the groups instead.

mod command;
mod launcher;
mod orphans;
mod output;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

pub use command::{ProcessSpec, SELF_PROGRAM, local_problems, process_spec};
pub use orphans::{GuardCommand, OrphanGuard, guard_groups};
pub use output::{OutputSink, OutputStream, OutputTails};

use self::launcher::{Launched, Launcher};
use super::error::{Error, Result};

/// Default time a game gets between SIGTERM and SIGKILL (Kubernetes' default is 30 s; local
/// development wants Ctrl-C to feel immediate).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitOutcome {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ExitOutcome {
    /// Exited with code 0.
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }
}

/// A process ended: reported on the supervisor's exit channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessExit {
    /// The key the process was started under (`namespace/name` of its GameServer).
    pub key: String,
    /// Its process id (and process group id).
    pub pid: u32,
    /// How it ended.
    pub outcome: ExitOutcome,
    /// Whether it ended because [`Supervisor::stop`] (or shutdown) asked it to.
    pub stopped: bool,
}

/// Settings of a [`Supervisor`].
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// Where the games' output lines go.
    pub output: OutputSink,
    /// The orphan guard to start, so games die with a SIGKILLed parent (none: no guard; a
    /// library user's process then cleans up only on a normal exit, panic or drop).
    pub orphan_guard: Option<GuardCommand>,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self { grace: DEFAULT_GRACE, output: OutputSink::stderr(), orphan_guard: None }
    }
}

/// Starts, stops and reaps game processes. Cloneable handle; dropping the last handle SIGKILLs
/// every group still running so that nothing outlives the runtime.
#[derive(Clone, Debug)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SupervisorConfig,
    running: Mutex<HashMap<String, Running>>,
    exits: mpsc::UnboundedSender<ProcessExit>,
    guard: Option<OrphanGuard>,
    tails: OutputTails,
    launcher: Launcher,
}

#[derive(Debug)]
struct Running {
    pid: u32,
    stopping: Arc<AtomicBool>,
    exited: watch::Receiver<Option<ExitOutcome>>,
}

fn signal_group(pid: u32, signal: Signal) {
    let Ok(pgid) = i32::try_from(pid) else { return };
    // ESRCH (the group is already gone) is the expected outcome of a race with the exit.
    if let Err(error) = killpg(Pid::from_raw(pgid), signal)
        && error != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pgid, ?signal, %error, "cannot signal process group");
    }
}

impl Supervisor {
    /// A supervisor and the channel on which every process exit is reported. Starts the
    /// orphan guard when the config names one; a guard that cannot start is reported, not fatal.
    pub fn new(config: SupervisorConfig) -> (Self, mpsc::UnboundedReceiver<ProcessExit>) {
        let (exits, receiver) = mpsc::unbounded_channel();
        let guard = config.orphan_guard.as_ref().and_then(|command| match OrphanGuard::start(command) {
            Ok(guard) => {
                tracing::debug!(pid = guard.pid(), "orphan guard started");
                Some(guard)
            }
            Err(error) => {
                tracing::warn!(%error, program = %command.program.display(), "cannot start the orphan guard; games would outlive a killed parent");
                None
            }
        });
        let launcher = Launcher::start();
        let inner = Inner {
            config,
            running: Mutex::new(HashMap::new()),
            exits,
            guard,
            tails: OutputTails::default(),
            launcher,
        };
        (Self { inner: Arc::new(inner) }, receiver)
    }

    /// The last lines each process printed, by the key it was started under.
    pub fn output_tails(&self) -> &OutputTails {
        &self.inner.tails
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.inner.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `spec` under `key` (at most one process per key). Returns its pid. Must be called
    /// within a tokio runtime.
    pub fn spawn(&self, key: &str, spec: &ProcessSpec) -> Result<u32> {
        self.spawn_with_stdin(key, spec, None)
    }

    /// [`Supervisor::spawn`], with `stdin` as the process's standard input (a network sandbox
    /// gets the Unix socket it hands its SDK listeners over; none: `/dev/null`).
    pub fn spawn_with_stdin(&self, key: &str, spec: &ProcessSpec, stdin: Option<OwnedFd>) -> Result<u32> {
        let mut running = self.running();
        if running.contains_key(key) {
            return Err(Error::AlreadyRunning { gameserver: key.to_owned() });
        }
        let mut command = std::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.working_dir)
            // Its own group, so one signal reaches the game and everything it started.
            .process_group(0);
        let Launched { pid, stdout, stderr } = self
            .inner
            .launcher
            .launch(command, stdin)
            .map_err(|source| Error::Spawn { gameserver: key.to_owned(), program: spec.program.clone(), source })?;
        let sink = &self.inner.config.output;
        let tail = || (self.inner.tails.clone(), key.to_owned());
        for (pipe, stream) in [(stdout, OutputStream::Stdout), (stderr, OutputStream::Stderr)] {
            match tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) {
                Ok(reader) => {
                    tokio::spawn(output::pump(reader, spec.label.clone(), stream, sink.clone(), tail()));
                }
                // Only a runtime that cannot register a descriptor gets here; the game's writes
                // to that stream then fail with EPIPE, which it survives or reports.
                Err(error) => tracing::error!(gameserver = %key, pid, ?stream, %error, "cannot read game output"),
            }
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let (exited_tx, exited) = watch::channel(None);
        running.insert(key.to_owned(), Running { pid, stopping: stopping.clone(), exited });
        drop(running);
        if let Some(guard) = &self.inner.guard {
            guard.watch(pid);
        }
        tracing::info!(gameserver = %key, pid, program = %spec.program.display(), "game process started");

        let supervisor = Arc::downgrade(&self.inner);
        let key = key.to_owned();
        tokio::spawn(async move {
            let outcome = match launcher::wait_for_exit(pid).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!(gameserver = %key, pid, %error, "cannot wait for game process");
                    signal_group(pid, Signal::SIGKILL);
                    ExitOutcome::Code(-1)
                }
            };
            // Leftovers of the group die with the game, as in a container.
            signal_group(pid, Signal::SIGKILL);
            let stopped = stopping.load(Ordering::SeqCst);
            tracing::info!(gameserver = %key, pid, ?outcome, stopped, "game process exited");
            let inner = supervisor.upgrade();
            // Forgotten before anyone hears of the exit, so a finished shutdown leaves the
            // guard nothing to stop.
            if let Some(guard) = inner.as_ref().and_then(|inner| inner.guard.as_ref()) {
                guard.forget(pid);
            }
            let _ = exited_tx.send(Some(outcome));
            if let Some(inner) = inner {
                let mut running = inner.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if running.get(&key).is_some_and(|r| r.pid == pid) {
                    running.remove(&key);
                }
                drop(running);
                let _ = inner.exits.send(ProcessExit { key, pid, outcome, stopped });
            }
        });
        Ok(pid)
    }

    /// Whether a process is running under `key`.
    pub fn is_running(&self, key: &str) -> bool {
        self.running().contains_key(key)
    }

    /// Pid of the process running under `key`.
    pub fn pid(&self, key: &str) -> Option<u32> {
        self.running().get(key).map(|r| r.pid)
    }

    /// Number of running processes.
    pub fn len(&self) -> usize {
        self.running().len()
    }

    /// Whether no process is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the process under `key`: SIGTERM to its group, SIGKILL after the configured grace
    /// period. Returns how it ended, or `None` if nothing was running.
    pub async fn stop(&self, key: &str) -> Option<ExitOutcome> {
        self.stop_with(key, Duration::ZERO, self.inner.config.grace).await
    }

    /// Stops the process under `key` as a kubelet stops a deleted pod's container: it may first
    /// exit on its own for up to `settle` (the time a deletion takes to reach a kubelet), then
    /// gets SIGTERM, and SIGKILL once `grace` (its `terminationGracePeriodSeconds`) has run.
    pub async fn stop_with(&self, key: &str, settle: Duration, grace: Duration) -> Option<ExitOutcome> {
        let (pid, mut exited) = {
            let running = self.running();
            let process = running.get(key)?;
            process.stopping.store(true, Ordering::SeqCst);
            (process.pid, process.exited.clone())
        };
        let left = !settle.is_zero() && tokio::time::timeout(settle, exited.wait_for(Option::is_some)).await.is_ok();
        if !left {
            signal_group(pid, Signal::SIGTERM);
            let finished = tokio::time::timeout(grace, exited.wait_for(Option::is_some)).await.is_ok();
            if !finished {
                tracing::warn!(gameserver = %key, pid, ?grace, "game ignored SIGTERM; killing it");
                signal_group(pid, Signal::SIGKILL);
            }
        }
        exited.wait_for(Option::is_some).await.ok().and_then(|o| *o)
    }

    /// Stops every process at once (each with the grace period) and waits for all of them,
    /// then lets the orphan guard go (it has nothing left to stop, and exits).
    pub async fn shutdown(&self) {
        let keys: Vec<String> = self.running().keys().cloned().collect();
        futures::future::join_all(keys.iter().map(|key| self.stop(key))).await;
        if let Some(guard) = &self.inner.guard {
            guard.close().await;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last resort when the runtime is dropped without a shutdown: no game may outlive it.
        let running = self.running.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        for process in running.values() {
            signal_group(process.pid, Signal::SIGKILL);
        }
    }
}
