//! Only the kube-apiserver may call the allocation API.
//!
//! The aggregator authenticates users and checks their RBAC before it proxies a request, and it
//! presents a client certificate signed by the cluster's front-proxy CA when it does. That CA is
//! published in ConfigMap `kube-system/extension-apiserver-authentication` (key
//! `requestheader-client-ca-file`), readable through the built-in Role
//! `extension-apiserver-authentication-reader`. Requiring a certificate from it at the TLS
//! handshake keeps anything else inside the cluster network from allocating around RBAC.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;

use super::tls::parse_pem_bundle;
use crate::kube::{Error, Result};

/// Namespace of the authentication ConfigMap.
pub const NAMESPACE: &str = "kube-system";
/// Name of the ConfigMap the kube-apiserver publishes its request-header settings in.
pub const CONFIG_MAP: &str = "extension-apiserver-authentication";
/// Key of the front-proxy CA bundle in it.
pub const CLIENT_CA_KEY: &str = "requestheader-client-ca-file";

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

/// The front-proxy CA bundle the cluster's aggregator certificate is signed with.
pub async fn front_proxy_ca(client: &Client) -> Result<Vec<CertificateDer<'static>>> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let source = format!("ConfigMap {NAMESPACE}/{CONFIG_MAP}");
    let config_map = config_maps.get(CONFIG_MAP).await.map_err(|e| {
        Error::FrontProxyCa(format!(
            "reading {source} for the front-proxy CA the allocation API checks callers against failed ({e}); \
             grant the controller the Role kube-system/extension-apiserver-authentication-reader, or run with \
             --allocation-api-client-auth off"
        ))
    })?;
    let pem = config_map.data.as_ref().and_then(|d| d.get(CLIENT_CA_KEY)).ok_or_else(|| {
        Error::FrontProxyCa(format!(
            "{source} has no {CLIENT_CA_KEY}: the kube-apiserver runs without a front-proxy CA \
             (--requestheader-client-ca-file), so the allocation API cannot tell it from other callers; \
             run with --allocation-api-client-auth off"
        ))
    })?;
    Ok(parse_pem_bundle(pem.as_bytes(), std::path::Path::new(&format!("{source}: {CLIENT_CA_KEY}")))?)
}

#[cfg(test)]
mod tests;
