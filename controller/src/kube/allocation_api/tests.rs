//! The allocation API over real HTTPS on loopback, allocating through a real [`KubeAllocator`]
//! whose API server is the scripted mock of [`crate::kube::fixtures`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, APIGroupList, APIResourceList, Status};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stadion_crds::GameServer;
use tokio::sync::{oneshot, watch};

use super::front_proxy::FrontProxyAuth;
use super::tls::TlsSource;
use super::{ApiState, authenticated_router, serve_with_timeouts};
use crate::kube::allocator::KubeAllocator;
use crate::kube::fixtures::{ApiServer, Expect, gameserver, set_state};

const GS_PATH: &str = "/apis/agones.dev/v1/namespaces/default/gameservers";
/// Short, so the timeout tests do not wait long.
const TIMEOUTS: stadion_sdk::http_server::HttpTimeouts = stadion_sdk::http_server::HttpTimeouts {
    header_read: Duration::from_millis(500),
    body_read: Duration::from_millis(500),
    idle: Duration::from_secs(5),
};
const COLLECTION: &str = "/apis/allocation.agones.dev/v1/namespaces/default/gameserverallocations";

fn ready(name: &str) -> GameServer {
    let mut gs = gameserver(name);
    set_state(&mut gs, stadion_crds::GameServerState::Ready);
    let status = gs.status.get_or_insert_with(Default::default);
    status.node_name = "node-1".into();
    status.address = "203.0.113.7".into();
    status.ports = vec![stadion_crds::gameserver::GameServerStatusPort { name: "default".into(), port: 7000 }];
    gs.metadata.labels = Some([("mode".to_owned(), "duel".to_owned())].into());
    gs
}

/// A GameServer cache holding `servers`, synced (`synced`) or still listing.
pub(super) fn allocator(
    client: kube::Client,
    servers: Vec<GameServer>,
    synced: bool,
) -> (KubeAllocator, Writer<GameServer>) {
    let mut writer: Writer<GameServer> = Writer::default();
    writer.apply_watcher_event(&watcher::Event::Init);
    for gs in servers {
        writer.apply_watcher_event(&watcher::Event::InitApply(gs));
    }
    if synced {
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }
    let (capacity, _) = watch::channel(0);
    (KubeAllocator::new(client, writer.as_reader(), capacity), writer)
}

/// A running server; dropping it stops the accept loop.
pub(super) struct Running {
    pub(super) base: String,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
    // Keeps the cache's writer alive, as the watch task does in production.
    _writer: Writer<GameServer>,
}

async fn start_with(state: ApiState, tls: &TlsSource, writer: Writer<GameServer>) -> Running {
    start_verifying(state, tls, None, writer).await
}

/// A running server that admits only the front proxy `auth` describes, when given.
pub(super) async fn start_verifying(
    state: ApiState,
    tls: &TlsSource,
    auth: Option<Arc<FrontProxyAuth>>,
    writer: Writer<GameServer>,
) -> Running {
    let listener = super::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = tls.server_config(auth.is_some()).unwrap();
    tokio::spawn(serve_with_timeouts(listener, config, authenticated_router(state, auth), TIMEOUTS, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    Running { base: format!("https://localhost:{}", addr.port()), http, _stop: stop, _writer: writer }
}

async fn start(servers: Vec<GameServer>) -> (Running, ApiServer) {
    let (client, api) = ApiServer::start();
    let (allocator, writer) = allocator(client, servers, true);
    let tls = TlsSource::self_signed_for("stadion-allocation", "stadion-system");
    (start_with(ApiState::new(allocator), &tls, writer).await, api)
}

impl Running {
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(format!("{}{path}", self.base)).json(body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).send().await.unwrap()
    }
}

fn gsa(selector: Value) -> Value {
    json!({
        "apiVersion": "allocation.agones.dev/v1",
        "kind": "GameServerAllocation",
        "spec": {"selectors": [selector], "metadata": {"labels": {"session": "s-1"}}},
    })
}

fn assert_status(body: &Value, code: u16, reason: &str) -> Status {
    let status: Status = serde_json::from_value(body.clone()).expect("a meta/v1 Status");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.code, Some(i32::from(code)));
    assert_eq!(status.reason.as_deref(), Some(reason), "{body}");
    assert!(status.message.as_deref().is_some_and(|m| !m.is_empty()));
    status
}

#[tokio::test]
async fn discovery_documents_are_the_kubernetes_types() {
    let (server, _api) = start(vec![]).await;
    let list: APIResourceList = server.get("/apis/allocation.agones.dev/v1").await.json().await.unwrap();
    assert_eq!(list.group_version, "allocation.agones.dev/v1");
    let resource = &list.resources[0];
    assert_eq!(resource.name, "gameserverallocations");
    assert_eq!(resource.singular_name, "gameserverallocation");
    assert_eq!(resource.kind, "GameServerAllocation");
    assert!(resource.namespaced);
    assert_eq!(resource.verbs, ["create"]);
    assert_eq!(resource.short_names.as_deref(), Some(&["gsa".to_owned()][..]));

    let group: APIGroup = server.get("/apis/allocation.agones.dev").await.json().await.unwrap();
    assert_eq!(group.name, "allocation.agones.dev");
    assert_eq!(group.preferred_version.unwrap().group_version, "allocation.agones.dev/v1");
    let groups: APIGroupList = server.get("/apis").await.json().await.unwrap();
    assert_eq!(groups.groups[0].versions[0].version, "v1");

    // The aggregator's aggregated-discovery request gets 406, so it falls back to the above.
    let aggregated = server
        .http
        .get(format!("{}/apis", server.base))
        .header("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        .send()
        .await
        .unwrap();
    assert_eq!(aggregated.status(), 406);
    assert_status(&aggregated.json().await.unwrap(), 406, "NotAcceptable");
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(server.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn create_allocates_through_the_kube_allocator() {
    let (server, api) = start(vec![ready("gs-a")]).await;
    let script = api.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-a"))
            .check(|gs| {
                assert_eq!(gs["status"]["state"], "Allocated");
                assert_eq!(gs["metadata"]["resourceVersion"], "1", "guarded by the cached version");
                assert_eq!(gs["metadata"]["labels"]["session"], "s-1");
            })
            .respond_echo(),
    ]);
    let (code, body) = server.post(COLLECTION, &gsa(json!({"matchLabels": {"mode": "duel"}}))).await;
    script.await.unwrap();
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["apiVersion"], "allocation.agones.dev/v1");
    assert_eq!(body["kind"], "GameServerAllocation");
    assert_eq!(body["metadata"]["namespace"], "default");
    assert_eq!(body["metadata"]["name"], "gs-a", "named after its server, as in Agones");
    assert!(body["metadata"]["creationTimestamp"].is_string());
    assert_eq!(body["spec"]["selectors"][0]["matchLabels"]["mode"], "duel");
    assert_eq!(body["spec"]["selectors"][0]["gameServerState"], "Ready", "defaults applied");
    assert_eq!(body["spec"]["scheduling"], "Packed");
    let status = &body["status"];
    assert_eq!(status["state"], "Allocated");
    assert_eq!(status["gameServerName"], "gs-a");
    assert_eq!(status["address"], "203.0.113.7");
    assert_eq!(status["ports"][0], json!({"name": "default", "port": 7000}));
    assert_eq!(status["nodeName"], "node-1");
}

/// The README's `kubectl create -f examples/allocation/gameserverallocation.yaml`, sent as YAML.
#[tokio::test]
async fn the_example_allocation_allocates_from_the_example_fleet() {
    let mut gs = ready("simple-game-server-x7k2p");
    gs.metadata.labels = Some([(stadion_crds::labels::FLEET.to_owned(), "simple-game-server".to_owned())].into());
    let (server, api) = start(vec![gs]).await;
    let script = api.run(vec![
        Expect::put(&format!("{GS_PATH}/simple-game-server-x7k2p"))
            .check(|gs| {
                assert_eq!(gs["metadata"]["labels"]["mode"], "deathmatch");
                assert_eq!(gs["metadata"]["annotations"]["map"], "garden22");
            })
            .respond_echo(),
        // The allocation is counted on its fleet (gone here: nothing to count).
        Expect::get("/apis/agones.dev/v1/namespaces/default/fleets/simple-game-server").respond_status(404),
    ]);
    let yaml = include_str!("../../../../examples/allocation/gameserverallocation.yaml");
    let response = server
        .http
        .post(format!("{}{COLLECTION}", server.base))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    script.await.unwrap();
    assert_eq!(body["status"]["state"], "Allocated", "{body}");
    assert_eq!(body["status"]["gameServerName"], "simple-game-server-x7k2p");
    assert_eq!(body["status"]["metadata"]["labels"]["mode"], "deathmatch");
}

#[tokio::test]
async fn nothing_matching_is_unallocated_and_writes_nothing() {
    let (server, api) = start(vec![ready("gs-a")]).await;
    let (code, body) = server.post(COLLECTION, &gsa(json!({"matchLabels": {"mode": "battle-royale"}}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"]["state"], "UnAllocated");
    assert!(body["status"].get("gameServerName").is_none());
    assert!(body["metadata"].get("name").is_none());
    api.expect_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn every_candidate_taken_is_contention() {
    let (server, api) = start(vec![ready("gs-a"), ready("gs-b")]).await;
    let script = api.run(vec![
        Expect::put(&format!("{GS_PATH}/gs-a")).respond_status(409),
        Expect::put(&format!("{GS_PATH}/gs-b")).respond_status(409),
    ]);
    let (code, body) = server.post(COLLECTION, &gsa(json!({}))).await;
    script.await.unwrap();
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"]["state"], "Contention");
}

#[tokio::test]
async fn unreachable_api_server_is_503() {
    let (server, api) = start(vec![ready("gs-a")]).await;
    let script = api.run(vec![Expect::put(&format!("{GS_PATH}/gs-a")).respond_status(500)]);
    let (code, body) = server.post(COLLECTION, &gsa(json!({}))).await;
    script.await.unwrap();
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_status(&body, 503, "ServiceUnavailable");
}

#[tokio::test]
async fn invalid_spec_is_422_naming_each_field() {
    let (server, api) = start(vec![ready("gs-a")]).await;
    let mut body = gsa(json!({"gameServerState": "Shutdown"}));
    body["spec"]["counters"] = json!({"rooms": {"action": "Increment", "amount": -1}});
    let (code, answer) = server.post(COLLECTION, &body).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let status = assert_status(&answer, 422, "Invalid");
    let details = status.details.expect("details");
    assert_eq!(details.kind.as_deref(), Some("GameServerAllocation"));
    assert_eq!(details.group.as_deref(), Some("allocation.agones.dev"));
    let fields: Vec<String> = details.causes.unwrap().into_iter().filter_map(|c| c.field).collect();
    assert!(fields.contains(&"spec.selectors[0].gameServerState".to_owned()), "{fields:?}");
    assert!(fields.contains(&"spec.counters[rooms].amount".to_owned()), "{fields:?}");
    // Multi-cluster allocation is refused rather than silently done locally.
    let mut multi = gsa(json!({}));
    multi["spec"]["multiClusterSetting"] = json!({"enabled": true});
    let (code, answer) = server.post(COLLECTION, &multi).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let causes = assert_status(&answer, 422, "Invalid").details.unwrap().causes.unwrap();
    assert_eq!(causes[0].field.as_deref(), Some("spec.multiClusterSetting.enabled"));
    api.expect_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn dry_run_validates_and_allocates_nothing() {
    let (server, api) = start(vec![ready("gs-a")]).await;
    let path = format!("{COLLECTION}?dryRun=All&fieldManager=kubectl-create&fieldValidation=Strict");
    let (code, body) = server.post(&path, &gsa(json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert!(body.get("status").is_none(), "{body}");
    assert_eq!(body["metadata"]["namespace"], "default");
    let (code, body) = server.post(&format!("{COLLECTION}?dryRun=Some"), &gsa(json!({}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(&body, 400, "BadRequest");
    api.expect_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn request_errors_are_status_objects() {
    let (server, api) = start(vec![ready("gs-a")]).await;
    let missing = server.get("/apis/allocation.agones.dev/v2").await;
    assert_eq!(missing.status(), 404);
    assert_status(&missing.json().await.unwrap(), 404, "NotFound");
    let openapi = server.get("/openapi/v2").await;
    assert_eq!(openapi.status(), 404);
    let list = server.get(COLLECTION).await;
    assert_eq!(list.status(), 405);
    assert_status(&list.json().await.unwrap(), 405, "MethodNotAllowed");
    let delete = server.http.delete(format!("{}/apis", server.base)).send().await.unwrap();
    assert_eq!(delete.status(), 405);

    let mut elsewhere = gsa(json!({}));
    elsewhere["metadata"] = json!({"namespace": "games"});
    let (code, body) = server.post(COLLECTION, &elsewhere).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(assert_status(&body, 400, "BadRequest").message.unwrap().contains("namespace"));
    let (code, body) = server.post(COLLECTION, &json!({"kind": "GameServer", "apiVersion": "agones.dev/v1"})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(&body, 400, "BadRequest");
    let garbage = server.http.post(format!("{}{COLLECTION}", server.base)).body("{not json").send().await.unwrap();
    assert_eq!(garbage.status(), 400);
    assert_status(&garbage.json().await.unwrap(), 400, "BadRequest");
    api.expect_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn an_unsynced_cache_is_not_ready_and_answers_503() {
    let (client, api) = ApiServer::start();
    let (allocator, writer) = allocator(client, vec![ready("gs-a")], false);
    let state = ApiState::new(allocator).with_cache_wait(Duration::from_millis(50));
    let tls = TlsSource::self_signed_for("stadion-allocation", "stadion-system");
    let server = start_with(state, &tls, writer).await;
    assert_eq!(server.get("/readyz").await.status(), 503);
    let (code, body) = server.post(COLLECTION, &gsa(json!({}))).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_status(&body, 503, "ServiceUnavailable");
    api.expect_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn given_certificate_files_are_served() {
    let dir = std::env::temp_dir().join(format!("stadion-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let tls = TlsSource::Files { cert: cert.clone(), key: key.clone() };
    let (client, _api) = ApiServer::start();
    let (allocator, writer) = allocator(client, vec![], true);
    let server = start_with(ApiState::new(allocator), &tls, writer).await;
    let response = server.get("/healthz").await;
    assert_eq!(response.status(), 200);

    // The served certificate is the given one.
    let served = tls.load().unwrap().0;
    assert_eq!(served[0].as_ref(), certified.cert.der().as_ref());
    // A missing or empty file is an error naming it.
    let missing = TlsSource::Files { cert: dir.join("nope.crt"), key };
    assert!(missing.server_config(false).unwrap_err().to_string().contains("nope.crt"));
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(tls.server_config(false).unwrap_err().to_string().contains("tls.crt"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The allocation API is on the shared serve path: a client that connects and never finishes
/// a handshake, or sends a head and never its body, holds nothing past the timeouts.
#[tokio::test]
async fn silent_and_slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _api) = start(vec![]).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    // Connected, no ClientHello: dropped after the header-read timeout.
    let mut silent = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the server closed the silent connection: {read:?}");

    // A create whose declared body never comes: 408 as a Status.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(insecure_client()));
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let head = format!(
        "POST {COLLECTION} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"kind\":\"Status\"") && answer.contains("\"reason\":\"Timeout\""), "{answer}");
}

/// A TLS client that trusts any server certificate (the tests' servers are self-signed).
fn insecure_client() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(algorithms)))
        .with_no_client_auth()
}
