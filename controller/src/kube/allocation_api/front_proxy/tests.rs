//! Reading the front-proxy CA from the mock API server, and the handshake it guards over real
//! TLS: only a client certificate that CA signed gets through.

use k8s_openapi::api::core::v1::ConfigMap;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;

use super::{CLIENT_CA_KEY, front_proxy_ca};
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

fn config_map(data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": "extension-apiserver-authentication"}, "data": data})).unwrap()
}

#[tokio::test]
async fn reads_the_ca_bundle_from_the_cluster() {
    let (ca, _) = ca_and_client("front-proxy-client");
    let (client, api) = ApiServer::start();
    let script =
        api.run(vec![Expect::get(CONFIG_MAP_PATH).respond_json(&config_map(json!({CLIENT_CA_KEY: ca.pem()})))]);
    let bundle = front_proxy_ca(&client).await.unwrap();
    script.await.unwrap();
    assert_eq!(bundle.len(), 1);
    assert_eq!(bundle[0].as_ref(), ca.der().as_ref());
}

#[tokio::test]
async fn a_missing_ca_or_no_permission_says_how_to_fix_it() {
    let (client, api) = ApiServer::start();
    let script = api.run(vec![
        Expect::get(CONFIG_MAP_PATH).respond_json(&config_map(json!({"client-ca-file": "…"}))),
        Expect::get(CONFIG_MAP_PATH).respond_status(403),
    ]);
    let missing = front_proxy_ca(&client).await.unwrap_err().to_string();
    assert!(missing.contains(CLIENT_CA_KEY) && missing.contains("--allocation-api-client-auth off"), "{missing}");
    let forbidden = front_proxy_ca(&client).await.unwrap_err().to_string();
    assert!(forbidden.contains("extension-apiserver-authentication-reader"), "{forbidden}");
    script.await.unwrap();
}

#[tokio::test]
async fn only_clients_the_front_proxy_ca_signed_get_through() {
    let (ca, aggregator) = ca_and_client("front-proxy-client");
    let (_, stranger) = ca_and_client("front-proxy-client");
    let (client, _api) = ApiServer::start();
    let (allocator, writer) = allocator(client, vec![], true);
    let tls = TlsSource::self_signed_for("stadion-allocation", "stadion-system");
    let server = start_verifying(ApiState::new(allocator), &tls, Some(&[ca.der().clone()]), writer).await;
    let url = format!("{}/apis/allocation.agones.dev/v1", server.base);
    let with = |identity: Option<&str>| {
        let builder = reqwest::Client::builder().danger_accept_invalid_certs(true);
        match identity {
            Some(pem) => builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap()),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let ok = with(Some(&aggregator)).get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(with(None).get(&url).send().await.is_err(), "no certificate: refused at the handshake");
    assert!(with(Some(&stranger)).get(&url).send().await.is_err(), "another CA's certificate: refused");
}
