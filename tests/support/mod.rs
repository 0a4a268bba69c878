//! Shared pieces of the end-to-end tests: the real `stadion` binary as a guarded child process,
//! free ports, a scratch folder, UDP/HTTP helpers and a `/proc` scan for leftover game processes.
//!
//! Every process a test starts carries a unique marker in its environment, which the games
//! inherit from `stadion up`; a test (and every guard's `Drop`) can therefore find all of them,
//! even after they were reparented, and none survives a failing test.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Environment variable carrying the per-test marker.
pub const MARKER_VAR: &str = "STADION_E2E_MARKER";

/// The `stadion` binary under test.
pub fn stadion() -> &'static str {
    env!("CARGO_BIN_EXE_stadion")
}

/// A port nobody listens on right now (TCP and UDP both free, so either use is safe).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
}

/// A scratch folder removed on drop, with a marker unique to this test run.
#[derive(Debug)]
pub struct Scratch {
    /// The folder.
    pub dir: PathBuf,
    /// Marker put into the environment of every process the test starts.
    pub marker: String,
}

impl Scratch {
    /// A new empty folder named after the test.
    pub fn new(test: &str) -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let marker = format!("{test}-{}-{}-{nanos}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(format!("stadion-e2e-{marker}"));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self { dir, marker }
    }

    /// Writes `name` in the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    /// Every live process (not a zombie) whose environment carries this run's marker.
    pub fn marked_processes(&self) -> Vec<u32> {
        marked_processes(&self.marker)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Last line of defence: nothing this test started outlives it.
        for pid in self.marked_processes() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Live processes with `STADION_E2E_MARKER=<marker>` in their environment.
pub fn marked_processes(marker: &str) -> Vec<u32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let marked = environ.split(|b| *b == 0).any(|var| var == needle.as_bytes());
        if marked && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

fn is_zombie(pid: u32) -> bool {
    // The state is the first field after the parenthesised command name, which may hold spaces.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(true)
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped; its stderr goes to a
/// log file whose tail is printed if the test panics.
#[derive(Debug)]
pub struct Guarded {
    child: Child,
    /// What it is, for messages.
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Guarded {
    /// Starts `stadion <args>` with the scratch marker in its environment.
    pub fn stadion(scratch: &Scratch, name: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Command::new(stadion());
        command.args(args);
        Self::spawn(scratch, name, command, env)
    }

    /// Starts `sh -c script args[0] args[1..]` (a script that sets up the process, then
    /// `exec`s its arguments) with the scratch marker in its environment.
    pub fn shell(scratch: &Scratch, name: &str, script: &str, args: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).args(args);
        Self::spawn(scratch, name, command, &[])
    }

    fn spawn(scratch: &Scratch, name: &str, mut command: Command, env: &[(&str, String)]) -> Self {
        let log = scratch.dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        command
            .env(MARKER_VAR, &scratch.marker)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .current_dir(&scratch.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child, name: name.to_owned(), log, exited: None }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Its exit status, waiting up to `timeout`; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.signal(Signal::SIGTERM);
        }
        if let Some(status) = self.wait_exit(grace) {
            return Some(status);
        }
        self.signal(Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(5))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
        if std::thread::panicking() {
            let output = self.output();
            let lines: Vec<&str> = output.lines().collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            eprintln!("----- last lines of {} ({}) -----\n{tail}\n-----", self.name, self.log.display());
        }
    }
}

/// Sends `message` to a UDP server and returns its reply, retrying a few times (UDP may drop).
pub fn udp_request(server: SocketAddr, message: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp client");
    socket.set_read_timeout(Some(Duration::from_millis(1500))).expect("udp timeout");
    let mut buffer = [0u8; 65536];
    for _ in 0..4 {
        socket.send_to(message.as_bytes(), server).expect("udp send");
        if let Ok((len, _)) = socket.recv_from(&mut buffer) {
            return String::from_utf8_lossy(&buffer[..len]).into_owned();
        }
    }
    panic!("no UDP reply from {server} to {message:?}");
}

/// Polls `check` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET base + path` as JSON; `None` while the server is not answering yet.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let response = http.get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Copies `examples/<name>` into the scratch folder, applying `edit` to its text.
pub fn copy_example(scratch: &Scratch, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    let text = std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let file = Path::new(name).file_name().and_then(|f| f.to_str()).unwrap_or(name).to_owned();
    scratch.write(&file, &edit(text))
}

/// The example fleet with `replicas`, quick health checks and fast pings, without the automatic
/// shutdown (the tests decide when servers end).
pub fn test_fleet(scratch: &Scratch, replicas: u32) -> PathBuf {
    copy_example(scratch, "fleet.yaml", |text| {
        text.replace("replicas: 3", &format!("replicas: {replicas}"))
            .replace("initialDelaySeconds: 5", "initialDelaySeconds: 1")
            .replace("periodSeconds: 5", "periodSeconds: 1")
            .replace(
                r#"args: ["--automatic-shutdown-delay-after-allocation", "600"]"#,
                r#"args: ["--health-interval-ms", "250"]"#,
            )
    })
}

/// A running `stadion up` with the matchmaker: its admin API and matchmaker base URLs.
pub struct Up {
    /// Client for both APIs.
    pub http: reqwest::Client,
    /// Admin API base URL (`/api/fleets`, `/api/gameservers`).
    pub admin: String,
    /// Matchmaker base URL (tickets, allocations, Agones' allocation API).
    pub api: String,
    /// The guarded `stadion up` process.
    pub process: Guarded,
}

/// Starts `stadion up` on `paths` with free admin and matchmaker ports (the matchmaker runs
/// when a queue configuration is among the paths), host ports from `port_range`, a 2 s grace
/// period and fast file polling.
pub fn up_on(scratch: &Scratch, paths: &[&Path], port_range: &str) -> Up {
    up_on_with(scratch, paths, port_range, &[])
}

/// [`up_on`] with `extra` flags (`--state-dir`, …) before the paths.
pub fn up_on_with(scratch: &Scratch, paths: &[&Path], port_range: &str, extra: &[&str]) -> Up {
    let (admin, api) =
        (SocketAddr::from(([127, 0, 0, 1], free_port())), SocketAddr::from(([127, 0, 0, 1], free_port())));
    let mut args = vec![
        "up".to_owned(),
        "--admin-addr".to_owned(),
        admin.to_string(),
        "--matchmaker-addr".to_owned(),
        api.to_string(),
        "--port-range".to_owned(),
        port_range.to_owned(),
        "--grace-seconds".to_owned(),
        "2".to_owned(),
        "--poll-ms".to_owned(),
        "100".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Up {
        http: reqwest::Client::new(),
        admin: format!("http://{admin}"),
        api: format!("http://{api}"),
        process: Guarded::stadion(scratch, "stadion-up", &args, &[]),
    }
}

/// Starts `stadion up` on copies of `examples/fleet.yaml` (with `replicas` servers, 1 s health
/// pings and no self-shutdown after allocation) and `examples/matchmaker.yaml`, whose queues
/// make it run the matchmaker, handing out host ports from `port_range`.
pub fn up_with_matchmaker(scratch: &Scratch, replicas: u32, port_range: &str) -> Up {
    let fleet = test_fleet(scratch, replicas);
    let queues = copy_example(scratch, "matchmaker.yaml", |text| text);
    up_on(scratch, &[&fleet, &queues], port_range)
}

impl Up {
    /// A numeric field (`ready`, `allocated`, …) of fleet `fleet` in the admin API.
    pub async fn fleet_field(&self, fleet: &str, field: &str) -> Option<i64> {
        let fleets = get_json(&self.http, &format!("{}/api/fleets", self.admin)).await?;
        fleets.as_array()?.iter().find(|f| f["name"] == fleet).and_then(|f| f[field].as_i64())
    }

    /// Server `name` as the admin API lists it.
    pub async fn gameserver(&self, name: &str) -> Option<serde_json::Value> {
        let all = get_json(&self.http, &format!("{}/api/gameservers", self.admin)).await?;
        all.as_array()?.iter().find(|gs| gs["name"] == name).cloned()
    }

    /// The state of server `name`, if it exists.
    pub async fn state_of(&self, name: &str) -> Option<String> {
        self.gameserver(name).await.and_then(|gs| gs["state"].as_str().map(str::to_owned))
    }
}

/// How long the matchmaker tests wait for a ticket or a fleet to get somewhere.
pub const TICKET_SETTLE: Duration = Duration::from_secs(60);

/// A one-player ticket for `examples/matchmaker.yaml`'s `duel` queue.
pub fn duel_ticket(id: &str, skill: f64) -> serde_json::Value {
    serde_json::json!({"queue": "duel", "players": [{"id": id, "attributes": {"skill": skill}}]})
}

impl Up {
    /// POSTs a ticket (with an `Idempotency-Key` when `key` is given): status and body, or
    /// `None` when the matchmaker does not answer (it was killed).
    pub async fn try_post_ticket_json(
        &self,
        ticket: &serde_json::Value,
        key: Option<&str>,
    ) -> Option<(u16, serde_json::Value)> {
        let mut request = self.http.post(format!("{}/v1/tickets", self.api)).json(ticket);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.timeout(Duration::from_secs(10)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// POSTs a ticket that must be answered: status and body.
    pub async fn post_ticket_json(&self, ticket: &serde_json::Value, key: Option<&str>) -> (u16, serde_json::Value) {
        self.try_post_ticket_json(ticket, key).await.expect("the matchmaker answers POST /v1/tickets")
    }

    /// POSTs a ticket that must be created (201): its id.
    pub async fn ticket_created(&self, ticket: &serde_json::Value, key: Option<&str>) -> String {
        let (status, body) = self.post_ticket_json(ticket, key).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Ticket `id` once it is in `state`.
    pub async fn ticket_reaches(&self, id: &str, state: &str) -> serde_json::Value {
        let url = format!("{}/v1/tickets/{id}", self.api);
        eventually(TICKET_SETTLE, &format!("ticket {id} {state} on {}", self.api), || async {
            let ticket = get_json(&self.http, &url).await?;
            (ticket["state"] == state).then_some(ticket)
        })
        .await
    }

    /// Waits until the example fleet `simple-game-server` has `n` Ready servers.
    pub async fn fleet_ready(&self, n: i64) {
        eventually(TICKET_SETTLE, &format!("{n} Ready servers"), || async {
            (self.fleet_field("simple-game-server", "ready").await == Some(n)).then_some(())
        })
        .await;
    }
}
