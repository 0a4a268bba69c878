//! The controller's own `allocation.agones.dev/v1` API, served by the runtime under contract
//! as `stadion controller --allocation-api` serves it: with a certificate the install's CA
//! signed for the allocation Service, and client authentication off (no aggregator here; the
//! front-proxy check has its own cluster test). Allocations made through it are timed into the
//! controller's own metrics, as in a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};
use stadion_controller::kube::allocation_api::front_proxy::ClientAuth;
use stadion_controller::kube::allocation_api::tls::TlsSource;
use stadion_controller::kube::allocation_api::{AllocationApiConfig, SERVICE_NAME};
use stadion_controller::kube::install::AllocationTls;
use stadion_crds::labels;

/// Where the allocation API listens, and the CA its certificate chains to.
pub struct AllocationEndpoint {
    addr: SocketAddr,
    namespace: String,
    ca: String,
    dir: PathBuf,
}

impl AllocationEndpoint {
    /// A fresh certificate for the allocation Service in `namespace`, written where the
    /// controller reads it (as a kubelet mounts the install's Secret), and a free port.
    pub fn new(namespace: &str) -> Self {
        let tls = AllocationTls::generate(SERVICE_NAME, namespace).expect("a serving certificate");
        let dir = std::env::temp_dir().join(format!("stadion-contract-tls-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a folder for the certificate");
        std::fs::write(dir.join("tls.crt"), &tls.cert).expect("tls.crt");
        std::fs::write(dir.join("tls.key"), &tls.key).expect("tls.key");
        Self { addr: super::free_address(), namespace: namespace.to_owned(), ca: tls.ca, dir }
    }

    /// The controller's setting that serves it.
    pub fn config(&self) -> AllocationApiConfig {
        AllocationApiConfig {
            addr: self.addr,
            tls: TlsSource::Files { cert: self.dir.join("tls.crt"), key: self.dir.join("tls.key") },
            client_auth: ClientAuth::Off,
        }
    }

    /// Creates a GameServerAllocation for a server of fleet `fleet` (what the aggregator
    /// forwards `kubectl create -f gameserverallocation.yaml` to), over TLS verified against
    /// the install's CA for the Service's name: (HTTP status, body).
    pub async fn allocate(&self, fleet: &str) -> (u16, Value) {
        let host = format!("{SERVICE_NAME}.{}.svc", self.namespace);
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca.as_bytes()).expect("the CA parses")])
            .resolve(&host, self.addr)
            .build()
            .expect("an HTTPS client");
        let body = json!({
            "apiVersion": "allocation.agones.dev/v1",
            "kind": "GameServerAllocation",
            "metadata": {"namespace": self.namespace},
            "spec": {"selectors": [{"matchLabels": {labels::FLEET: fleet}}]},
        });
        let port = self.addr.port();
        let url = format!(
            "https://{host}:{port}/apis/allocation.agones.dev/v1/namespaces/{}/gameserverallocations",
            self.namespace
        );
        let response = client.post(&url).json(&body).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let code = response.status().as_u16();
        (code, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for AllocationEndpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
