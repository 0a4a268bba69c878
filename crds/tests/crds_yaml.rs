//! The generated CustomResourceDefinitions: committed YAML matches the types, schemas are
//! structural, and names, columns and subresources are the Agones ones.

use std::path::{Path, PathBuf};

use stadion_crds::crd;
use stadion_crds::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn find(kind: &str) -> CustomResourceDefinition {
    let all = crd::all().expect("CRDs generate");
    all.into_iter().map(|(_, c)| c).find(|c| c.spec.names.kind == kind).expect("kind generated")
}

fn version(crd: &CustomResourceDefinition) -> &CustomResourceDefinitionVersion {
    assert_eq!(crd.spec.versions.len(), 1);
    &crd.spec.versions[0]
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String)> {
    version(crd).additional_printer_columns.iter().flatten().map(|c| (c.name.clone(), c.json_path.clone())).collect()
}

#[test]
fn committed_yaml_matches_the_types() {
    // Set STADION_BLESS=1 to rewrite the files instead of failing.
    if std::env::var_os("STADION_BLESS").is_some() {
        crd::write_all(&crds_dir()).expect("write CRDs");
    }
    let drifted = crd::drifted(&crds_dir()).expect("compare CRDs");
    assert!(
        drifted.is_empty(),
        "generated CRDs differ from the committed ones: {drifted:?}\nregenerate with `{}` \
         (or `STADION_BLESS=1 cargo test -p stadion-crds --test crds_yaml`) and commit the result",
        crd::REGENERATE_COMMAND
    );
}

#[test]
fn every_schema_is_structural() {
    for (file, crd) in crd::all().expect("CRDs generate") {
        let schema = version(&crd).schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
        let problems = crd::structural::problems(schema);
        assert!(problems.is_empty(), "{file} is not structural:\n{}", problems.join("\n"));
    }
}

#[test]
fn committed_files_parse_back_into_the_same_crds() {
    for (file, generated) in crd::all().expect("CRDs generate") {
        let text = std::fs::read_to_string(crds_dir().join(file)).expect("committed file exists");
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("valid CRD YAML");
        assert_eq!(parsed, generated, "{file}");
    }
}

#[test]
fn gameserver_crd_has_agones_names_columns_and_no_status_subresource() {
    let crd = find("GameServer");
    assert_eq!(crd.metadata.name.as_deref(), Some("gameservers.agones.dev"));
    assert_eq!(crd.spec.group, "agones.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.plural, "gameservers");
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["gs".to_owned()][..]));
    assert_eq!(version(&crd).name, "v1");
    let subresources = version(&crd).subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_none(), "status must be written with the object");
    let scale = subresources.scale.as_ref().expect("scale for PodDisruptionBudgets");
    assert_eq!(scale.spec_replicas_path, ".spec.immutableReplicas");
    assert_eq!(scale.status_replicas_path, ".status.immutableReplicas");
    let pinned = version(&crd)
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.properties.as_ref()?.get("spec")?.properties.as_ref()?.get("immutableReplicas").cloned())
        .expect("immutableReplicas in the schema");
    assert_eq!((pinned.minimum, pinned.maximum), (Some(1.0), Some(1.0)));
    assert_eq!(pinned.default.map(|d| d.0), Some(serde_json::json!(1)));
    let expected = [
        ("State", ".status.state"),
        ("Address", ".status.address"),
        ("Port", ".status.ports[0].port"),
        ("Node", ".status.nodeName"),
        ("Age", ".metadata.creationTimestamp"),
    ];
    assert_eq!(columns(&crd), expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
}

#[test]
fn sets_and_fleets_have_status_scale_and_replica_columns() {
    for (kind, plural, short) in
        [("GameServerSet", "gameserversets", &["gss", "gsset"][..]), ("Fleet", "fleets", &["flt"][..])]
    {
        let crd = find(kind);
        assert_eq!(crd.metadata.name.as_deref(), Some(format!("{plural}.agones.dev").as_str()));
        let shorts: Vec<&str> = crd.spec.names.short_names.iter().flatten().map(String::as_str).collect();
        assert_eq!(shorts, short, "{kind}");
        let subresources = version(&crd).subresources.as_ref().expect("subresources");
        assert!(subresources.status.is_some(), "{kind} status subresource");
        let scale = subresources.scale.as_ref().expect("scale subresource");
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        let expected = [
            ("Scheduling", ".spec.scheduling"),
            ("Desired", ".spec.replicas"),
            ("Current", ".status.replicas"),
            ("Allocated", ".status.allocatedReplicas"),
            ("Ready", ".status.readyReplicas"),
            ("Age", ".metadata.creationTimestamp"),
        ];
        assert_eq!(columns(&crd), expected.map(|(a, b)| (a.to_owned(), b.to_owned())), "{kind}");
    }
}

#[test]
fn fleetautoscaler_crd_has_status_and_no_scale() {
    let crd = find("FleetAutoscaler");
    assert_eq!(crd.metadata.name.as_deref(), Some("fleetautoscalers.autoscaling.agones.dev"));
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["fas".to_owned()][..]));
    let subresources = version(&crd).subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some());
    assert!(subresources.scale.is_none());
}

#[test]
fn embedded_objects_keep_unknown_fields_and_int_or_string_has_no_type() {
    let crd = find("Fleet");
    let schema = serde_json::to_value(version(&crd).schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()))
        .expect("schema serializes");
    let template = &schema["properties"]["spec"]["properties"]["template"]["properties"];
    assert_eq!(template["metadata"]["x-kubernetes-preserve-unknown-fields"], true);
    let pod_template = &template["spec"]["properties"]["template"];
    assert_eq!(pod_template["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(pod_template["type"], "object");
    let surge = &schema["properties"]["spec"]["properties"]["strategy"]["properties"]["rollingUpdate"]["properties"]["maxSurge"];
    assert_eq!(surge["x-kubernetes-int-or-string"], true);
    assert!(surge.get("type").is_none());
}

/// The schema node at a scale path such as `.spec.replicas`.
fn schema_at(crd: &CustomResourceDefinition, path: &str) -> Option<serde_json::Value> {
    let schema = serde_json::to_value(version(crd).schema.as_ref()?.open_api_v3_schema.as_ref()?).ok()?;
    let mut node = &schema;
    for field in path.trim_start_matches('.').split('.') {
        node = node.get("properties")?.get(field)?;
    }
    Some(node.clone())
}

#[test]
fn scale_paths_are_integers_under_spec_and_status() {
    // The API server refuses a scale subresource whose paths are not under .spec / .status.
    for kind in ["GameServer", "GameServerSet", "Fleet"] {
        let crd = find(kind);
        let scale = version(&crd).subresources.as_ref().and_then(|s| s.scale.clone()).expect("scale");
        assert!(scale.spec_replicas_path.starts_with(".spec."), "{kind}");
        assert!(scale.status_replicas_path.starts_with(".status."), "{kind}");
        for path in [&scale.spec_replicas_path, &scale.status_replicas_path] {
            let node = schema_at(&crd, path).unwrap_or_else(|| panic!("{kind}: {path} not in the schema"));
            assert_eq!(node["type"], "integer", "{kind}: {path}");
        }
    }
}

/// `kubectl` needs an API server even for `--dry-run=client`, so this only runs against a
/// configured cluster (`cargo test -- --ignored`).
#[test]
#[ignore = "needs cluster"]
fn kubectl_accepts_the_crds() {
    let status = std::process::Command::new("kubectl")
        .args(["apply", "--dry-run=server", "-f"])
        .arg(crds_dir())
        .status()
        .expect("kubectl runs");
    assert!(status.success());
}
