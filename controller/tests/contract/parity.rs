//! What a person watching either runtime sees the same way: Agones' metric families with the
//! same labels at `/metrics` (`stadion up`'s admin endpoint, the kube controller's metrics
//! port), and the kube controller's read-only dashboard behind its bearer token.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use stadion_controller::local::admin;

use super::kube::{DASHBOARD_TOKEN, KubeContract};
use super::local::LocalContract;
use super::manifests::{SetYaml, buffer_autoscaler};
use super::observe::{LIMIT, allocate_one, eventually};
use super::runtime::Runtime;

/// Each `agones_*` series name (with its `_bucket`/`_sum`/`_count` suffix) and its label names.
fn families(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("agones_")) {
        let series = line.split_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let keys = out.entry(name.to_owned()).or_default();
        for pair in labels.trim_end_matches('}').split(',').filter(|p| !p.is_empty()) {
            if let Some((key, _)) = pair.split_once('=') {
                keys.insert(key.to_owned());
            }
        }
    }
    out
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    response.text().await.expect("a body")
}

/// The same fleet and autoscaler in a runtime, until its servers are Ready.
async fn drive(rt: &impl Runtime) {
    rt.apply(&SetYaml::fleet("arena", 2).render()).await.expect("the fleet applies");
    rt.apply(&buffer_autoscaler("arena-fas", "arena", 2, 2, 4)).await.expect("the autoscaler applies");
    eventually(rt, LIMIT, "2 Ready servers", async || {
        let ready = rt.fleet("arena").await?.status?.ready_replicas;
        (ready >= 2).then_some(())
    })
    .await;
}

/// One allocation from fleet `arena` through the kube controller's allocation API (what
/// `kubectl create` reaches through the aggregator), so it is timed into the controller's
/// metrics as in a cluster. The API answers from a watch cache, which may not yet hold a
/// server turned Ready a moment ago: UnAllocated is retried, anything else is a failure.
async fn allocate_through_api(kube: &KubeContract) {
    eventually(kube, LIMIT, "an allocation through the allocation API", async || {
        let (code, body) = kube.allocation_api.allocate("arena").await;
        assert_eq!(code, 201, "the allocation API answers a create with 201: {body}");
        match body["status"]["state"].as_str() {
            Some("Allocated") => Some(()),
            Some("UnAllocated") => None,
            other => panic!("the allocation API answered state {other:?}: {body}"),
        }
    })
    .await;
}

/// Scrapes `url` until every family of `want` is there (gauges follow caches, node samples
/// come on their own period), then returns what it found.
async fn scrape_until(
    http: &reqwest::Client,
    url: &str,
    want: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let start = Instant::now();
    loop {
        let found = families(&scrape(http, url).await);
        if &found == want || start.elapsed() > Duration::from_secs(30) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_runtimes_export_the_same_agones_families_and_labels() {
    let http = reqwest::Client::new();
    let local = LocalContract::start();
    drive(&local).await;
    allocate_one(&local, "arena").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let admin_address = listener.local_addr().expect("an address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(admin::serve(listener, local.admin_state(), async {
        let _ = stopped.await;
    }));
    let local_url = format!("http://{admin_address}/metrics");

    let kube = KubeContract::over_fake_api().await;
    drive(&kube).await;
    allocate_through_api(&kube).await;
    let kube_url = format!("http://{}/metrics", kube.metrics);
    // Both settle: each side is scraped until it matches the other, or 30 s pass.
    let local_families = scrape_until(&http, &local_url, &BTreeMap::new()).await;
    let kube_families = scrape_until(&http, &kube_url, &local_families).await;
    let local_families = scrape_until(&http, &local_url, &kube_families).await;

    let _ = stop.send(());
    let _ = serving.await;
    local.finish().await;
    kube.finish().await;
    for family in [
        "agones_gameservers_count",
        "agones_fleets_replicas_count",
        "agones_fleet_autoscalers_buffer_size",
        "agones_gameserver_allocations_duration_seconds_bucket",
        "agones_gameserver_allocations_retry_total_bucket",
    ] {
        assert!(local_families.contains_key(family), "stadion up exports {family}: {local_families:#?}");
    }
    assert_eq!(local_families, kube_families, "stadion up (left) and the kube controller (right) differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_dashboard_needs_its_token_and_serves_the_fleet() {
    let http = reqwest::Client::new();
    let kube = KubeContract::over_fake_api().await;
    kube.apply(&SetYaml::fleet("arena", 2).render()).await.expect("the fleet applies");
    let snapshot = format!("http://{}/api/dashboard/snapshot", kube.dashboard);

    let refused = http.get(&snapshot).send().await.expect("an answer");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let body: Value = refused.json().await.expect("a JSON refusal");
    assert_eq!(body["code"], 401, "{body}");
    let wrong = http.get(&snapshot).bearer_auth("not-it").send().await.expect("an answer");
    assert_eq!(wrong.status().as_u16(), 401);
    let page = http.get(format!("http://{}/", kube.dashboard)).send().await.expect("an answer");
    assert_eq!(page.status().as_u16(), 401, "the page itself is behind the token");

    let fleet = eventually(&kube, LIMIT, "the fleet and its servers on the dashboard", async || {
        let response = http.get(&snapshot).bearer_auth(DASHBOARD_TOKEN).send().await.ok()?;
        assert_eq!(response.status().as_u16(), 200);
        let picture: Value = response.json().await.ok()?;
        let fleet = picture["fleets"].as_array()?.iter().find(|f| f["name"] == "arena")?.clone();
        let servers = picture["gameservers"].as_array()?.len();
        (fleet["desired"] == 2 && servers == 2).then_some(fleet)
    })
    .await;
    assert_eq!(fleet["namespace"], kube.namespace());
    // A browser presents the token in the query, as its page and EventSource can.
    let page =
        http.get(format!("http://{}/?access_token={DASHBOARD_TOKEN}", kube.dashboard)).send().await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("html").contains("<title>Stadion dashboard</title>"));
    kube.finish().await;
}

/// An expanded server row in the kube dashboard: the server's own Events, as the API server's
/// field selector on `involvedObject` lists them, oldest first, with the `Allocated` Event the
/// allocator records (as Agones' does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs cluster"]
async fn the_kube_dashboard_shows_a_servers_events_from_the_cluster() {
    let Some(kube) = KubeContract::over_cluster().await else {
        eprintln!("skipped: KUBECONFIG is not set, so there is no cluster to run against");
        return;
    };
    let http = reqwest::Client::new();
    kube.apply(&SetYaml::fleet("arena", 2).render()).await.expect("the fleet applies");
    eventually(&kube, LIMIT, "2 Ready servers", async || {
        let ready = kube.fleet("arena").await?.status?.ready_replicas;
        (ready >= 2).then_some(())
    })
    .await;
    let server = allocate_one(&kube, "arena").await;
    let url = format!("http://{}/api/dashboard/gameservers/{}/{server}", kube.dashboard, kube.namespace());
    let events = eventually(&kube, LIMIT, "the server's Events on the dashboard", async || {
        let response = http.get(&url).bearer_auth(DASHBOARD_TOKEN).send().await.ok()?;
        assert_eq!(response.status().as_u16(), 200);
        let details: Value = response.json().await.ok()?;
        let reasons: Vec<String> =
            details["events"].as_array()?.iter().filter_map(|e| e["reason"].as_str().map(str::to_owned)).collect();
        let all = ["Creating", "Scheduled", "Ready", "Allocated"];
        all.iter().all(|r| reasons.iter().any(|x| x == r)).then_some(details)
    })
    .await;
    let lines = events["events"].as_array().expect("events");
    let reasons: Vec<&str> = lines.iter().filter_map(|e| e["reason"].as_str()).collect();
    // Oldest first, as the server went through its states; the allocator's Event last.
    let at = |reason: &str| reasons.iter().position(|r| *r == reason).expect("the reason");
    assert!(at("Creating") < at("Scheduled") && at("Scheduled") < at("Ready"), "{reasons:?}");
    assert!(at("Ready") < at("Allocated"), "{reasons:?}");
    assert!(lines.iter().all(|e| e["type"] == "Normal" || e["type"] == "Warning"), "{events}");
    assert!(lines.iter().all(|e| e["time"].as_str().is_some_and(|t| !t.is_empty())), "{events}");
    assert!(events["output"].is_null(), "{events}");
    let times: Vec<&str> = lines.iter().filter_map(|e| e["time"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first: {times:?}");
    kube.finish().await;
}
