//! `stadion up examples/autoscalers/`: Agones' Counter, List and Chain-with-Schedule autoscaler
//! manifests, as written for a cluster, are applied locally and scale their fleets to what each
//! policy computes from the servers' counters and lists.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Scratch, eventually, up_on};

#[tokio::test(flavor = "multi_thread")]
async fn counter_list_and_chain_autoscalers_scale_their_fleets() {
    let scratch = Scratch::new("up-example-autoscalers");
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/autoscalers");
    let up = up_on(&scratch, &[&folder], "21850-21899");
    // rooms: 30 rooms at least, 10 per server → 3. lobby: 20 slots at least, 10 per server → 2.
    // events: the schedule is active, so its Buffer of 3 wins over the fallback of 1.
    for (fleet, replicas) in [("rooms", 3), ("lobby", 2), ("events", 3)] {
        eventually(Duration::from_secs(60), &format!("{fleet} at {replicas} Ready"), || async {
            (up.fleet_field(fleet, "ready").await == Some(replicas)).then_some(())
        })
        .await;
    }
    // And they stay there: the autoscalers agree with themselves on every sync.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (fleet, replicas) in [("rooms", 3), ("lobby", 2), ("events", 3)] {
        assert_eq!(up.fleet_field(fleet, "desired").await, Some(replicas), "{fleet}");
    }
}
