//! `stadion sdk-server --test=… --timeout=…`: Agones' SDK conformance mode, which the official
//! SDKs' conformance clients drive. The real binary records the calls a client makes and exits 0
//! when they are exactly the expected set, 1 otherwise.

mod support;

use std::time::Duration;

use support::{Guarded, Scratch, eventually, free_port};

/// Starts the sidecar in conformance mode, expecting `calls`, for `timeout` seconds.
fn sidecar(scratch: &Scratch, calls: &str, timeout: u64) -> (Guarded, String) {
    let (grpc, http) = (free_port(), free_port());
    let args = [
        "sdk-server",
        "--test",
        calls,
        "--sdk-name",
        "rest",
        "--timeout",
        &timeout.to_string(),
        "--grpc-port",
        &grpc.to_string(),
        "--http-port",
        &http.to_string(),
    ];
    (Guarded::stadion(scratch, "sdk-server", &args, &[]), format!("http://127.0.0.1:{http}"))
}

/// The REST conformance sequence: watch, ready, get, label = creation timestamp, annotation =
/// uid, health.
async fn run_client(base: &str) {
    let http = reqwest::Client::new();
    let gameserver: serde_json::Value = eventually(Duration::from_secs(10), "the sidecar answers", || async {
        http.get(format!("{base}/gameserver")).send().await.ok()?.json().await.ok()
    })
    .await;
    let watch = http.get(format!("{base}/watch/gameserver")).send().await.expect("watch opens");
    assert_eq!(watch.status(), 200);
    let post = |path: &str| http.post(format!("{base}{path}")).json(&serde_json::json!({})).send();
    assert_eq!(post("/ready").await.unwrap().status(), 200);
    assert_eq!(post("/health").await.unwrap().status(), 200);
    let meta = &gameserver["object_meta"];
    let created = meta["creation_timestamp"].as_str().expect("int64 as a string").to_owned();
    let uid = meta["uid"].as_str().expect("uid").to_owned();
    for (path, key, value) in [("/metadata/label", "created", created), ("/metadata/annotation", "uid", uid)] {
        let body = serde_json::json!({ "key": key, "value": value });
        assert_eq!(http.put(format!("{base}{path}")).json(&body).send().await.unwrap().status(), 200);
    }
    drop(watch);
}

#[tokio::test]
async fn the_expected_calls_pass_and_the_sidecar_exits_zero() {
    let scratch = Scratch::new("conformance-pass");
    let (mut sidecar, base) = sidecar(&scratch, "ready,gameserver,watch,health,setlabel,setannotation", 3);
    run_client(&base).await;
    let status = sidecar.wait_exit(Duration::from_secs(15)).expect("the run ends at --timeout");
    assert!(status.success(), "conformance run failed: {}", sidecar.output());
}

#[tokio::test]
async fn a_missing_call_fails_the_run_with_exit_one() {
    let scratch = Scratch::new("conformance-fail");
    let (mut sidecar, base) = sidecar(&scratch, "ready,gameserver,watch,health,setlabel,setannotation,allocate", 3);
    run_client(&base).await;
    let status = sidecar.wait_exit(Duration::from_secs(15)).expect("the run ends at --timeout");
    assert_eq!(status.code(), Some(1), "{}", sidecar.output());
    assert!(sidecar.output().contains("allocate"), "the failure names what was expected: {}", sidecar.output());
}

#[tokio::test]
async fn the_conformance_settings_come_from_agones_env_variables_too() {
    // What Agones' conformance tooling passes to the sidecar container, instead of flags.
    let scratch = Scratch::new("conformance-env");
    let (grpc, http) = (free_port(), free_port());
    let env = [
        ("TEST", "ready,gameserver,watch,health,setlabel,setannotation".to_owned()),
        ("SDK_NAME", "rest".to_owned()),
        ("TIMEOUT", "3".to_owned()),
        ("DELAY", "0".to_owned()),
    ];
    let args = ["sdk-server", "--grpc-port", &grpc.to_string(), "--http-port", &http.to_string()];
    let mut sidecar = Guarded::stadion(&scratch, "sdk-server", &args, &env);
    run_client(&format!("http://127.0.0.1:{http}")).await;
    let status = sidecar.wait_exit(Duration::from_secs(15)).expect("the run ends at TIMEOUT");
    assert!(status.success(), "conformance run failed: {}", sidecar.output());
}

#[tokio::test]
async fn local_mode_logs_missed_health_pings_without_marking_the_server_unhealthy() {
    let scratch = Scratch::new("local-health");
    let manifest = scratch.write(
        "gs.yaml",
        "apiVersion: agones.dev/v1\nkind: GameServer\nmetadata:\n  name: from-file\nspec:\n  health:\n    initialDelaySeconds: 0\n    periodSeconds: 1\n    failureThreshold: 1\n  template:\n    spec:\n      containers:\n        - name: game\n          image: game\n",
    );
    let (grpc, http) = (free_port(), free_port());
    let file = manifest.display().to_string();
    let args =
        ["sdk-server", "--local", "-f", &file, "--grpc-port", &grpc.to_string(), "--http-port", &http.to_string()];
    let sidecar = Guarded::stadion(&scratch, "sdk-server", &args, &[]);
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();
    let state = || async {
        let gs: serde_json::Value = client.get(format!("{base}/gameserver")).send().await.ok()?.json().await.ok()?;
        gs["status"]["state"].as_str().map(str::to_owned)
    };
    eventually(Duration::from_secs(10), "the sidecar answers", state).await;
    // Several periods with no ping at all.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(state().await.as_deref(), Some("Ready"), "{}", sidecar.output());
    let output = sidecar.output();
    assert!(output.contains("health check failed"), "the missed pings are logged: {output}");
    assert!(output.contains("from-file"), "the log names the file's GameServer: {output}");
}
