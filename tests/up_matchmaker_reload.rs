//! End to end: editing the matchmaker's queue file under a running `stadion up` adds a queue
//! that takes tickets at once; a broken edit is reported with where it is wrong while the old
//! queues keep working; fixing it applies it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Scratch, Up, eventually, up_with_matchmaker};

const SETTLE: Duration = Duration::from_secs(30);

/// A queue appended to the example's list.
const ARENA: &str = "
  - name: arena
    players: {min: 2, max: 8}
";

impl Up {
    async fn post_ticket(&self, queue: &str, player: &str) -> (u16, Value) {
        let ticket = json!({"queue": queue, "players": [{"id": player, "attributes": {"skill": 1000}, "latencies": {"local": 20.0}}]});
        // Status 0: not listening yet.
        let Ok(response) = self.http.post(format!("{}/v1/tickets", self.api)).json(&ticket).send().await else {
            return (0, Value::Null);
        };
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }
}

/// Rewrites `path` so its modification time and length change (the poll notices both).
fn rewrite(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("config written");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_edits_are_applied_and_a_broken_edit_keeps_the_old_queues() {
    let scratch = Scratch::new("up-matchmaker-reload");
    let mut up = up_with_matchmaker(&scratch, 1, "21700-21799");
    let queues = scratch.dir.join("matchmaker.yaml");
    let original = std::fs::read_to_string(&queues).expect("copied example");
    eventually(SETTLE, "the matchmaker answers", || async {
        let (status, _) = up.post_ticket("duel", "warmup").await;
        (status == 201).then_some(())
    })
    .await;
    let (status, body) = up.post_ticket("arena", "p0").await;
    assert_eq!(status, 422, "no arena queue yet: {body}");

    // Add a queue: it takes tickets without a restart.
    rewrite(&queues, &format!("{}{ARENA}", original.trim_end()));
    eventually(SETTLE, "the arena queue takes tickets", || async {
        let (status, _) = up.post_ticket("arena", "p1").await;
        (status == 201).then_some(())
    })
    .await;
    eventually(SETTLE, "a reload line", || async {
        up.process.output().contains("matchmaker configuration reloaded: added arena").then_some(())
    })
    .await;

    // A misspelt top-level key: reported with the file, the old queues stay.
    rewrite(&queues, &original.replacen("queues:", "queus:", 1));
    let reported = eventually(SETTLE, "the broken edit is reported", || async {
        let output = up.process.output();
        output
            .lines()
            .find(|line| line.contains("matchmaker configuration not re-applied") && line.contains("queus"))
            .map(str::to_owned)
    })
    .await;
    assert!(reported.contains("matchmaker.yaml"), "names the file: {reported}");
    let (status, body) = up.post_ticket("arena", "p2").await;
    assert_eq!(status, 201, "the queues in force still work: {body}");

    // A YAML syntax error: reported with file:line:column.
    rewrite(&queues, &format!("{original}\n  - name: [unclosed\n"));
    let reported = eventually(SETTLE, "the syntax error is reported", || async {
        up.process
            .output()
            .lines()
            .find(|line| {
                line.contains("matchmaker configuration not re-applied")
                    && line
                        .split("matchmaker.yaml:")
                        .nth(1)
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .map(str::to_owned)
    })
    .await;
    let location = reported.split("matchmaker.yaml:").nth(1).unwrap_or_default();
    let numbers: Vec<&str> = location.split(':').take(2).collect();
    assert!(numbers.len() == 2 && numbers.iter().all(|n| n.trim().parse::<u32>().is_ok()), "{reported}");
    let (status, _) = up.post_ticket("duel", "p3").await;
    assert_eq!(status, 201, "still serving the old queues");

    // Fixed, without the arena queue: applied, so arena refuses tickets again.
    rewrite(&queues, &original);
    eventually(SETTLE, "the fix is applied", || async {
        let (status, _) = up.post_ticket("arena", "p4").await;
        (status == 422).then_some(())
    })
    .await;
    let (status, body) = up.post_ticket("duel", "p5").await;
    assert_eq!(status, 201, "{body}");
    assert!(up.process.stop(Duration::from_secs(10)).is_some(), "stadion up stops");
}
