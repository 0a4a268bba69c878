//! The official Agones Rust SDK against Stadion's sidecar, over real gRPC: in local mode
//! (`stadion sdk-server --local`, as Agones' local SDK server) and under `stadion up`, where the
//! game is a real process of a real GameServer. The game (this package's binary) runs the whole
//! SDK sequence and says `conformance: ok` only when every answer was Agones'.
//!
//! Needs the `stadion` binary: `STADION_BIN`, else the main workspace's `target/debug/stadion`
//! (built by `cargo test --workspace` or `cargo build -p stadion`).

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GAME: &str = env!("CARGO_BIN_EXE_agones-sdk-conformance");

fn stadion() -> PathBuf {
    let path = std::env::var_os("STADION_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/stadion"));
    assert!(path.exists(), "{} is missing: build it with `cargo build -p stadion` or set STADION_BIN", path.display());
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A child process killed when dropped, whose output is read at the end.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the game against the sidecar on `grpc_port`; its exit status and output.
fn run_game(grpc_port: u16) -> (bool, String) {
    let output = Command::new(GAME)
        .env("AGONES_SDK_GRPC_PORT", grpc_port.to_string())
        .output()
        .expect("the conformance game runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn the_official_sdk_passes_against_the_local_sidecar() {
    let (grpc, http) = (free_port(), free_port());
    let sidecar = Command::new(stadion())
        .args(["sdk-server", "--local", "--grpc-port", &grpc.to_string(), "--http-port", &http.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stadion sdk-server starts");
    let _sidecar = Running(sidecar);
    let (passed, output) = run_game(grpc);
    assert!(passed && output.contains("conformance: ok"), "{output}");
}

#[test]
fn the_official_sdk_passes_as_a_game_under_stadion_up() {
    let dir = std::env::temp_dir().join(format!("stadion-agones-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let manifest = dir.join("gameserver.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: agones.dev/v1
kind: GameServer
metadata:
  name: official-sdk
spec:
  ports:
    - name: default
      containerPort: 7654
  counters:
    rooms: {{count: 1, capacity: 10}}
  lists:
    players: {{capacity: 100, values: [test0, test1, test2]}}
  template:
    spec:
      containers:
        - name: game
          command: [{GAME:?}]
"#
        ),
    )
    .expect("write the manifest");
    // A port `free_port` saw free can be taken before `up` binds it (the other test starts
    // processes meanwhile): then `up` exits at once, naming it, and the run is tried again.
    let mut seen = String::new();
    for _ in 0..3 {
        seen = run_up(&manifest);
        if !seen.contains("Address already in use") {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(seen.contains("conformance: ok"), "the game under `stadion up` said: {seen}");
}

/// `stadion up` on `manifest` until its game reports its conformance run (90 s at most): what
/// `up` printed.
fn run_up(manifest: &std::path::Path) -> String {
    let admin = format!("127.0.0.1:{}", free_port());
    let mut up = Command::new(stadion())
        .args(["up", "--quiet", "--admin-addr", &admin, "--port-range", "23100-23110"])
        .arg(manifest)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stadion up starts");
    let mut stderr = up.stderr.take().expect("stderr");
    let up = Running(up);
    // The game's output comes through `up`, prefixed with the server's name.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(text.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = String::new();
    while Instant::now() < deadline && !seen.contains("conformance: ") {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(text) => seen = text,
            // `up` exited: nothing more will come.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    drop(up);
    seen
}
