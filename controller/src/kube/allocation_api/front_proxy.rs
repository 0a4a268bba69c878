//! Only the kube-apiserver may call the allocation API, checked as Kubernetes' own aggregated
//! API servers check it.
//!
//! The aggregator authenticates users and checks their RBAC before it proxies a request, and it
//! presents a client certificate signed by the cluster's front-proxy CA when it does, with the
//! user in request headers. The kube-apiserver publishes how to recognise it in ConfigMap
//! `kube-system/extension-apiserver-authentication` (readable through the built-in Role
//! `extension-apiserver-authentication-reader`):
//! - `requestheader-client-ca-file`: the CA bundle the aggregator's certificate chains to;
//! - `requestheader-allowed-names`: the common names that certificate may have (any, if empty);
//! - `requestheader-username-headers`: where the authenticated user's name is.
//!
//! The TLS handshake asks for a certificate without judging it (beyond proof that the client
//! holds its key); each request is then checked here against the ConfigMap's current settings,
//! so a rotated CA is taken up from the watch without dropping the listener, and a refusal is
//! a Kubernetes `Status` (401 for no or an untrusted certificate, 403 for a trusted one whose
//! name is not allowed) rather than a bare handshake failure.

use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use tracing::{info, warn};

use super::tls::parse_pem_bundle;
use crate::allocation_api::status::ApiError;
use crate::kube::{Error, Result};

/// Namespace of the authentication ConfigMap.
pub const NAMESPACE: &str = "kube-system";
/// Name of the ConfigMap the kube-apiserver publishes its request-header settings in.
pub const CONFIG_MAP: &str = "extension-apiserver-authentication";
/// Key of the front-proxy CA bundle in it.
pub const CLIENT_CA_KEY: &str = "requestheader-client-ca-file";
/// Key of the allowed common names (a JSON array of strings).
pub const ALLOWED_NAMES_KEY: &str = "requestheader-allowed-names";
/// Key of the username header names (a JSON array of strings).
pub const USERNAME_HEADERS_KEY: &str = "requestheader-username-headers";

/// Whether callers must prove they are the kube-apiserver's aggregator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Require a client certificate signed by the cluster's front-proxy CA.
    #[default]
    FrontProxy,
    /// Accept any client (for clusters without a front-proxy CA, or local testing).
    Off,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value {
            "front-proxy" => Ok(Self::FrontProxy),
            "off" => Ok(Self::Off),
            other => Err(format!("{other:?}: expected front-proxy or off")),
        }
    }
}

/// The client certificate chain a connection presented at its handshake (leaf first), added
/// to each of its requests.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// How to recognise the aggregator: the request-header settings of one ConfigMap version.
pub struct RequestHeaderConfig {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
    username_headers: Vec<String>,
}

impl std::fmt::Debug for RequestHeaderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHeaderConfig")
            .field("allowed_names", &self.allowed_names)
            .field("username_headers", &self.username_headers)
            .finish_non_exhaustive()
    }
}

impl RequestHeaderConfig {
    /// Parses the ConfigMap's request-header keys.
    pub fn from_config_map(config_map: &ConfigMap) -> Result<Self> {
        let source = format!("ConfigMap {NAMESPACE}/{CONFIG_MAP}");
        let data = config_map.data.clone().unwrap_or_default();
        let pem = data.get(CLIENT_CA_KEY).ok_or_else(|| {
            Error::FrontProxyCa(format!(
                "{source} has no {CLIENT_CA_KEY}: the kube-apiserver runs without a front-proxy CA \
                 (--requestheader-client-ca-file), so the allocation API cannot tell it from other callers; \
                 run with --allocation-api-client-auth off"
            ))
        })?;
        let bundle = parse_pem_bundle(pem.as_bytes(), std::path::Path::new(&format!("{source}: {CLIENT_CA_KEY}")))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(bundle);
        if added == 0 {
            return Err(Error::FrontProxyCa(format!("{source}: {CLIENT_CA_KEY} holds no usable CA certificate")));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::FrontProxyCa(format!("{source}: {CLIENT_CA_KEY}: {e}")))?;
        let list = |key: &str| -> Result<Vec<String>> {
            match data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(Vec::new()),
                Some(json) => serde_json::from_str(json).map_err(|e| {
                    Error::FrontProxyCa(format!("{source}: {key} is not a JSON array of strings ({e}): {json}"))
                }),
            }
        };
        Ok(Self { verifier, allowed_names: list(ALLOWED_NAMES_KEY)?, username_headers: list(USERNAME_HEADERS_KEY)? })
    }

    /// Whether a request with these certificates and headers comes from the aggregator: the
    /// user it speaks for, or the refusal to answer.
    pub fn check(&self, peer: Option<&PeerCertificates>, headers: &HeaderMap) -> std::result::Result<String, ApiError> {
        let Some((leaf, intermediates)) = peer.and_then(|p| p.0.split_first()) else {
            return Err(ApiError::unauthorized(
                "no client certificate: only the kube-apiserver's aggregator (front-proxy certificate) may call this API",
            ));
        };
        if let Err(error) = self.verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
            return Err(ApiError::unauthorized(format!(
                "the client certificate is not signed by the front-proxy CA in {NAMESPACE}/{CONFIG_MAP} ({error})"
            )));
        }
        let name = common_name(leaf).unwrap_or_default();
        if !self.allowed_names.is_empty() && !self.allowed_names.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "client certificate common name {name:?} is not among {ALLOWED_NAMES_KEY} {:?}",
                self.allowed_names
            )));
        }
        let user = self
            .username_headers
            .iter()
            .find_map(|header| headers.get(header.as_str()).and_then(|v| v.to_str().ok()))
            .filter(|user| !user.is_empty());
        match (user, self.username_headers.is_empty()) {
            (Some(user), _) => Ok(user.to_owned()),
            (None, true) => Ok(name),
            (None, false) => Err(ApiError::unauthorized(format!(
                "the front proxy named no user (none of the headers {:?})",
                self.username_headers
            ))),
        }
    }
}

/// The current request-header settings, replaced whenever the ConfigMap changes.
#[derive(Debug)]
pub struct FrontProxyAuth {
    current: RwLock<Arc<RequestHeaderConfig>>,
}

impl FrontProxyAuth {
    /// Starts from `config`.
    pub fn new(config: RequestHeaderConfig) -> Self {
        Self { current: RwLock::new(Arc::new(config)) }
    }

    /// The settings requests are checked against now.
    pub fn current(&self) -> Arc<RequestHeaderConfig> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the settings (a rotated CA, other allowed names).
    pub fn replace(&self, config: RequestHeaderConfig) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

/// Axum middleware: answers the request only when it comes from the aggregator.
pub async fn authenticate(State(auth): State<Arc<FrontProxyAuth>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<PeerCertificates>();
    match auth.current().check(peer, request.headers()) {
        Ok(_user) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The common name of a certificate's subject, if it has one.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(name)
}

fn config_maps(client: &Client) -> Api<ConfigMap> {
    Api::namespaced(client.clone(), NAMESPACE)
}

/// Reads the request-header settings once (at start: a controller that cannot read them says
/// so instead of serving an API nobody can reach).
pub async fn read(client: &Client) -> Result<RequestHeaderConfig> {
    let config_map = config_maps(client).get(CONFIG_MAP).await.map_err(|e| {
        Error::FrontProxyCa(format!(
            "reading ConfigMap {NAMESPACE}/{CONFIG_MAP} for the front-proxy CA the allocation API checks callers \
             against failed ({e}); grant the controller the Role kube-system/extension-apiserver-authentication-reader, \
             or run with --allocation-api-client-auth off"
        ))
    })?;
    RequestHeaderConfig::from_config_map(&config_map)
}

/// Follows the ConfigMap and replaces `auth`'s settings on every change, until dropped. A
/// version that does not parse is logged and the previous settings are kept.
pub async fn watch(client: Client, auth: Arc<FrontProxyAuth>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    let mut changes = std::pin::pin!(watcher(config_maps(&client), config).default_backoff().applied_objects());
    while let Some(change) = changes.next().await {
        match change {
            Ok(config_map) => match RequestHeaderConfig::from_config_map(&config_map) {
                Ok(config) => {
                    info!(allowed_names = ?config.allowed_names, "front-proxy authentication settings loaded");
                    auth.replace(config);
                }
                Err(error) => warn!(%error, "keeping the previous front-proxy settings"),
            },
            Err(error) => warn!(%error, "watching {NAMESPACE}/{CONFIG_MAP}"),
        }
    }
}

#[cfg(test)]
mod tests;
