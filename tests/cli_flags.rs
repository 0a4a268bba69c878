//! The `stadion` command line as a user meets it: env fallbacks written the way env files write
//! them, host names in addresses, one message and exit code 2 for every usage error, a pipe
//! closed early, and the open-file limit `up` gives its games.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Guarded, Scratch, eventually, free_port, stadion};

/// Runs `stadion <args>` to completion with `env`; (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(stadion());
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("stadion runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn boolean_env_fallbacks_take_1_0_true_false() {
    for value in ["1", "0", "true", "false", "yes", "off"] {
        let (code, stderr) = run(&["up", "/no/such/manifest"], &[("STADION_QUIET", value)]);
        // The flag parses; what fails is the missing manifest, reported as a usage error.
        assert!(!stderr.contains("invalid value"), "STADION_QUIET={value}: {stderr}");
        assert!(stderr.contains("/no/such/manifest"), "STADION_QUIET={value}: {stderr}");
        assert_eq!(code, Some(2), "STADION_QUIET={value}: {stderr}");
    }
    let (code, stderr) = run(&["up", "/no/such/manifest"], &[("STADION_QUIET", "maybe")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("maybe"), "a bad value is named: {stderr}");
}

#[test]
fn usage_errors_exit_2_with_their_message_once() {
    // Each case with the value at fault, which the message must name exactly once.
    let cases: [(&[&str], &str); 5] = [
        (&["up", "--port-range", "x", "/no/such/manifest"], "\"x\""),
        (&["up", "/no/such/manifest"], "/no/such/manifest"),
        (&["up", "--admin-addr", "not-an-address", "/no/such/manifest"], "not-an-address"),
        (&["matchmaker", "--config", "/no/such/queues.yaml"], "/no/such/queues.yaml"),
        (&["sdk-server", "--local", "--grpc-port", "abc"], "abc"),
    ];
    for (args, culprit) in cases {
        let (code, stderr) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(culprit).count(), 1, "{args:?}: {culprit} is named exactly once in: {stderr}");
    }
}

#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    for args in [&["crds", "--print"][..], &["install", "--print"][..]] {
        let mut child = Command::new(stadion())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stadion runs");
        let mut first = [0u8; 16];
        child.stdout.take().expect("stdout").read_exact(&mut first).expect("some output");
        // The reader goes away, as `| head -c 16` does.
        let status = child.wait().expect("exits");
        let mut stderr = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(status.success(), "{args:?}: {status} {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_accepts_a_host_name_address_and_lifts_the_open_file_limit_for_its_games() {
    let scratch = Scratch::new("cli-nofile");
    let report = scratch.dir.join("nofile");
    let gameserver = scratch.write(
        "gs.yaml",
        &format!(
            r#"apiVersion: agones.dev/v1
kind: GameServer
metadata:
  name: limits
spec:
  ports:
    - name: default
      containerPort: 7654
  template:
    spec:
      containers:
        - name: game
          command: ["sh", "-c", "ulimit -Sn > {report}.tmp && mv {report}.tmp {report} && exec sleep 60"]
"#,
            report = report.display()
        ),
    );
    let hard = run_sh("ulimit -Hn");
    // Start `up` with a soft limit below the hard one, as most login shells do.
    let admin = format!("localhost:{}", free_port());
    let gs = gameserver.display().to_string();
    let mut up = Guarded::shell(
        &scratch,
        "up",
        "ulimit -Sn 256 && exec \"$0\" \"$@\"",
        &[stadion(), "up", "--quiet", "--admin-addr", &admin, "--port-range", "21400-21410", &gs],
    );
    let seen = eventually(Duration::from_secs(30), "the game to report its limit", || {
        let reported = std::fs::read_to_string(&report).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        std::future::ready(reported)
    })
    .await;
    assert_eq!(seen, hard, "the game inherits the raised limit: {}", up.output());
    assert!(up.wait_exit(Duration::from_millis(100)).is_none(), "up runs with a host-name admin address");
}

fn run_sh(script: &str) -> String {
    let output = Command::new("sh").args(["-c", script]).output().expect("sh runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
