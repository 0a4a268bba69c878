//! `stadion allocate -f` against a running `stadion up`: locally what `kubectl create -f
//! gameserverallocation.yaml` is in a cluster. The example allocation file allocates a Ready
//! server of the example fleet and prints it with its status; bad files and a missing `up` are
//! clear errors with the right exit codes; `stadion up` points at the command when given one.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::{Scratch, Up, eventually, stadion, up_with_matchmaker};

const SETTLE: Duration = Duration::from_secs(60);
const FLEET: &str = "simple-game-server";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/allocation/gameserverallocation.yaml");

fn allocate(admin: &str, args: &[&str]) -> Output {
    let admin = admin.trim_start_matches("http://");
    Command::new(stadion())
        .arg("allocate")
        .args(args)
        .args(["--admin-addr", admin])
        .output()
        .expect("stadion allocate runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn ready(up: &Up, count: i64) {
    eventually(SETTLE, &format!("{count} Ready servers"), || async {
        (up.fleet_field(FLEET, "ready").await == Some(count)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_allocation_file_allocates_and_prints_the_server() {
    let scratch = Scratch::new("up-allocate");
    let up = up_with_matchmaker(&scratch, 2, "21700-21749");
    ready(&up, 2).await;

    let output = allocate(&up.admin, &["-f", EXAMPLE, "-o", "json"]);
    assert!(output.status.success(), "exit {:?}: {}", output.status, stderr(&output));
    let gsa: Value = serde_json::from_str(&stdout(&output)).expect("-o json prints JSON");
    assert_eq!(gsa["kind"], "GameServerAllocation");
    assert_eq!(gsa["status"]["state"], "Allocated", "{gsa}");
    let server = gsa["status"]["gameServerName"].as_str().expect("a server name").to_owned();
    assert_eq!(gsa["metadata"]["name"], server.as_str(), "named after its server, as Agones does");
    let port = gsa["status"]["ports"][0]["port"].as_i64().expect("a port");
    assert!((21700..=21749).contains(&port), "a host port of the range: {port}");
    assert_eq!(gsa["status"]["address"], "127.0.0.1");
    // The server is Allocated, carrying the metadata the file asks for.
    let gs = up.gameserver(&server).await.expect("the allocated server is listed");
    assert_eq!(gs["state"], "Allocated");
    assert_eq!(gs["labels"]["mode"], "deathmatch");

    // YAML output, and the default one-line summary; the fleet then runs out of Ready servers.
    let output = allocate(&up.admin, &["-f", EXAMPLE, "-o", "yaml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("state: Allocated"), "{}", stdout(&output));
    let output = allocate(&up.admin, &["-f", EXAMPLE]);
    assert!(output.status.success(), "UnAllocated is an answer, as with kubectl: {}", stderr(&output));
    assert!(stdout(&output).contains("UnAllocated"), "{}", stdout(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_files_exit_2_and_a_missing_up_exits_1() {
    let scratch = Scratch::new("up-allocate-bad");
    let up = up_with_matchmaker(&scratch, 1, "21750-21799");
    ready(&up, 1).await;

    // A misspelt field is named, as the API server names it under strict validation.
    let typo = scratch.write(
        "typo.yaml",
        "apiVersion: allocation.agones.dev/v1\nkind: GameServerAllocation\nspec:\n  selectors:\n    - matchLabel:\n        agones.dev/fleet: simple-game-server\n",
    );
    let output = allocate(&up.admin, &["-f", typo.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("spec.selectors[0].matchLabel"), "{}", stderr(&output));

    // A rule the server checks: the answer's field path reaches the user.
    let invalid = scratch.write(
        "invalid.yaml",
        "apiVersion: allocation.agones.dev/v1\nkind: GameServerAllocation\nspec:\n  metadata:\n    labels:\n      \"not a key!\": x\n",
    );
    let output = allocate(&up.admin, &["-f", invalid.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("spec.metadata.labels"), "{}", stderr(&output));

    // A declarative kind belongs to `stadion up`.
    let fleet = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.yaml");
    let output = allocate(&up.admin, &["-f", fleet]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("stadion up"), "{}", stderr(&output));
    // Nothing was allocated by any of these.
    assert_eq!(up.fleet_field(FLEET, "allocated").await, Some(0));

    // No `stadion up` on the address: not a usage error, and it says what to check.
    let output = allocate("127.0.0.1:1", &["-f", EXAMPLE]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("is `stadion up` running"), "{}", stderr(&output));
}

#[test]
fn up_refuses_an_allocation_file_and_points_at_stadion_allocate() {
    let output =
        Command::new(stadion()).args(["up", "--admin-addr", "127.0.0.1:0", EXAMPLE]).output().expect("stadion up runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("stadion allocate -f"), "{}", stderr(&output));
}
