//! Connecting to the API server. Every client Stadion makes comes from [`client`], which first
//! fixes rustls' process-wide crypto provider: two TLS stacks in the dependency tree (kube's
//! `ring`, reqwest's `aws-lc-rs`) leave rustls unable to pick one, and kube builds its TLS
//! configuration from the process default, so without this the first client panics.

use std::path::Path;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{Error, Result};

/// Makes `ring` rustls' process-wide crypto provider, unless one is installed already.
/// Idempotent and cheap: call it before building any TLS client or server.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine: a provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A client from `kubeconfig` when one is given, else the usual inference (in-cluster service
/// account, then `KUBECONFIG` / `~/.kube/config`).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client> {
    install_crypto_provider();
    let Some(path) = kubeconfig else {
        return Client::try_default().await.map_err(|e| Error::Connect(e.to_string()));
    };
    let file = Kubeconfig::read_from(path)
        .map_err(|e| Error::Connect(format!("cannot read kubeconfig {}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Connect(format!("kubeconfig {}: {e}", path.display())))?;
    Client::try_from(config).map_err(|e| Error::Connect(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::client;

    #[tokio::test]
    async fn an_unreadable_kubeconfig_is_named_in_the_error() {
        let missing = std::path::Path::new("/nonexistent/stadion/kubeconfig");
        let Err(error) = client(Some(missing)).await else { panic!("a client from a missing file") };
        let message = error.to_string();
        assert!(message.contains("/nonexistent/stadion/kubeconfig"), "{message}");
    }

    /// Also proves the TLS stack initialises: kube builds its rustls configuration (which
    /// panicked before the provider was fixed) even for a plain-HTTP server.
    #[tokio::test]
    async fn a_kubeconfig_file_gives_a_client_for_its_server_and_namespace() {
        let dir = std::env::temp_dir().join(format!("stadion-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("config");
        let kubeconfig = "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
            clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n\
            contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n    namespace: games\n\
            users:\n- name: u\n  user:\n    token: t\n";
        std::fs::write(&path, kubeconfig).expect("write kubeconfig");
        let built = client(Some(&path)).await;
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(built.expect("client from the file").default_namespace(), "games");
    }
}
