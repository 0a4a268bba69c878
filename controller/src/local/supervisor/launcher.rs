//! Starting game processes from a thread with a descriptor table of its own, so that a spawn
//! costs the same with one server running or a thousand.
//!
//! A child starts with a copy of its parent's file-descriptor table, and `execve` then closes
//! every close-on-exec descriptor in that copy, one by one. `stadion up` holds about six
//! descriptors per running server (the sidecar's two listeners and its game's connection, two
//! output pipes, a pidfd), so a thousand servers meant six thousand descriptors copied and
//! closed by every spawn: in a profile of a 1,000-server start, a tenth of all CPU time went to
//! `execve` closing them, and start-up grew quadratically with the fleet.
//!
//! The launcher thread unshares its descriptor table (`unshare(CLONE_FILES)`) when the
//! supervisor starts and closes everything in it but its end of a socket pair. A child spawned
//! from it inherits only a handful of descriptors. Memory is shared as for any thread, so the
//! command itself crosses on a channel; descriptors cannot, so they cross the socket as
//! `SCM_RIGHTS`: a child's stdin in, its output pipes out. Nothing on the thread may log or
//! otherwise touch a descriptor it did not create: the numbers of the process's own table mean
//! nothing (or something else) in the thread's.
//!
//! Where the table cannot be unshared, processes are spawned directly, as before.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError, mpsc};

use rustix::net::RecvFlags;
use rustix::process::{PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus, pidfd_open, waitid};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::ExitOutcome;
use crate::local::fd_passing;

/// A process just started: its pid and the read ends of its output pipes.
#[derive(Debug)]
pub(super) struct Launched {
    pub pid: u32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Spawns commands, from the launcher thread when there is one.
#[derive(Debug)]
pub(super) struct Launcher {
    thread: Option<Mutex<Channel>>,
}

#[derive(Debug)]
struct Channel {
    requests: mpsc::Sender<Request>,
    replies: mpsc::Receiver<io::Result<u32>>,
    socket: UnixStream,
}

#[derive(Debug)]
struct Request {
    command: Command,
    /// Whether the child's stdin follows on the socket.
    stdin: bool,
}

impl Launcher {
    /// Starts the launcher thread; without one (the table could not be unshared) every launch
    /// spawns directly.
    pub fn start() -> Self {
        match start_thread() {
            Ok(channel) => Self { thread: Some(Mutex::new(channel)) },
            Err(error) => {
                tracing::debug!(%error, "no launcher thread; game processes are spawned directly");
                Self { thread: None }
            }
        }
    }

    /// Whether spawns go through the launcher thread.
    #[cfg(test)]
    pub fn isolated(&self) -> bool {
        self.thread.is_some()
    }

    /// Spawns `command` with `stdin` (none: `/dev/null`) and piped stdout and stderr.
    pub fn launch(&self, command: Command, stdin: Option<OwnedFd>) -> io::Result<Launched> {
        let Some(thread) = &self.thread else {
            let (pid, [stdout, stderr]) = spawn(command, stdin)?;
            return Ok(Launched { pid, stdout, stderr });
        };
        // One launch at a time: a request, its stdin and its pipes travel in lockstep.
        let channel = thread.lock().unwrap_or_else(PoisonError::into_inner);
        let gone = || io::Error::other("the launcher thread has stopped");
        if let Some(stdin) = &stdin {
            send_fds(&channel.socket, &[stdin.as_fd()])?;
        }
        channel.requests.send(Request { command, stdin: stdin.is_some() }).map_err(|_| gone())?;
        drop(stdin);
        let pid = channel.replies.recv().map_err(|_| gone())??;
        let [stdout, stderr] = receive_fds::<2>(&channel.socket)?;
        Ok(Launched { pid, stdout, stderr })
    }
}

fn start_thread() -> io::Result<Channel> {
    let (ours, theirs) = UnixStream::pair()?;
    let (requests, requested) = mpsc::channel::<Request>();
    let (reply, replies) = mpsc::channel();
    let (ready, unshared) = mpsc::channel();
    std::thread::Builder::new().name("game-launcher".to_owned()).spawn(move || {
        let kept = theirs.as_raw_fd();
        if let Err(error) = own_table(kept) {
            let _ = ready.send(Err(error));
            return;
        }
        let _ = ready.send(Ok(()));
        for request in requested {
            let launched = serve(&theirs, request);
            if reply.send(launched).is_err() {
                return;
            }
        }
    })?;
    unshared.recv().map_err(|_| io::Error::other("the launcher thread ended before it started"))??;
    Ok(Channel { requests, replies, socket: ours })
}

/// Gives this thread a descriptor table of its own holding only stdio and `kept`.
fn own_table(kept: i32) -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).map_err(io::Error::from)?;
    let inherited: Vec<i32> = std::fs::read_dir("/proc/thread-self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in inherited.into_iter().filter(|fd| *fd > 2 && *fd != kept) {
        // The copies are this table's alone: closing them leaves the process's own open. The
        // directory's descriptor is in the list and already closed; EBADF is expected.
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

/// On the launcher thread: one spawn, its pipes sent back once the pid is.
fn serve(socket: &UnixStream, request: Request) -> io::Result<u32> {
    let stdin = if request.stdin {
        let [stdin] = receive_fds::<1>(socket)?;
        Some(stdin)
    } else {
        None
    };
    let (pid, pipes) = spawn(request.command, stdin)?;
    if let Err(error) = send_fds(socket, &[pipes[0].as_fd(), pipes[1].as_fd()]) {
        // Nobody could read its output or learn its pid: it must not live on unseen.
        if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
        return Err(error);
    }
    Ok(pid)
}

fn spawn(mut command: Command, stdin: Option<OwnedFd>) -> io::Result<(u32, [OwnedFd; 2])> {
    command.stdin(stdin.map_or_else(Stdio::null, Stdio::from)).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let pipes = child.stdout.take().map(OwnedFd::from).zip(child.stderr.take().map(OwnedFd::from));
    let Some((stdout, stderr)) = pipes else {
        return Err(io::Error::other("the child's output pipes are missing"));
    };
    // Dropping `child` neither waits for nor kills it: it is reaped by `wait_for_exit`.
    Ok((child.id(), [stdout, stderr]))
}

/// The tag byte sent with a launch's descriptors.
const TAG: u8 = b'F';

fn send_fds(socket: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    fd_passing::send(socket, TAG, fds)
}

fn receive_fds<const N: usize>(socket: &UnixStream) -> io::Result<[OwnedFd; N]> {
    fd_passing::receive::<N>(socket, TAG, RecvFlags::empty())?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the launcher's socket was closed"))
}

/// Waits for `pid` (a child of this process) to exit and reaps it: on its pidfd when the kernel
/// has them (Linux 5.3), else on a blocking thread.
pub(super) async fn wait_for_exit(pid: u32) -> io::Result<ExitOutcome> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::other(format!("{pid} is not a process id")))?;
    let pidfd = match pidfd_open(pid, PidfdFlags::NONBLOCK) {
        // Deprecated because a `T` that closes its descriptor while registered is unsound; an
        // `OwnedFd` closes only when the `AsyncFd` drops it, after deregistering. The sound
        // replacement is `unsafe`, which this workspace forbids.
        #[expect(deprecated, reason = "sound for an OwnedFd the AsyncFd owns")]
        Ok(pidfd) => AsyncFd::with_interest(pidfd, Interest::READABLE)?,
        Err(_) => {
            let status = tokio::task::spawn_blocking(move || waitid(WaitId::Pid(pid), WaitIdOptions::EXITED))
                .await
                .map_err(io::Error::other)??;
            return status.map(outcome).ok_or_else(|| io::Error::other("waitid returned no status"));
        }
    };
    loop {
        let mut ready = pidfd.readable().await?;
        if let Some(status) =
            waitid(WaitId::PidFd(pidfd.get_ref().as_fd()), WaitIdOptions::EXITED | WaitIdOptions::NOHANG)?
        {
            return Ok(outcome(status));
        }
        ready.clear_ready();
    }
}

fn outcome(status: WaitIdStatus) -> ExitOutcome {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => ExitOutcome::Code(code),
        (None, Some(signal)) => ExitOutcome::Signal(signal),
        // An exited child has one of the two; treat the impossible as a failure.
        (None, None) => ExitOutcome::Code(-1),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Descriptor counts of this process's launcher threads, as the kernel lists them.
    fn launcher_tables() -> Vec<usize> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("list this process's threads");
        tasks
            .filter_map(|task| {
                let path = task.ok()?.path();
                let name = std::fs::read_to_string(path.join("comm")).ok()?;
                (name.trim() == "game-launcher").then(|| std::fs::read_dir(path.join("fd")).map(Iterator::count))
            })
            .map(|count| count.expect("list a launcher thread's descriptors"))
            .collect()
    }

    #[tokio::test]
    async fn the_launcher_spawns_from_a_table_of_a_few_descriptors_however_many_the_process_holds() {
        let launcher = Launcher::start();
        assert!(launcher.isolated(), "this Linux machine can unshare a thread's descriptor table");
        // Many descriptors opened after the launcher started, as a running fleet has.
        let held: Vec<UnixStream> =
            (0..200).flat_map(|_| <[UnixStream; 2]>::from(UnixStream::pair().expect("pair"))).collect();
        let process = std::fs::read_dir("/proc/self/fd").expect("list").count();
        assert!(process > held.len(), "the process holds its {} sockets", held.len());
        let tables = launcher_tables();
        assert!(!tables.is_empty(), "a launcher thread is running");
        // Stdio and its socket, plus the few a launch in flight in another test holds.
        assert!(tables.iter().all(|fds| *fds <= 8), "launcher tables {tables:?} beside the process's {process}");
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let launched = launcher.launch(sleep, None).expect("launch");
        let pid = rustix::process::Pid::from_raw(launched.pid as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
        assert_eq!(wait_for_exit(launched.pid).await.expect("reaped"), ExitOutcome::Signal(9));
    }

    #[tokio::test]
    async fn stdin_goes_in_output_comes_out_and_the_exit_code_is_reported() {
        let launcher = Launcher::start();
        let (mut ours, theirs) = UnixStream::pair().expect("pair");
        std::io::Write::write_all(&mut ours, b"from the runtime\n").expect("write stdin");
        ours.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut command = Command::new("sh");
        command.args(["-c", "read line; echo \"out: $line\"; echo err >&2; exit 7"]);
        let launched = launcher.launch(command, Some(OwnedFd::from(theirs))).expect("launch");
        assert_eq!(wait_for_exit(launched.pid).await.expect("reaped"), ExitOutcome::Code(7));
        let (mut stdout, mut stderr) = (String::new(), String::new());
        std::fs::File::from(launched.stdout).read_to_string(&mut stdout).expect("stdout");
        std::fs::File::from(launched.stderr).read_to_string(&mut stderr).expect("stderr");
        assert_eq!((stdout.as_str(), stderr.as_str()), ("out: from the runtime\n", "err\n"));
    }

    #[test]
    fn a_missing_program_is_an_error_and_the_launcher_still_works() {
        let launcher = Launcher::start();
        let error = launcher.launch(Command::new("/no/such/program"), None).expect_err("missing");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let launched = launcher.launch(Command::new("true"), None).expect("the next launch still works");
        assert!(launched.pid > 0);
        let reaped = rustix::process::waitpid(
            rustix::process::Pid::from_raw(launched.pid as i32),
            rustix::process::WaitOptions::empty(),
        );
        assert!(reaped.expect("reaped").is_some());
    }
}
