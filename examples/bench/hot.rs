//! A hot neighbour (issue #12): allocation latency from one fleet while a server of another
//! fleet changes its labels through its SDK as fast as a misbehaving game can, beside the same
//! allocations with that server quiet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::load::{self, ms, percentile};
use crate::{FLEET, Row};

/// Concurrent SDK writers on the hot server.
const WRITERS: usize = 16;

/// Scales fleets `calm` (2 × `allocations` servers) and `hot` (one server) under the running
/// `up` (files in `scratch`, admin API at `admin`), then allocates `allocations` from `calm`
/// twice: once with `hot` quiet, once while its sidecar takes label writes back to back.
pub async fn rows(
    http: &reqwest::Client,
    scratch: &std::path::Path,
    admin: &str,
    api: &str,
    allocations: usize,
    concurrency: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let fleet = |name: &str, replicas: usize| {
        FLEET.replace("name: bench", &format!("name: {name}")).replace("REPLICAS", &replicas.to_string())
    };
    std::fs::write(scratch.join("calm.yaml"), fleet("calm", allocations * 2))?;
    std::fs::write(scratch.join("hot.yaml"), fleet("hot", 1))?;
    eprintln!("bench: fleets `calm` ({}) and `hot` (1) for the hot-neighbour rows…", allocations * 2);
    let hot = ready_server(http, admin, "hot", 1).await?;
    ready_server(http, admin, "calm", allocations * 2).await?;
    let sdk = sdk_http_port(&hot).with_context(|| format!("the SDK port of {hot}"))?;

    let quiet = allocate(http, api, allocations, concurrency).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (http, stop, writes) = (http.clone(), stop.clone(), writes.clone());
        let url = format!("http://127.0.0.1:{sdk}/metadata/label");
        writers.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"key": format!("hot-{writer}"), "value": n.to_string()});
                if http.put(&url).json(&body).send().await.is_ok_and(|r| r.status().is_success()) {
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, started) = (writes.load(Ordering::Relaxed), Instant::now());
    let busy = allocate(http, api, allocations, concurrency).await;
    let rate = (writes.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    while writers.join_next().await.is_some() {}

    let figures = |r: &load::Rate| {
        format!(
            "p50 {} · p99 {} ({}/{} allocated)",
            ms(percentile(&r.latencies, 0.5)),
            ms(percentile(&r.latencies, 0.99)),
            r.ok,
            r.ok + r.failed
        )
    };
    rows.push(Row {
        what: format!(
            "allocation latency from fleet `calm`, {concurrency} clients, while one server of fleet `hot` takes {rate:.0} SDK label writes/s ({WRITERS} writers)"
        ),
        stadion: figures(&busy),
        limit: figures(&quiet),
        limit_what: "the same allocations with the hot server quiet, same run".to_owned(),
    });
    Ok(())
}

/// `count` allocations from fleet `calm` through `POST /v1/allocations`.
async fn allocate(http: &reqwest::Client, api: &str, count: usize, concurrency: usize) -> load::Rate {
    let body = json!({"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "calm"}}]}});
    let (client, url) = (http.clone(), format!("{api}/v1/allocations"));
    load::closed_loop(count, concurrency, move |_| {
        let request = client.post(&url).json(&body).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
}

/// Waits until fleet `fleet` has `count` Ready servers; returns one of their names.
async fn ready_server(http: &reqwest::Client, admin: &str, fleet: &str, count: usize) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let all: Value = match http.get(format!("{admin}/api/gameservers")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let ready: Vec<&str> = all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|gs| gs["fleet"] == fleet && gs["state"] == "Ready")
            .filter_map(|gs| gs["name"].as_str())
            .collect();
        if ready.len() >= count {
            return Ok(ready[0].to_owned());
        }
        if Instant::now() > deadline {
            bail!("fleet {fleet}: {} of {count} Ready after 300 s", ready.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The SDK REST port `up` gave server `name`, read from its game process's environment.
fn sdk_http_port(name: &str) -> Option<u16> {
    let wanted = format!("STADION_GAMESERVER_NAME={name}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        if !vars.contains(&wanted.as_bytes()) {
            return None;
        }
        vars.iter().find_map(|var| std::str::from_utf8(var).ok()?.strip_prefix("AGONES_SDK_HTTP_PORT=")?.parse().ok())
    })
}
