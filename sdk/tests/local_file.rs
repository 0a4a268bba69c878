//! `sdk-server --local --file`: the manifest is served, and edits to it reach watchers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use stadion_crds::GameServerState;
use stadion_sdk::server::local::LocalBackend;
use stadion_sdk::server::{self, GameServerBackend, ServeOptions};
use stadion_sdk::{Sdk, SdkConfig};

const MANIFEST: &str = r#"
apiVersion: agones.dev/v1
kind: GameServer
metadata:
  name: from-file
  labels:
    version: "1"
spec:
  health:
    disabled: true
  ports:
    - name: game
      containerPort: 7654
      hostPort: 7001
  counters:
    rooms:
      count: 0
      capacity: 4
  template:
    spec:
      containers:
        - name: game
          image: example/game
"#;

/// A scratch file that is removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("stadion-sdk-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("gameserver.yaml");
        std::fs::write(&path, text).expect("write manifest");
        Self(path)
    }

    /// Rewrites the file and moves its mtime forward, so coarse file-system clocks still differ.
    fn rewrite(&self, text: &str, seconds_ahead: u64) {
        std::fs::write(&self.0, text).expect("rewrite manifest");
        let file = std::fs::File::options().write(true).open(&self.0).expect("open");
        file.set_modified(SystemTime::now() + Duration::from_secs(seconds_ahead)).expect("set mtime");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn the_manifest_is_served_and_reloaded_on_change() {
    let file = Scratch::new("reload", MANIFEST);
    let gs = LocalBackend::load(&file.0).expect("manifest loads");
    assert_eq!(gs.metadata.name.as_deref(), Some("from-file"));
    assert_eq!(gs.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(gs.state(), Some(GameServerState::Ready));
    let status = gs.status.clone().expect("status");
    assert_eq!((status.ports[0].name.as_str(), status.ports[0].port), ("game", 7001));
    assert_eq!(status.counters["rooms"].capacity, 4);

    let backend = Arc::new(LocalBackend::new(gs));
    let reloader = backend.watch_file(file.0.clone(), Duration::from_millis(50));
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let listeners = server::bind(loopback, loopback).await.expect("bind");
    let handle = server::serve(backend.clone(), listeners, ServeOptions::default()).expect("serve");
    let config = SdkConfig { host: "127.0.0.1".into(), port: handle.grpc_addr().port(), ..SdkConfig::default() };
    let sdk = Sdk::connect_with(config).await.expect("connect");
    let uid = sdk.game_server().await.expect("get").object_meta.expect("meta").uid;
    let mut changes = sdk.watch_game_server().await.expect("watch");
    let first = changes.next().await.expect("current").expect("ok");
    assert_eq!(first.object_meta.expect("meta").labels.get("version").map(String::as_str), Some("1"));

    // A broken edit is ignored; the next good one is pushed to watchers with the same identity.
    file.rewrite("kind: [", 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(backend.get().await.expect("get").metadata.name.as_deref(), Some("from-file"));
    file.rewrite(&MANIFEST.replace(r#"version: "1""#, r#"version: "2""#), 4);
    let reloaded = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(gs) = changes.next().await {
            let meta = gs.expect("ok").object_meta.expect("meta");
            if meta.labels.get("version").map(String::as_str) == Some("2") {
                return meta;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("the edit reached the watcher");
    assert_eq!(reloaded.uid, uid, "same server, new version");
    reloaded.resource_version.parse::<u64>().expect("numeric resource version");
    reloader.abort();
    handle.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_wrong_manifest_is_a_clear_error() {
    let missing = LocalBackend::load(std::path::Path::new("/definitely/not/here.yaml")).expect_err("missing");
    assert!(missing.to_string().contains("/definitely/not/here.yaml"), "{missing}");
    let file = Scratch::new("wrong-kind", "apiVersion: agones.dev/v1\nkind: Fleet\nmetadata: {name: f}\n");
    let wrong = LocalBackend::load(&file.0).expect_err("not a GameServer");
    assert!(wrong.to_string().contains("GameServer"), "{wrong}");
}
