//! The thread matching rounds run on: one of their own, at a lower scheduling priority than
//! the threads serving requests.
//!
//! A round over a large backlog is CPU-bound for as long as it has tickets to visit. On a
//! small machine it competes for the cores with the request handlers (and with a store's own
//! process, such as Redis). At a lower priority the kernel hands the core back to a woken
//! request thread at once, so a round costs a request only its share of the lock, never a
//! scheduler time slice. A round still gets the cores whenever nothing else wants them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// How much lower than the process the matching thread runs (`nice` steps).
const NICENESS: i32 = 10;

type Work = Box<dyn FnOnce() + Send>;

/// Runs closures one at a time on the matching thread; the thread stops when this is dropped.
#[derive(Debug)]
pub struct Matcher {
    work: mpsc::Sender<Work>,
}

/// Why [`Matcher::run`] returned no result.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The closure panicked (the thread goes on with the next one).
    #[error("the matching slice panicked")]
    Panicked,
    /// The thread is gone.
    #[error("the matching thread stopped")]
    Stopped,
}

impl Matcher {
    /// Starts the matching thread.
    pub fn start() -> std::io::Result<Self> {
        let (work, queue) = mpsc::channel::<Work>();
        std::thread::Builder::new().name("stadion-match".to_owned()).spawn(move || {
            lower_priority();
            while let Ok(work) = queue.recv() {
                work();
            }
        })?;
        Ok(Self { work })
    }

    /// Runs `f` on the matching thread and returns what it returns.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, MatcherError> {
        let (done, result) = oneshot::channel();
        let work: Work = Box::new(move || {
            // A panic in one slice must not take the thread (and every later round) with it.
            let _ = done.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.work.send(work).map_err(|_| MatcherError::Stopped)?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(MatcherError::Panicked),
            Err(_) => Err(MatcherError::Stopped),
        }
    }
}

/// Lowers the calling thread's priority (on Linux the nice value is per thread); a failure
/// only costs the requests some latency under load, so it is logged and matching goes on.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::nice(NICENESS) {
        tracing::warn!(%error, "matching thread keeps the process's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slices_run_on_a_lower_priority_thread_that_survives_a_panic() {
        let matcher = Matcher::start().unwrap();
        let own = rustix::process::getpriority_process(None).unwrap();
        let (name, priority) = matcher
            .run(|| {
                let name = std::thread::current().name().map(str::to_owned);
                (name, rustix::process::getpriority_process(None).unwrap())
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("stadion-match"));
        assert_eq!(priority, (own + NICENESS).min(19), "the matching thread runs {NICENESS} steps lower");
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), own, "the caller keeps its priority");
        assert!(matches!(matcher.run(|| panic!("a broken slice")).await, Err(MatcherError::Panicked)));
        assert_eq!(matcher.run(|| 7).await.unwrap(), 7, "the next slice still runs");
    }
}
