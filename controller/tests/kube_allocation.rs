//! Allocation through Kubernetes' aggregation layer, on a real API server (`KUBECONFIG`):
//!
//! ```text
//! cargo test -p stadion-controller --test kube_allocation -- --ignored --test-threads=1
//! ```
//!
//! The install's Secret and APIService (with its `caBundle`) are applied as `stadion install
//! --print` renders them; the Service is of type ExternalName pointing at 127.0.0.1, since
//! Endpoints may not hold loopback addresses. The controller runs in-process with the Secret's
//! certificate, and `kubectl create -f examples/allocation/gameserverallocation.yaml` goes
//! kubectl → kube-apiserver (authentication, RBAC) → aggregator (verifying our certificate,
//! presenting its front-proxy one) → the controller's allocation API.

mod kube_support;

use std::net::SocketAddr;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use stadion_controller::kube::allocation_api::front_proxy::{CLIENT_CA_KEY, CONFIG_MAP, ClientAuth, NAMESPACE};
use stadion_controller::kube::allocation_api::tls::TlsSource;
use stadion_controller::kube::allocation_api::{AllocationApiConfig, SERVICE_NAME};
use stadion_controller::kube::install::{self, ALLOCATION_TLS_SECRET, InstallOptions};
use stadion_crds::{Fleet, GameServer, GameServerState};

use kube_support::{Cluster, MANAGER, eventually, kubectl};

const API_SERVICE: &str = "v1.allocation.agones.dev";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/allocation/gameserverallocation.yaml");

fn api_services(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// A port free on loopback right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn decode(value: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(value).expect("base64")
}

/// What the install registers for the allocation API, for namespace `namespace` and a
/// controller listening on `port`: the Secret (also written to `dir`, as a kubelet mounts it),
/// the ExternalName Service and the APIService. Returns the TLS source and the CA PEM.
async fn register_allocation_api(
    client: &Client,
    namespace: &str,
    port: u16,
    dir: &std::path::Path,
) -> (TlsSource, Vec<u8>) {
    let options = InstallOptions { namespace: namespace.to_owned(), ..InstallOptions::default() };
    let rendered = install::render(&options, &[]).expect("install renders");
    let docs = install::parse_documents("install", &rendered).expect("install parses");
    let find = |kind: &str, name: &str| {
        docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).cloned().expect(kind)
    };
    let secret: Secret = serde_json::from_value(find("Secret", ALLOCATION_TLS_SECRET)).unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace).create(&PostParams::default(), &secret).await.expect("secret");
    let data = secret.data.expect("secret data");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tls.crt"), &data["tls.crt"].0).unwrap();
    std::fs::write(dir.join("tls.key"), &data["tls.key"].0).unwrap();

    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE_NAME, "namespace": namespace},
        "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                 "ports": [{"name": "allocation", "port": port, "protocol": "TCP"}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), namespace).create(&PostParams::default(), &service).await.expect("svc");

    let mut api_service = find("APIService", API_SERVICE);
    assert!(api_service["spec"].get("insecureSkipTLSVerify").is_none());
    let ca = decode(api_service["spec"]["caBundle"].as_str().expect("caBundle"));
    api_service["spec"]["service"]["port"] = json!(port);
    let params = PatchParams::apply(MANAGER).force();
    api_services(client).patch(API_SERVICE, &params, &Patch::Apply(&api_service)).await.expect("APIService");
    (TlsSource::Files { cert: dir.join("tls.crt"), key: dir.join("tls.key") }, ca)
}

/// A new CA, as a cluster rotating its front-proxy CA makes.
fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "rotated-front-proxy-ca");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A PEM identity for `common_name` signed by `ca`.
fn client_of(ca: &CertifiedIssuer<'static, KeyPair>, common_name: &str) -> String {
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, common_name);
    let key = KeyPair::generate().unwrap();
    let cert = client.signed_by(&key, ca).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// Calls the controller's allocation API directly (not through the aggregator), verifying its
/// certificate against the install's CA for the Service name: (HTTP status, body).
async fn direct(ca: &[u8], namespace: &str, port: u16, identity: Option<&str>) -> (u16, Value) {
    let host = format!("{SERVICE_NAME}.{namespace}.svc");
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca).unwrap()])
        .resolve(&host, SocketAddr::from(([127, 0, 0, 1], port)));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    let response = builder
        .build()
        .unwrap()
        .get(format!("https://{host}:{port}/apis/allocation.agones.dev/v1"))
        .header("X-Remote-User", "test")
        .send()
        .await
        .expect("the allocation API answers over verified TLS");
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn kubectl_create_allocates_through_the_aggregation_layer() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("stadion-kapi-{}", uuid::Uuid::new_v4()));
    let client = stadion_controller::kube::connect::client(None).await.expect("KUBECONFIG");
    // The namespace comes before the controller: its certificate names it.
    let mut cluster = Cluster::without_controller("stadion-alloc").await;
    let namespace = cluster.namespace.clone();
    let (tls, ca) = register_allocation_api(&client, &namespace, port, &dir).await;
    let config = AllocationApiConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls,
        client_auth: ClientAuth::FrontProxy,
    };
    cluster.start_controller(Some(config));

    let fleets: Api<Fleet> = Api::namespaced(client.clone(), &namespace);
    let fleet: Fleet = serde_json::from_value(cluster.fleet("simple-game-server", 2)).unwrap();
    fleets.create(&PostParams::default(), &fleet).await.expect("fleet");
    cluster.await_ready(2).await;

    eventually("the APIService to be Available", || async {
        let service = api_services(&client).get(API_SERVICE).await.ok()?;
        let conditions = service.data["status"]["conditions"].as_array()?.clone();
        conditions.iter().any(|c| c["type"] == "Available" && c["status"] == "True").then_some(())
    })
    .await;

    // The README's command, through kubectl and the aggregator.
    let create = || async { kubectl(&["create", "-f", EXAMPLE, "-n", &namespace, "-o", "json"]).await };
    let (ok, stdout, stderr) = create().await;
    assert!(ok, "kubectl create failed: {stderr}");
    let allocation: Value = serde_json::from_str(&stdout).expect("kubectl prints the allocation");
    assert_eq!(allocation["kind"], "GameServerAllocation");
    assert_eq!(allocation["status"]["state"], "Allocated", "{allocation}");
    assert_eq!(allocation["status"]["address"], "203.0.113.77");
    let name = allocation["status"]["gameServerName"].as_str().expect("a server name").to_owned();
    let gameservers: Api<GameServer> = Api::namespaced(client.clone(), &namespace);
    let chosen = gameservers.get(&name).await.expect("the allocated server");
    assert_eq!(chosen.state(), Some(GameServerState::Allocated));
    assert_eq!(chosen.metadata.labels.as_ref().unwrap()["mode"], "deathmatch");
    assert_eq!(chosen.metadata.annotations.as_ref().unwrap()["map"], "garden22");

    // RBAC is the API server's: a user without create on gameserverallocations is refused there.
    let (ok, _, stderr) =
        kubectl(&["create", "-f", EXAMPLE, "-n", &namespace, "--as", "someone-else", "-o", "json"]).await;
    assert!(!ok && stderr.contains("forbidden"), "{stderr}");

    // Only the aggregator may call the controller directly: no certificate is 401, a certificate
    // of a CA the cluster does not publish is 401, each as a Status.
    let (code, body) = direct(&ca, &namespace, port, None).await;
    assert_eq!((code, body["kind"].as_str()), (401, Some("Status")), "{body}");
    let rotated = new_ca();
    let rotated_client = client_of(&rotated, "front-proxy-client");
    let (code, _) = direct(&ca, &namespace, port, Some(&rotated_client)).await;
    assert_eq!(code, 401, "not trusted before the rotation");

    // Rotation: the cluster publishes a new front-proxy CA beside the old one; the controller
    // takes it up from its watch, with no restart.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let original = config_maps.get(CONFIG_MAP).await.expect("the authentication ConfigMap");
    let old_bundle = original.data.as_ref().unwrap()[CLIENT_CA_KEY].clone();
    let patch = json!({"data": {CLIENT_CA_KEY: format!("{old_bundle}{}", rotated.pem())}});
    config_maps.patch(CONFIG_MAP, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("rotate");
    eventually("the rotated CA to be trusted", || async {
        (direct(&ca, &namespace, port, Some(&rotated_client)).await.0 == 200).then_some(())
    })
    .await;
    // Trusted, but the name is not among requestheader-allowed-names: 403.
    let (code, body) = direct(&ca, &namespace, port, Some(&client_of(&rotated, "intruder"))).await;
    assert_eq!((code, body["reason"].as_str()), (403, Some("Forbidden")), "{body}");

    // The old CA still works through the aggregator, and the second server is allocated.
    let (ok, stdout, stderr) = create().await;
    assert!(ok, "{stderr}");
    let second: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(second["status"]["state"], "Allocated");
    assert_ne!(second["status"]["gameServerName"], name.as_str());
    // None left: UnAllocated, not an error.
    let (ok, stdout, stderr) = create().await;
    assert!(ok, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["status"]["state"], "UnAllocated");

    // Put the bundle back (the controller follows, dropping the rotated CA).
    let patch = json!({"data": {CLIENT_CA_KEY: old_bundle}});
    config_maps.patch(CONFIG_MAP, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("restore");
    let _ = api_services(&client).delete(API_SERVICE, &DeleteParams::default()).await;
    cluster.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}
