//! What a person watching `stadion up` sees: Agones' metrics at the admin address's `/metrics`
//! (scraped after the fleet is Ready and one allocation), and `stadion get` printing the same
//! columns as `kubectl get`, watching with `-w`, and failing clearly.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Guarded, Scratch, copy_example, eventually, free_port, get_json, stadion, test_fleet};

const SETTLE: Duration = Duration::from_secs(60);
const FLEET: &str = "simple-game-server";
const ALLOCATION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/allocation/gameserverallocation.yaml");

struct Running {
    http: reqwest::Client,
    admin: SocketAddr,
    _process: Guarded,
}

/// `stadion up` with the example fleet (2 replicas), its Buffer autoscaler and a lone
/// GameServer, host ports from 21900-21949.
fn up(scratch: &Scratch) -> Running {
    let fleet = test_fleet(scratch, 2);
    let autoscaler = copy_example(scratch, "fleetautoscaler.yaml", |text| text);
    let lone = copy_example(scratch, "gameserver.yaml", |text| {
        text.replace("name: simple-game-server\n", "name: lone\n")
            .replace("initialDelaySeconds: 5", "initialDelaySeconds: 1")
    });
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "up".to_owned(),
        "--admin-addr".to_owned(),
        admin.to_string(),
        "--port-range".to_owned(),
        "21900-21949".to_owned(),
        "--grace-seconds".to_owned(),
        "3".to_owned(),
        fleet.display().to_string(),
        autoscaler.display().to_string(),
        lone.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Running { http: reqwest::Client::new(), admin, _process: Guarded::stadion(scratch, "stadion-up", &args, &[]) }
}

impl Running {
    async fn metrics(&self) -> Option<String> {
        let response = self.http.get(format!("http://{}/metrics", self.admin)).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.text().await.ok()
    }

    async fn ready(&self, count: i64) -> Option<()> {
        let fleets = get_json(&self.http, &format!("http://{}/api/fleets", self.admin)).await?;
        let ready = fleets.as_array()?.iter().find(|f| f["name"] == FLEET)?["ready"].as_i64();
        (ready == Some(count)).then_some(())
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(stadion())
            .args(args)
            .env("STADION_ADMIN_ADDR", self.admin.to_string())
            .output()
            .expect("stadion runs")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until every line of `lines` is a series line of the scrape.
async fn scrape_has(up: &Running, lines: &[&str]) -> String {
    let mut last = String::new();
    let found = tokio::time::timeout(SETTLE, async {
        loop {
            if let Some(body) = up.metrics().await {
                if lines.iter().all(|line| body.lines().any(|l| l == *line)) {
                    return body;
                }
                last = body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        let missing: Vec<&&str> = lines.iter().filter(|line| !last.lines().any(|l| l == **line)).collect();
        panic!("missing {missing:#?} in the last scrape:\n{last}")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_get_describe_the_running_fleet() {
    let scratch = Scratch::new("up-metrics-get");
    let up = up(&scratch);
    eventually(SETTLE, "2 Ready servers", || up.ready(2)).await;

    // `stadion get -w` is started before the allocation, so it must print the server's change.
    let mut watch = Command::new(stadion())
        .args(["get", "gs", "-w", "--admin-addr", &up.admin.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("stadion get -w runs");
    let mut watched = BufReader::new(watch.stdout.take().expect("piped stdout"));
    let mut header = String::new();
    watched.read_line(&mut header).expect("the table's header");
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["NAME", "STATE", "ADDRESS", "PORT", "NODE", "AGE"]);

    let allocated = Command::new(stadion())
        .args(["allocate", "-f", ALLOCATION, "-o", "json", "--admin-addr", &up.admin.to_string()])
        .output()
        .expect("stadion allocate runs");
    assert!(allocated.status.success(), "{}", text(&allocated.stderr));
    let gsa: serde_json::Value = serde_json::from_slice(&allocated.stdout).expect("JSON");
    let server = gsa["status"]["gameServerName"].as_str().expect("allocated").to_owned();

    let series = [
        r#"agones_gameservers_count{fleet_name="simple-game-server",namespace="default",type="Allocated"} 1"#,
        r#"agones_gameservers_count{fleet_name="none",namespace="default",type="Ready"} 1"#,
        r#"agones_gameservers_total{fleet_name="simple-game-server",namespace="default",type="Allocated"} 1"#,
        r#"agones_gameserver_allocations_duration_seconds_count{cluster_name="none",fleet_name="simple-game-server",is_multicluster="false",scheduling_strategy="Packed",status="Allocated"} 1"#,
        r#"agones_fleets_replicas_count{name="simple-game-server",namespace="default",type="allocated"} 1"#,
        r#"agones_fleet_autoscalers_buffer_limits{fleet_name="simple-game-server",name="simple-game-server-autoscaler",namespace="default",type="min"} 2"#,
        r#"agones_fleet_autoscalers_buffer_limits{fleet_name="simple-game-server",name="simple-game-server-autoscaler",namespace="default",type="max"} 20"#,
        r#"agones_fleet_autoscalers_buffer_size{fleet_name="simple-game-server",name="simple-game-server-autoscaler",namespace="default",type="count"} 2"#,
        // One Allocated plus a buffer of two Ready.
        r#"agones_fleet_autoscalers_desired_replicas_count{fleet_name="simple-game-server",name="simple-game-server-autoscaler",namespace="default"} 3"#,
        r#"agones_fleet_autoscalers_able_to_scale{fleet_name="simple-game-server",name="simple-game-server-autoscaler",namespace="default"} 1"#,
        r#"agones_fleets_replicas_count{name="simple-game-server",namespace="default",type="desired"} 3"#,
        r#"agones_fleets_replicas_count{name="simple-game-server",namespace="default",type="total"} 3"#,
        r#"agones_fleets_replicas_count{name="simple-game-server",namespace="default",type="ready"} 2"#,
        r#"agones_fleet_autoscalers_current_replicas_count{fleet_name="simple-game-server",name="simple-game-server-autoscaler",namespace="default"} 3"#,
        r#"agones_fleet_rollout_percent{name="simple-game-server",namespace="default",type="desired_replicas"} 3"#,
        r#"agones_nodes_count{empty="false"} 1"#,
        r#"agones_nodes_count{empty="true"} 0"#,
    ];
    let body = scrape_has(&up, &series).await;
    assert!(
        body.lines().any(|l| l.starts_with(r#"agones_gameserver_state_duration_count{fleet_name="simple-game-server",namespace="default",type="Ready"}"#)),
        "the time in Ready is observed when a server leaves it:\n{body}"
    );
    assert!(body.lines().any(|l| l.starts_with("agones_gameservers_node_count_count ")), "{body}");
    assert!(!body.contains("stadion_leader"), "the controller's own families are not the local runtime's");

    // The watch printed the allocated server's new row.
    let row = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        loop {
            line.clear();
            if watched.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            if line.split_whitespace().take(2).collect::<Vec<_>>() == [server.as_str(), "Allocated"] {
                return Some(line);
            }
        }
    });
    let row = tokio::time::timeout(Duration::from_secs(20), row).await.expect("-w prints the change").unwrap();
    let row = row.expect("a row for the allocated server");
    assert!(row.contains("127.0.0.1") && row.contains(" local "), "{row}");
    let _ = watch.kill();
    let _ = watch.wait();

    // The table, with kubectl's columns and values.
    let listed = up.cli(&["get", "fleets"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let lines: Vec<Vec<String>> =
        text(&listed.stdout).lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    assert_eq!(lines[0], ["NAME", "SCHEDULING", "DESIRED", "CURRENT", "ALLOCATED", "READY", "AGE"]);
    assert_eq!(lines[1][..6], [FLEET, "Packed", "3", "3", "1", "2"], "{lines:?}");
    let fas = up.cli(&["get", "fas", "-A"]);
    let lines: Vec<Vec<String>> =
        text(&fas.stdout).lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    assert_eq!(lines[0], ["NAMESPACE", "NAME", "FLEET", "POLICY", "CURRENT", "DESIRED", "ABLE", "AGE"]);
    assert_eq!(lines[1][..7], ["default", "simple-game-server-autoscaler", FLEET, "Buffer", "3", "3", "true"]);
    let sets = up.cli(&["get", "gss"]);
    assert!(text(&sets.stdout).starts_with("NAME "), "{}", text(&sets.stdout));
    assert!(text(&sets.stdout).lines().nth(1).is_some_and(|l| l.starts_with("simple-game-server-")));

    // Whole objects as JSON and YAML; one named object alone; a missing one is NotFound.
    let json = up.cli(&["get", "gs", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).expect("-o json is JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(4), "three fleet servers and the lone one");
    let one = up.cli(&["get", "gameserver", "lone", "-o", "yaml"]);
    assert!(text(&one.stdout).contains("kind: GameServer\n"), "{}", text(&one.stdout));
    assert!(text(&one.stdout).contains("name: lone\n"), "{}", text(&one.stdout));
    let missing = up.cli(&["get", "gs", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains(r#"gameservers.agones.dev "nope" not found"#), "{}", text(&missing.stderr));

    // A reader that goes away (`| head -0`) is no panic.
    let mut closed = Command::new(stadion())
        .args(["get", "gs", "--admin-addr", &up.admin.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stadion get runs");
    drop(closed.stdout.take());
    let finished = closed.wait_with_output().expect("it ends");
    assert!(finished.status.success(), "{}", text(&finished.stderr));
    assert!(!text(&finished.stderr).contains("panicked"), "{}", text(&finished.stderr));
}

#[test]
fn unknown_kinds_exit_2_and_a_missing_up_exits_1() {
    let unknown = Command::new(stadion()).args(["get", "pods"]).output().expect("stadion get runs");
    assert_eq!(unknown.status.code(), Some(2));
    let message = text(&unknown.stderr);
    assert!(message.contains(r#"resource type "pods""#), "{message}");
    for valid in ["gameservers (gs)", "gameserversets (gss)", "fleets (flt)", "fleetautoscalers (fas)"] {
        assert!(message.contains(valid), "{message}");
    }
    let nobody = format!("127.0.0.1:{}", free_port());
    let absent = Command::new(stadion()).args(["get", "flt", "--admin-addr", &nobody]).output().expect("runs");
    assert_eq!(absent.status.code(), Some(1));
    assert!(text(&absent.stderr).contains("is `stadion up` running?"), "{}", text(&absent.stderr));
}
