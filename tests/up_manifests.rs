//! `stadion up` as strict as an API server about manifests, and calm about a bad edit: a YAML
//! syntax error exits 2 at once with file:line:column, an unknown field or a misspelt kind is
//! refused by path, other APIs' documents are skipped with a line each, and a running `up`
//! survives a broken edit, keeps reacting to signals, and applies the fix.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{Guarded, Scratch, eventually, get_json, test_fleet};

/// Starts `stadion up` on `paths` with a free admin port and fast file polling.
fn up(scratch: &Scratch, paths: &[&Path], port_range: &str) -> (Guarded, String) {
    let up = support::up_on(scratch, paths, port_range);
    (up.process, up.admin)
}

/// `up` on `file` must refuse at once: exit 2 within 5 s, its output naming `expected`.
fn refuses(scratch: &Scratch, file: &Path, expected: &[&str]) -> String {
    let (mut process, _) = up(scratch, &[file], "21500-21509");
    let started = Instant::now();
    let status = process.wait_exit(Duration::from_secs(5)).expect("`up` answers within 5 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    let output = process.output();
    assert_eq!(status.code(), Some(2), "{output}");
    for needle in expected {
        assert!(output.contains(needle), "the error names {needle:?}: {output}");
    }
    assert!(scratch.marked_processes().is_empty(), "nothing was started");
    output
}

fn fleet_text(scratch: &Scratch) -> (PathBuf, String) {
    let fleet = test_fleet(scratch, 1);
    let text = std::fs::read_to_string(&fleet).expect("fleet");
    (fleet, text)
}

#[test]
fn a_yaml_syntax_error_exits_2_at_once_with_file_line_and_column() {
    let scratch = Scratch::new("up-yaml-syntax");
    let (fleet, text) = fleet_text(&scratch);
    // An unclosed flow sequence on the `replicas` line.
    std::fs::write(&fleet, text.replacen("replicas: 1", "replicas: [1", 1)).expect("write");
    let line = text.lines().position(|l| l.contains("replicas: 1")).expect("replicas line") + 1;
    let output = refuses(&scratch, &fleet, &[&format!("{}:", fleet.display()), "not valid YAML"]);
    let located = output.lines().find(|l| l.contains("not valid YAML")).expect("the syntax error line");
    let at: Vec<usize> = located
        .split(&format!("{}:", fleet.display()))
        .nth(1)
        .expect("file:")
        .split(':')
        .take(2)
        .map(|n| n.trim().parse().expect("line:column numbers"))
        .collect();
    assert!(at[0] >= line, "the line is the broken one or after it: {located}");
}

#[test]
fn unknown_fields_and_a_misspelt_kind_are_refused_by_path() {
    let scratch = Scratch::new("up-strict");
    let (fleet, text) = fleet_text(&scratch);
    std::fs::write(&fleet, text.replacen("replicas: 1", "replcas: 5", 1)).expect("write");
    refuses(&scratch, &fleet, &["unknown field \"spec.replcas\""]);

    let (fleet, text) = fleet_text(&scratch);
    std::fs::write(&fleet, text.replacen("kind: Fleet", "kind: Flet", 1)).expect("write");
    refuses(&scratch, &fleet, &[&fleet.display().to_string(), "unsupported kind \"Flet\""]);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_apis_are_skipped_with_a_line_each_and_the_fleet_runs() {
    let scratch = Scratch::new("up-skip");
    let (fleet, text) = fleet_text(&scratch);
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: game-svc\nspec:\n  ports: [{port: 7654}]\n";
    std::fs::write(&fleet, format!("{service}---\n{text}")).expect("write");
    let (process, admin) = up(&scratch, &[&fleet], "21510-21519");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(60), "the fleet to have a Ready server", || async {
        let fleets = get_json(&http, &format!("{admin}/api/fleets")).await?;
        (fleets.as_array()?.iter().any(|f| f["ready"].as_i64() == Some(1))).then_some(())
    })
    .await;
    let output = process.output();
    let lines: Vec<&str> = output.lines().filter(|l| l.contains("skipped Service game-svc")).collect();
    assert_eq!(lines.len(), 1, "{output}");
    assert!(lines[0].contains("document 1"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_up_survives_a_broken_edit_answers_signals_and_applies_the_fix() {
    let scratch = Scratch::new("up-broken-edit");
    let (fleet, text) = fleet_text(&scratch);
    let (mut process, admin) = up(&scratch, &[&fleet], "21520-21529");
    let http = reqwest::Client::new();
    let replicas = |n: i64| {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let fleets = get_json(&http, &format!("{admin}/api/fleets")).await?;
            fleets.as_array()?.iter().find(|f| f["ready"].as_i64() == Some(n)).map(|_| ())
        }
    };
    eventually(Duration::from_secs(60), "1 Ready server", || replicas(1)).await;

    // A broken edit: reported with its line, the running fleet kept.
    std::fs::write(&fleet, text.replacen("replicas: 1", "replicas: [1", 1)).expect("write");
    eventually(Duration::from_secs(10), "the broken edit to be reported", || {
        std::future::ready(process.output().contains("not valid YAML").then_some(()))
    })
    .await;
    assert!(process.output().contains(&format!("{}:", fleet.display())), "{}", process.output());
    assert!(replicas(1).await.is_some(), "the last good state is kept");

    // The fix is applied.
    std::fs::write(&fleet, text.replacen("replicas: 1", "replicas: 2", 1)).expect("write");
    eventually(Duration::from_secs(60), "the fixed file's 2 Ready servers", || replicas(2)).await;

    // Broken again, and SIGTERM still stops it promptly.
    std::fs::write(&fleet, text.replacen("replicas: 1", "replicas: [1", 1)).expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(Duration::from_secs(15)).expect("SIGTERM stops a `up` whose files are broken");
    assert!(status.success(), "{status}: {}", process.output());
    assert!(scratch.marked_processes().is_empty(), "no game left behind");
}
