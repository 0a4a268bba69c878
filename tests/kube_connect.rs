//! The cluster-facing commands build a TLS client for the API server and fail cleanly when it
//! cannot be reached: an error naming the problem and a non-zero exit, never a panic. (Two
//! rustls crypto providers in the tree once made every HTTPS kube client panic on creation.)

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Scratch, free_port};

/// Runs `stadion <args>` with `KUBECONFIG` set until it exits or `limit` passes (then it is
/// killed); returns its output and whether it exited by itself.
fn run(scratch: &Scratch, kubeconfig: &std::path::Path, args: &[&str], limit: Duration) -> (Output, bool) {
    let mut child = Command::new(support::stadion())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env(support::MARKER_VAR, &scratch.marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stadion");
    let deadline = Instant::now() + limit;
    let mut exited = true;
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            exited = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().expect("output"), exited)
}

#[test]
fn controller_matchmaker_and_sidecar_report_an_unreachable_https_api_server() {
    let scratch = Scratch::new("kube-connect");
    // Nothing listens on this port: connecting fails, after the TLS client was built.
    let kubeconfig = scratch.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n",
            free_port()
        ),
    );
    let health = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let queues = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/matchmaker.yaml");
    // The controller and the sidecar cannot work without the API server: they exit with an error.
    let commands: [&[&str]; 2] = [
        &["controller", "--metrics-addr", &metrics],
        &["sdk-server", "--gameserver-name", "gs-1", "--grpc-port", "0", "--http-port", "0", "--health-addr", &health],
    ];
    for args in commands {
        let (output, exited) = run(&scratch, &kubeconfig, args, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(exited, "stadion {args:?} did not give up:\n{stderr}");
        assert!(!stderr.contains("panicked"), "stadion {args:?} panicked:\n{stderr}");
        assert!(!output.status.success(), "stadion {args:?} should fail without an API server:\n{stderr}");
        assert!(stderr.contains("error"), "stadion {args:?} says what went wrong:\n{stderr}");
    }
    // The matchmaker keeps serving and retries its watch: it must simply not crash.
    let listen = format!("127.0.0.1:{}", free_port());
    let args = ["matchmaker", "--config", queues, "--listen", &listen];
    let (output, exited) = run(&scratch, &kubeconfig, &args, Duration::from_secs(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "the matchmaker panicked:\n{stderr}");
    assert!(!exited, "the matchmaker stopped:\n{stderr}");
}
