//! Games must not outlive a `stadion up` that is SIGKILLed (an IDE's stop button, the OOM
//! killer): a killed process runs no cleanup, and its games sit in process groups of their own.
//!
//! A separate *orphan guard* process does it instead. The supervisor starts it once, in a process
//! group of its own (so a terminal's Ctrl-C reaches only `stadion up`), with a pipe as its stdin,
//! and tells it each game's process group as the game starts (`+<pgid>`) and ends (`-<pgid>`).
//! Its parent's death closes the pipe, however the parent died; on that end of input the guard
//! stops every group still listed (SIGTERM, the grace period, SIGKILL) and exits. After a clean
//! shutdown the list is empty and it simply exits. No `pre_exec` or parent-death signal is
//! needed, so nothing here is `unsafe`, and it costs one process for the whole fleet.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How to start the guard: normally `stadion __orphan-guard --grace-seconds N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardCommand {
    /// The program (the `stadion` binary itself).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The running guard, fed by the supervisor.
#[derive(Debug)]
pub struct OrphanGuard {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl OrphanGuard {
    /// Starts the guard process.
    pub fn start(command: &GuardCommand) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Its own group: the terminal's signals are for `stadion up`, which stops the games
            // gracefully itself; the guard acts only once `up` is gone.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Self { stdin: Mutex::new(stdin), child: Mutex::new(child) })
    }

    /// The guard's pid.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).id()
    }

    /// A game started in process group `pgid`.
    pub fn watch(&self, pgid: u32) {
        self.send(&format!("+{pgid}\n"));
    }

    /// The game in process group `pgid` ended; the guard forgets it (its id may be reused).
    pub fn forget(&self, pgid: u32) {
        self.send(&format!("-{pgid}\n"));
    }

    /// Closes the pipe, as the parent's death would, and waits (up to a few seconds) for the
    /// guard to exit: at once when every game was stopped and forgotten.
    pub async fn close(&self) {
        self.stdin.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        for _ in 0..200 {
            let exited = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).try_wait();
            if !matches!(exited, Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::warn!("the orphan guard did not exit after its input closed");
    }

    fn send(&self, line: &str) {
        let mut stdin = self.stdin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(pipe) = stdin.as_mut() else { return };
        // A few bytes into a pipe the guard drains continuously: this never blocks for long.
        if let Err(error) = pipe.write_all(line.as_bytes()) {
            tracing::warn!(%error, "the orphan guard is gone; games would outlive a killed `stadion up`");
            *stdin = None;
        }
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        // Closing the pipe is the guard's cue; it stops what is still listed, then exits.
        self.stdin.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let child = self.child.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reap it if it is already done; otherwise it finishes on its own and init reaps it.
        let _ = child.try_wait();
    }
}

/// The guard's side: reads `+pgid`/`-pgid` lines until end of input, then stops every group
/// still listed (SIGTERM, up to `grace`, then SIGKILL). Returns how many groups it stopped.
pub fn guard_groups(input: impl BufRead, grace: Duration) -> usize {
    let mut groups = std::collections::BTreeSet::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (sign, number) = line.split_at(line.len().min(1));
        let Ok(pgid) = number.trim().parse::<i32>() else { continue };
        if pgid <= 1 {
            continue; // never signal init's group or "every process"
        }
        match sign {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    let alive: Vec<i32> = groups.into_iter().filter(|&pgid| signal(pgid, Some(Signal::SIGTERM))).collect();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && alive.iter().any(|&pgid| signal(pgid, None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pgid in &alive {
        signal(pgid, Some(Signal::SIGKILL));
    }
    alive.len()
}

/// Sends `signal` (None: only checks) to group `pgid`; whether the group exists.
fn signal(pgid: i32, signal: Option<Signal>) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), signal), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;
    use std::time::Duration;

    use super::{guard_groups, signal};

    fn sleeper() -> std::process::Child {
        Command::new("sleep").arg("30").process_group(0).spawn().expect("start sleep")
    }

    #[test]
    fn listed_groups_are_stopped_at_end_of_input_and_forgotten_ones_are_not() {
        let mut listed = sleeper();
        let mut forgotten = sleeper();
        let input = format!("+{}\n+{}\n-{}\nnoise\n+1\n", listed.id(), forgotten.id(), forgotten.id());
        let stopped = guard_groups(input.as_bytes(), Duration::from_secs(2));
        assert_eq!(stopped, 1);
        let status = listed.wait().expect("wait");
        assert!(!status.success(), "the listed game was stopped: {status:?}");
        assert!(forgotten.try_wait().expect("poll").is_none(), "a forgotten group is left alone");
        let pgid = i32::try_from(forgotten.id()).expect("pid");
        assert!(signal(pgid, None));
        forgotten.kill().expect("clean up");
        forgotten.wait().expect("reap");
    }
}
