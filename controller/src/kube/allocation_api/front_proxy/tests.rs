//! Reading the request-header settings from the mock API server, and the requests they guard
//! over real TLS: only a client certificate that CA signed, with an allowed name, gets through.

use k8s_openapi::api::core::v1::ConfigMap;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;

use std::sync::Arc;

use super::{ALLOWED_NAMES_KEY, CLIENT_CA_KEY, FrontProxyAuth, RequestHeaderConfig, USERNAME_HEADERS_KEY, read};
use crate::kube::allocation_api::ApiState;
use crate::kube::allocation_api::tests::{allocator, start_verifying};
use crate::kube::allocation_api::tls::TlsSource;
use crate::kube::fixtures::{ApiServer, Expect};

const CONFIG_MAP_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";

/// A CA, and a PEM identity (certificate + key) for `common_name` that it signed.
fn ca_and_client(common_name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "front-proxy-ca");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, common_name);
    let key = KeyPair::generate().unwrap();
    let cert = client.signed_by(&key, &ca).unwrap();
    (ca, format!("{}{}", cert.pem(), key.serialize_pem()))
}

/// A PEM identity for `common_name` signed by `ca`.
fn client_of(ca: &CertifiedIssuer<'static, KeyPair>, common_name: &str) -> String {
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, common_name);
    let key = KeyPair::generate().unwrap();
    let cert = client.signed_by(&key, ca).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

fn config_map(data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": "extension-apiserver-authentication"}, "data": data})).unwrap()
}

fn settings(ca_pem: &str, allowed: &[&str]) -> ConfigMap {
    config_map(json!({
        CLIENT_CA_KEY: ca_pem,
        ALLOWED_NAMES_KEY: serde_json::to_string(allowed).unwrap(),
        USERNAME_HEADERS_KEY: "[\"X-Remote-User\"]",
    }))
}

#[tokio::test]
async fn reads_the_request_header_settings_from_the_cluster() {
    let (ca, _) = ca_and_client("front-proxy-client");
    let (client, api) = ApiServer::start();
    let script =
        api.run(vec![Expect::get(CONFIG_MAP_PATH).respond_json(&settings(&ca.pem(), &["front-proxy-client"]))]);
    let config = read(&client).await.unwrap();
    script.await.unwrap();
    assert_eq!(config.allowed_names, ["front-proxy-client"]);
    assert_eq!(config.username_headers, ["X-Remote-User"]);
}

#[tokio::test]
async fn a_missing_ca_or_no_permission_says_how_to_fix_it() {
    let (client, api) = ApiServer::start();
    let script = api.run(vec![
        Expect::get(CONFIG_MAP_PATH).respond_json(&config_map(json!({"client-ca-file": "…"}))),
        Expect::get(CONFIG_MAP_PATH).respond_status(403),
    ]);
    let missing = read(&client).await.unwrap_err().to_string();
    assert!(missing.contains(CLIENT_CA_KEY) && missing.contains("--allocation-api-client-auth off"), "{missing}");
    let forbidden = read(&client).await.unwrap_err().to_string();
    assert!(forbidden.contains("extension-apiserver-authentication-reader"), "{forbidden}");
    script.await.unwrap();
}

#[test]
fn malformed_allowed_names_are_refused_naming_the_key() {
    let (ca, _) = ca_and_client("front-proxy-client");
    let bad = config_map(json!({CLIENT_CA_KEY: ca.pem(), ALLOWED_NAMES_KEY: "front-proxy-client"}));
    let error = RequestHeaderConfig::from_config_map(&bad).unwrap_err().to_string();
    assert!(error.contains(ALLOWED_NAMES_KEY) && error.contains("JSON array"), "{error}");
}

/// Each request is checked against the settings of the moment: the aggregator's certificate
/// passes, none or another CA's is 401, a trusted one with a name not allowed is 403, and a
/// rotated CA is taken up without a restart.
#[tokio::test]
async fn only_the_aggregator_gets_through_and_a_rotated_ca_is_taken_up() {
    let (ca, aggregator) = ca_and_client("front-proxy-client");
    let (next_ca, next_aggregator) = ca_and_client("front-proxy-client");
    let (_, stranger) = ca_and_client("front-proxy-client");
    let intruder = client_of(&ca, "intruder");
    let (client, _api) = ApiServer::start();
    let (allocator, writer) = allocator(client, vec![], true);
    let tls = TlsSource::self_signed_for("stadion-allocation", "stadion-system");
    let auth = Arc::new(FrontProxyAuth::new(
        RequestHeaderConfig::from_config_map(&settings(&ca.pem(), &["front-proxy-client"])).unwrap(),
    ));
    let server = start_verifying(ApiState::new(allocator), &tls, Some(auth.clone()), writer).await;
    let url = format!("{}/apis/allocation.agones.dev/v1", server.base);
    let call = |identity: Option<&str>, user: Option<&str>| {
        let builder = reqwest::Client::builder().danger_accept_invalid_certs(true);
        let http = match identity {
            Some(pem) => builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap()),
            None => builder,
        }
        .build()
        .unwrap();
        let mut request = http.get(&url);
        if let Some(user) = user {
            request = request.header("X-Remote-User", user);
        }
        async move {
            let response = request.send().await.unwrap();
            let code = response.status().as_u16();
            (code, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(call(Some(&aggregator), Some("alice")).await.0, 200);
    for (identity, code, reason) in [
        (None, 401, "Unauthorized"),
        (Some(stranger.as_str()), 401, "Unauthorized"),
        (Some(intruder.as_str()), 403, "Forbidden"),
        (Some(next_aggregator.as_str()), 401, "Unauthorized"),
    ] {
        let (got, body) = call(identity, Some("alice")).await;
        assert_eq!(got, code, "{body}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], reason, "{body}");
    }
    // The aggregator always names the user; a request without one is not from it.
    assert_eq!(call(Some(&aggregator), None).await.0, 401);

    // Rotation: the new CA is added to the bundle, then the old one removed.
    let both = format!("{}{}", ca.pem(), next_ca.pem());
    auth.replace(RequestHeaderConfig::from_config_map(&settings(&both, &["front-proxy-client"])).unwrap());
    assert_eq!(call(Some(&next_aggregator), Some("alice")).await.0, 200);
    assert_eq!(call(Some(&aggregator), Some("alice")).await.0, 200);
    auth.replace(RequestHeaderConfig::from_config_map(&settings(&next_ca.pem(), &["front-proxy-client"])).unwrap());
    assert_eq!(call(Some(&next_aggregator), Some("alice")).await.0, 200);
    assert_eq!(call(Some(&aggregator), Some("alice")).await.0, 401);
    // No allowed names: any certificate the CA signed.
    auth.replace(RequestHeaderConfig::from_config_map(&settings(&ca.pem(), &[])).unwrap());
    assert_eq!(call(Some(&intruder), Some("alice")).await.0, 200);
}
