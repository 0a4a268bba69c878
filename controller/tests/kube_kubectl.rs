//! kubectl as Agones users use it, on a real API server (`KUBECONFIG`) with the real `kubectl`:
//!
//! ```text
//! cargo test -p stadion-controller --test kube_kubectl -- --ignored --test-threads=1
//! ```
//!
//! Server-side apply of the Agones-style examples with strict field validation
//! (`--validate=strict`, which kubectl sends as `fieldValidation=Strict`), `kubectl get
//! gs,gss,flt,fas` with the CRDs' printer columns, `kubectl scale fleet`, `kubectl describe`
//! showing the controller's Events, and a Fleet deletion that leaves nothing behind.

mod kube_support;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use stadion_crds::{Fleet, GameServer, GameServerSet, GameServerState};

use kube_support::{Cluster, eventually, kubectl};

fn example(file: &str) -> Vec<Value> {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example readable");
    stadion_crds::manifest::yaml_documents(&text, file)
        .expect("example parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The printer columns a CRD file of `crds/` declares, as kubectl prints them (upper case),
/// after `NAME`.
fn printer_columns(file: &str) -> Vec<String> {
    let path = format!("{}/../crds/{file}", env!("CARGO_MANIFEST_DIR"));
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"].as_array().expect("printer columns");
    std::iter::once("NAME".to_owned())
        .chain(columns.iter().map(|c| c["name"].as_str().unwrap().to_uppercase()))
        .collect()
}

/// kubectl's table: the header's columns and each row's cells (columns are separated by at
/// least two spaces; a cell never holds two spaces in a row).
fn table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let split = |line: &str| -> Vec<String> {
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split(lines.next().unwrap_or_default());
    (header, lines.map(split).collect())
}

async fn ok(args: &[&str]) -> String {
    let (success, stdout, stderr) = kubectl(args).await;
    assert!(success, "kubectl {} failed: {stderr}", args.join(" "));
    stdout
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn kubectl_works_as_agones_users_use_it() {
    let cluster = Cluster::start("stadion-kubectl", None).await;
    let ns = cluster.namespace.clone();
    let client = cluster.client.clone();

    // The examples as they ship, with only this test's Node added to their Pod templates, and
    // the autoscaler's limits, applied in one server-side, strictly validated apply.
    let mut docs = Vec::new();
    let pod = cluster.pod_spec();
    for mut doc in example("gameserver.yaml").into_iter().chain(example("fleet.yaml")) {
        let spec = if doc["kind"] == "Fleet" { &mut doc["spec"]["template"]["spec"] } else { &mut doc["spec"] };
        let pod_spec = &mut spec["template"]["spec"];
        pod_spec["nodeSelector"] = pod["nodeSelector"].clone();
        pod_spec["tolerations"] = pod["tolerations"].clone();
        docs.push(doc);
    }
    docs.extend(example("fleetautoscaler.yaml"));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["GameServer", "Fleet", "FleetAutoscaler"]);
    let file = std::env::temp_dir().join(format!("stadion-kubectl-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": docs})).unwrap())
        .unwrap();
    let file = file.to_str().unwrap().to_owned();
    let out = ok(&["apply", "--server-side", "--validate=strict", "-n", &ns, "-f", &file]).await;
    assert!(out.contains("fleet.agones.dev/simple-game-server serverside-applied"), "{out}");
    // Strict means strict: a misspelt field is refused by name.
    let mut typo = example("fleet.yaml").remove(0);
    typo["spec"]["replcas"] = json!(2);
    std::fs::write(&file, typo.to_string()).unwrap();
    let (success, _, stderr) = kubectl(&["apply", "--server-side", "--validate=strict", "-n", &ns, "-f", &file]).await;
    assert!(!success && stderr.contains("replcas"), "{stderr}");
    let _ = std::fs::remove_file(&file);

    // The autoscaler (Buffer 2, min 2) sets the fleet to 2; servers go Ready.
    let fleets: Api<Fleet> = Api::namespaced(client.clone(), &ns);
    eventually("the autoscaler to size the fleet", || async {
        (fleets.get("simple-game-server").await.ok()?.spec.replicas == 2).then_some(())
    })
    .await;
    cluster.await_ready(3).await; // two of the fleet and the lone GameServer
    eventually("fleet status 2 Ready", || async {
        let status = fleets.get("simple-game-server").await.ok()?.status?;
        (status.ready_replicas == 2).then_some(())
    })
    .await;

    // `kubectl get gs,gss,flt,fas`: one table per kind, with Agones' printer columns.
    let out = ok(&["get", "gs,gss,flt,fas", "-n", &ns]).await;
    let sections: Vec<&str> = out.split("\n\n").filter(|s| !s.trim().is_empty()).collect();
    assert_eq!(sections.len(), 4, "{out}");
    for (section, (crd, prefix)) in sections.iter().zip([
        ("gameservers.yaml", "gameserver.agones.dev/"),
        ("gameserversets.yaml", "gameserverset.agones.dev/"),
        ("fleets.yaml", "fleet.agones.dev/"),
        ("fleetautoscalers.yaml", "fleetautoscaler.autoscaling.agones.dev/"),
    ]) {
        let (header, rows) = table(section);
        assert_eq!(header, printer_columns(crd), "{section}");
        assert!(!rows.is_empty() && rows.iter().all(|r| r[0].starts_with(prefix)), "{section}");
    }
    let (header, rows) = table(&ok(&["get", "gs", "-n", &ns]).await);
    let state = header.iter().position(|c| c == "STATE").unwrap();
    let address = header.iter().position(|c| c == "ADDRESS").unwrap();
    let node = header.iter().position(|c| c == "NODE").unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row[state], "Ready", "{row:?}");
        assert_eq!(row[address], "203.0.113.77");
        assert_eq!(row[node], cluster.node);
    }
    let (header, rows) = table(&ok(&["get", "flt", "simple-game-server", "-n", &ns]).await);
    let cell = |name: &str| rows[0][header.iter().position(|c| c == name).unwrap()].clone();
    assert_eq!(
        (cell("SCHEDULING"), cell("DESIRED"), cell("CURRENT"), cell("READY")),
        ("Packed".into(), "2".into(), "2".into(), "2".into())
    );
    let (header, rows) = table(&ok(&["get", "fas", "-n", &ns]).await);
    assert_eq!(rows[0][header.iter().position(|c| c == "FLEET").unwrap()], "simple-game-server");
    assert_eq!(rows[0][header.iter().position(|c| c == "POLICY").unwrap()], "Buffer");

    // `kubectl scale fleet` (the autoscaler goes first, or it would scale it back).
    ok(&["delete", "fas", "simple-game-server-autoscaler", "-n", &ns]).await;
    let out = ok(&["scale", "fleet", "simple-game-server", "--replicas=4", "-n", &ns]).await;
    assert!(out.contains("scaled"), "{out}");
    cluster.await_ready(5).await;
    eventually("fleet status 4 Ready", || async {
        let status = fleets.get("simple-game-server").await.ok()?.status?;
        (status.replicas == 4 && status.ready_replicas == 4).then_some(())
    })
    .await;

    // `kubectl describe` shows the controller's Events.
    let gameservers: Api<GameServer> = Api::namespaced(client.clone(), &ns);
    let any_fleet_server = gameservers
        .list(&ListParams::default().labels("agones.dev/fleet=simple-game-server"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|gs| gs.state() == Some(GameServerState::Ready))
        .expect("a Ready fleet server");
    let name = any_fleet_server.metadata.name.clone().unwrap();
    let described = eventually("the GameServer's Events in kubectl describe", || async {
        let out = ok(&["describe", "gs", &name, "-n", &ns]).await;
        (out.contains("Events:") && out.contains("Ready") && out.contains("Scheduled")).then_some(out)
    })
    .await;
    let events = &described[described.find("Events:").unwrap()..];
    assert!(events.contains("Normal") && events.contains("Creating"), "{events}");
    let described = eventually("the Fleet's Events in kubectl describe", || async {
        let out = ok(&["describe", "flt", "simple-game-server", "-n", &ns]).await;
        let events = out[out.find("Events:")?..].to_owned();
        events.contains("CreatingGameServerSet").then_some(events)
    })
    .await;
    assert!(described.contains("Normal"), "{described}");

    // Deleting the Fleet leaves no GameServerSets, GameServers or Pods of it.
    ok(&["delete", "fleet", "simple-game-server", "-n", &ns, "--wait=true", "--timeout=60s"]).await;
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let owned = ListParams::default().labels("agones.dev/fleet=simple-game-server");
    eventually("nothing of the fleet left", || async {
        let left = sets.list(&owned).await.ok()?.items.len()
            + gameservers.list(&owned).await.ok()?.items.len()
            + pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|p| {
                    p.metadata.owner_references.iter().flatten().any(|o| o.name.starts_with("simple-game-server-"))
                })
                .count();
        (left == 0).then_some(())
    })
    .await;
    let out = ok(&["get", "gs,gss,flt", "-n", &ns, "-o", "name"]).await;
    assert_eq!(out.trim(), "gameserver.agones.dev/simple-game-server", "only the lone GameServer is left");
    cluster.finish().await;
}
