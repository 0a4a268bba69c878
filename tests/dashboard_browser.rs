//! The dashboard in a real browser: headless Chromium driven over WebDriver (fantoccini)
//! against a real `stadion up` with a fleet and the matchmaker. The fleet row shows the right
//! counts; an allocation turns its server's row Allocated within 2 s with no reload; an assigned
//! ticket appears in the matchmaker panel; a screenshot is left in
//! `target/test-artifacts/dashboard.png`.
//!
//! Needs `chromium` and `chromium-driver` (Debian); without them this test fails, saying so.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use support::{Scratch, Up, eventually, free_port, get_json, up_with_matchmaker};

const SETTLE: Duration = Duration::from_secs(45);
const FLEET: &str = "default/simple-game-server";

/// Where Debian puts the browser and its driver (`apt-get install chromium chromium-driver`).
fn browser_binaries() -> (PathBuf, PathBuf) {
    let find = |names: &[&str]| {
        names.iter().map(PathBuf::from).find(|p| p.is_file()).or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.is_file())
        })
    };
    let chromium = find(&["/usr/bin/chromium", "chromium", "chromium-browser"]);
    let driver = find(&["/usr/bin/chromedriver", "chromedriver"]);
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => (chromium, driver),
        (chromium, driver) => panic!(
            "the dashboard browser test needs Chromium and its WebDriver (found chromium: {chromium:?}, chromedriver: {driver:?}): apt-get install chromium chromium-driver"
        ),
    }
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(binary: &Path) -> Self {
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        Self { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1360,1400"]
        }
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    eventually(Duration::from_secs(20), "a WebDriver session", || {
        let capabilities = capabilities.clone();
        let connector = connector.clone();
        async move { ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url).await.ok() }
    })
    .await
}

/// The text of the first element matching `selector`, if any.
async fn text(client: &Client, selector: &str) -> Option<String> {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;";
    match client.execute(script, vec![json!(selector)]).await {
        Ok(Value::String(text)) => Some(text.trim().to_owned()),
        _ => None,
    }
}

async fn text_becomes(client: &Client, selector: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let seen = text(client, selector).await;
        if seen.as_deref() == Some(want) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{selector} is {seen:?}, not {want:?}, after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Up {
    async fn allocate(&self) -> String {
        let url = format!("{}/apis/allocation.agones.dev/v1/namespaces/default/gameserverallocations", self.admin);
        let body = json!({"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "simple-game-server"}}]}});
        let reply: Value =
            self.http.post(url).json(&body).send().await.expect("allocation").json().await.expect("JSON");
        assert_eq!(reply["status"]["state"], "Allocated", "{reply}");
        reply["status"]["gameServerName"].as_str().expect("a server name").to_owned()
    }

    async fn ticket_assigned(&self, skill: f64, player: &str) -> String {
        let ticket = json!({"queue": "duel", "players": [{"id": player, "attributes": {"skill": skill}}]});
        let created: Value = self
            .http
            .post(format!("{}/v1/tickets", self.api))
            .json(&ticket)
            .send()
            .await
            .expect("ticket")
            .json()
            .await
            .expect("JSON");
        created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned()
    }
}

fn artifact_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-artifacts")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_the_fleet_allocations_and_assignments_live() {
    let (chromium, chromedriver) = browser_binaries();
    let scratch = Scratch::new("dashboard-browser");
    let mut up = up_with_matchmaker(&scratch, 3, "21600-21699");
    eventually(SETTLE, "3 Ready servers", || async {
        (up.fleet_field("simple-game-server", "ready").await? == 3).then_some(())
    })
    .await;
    let driver = Driver::start(&chromedriver);
    let client = browser(&driver, &chromium).await;
    client.goto(&format!("{}/", up.admin)).await.expect("the dashboard loads");
    assert_eq!(client.title().await.expect("a title"), "Stadion dashboard");

    let fleet = |col: &str| format!("tr[data-fleet=\"{FLEET}\"] td[data-col=\"{col}\"]");
    for (col, want) in [("desired", "3"), ("current", "3"), ("ready", "3"), ("allocated", "0"), ("reserved", "0")] {
        text_becomes(&client, &fleet(col), want, Duration::from_secs(10)).await;
    }
    assert_eq!(text(&client, "#live").await.as_deref(), Some("live"));
    // A marker that a reload would wipe.
    client.execute("window.__sameDocument = true; return null;", vec![]).await.expect("script runs");

    let allocated = up.allocate().await;
    let row = format!("tr[data-gs=\"default/{allocated}\"] td[data-col=\"state\"]");
    let took = text_becomes(&client, &row, "Allocated", Duration::from_secs(2)).await;
    eprintln!("the allocated row turned Allocated {took:?} after the allocation returned");
    text_becomes(&client, &fleet("allocated"), "1", Duration::from_secs(2)).await;
    let same = client.execute("return window.__sameDocument === true;", vec![]).await.expect("script runs");
    assert_eq!(same, json!(true), "the page was not reloaded");

    let (alice, bob) = (up.ticket_assigned(1500.0, "alice").await, up.ticket_assigned(1510.0, "bob").await);
    eventually(SETTLE, "both tickets assigned", || async {
        let ticket = get_json(&up.http, &format!("{}/v1/tickets/{alice}", up.api)).await?;
        (ticket["state"] == "assigned").then_some(())
    })
    .await;
    for ticket in [&alice, &bob] {
        let cell = format!("#assignments code[data-ticket=\"{ticket}\"]");
        text_becomes(&client, &cell, ticket, Duration::from_secs(3)).await;
    }
    let queue_assigned = "#queues tr[data-queue=\"duel\"] td[data-col=\"assigned\"]";
    text_becomes(&client, queue_assigned, "2", Duration::from_secs(3)).await;

    // Expanding a row shows its Events and output, with the keyboard.
    let name = text(&client, &format!("tr[data-gs=\"default/{allocated}\"] button.expand")).await;
    assert_eq!(name.as_deref(), Some(allocated.as_str()));
    client
        .execute(
            "document.querySelector(`tr[data-gs=\"default/${arguments[0]}\"] button.expand`).click(); return null;",
            vec![json!(allocated)],
        )
        .await
        .expect("expand");
    eventually(Duration::from_secs(5), "the row's output tail", || async {
        text(&client, "#details-row pre").await.filter(|t| !t.is_empty() && t != "(no output yet)")
    })
    .await;

    let png = client.screenshot().await.expect("a screenshot");
    let dir = artifact_dir();
    std::fs::create_dir_all(&dir).expect("artifact folder");
    std::fs::write(dir.join("dashboard.png"), &png).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    client.close().await.expect("the session ends");
    drop(driver);
    up.process.stop(Duration::from_secs(10));
}
