//! The process supervisor runs real processes: env, prefixed output, exits, group kills, grace.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stadion_controller::local::Error;
use stadion_controller::local::supervisor::{
    ExitOutcome, OutputSink, ProcessExit, ProcessSpec, Supervisor, SupervisorConfig,
};
use tokio::sync::mpsc;

/// A `Write` that tests can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).lines().map(str::to_owned).collect()
    }

    /// Waits until a line starting with `prefix` shows up; returns the rest of it.
    async fn wait_for(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.lines().iter().find_map(|l| l.strip_prefix(prefix).map(str::to_owned)) {
                return line;
            }
            assert!(Instant::now() < deadline, "no line {prefix:?} in {:?}", self.lines());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn supervisor(grace: Duration) -> (Supervisor, mpsc::UnboundedReceiver<ProcessExit>, Captured) {
    let captured = Captured::default();
    let sink: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(captured.clone()));
    let (supervisor, exits) =
        Supervisor::new(SupervisorConfig { grace, output: OutputSink::Writer(sink), orphan_guard: None });
    (supervisor, exits, captured)
}

fn script(label: &str, script: &str) -> ProcessSpec {
    ProcessSpec {
        label: label.to_owned(),
        program: PathBuf::from("sh"),
        args: vec!["-c".to_owned(), script.to_owned()],
        env: vec![("GREETING".to_owned(), "hello there".to_owned())],
        working_dir: std::env::temp_dir(),
    }
}

/// Alive means it exists and is not a zombie waiting for a reaper that is not us.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next_exit(exits: &mut mpsc::UnboundedReceiver<ProcessExit>) -> ProcessExit {
    tokio::time::timeout(Duration::from_secs(10), exits.recv()).await.expect("exit in time").expect("channel open")
}

#[tokio::test]
async fn env_is_delivered_output_is_prefixed_and_exit_codes_are_reported() {
    let (supervisor, mut exits, captured) = supervisor(Duration::from_secs(1));
    let pid = supervisor
        .spawn("default/gs-a", &script("gs-a", r#"echo "greeting=$GREETING"; echo "to stderr" >&2; pwd; exit 7"#))
        .expect("spawn");
    let exit = next_exit(&mut exits).await;
    assert_eq!(exit, ProcessExit { key: "default/gs-a".into(), pid, outcome: ExitOutcome::Code(7), stopped: false });
    assert!(!supervisor.is_running("default/gs-a"));
    captured.wait_for("[gs-a] to stderr").await;
    assert_eq!(captured.wait_for("[gs-a] greeting=").await, "hello there");
    let temp = std::env::temp_dir().canonicalize().expect("temp dir");
    assert_eq!(captured.wait_for("[gs-a] /").await, temp.to_string_lossy().trim_start_matches('/'));
}

#[tokio::test]
async fn death_by_signal_is_reported_as_a_signal() {
    let (supervisor, mut exits, _) = supervisor(Duration::from_secs(1));
    supervisor.spawn("default/gs", &script("gs", "kill -9 $$")).expect("spawn");
    assert_eq!(next_exit(&mut exits).await.outcome, ExitOutcome::Signal(9));
}

#[tokio::test]
async fn stop_kills_the_whole_group_including_grandchildren() {
    let (supervisor, mut exits, captured) = supervisor(Duration::from_secs(2));
    supervisor.spawn("default/gs", &script("gs", "sleep 1000 & echo grandchild=$!; wait")).expect("spawn");
    let grandchild: u32 = captured.wait_for("[gs] grandchild=").await.parse().expect("pid");
    assert!(alive(grandchild));

    let started = Instant::now();
    let outcome = supervisor.stop("default/gs").await.expect("was running");
    assert_eq!(outcome, ExitOutcome::Signal(15));
    assert!(started.elapsed() < Duration::from_secs(2), "SIGTERM should have been enough");
    wait_dead(grandchild).await;
    assert!(next_exit(&mut exits).await.stopped);
    assert!(supervisor.is_empty());
    assert_eq!(supervisor.stop("default/gs").await, None);
}

#[tokio::test]
async fn a_game_that_exits_on_its_own_takes_its_helpers_with_it() {
    let (supervisor, mut exits, captured) = supervisor(Duration::from_secs(1));
    supervisor.spawn("default/gs", &script("gs", "sleep 1000 & echo helper=$!; sleep 0.2; exit 0")).expect("spawn");
    let helper: u32 = captured.wait_for("[gs] helper=").await.parse().expect("pid");
    let exit = next_exit(&mut exits).await;
    assert!(exit.outcome.success() && !exit.stopped);
    wait_dead(helper).await;
}

#[tokio::test]
async fn the_grace_period_is_honoured_then_sigkill() {
    let (supervisor, _exits, captured) = supervisor(Duration::from_millis(1500));
    // Cleans up for 300 ms after SIGTERM: inside the grace period, so it exits on its own.
    supervisor
        .spawn(
            "default/polite",
            &script("polite", "trap 'sleep 0.3; exit 3' TERM; echo up; while :; do sleep 0.05; done"),
        )
        .expect("spawn");
    captured.wait_for("[polite] up").await;
    let started = Instant::now();
    assert_eq!(supervisor.stop("default/polite").await, Some(ExitOutcome::Code(3)));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1500), "{took:?}");

    // Ignores SIGTERM (its children inherit that): killed when the grace period runs out.
    supervisor
        .spawn(
            "default/stubborn",
            &script("stubborn", "trap '' TERM; sleep 1000 & echo child=$!; while :; do sleep 0.05; done"),
        )
        .expect("spawn");
    let child: u32 = captured.wait_for("[stubborn] child=").await.parse().expect("pid");
    let started = Instant::now();
    assert_eq!(supervisor.stop("default/stubborn").await, Some(ExitOutcome::Signal(9)));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(4), "{took:?}");
    wait_dead(child).await;
}

#[tokio::test]
async fn shutdown_stops_everything_and_dropping_the_supervisor_leaves_no_strays() {
    let (supervisor, _exits, captured) = supervisor(Duration::from_secs(2));
    let mut pids = Vec::new();
    for i in 0..5 {
        let label = format!("gs-{i}");
        let script = script(&label, "sleep 1000 & echo child=$!; wait");
        pids.push(supervisor.spawn(&format!("default/{label}"), &script).expect("spawn"));
        pids.push(captured.wait_for(&format!("[{label}] child=")).await.parse().expect("pid"));
    }
    assert_eq!(supervisor.len(), 5);
    supervisor.shutdown().await;
    for pid in &pids {
        wait_dead(*pid).await;
    }

    let (supervisor, _exits, captured) = self::supervisor(Duration::from_secs(2));
    supervisor.spawn("default/orphan", &script("orphan", "sleep 1000 & echo child=$!; wait")).expect("spawn");
    let child: u32 = captured.wait_for("[orphan] child=").await.parse().expect("pid");
    drop(supervisor);
    wait_dead(child).await;
}

#[tokio::test]
async fn one_process_per_key_and_spawn_errors_name_the_program() {
    let (supervisor, _exits, _) = supervisor(Duration::from_secs(1));
    supervisor.spawn("default/gs", &script("gs", "sleep 1000")).expect("spawn");
    assert!(matches!(supervisor.spawn("default/gs", &script("gs", "true")), Err(Error::AlreadyRunning { .. })));
    supervisor.shutdown().await;

    let mut missing = script("gs", "");
    missing.program = PathBuf::from("/definitely/not/a/game");
    let error = supervisor.spawn("default/missing", &missing).expect_err("no such program");
    assert!(error.to_string().contains("/definitely/not/a/game"), "{error}");
    assert!(!supervisor.is_running("default/missing"));
}
