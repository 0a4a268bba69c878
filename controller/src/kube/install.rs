//! The whole Stadion install as one multi-document YAML: the CRDs plus `deploy/*.yaml`.
//!
//! The manifests are embedded at build time so `stadion install --print | kubectl apply -f -`
//! needs nothing but the binary. Overrides are applied on the parsed documents, not by text
//! substitution, so a namespace name that happens to appear in a comment is left alone.

use serde_json::Value;

use super::{Error, Result};

/// Namespace the controller and matchmaker run in unless overridden.
pub const DEFAULT_NAMESPACE: &str = "stadion-system";
/// The cluster's own namespace: bindings there stay there whatever `namespace` is.
const SYSTEM_NAMESPACE: &str = "kube-system";
/// Image the manifests name unless overridden.
pub const DEFAULT_IMAGE: &str = "stadion:latest";
/// Namespace the sidecar RBAC template is written for.
pub const TEMPLATE_GAMESERVER_NAMESPACE: &str = "default";
/// ServiceAccount game-server Pods run as, so their sidecar may touch their GameServer.
pub const SDK_SERVICE_ACCOUNT: &str = "stadion-sdk";

/// The embedded `deploy/` manifests, in apply order.
pub const MANIFESTS: [(&str, &str); 7] = [
    ("00-namespace.yaml", include_str!("../../../deploy/00-namespace.yaml")),
    ("10-controller-rbac.yaml", include_str!("../../../deploy/10-controller-rbac.yaml")),
    ("20-sdk-rbac.yaml", include_str!("../../../deploy/20-sdk-rbac.yaml")),
    ("30-controller.yaml", include_str!("../../../deploy/30-controller.yaml")),
    ("35-allocation-api.yaml", include_str!("../../../deploy/35-allocation-api.yaml")),
    // The matchmaker's replicas share their tickets through this Redis, so it comes first.
    ("redis/matchmaker-redis.yaml", include_str!("../../../deploy/redis/matchmaker-redis.yaml")),
    ("40-matchmaker.yaml", include_str!("../../../deploy/40-matchmaker.yaml")),
];

/// What `stadion install --print` may change.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// Image of the controller, the matchmaker and the injected sidecar.
    pub image: String,
    /// Namespace of the controller and the matchmaker.
    pub namespace: String,
    /// Namespaces that run game servers: each gets the sidecar's ServiceAccount and Role.
    pub gameserver_namespaces: Vec<String>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            gameserver_namespaces: vec![TEMPLATE_GAMESERVER_NAMESPACE.to_owned()],
        }
    }
}

/// The Secret holding the allocation API's serving certificate.
pub const ALLOCATION_TLS_SECRET: &str = "stadion-allocation-tls";
/// Pod-template annotation of the controller that changes with that certificate, so applying a
/// new install rolls the controller onto the certificate its APIService now trusts.
pub const ALLOCATION_TLS_ANNOTATION: &str = "stadion.dev/allocation-tls-fingerprint";

/// A CA and a serving certificate it signed for the allocation Service's DNS names, in PEM.
#[derive(Clone, Debug)]
pub struct AllocationTls {
    /// The CA certificate (the APIService's `caBundle`).
    pub ca: String,
    /// The serving certificate (`tls.crt`).
    pub cert: String,
    /// Its private key (`tls.key`).
    pub key: String,
}

impl AllocationTls {
    /// Makes a fresh CA and a certificate for Service `service` in `namespace` (rcgen's default
    /// validity, which does not expire in practice: rotate by rendering the install again).
    pub fn generate(service: &str, namespace: &str) -> Result<Self> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let failed = |e: rcgen::Error| Error::Render { file: "allocation TLS".into(), message: e.to_string() };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.distinguished_name.push(DnType::CommonName, format!("{service}-ca"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(failed)?).map_err(failed)?;
        let names = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            format!("{service}.{namespace}"),
            service.to_owned(),
        ];
        let mut params = CertificateParams::new(names).map_err(failed)?;
        params.distinguished_name.push(DnType::CommonName, format!("{service}.{namespace}.svc"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &ca).map_err(failed)?;
        Ok(Self { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() })
    }
}

/// Renders the install: `crds` (file name, YAML) first, then the deploy manifests with the
/// overrides of `options` applied, as one multi-document YAML stream. The allocation API's
/// certificate is made fresh for each render.
pub fn render(options: &InstallOptions, crds: &[(&str, String)]) -> Result<String> {
    let tls = AllocationTls::generate(crate::kube::allocation_api::SERVICE_NAME, &options.namespace)?;
    render_with_tls(options, crds, &tls)
}

/// [`render`] with a given allocation API certificate.
pub fn render_with_tls(options: &InstallOptions, crds: &[(&str, String)], tls: &AllocationTls) -> Result<String> {
    let mut out = String::new();
    for (file, yaml) in crds {
        for doc in parse_documents(file, yaml)? {
            push_document(&mut out, file, &doc)?;
        }
    }
    for (file, yaml) in MANIFESTS {
        for doc in parse_documents(file, yaml)? {
            if is_sdk_rbac(&doc) {
                // The sidecar template is repeated per game-server namespace.
                for namespace in &options.gameserver_namespaces {
                    let mut copy = doc.clone();
                    retarget_sdk_rbac(&mut copy, namespace);
                    push_document(&mut out, file, &copy)?;
                }
                continue;
            }
            let mut doc = doc;
            retarget(&mut doc, options);
            add_allocation_tls(&mut doc, tls);
            push_document(&mut out, file, &doc)?;
        }
    }
    Ok(out)
}

/// Splits a multi-document YAML into its non-empty documents.
pub fn parse_documents(file: &str, yaml: &str) -> Result<Vec<Value>> {
    let docs = stadion_crds::manifest::yaml_documents(yaml, file)
        .map_err(|source| Error::Manifest { file: file.to_owned(), source: Box::new(source) })?;
    Ok(docs.into_iter().filter(|value| !value.is_null()).collect())
}

fn push_document(out: &mut String, file: &str, doc: &Value) -> Result<()> {
    let yaml =
        serde_saphyr::to_string(doc).map_err(|e| Error::Render { file: file.to_owned(), message: e.to_string() })?;
    out.push_str("---\n");
    out.push_str(&yaml);
    Ok(())
}

fn is_sdk_rbac(doc: &Value) -> bool {
    doc["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some("sdk")
}

fn retarget_sdk_rbac(doc: &mut Value, namespace: &str) {
    set_str(&mut doc["metadata"], "namespace", namespace);
    if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects {
            set_str(subject, "namespace", namespace);
        }
    }
}

/// Moves a control-plane document into `options.namespace` and points its images at
/// `options.image`.
fn retarget(doc: &mut Value, options: &InstallOptions) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    if kind == "Namespace" {
        set_str(&mut doc["metadata"], "name", &options.namespace);
        return;
    }
    // kube-system holds what Stadion only reads (the front-proxy CA); it never moves.
    if doc["metadata"].get("namespace").is_some_and(|ns| ns.as_str() != Some(SYSTEM_NAMESPACE)) {
        set_str(&mut doc["metadata"], "namespace", &options.namespace);
    }
    if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects {
            if subject.get("namespace").is_some() {
                set_str(subject, "namespace", &options.namespace);
            }
        }
    }
    // The APIService is cluster-scoped but points at a Service in the control-plane namespace.
    if kind == "APIService"
        && let Some(service) = doc.get_mut("spec").and_then(|s| s.get_mut("service"))
    {
        set_str(service, "namespace", &options.namespace);
    }
    let containers = doc.get_mut("spec").and_then(|s| s.get_mut("template")).and_then(|t| t.get_mut("spec"));
    if let Some(containers) = containers.and_then(|s| s.get_mut("containers")).and_then(Value::as_array_mut) {
        for container in containers {
            // Stadion's own image moves; another (the matchmaker's Redis) stays as it is.
            if container["image"].as_str() == Some(DEFAULT_IMAGE) {
                set_str(container, "image", &options.image);
            }
            if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
                for var in env {
                    // The controller injects the sidecar from the same image.
                    if var["name"].as_str() == Some("STADION_SIDECAR_IMAGE") {
                        set_str(var, "value", &options.image);
                    }
                    // A URL naming a Service of the install (`svc.stadion-system:port`) follows it.
                    let moved = var["value"]
                        .as_str()
                        .map(|v| v.replace(&format!(".{DEFAULT_NAMESPACE}:"), &format!(".{}:", options.namespace)));
                    if let Some(moved) = moved {
                        set_str(var, "value", &moved);
                    }
                }
            }
        }
    }
}

/// The certificate into its Secret, its CA into the APIService, its fingerprint onto the
/// controller's Pods.
fn add_allocation_tls(doc: &mut Value, tls: &AllocationTls) {
    use base64::Engine;
    let encode = |pem: &str| Value::String(base64::engine::general_purpose::STANDARD.encode(pem));
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    match (kind.as_str(), name.as_str()) {
        ("Secret", ALLOCATION_TLS_SECRET) => {
            doc["data"] = serde_json::json!({
                "tls.crt": encode(&tls.cert), "tls.key": encode(&tls.key), "ca.crt": encode(&tls.ca),
            });
        }
        ("APIService", _) => {
            if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("caBundle".to_owned(), encode(&tls.ca));
            }
        }
        ("Deployment", "stadion-controller") => {
            let fingerprint = fingerprint(&tls.cert);
            let metadata = &mut doc["spec"]["template"]["metadata"];
            if !metadata["annotations"].is_object() {
                metadata["annotations"] = serde_json::json!({});
            }
            set_str(&mut metadata["annotations"], ALLOCATION_TLS_ANNOTATION, &fingerprint);
        }
        _ => {}
    }
}

/// A short stable digest of a PEM text (FNV-1a, 64 bits): only to tell certificates apart.
fn fingerprint(pem: &str) -> String {
    let hash = pem.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

fn set_str(map: &mut Value, key: &str, value: &str) {
    if let Some(map) = map.as_object_mut() {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Value> {
        parse_documents("out", yaml).expect("rendered install parses")
    }

    fn find<'a>(docs: &'a [Value], kind: &str, name: &str, namespace: Option<&str>) -> Vec<&'a Value> {
        docs.iter()
            .filter(|d| {
                d["kind"].as_str() == Some(kind)
                    && d["metadata"]["name"].as_str() == Some(name)
                    && namespace.is_none_or(|ns| d["metadata"]["namespace"].as_str() == Some(ns))
            })
            .collect()
    }

    #[test]
    fn default_install_has_every_kind() {
        let out = render(&InstallOptions::default(), &[]).unwrap();
        let docs = docs(&out);
        for (kind, name) in [
            ("Namespace", "stadion-system"),
            ("ServiceAccount", "stadion-controller"),
            ("ClusterRole", "stadion-controller"),
            ("ClusterRoleBinding", "stadion-controller"),
            ("Role", "stadion-controller-leader-election"),
            ("RoleBinding", "stadion-controller-leader-election"),
            ("ServiceAccount", "stadion-sdk"),
            ("Role", "stadion-sdk"),
            ("RoleBinding", "stadion-sdk"),
            ("Deployment", "stadion-controller"),
            ("Deployment", "stadion-matchmaker"),
            ("Service", "stadion-matchmaker"),
            ("ConfigMap", "stadion-matchmaker-config"),
            ("Service", "stadion-allocation"),
            ("Secret", "stadion-allocation-tls"),
            ("APIService", "v1.allocation.agones.dev"),
            ("ClusterRole", "stadion-allocator"),
            ("RoleBinding", "stadion-controller-auth-reader"),
        ] {
            assert_eq!(find(&docs, kind, name, None).len(), 1, "{kind} {name}");
        }
        for doc in &docs {
            assert!(doc["apiVersion"].as_str().is_some(), "every document has an apiVersion: {doc:?}");
        }
    }

    #[test]
    fn crds_come_first() {
        let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gameservers.agones.dev\n";
        let out = render(&InstallOptions::default(), &[("gameserver.yaml", crd.into())]).unwrap();
        let docs = docs(&out);
        assert_eq!(docs[0]["kind"].as_str(), Some("CustomResourceDefinition"));
        assert_eq!(docs[1]["kind"].as_str(), Some("Namespace"));
    }

    #[test]
    fn real_crds_are_part_of_the_install() {
        let crds = stadion_crds::crd::render_all().unwrap();
        let docs = docs(&render(&InstallOptions::default(), &crds).unwrap());
        for name in [
            "gameservers.agones.dev",
            "gameserversets.agones.dev",
            "fleets.agones.dev",
            "fleetautoscalers.autoscaling.agones.dev",
        ] {
            assert_eq!(find(&docs, "CustomResourceDefinition", name, None).len(), 1, "{name}");
        }
    }

    #[test]
    fn the_install_brings_the_redis_its_matchmaker_replicas_share_wherever_it_moves() {
        let options = InstallOptions { namespace: "games-system".into(), ..InstallOptions::default() };
        let docs = docs(&render(&options, &[]).unwrap());
        let position = |kind: &str, name: &str| {
            docs.iter().position(|d| d["kind"] == kind && d["metadata"]["name"] == name).expect(name)
        };
        let redis = position("Deployment", "stadion-matchmaker-redis");
        let service = position("Service", "stadion-matchmaker-redis");
        let matchmaker = position("Deployment", "stadion-matchmaker");
        assert!(redis < matchmaker && service < matchmaker, "Redis is applied before the matchmaker");
        let redis = &docs[redis];
        assert_eq!(redis["metadata"]["namespace"].as_str(), Some("games-system"));
        let image = redis["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
        assert!(image.starts_with("redis:"), "Redis keeps its own image, not Stadion's: {image}");
        let matchmaker = &docs[matchmaker];
        assert!(matchmaker["spec"]["replicas"].as_i64() > Some(1), "several matchmaker replicas");
        let env = matchmaker["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
        let url = env.iter().find(|v| v["name"] == "STADION_MATCHMAKER_REDIS_URL").expect("the Redis URL");
        assert_eq!(url["value"].as_str(), Some("redis://stadion-matchmaker-redis.games-system:6379/0"));
    }

    #[test]
    fn overrides_move_namespace_and_image() {
        let options = InstallOptions {
            image: "registry.example/stadion:1.2".into(),
            namespace: "games-system".into(),
            gameserver_namespaces: vec!["default".into(), "games".into()],
        };
        let docs = docs(&render(&options, &[]).unwrap());
        assert_eq!(find(&docs, "Namespace", "games-system", None).len(), 1);
        assert!(find(&docs, "Namespace", "stadion-system", None).is_empty());
        let controller = find(&docs, "Deployment", "stadion-controller", Some("games-system"));
        let container = &controller[0]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"].as_str(), Some("registry.example/stadion:1.2"));
        let sidecar = container["env"].as_array().unwrap().iter().find(|v| v["name"] == "STADION_SIDECAR_IMAGE");
        assert_eq!(sidecar.unwrap()["value"].as_str(), Some("registry.example/stadion:1.2"));
        let binding = &find(&docs, "ClusterRoleBinding", "stadion-controller", None)[0];
        assert_eq!(binding["subjects"][0]["namespace"].as_str(), Some("games-system"));
        let api_service = &find(&docs, "APIService", "v1.allocation.agones.dev", None)[0];
        assert_eq!(api_service["spec"]["service"]["namespace"].as_str(), Some("games-system"));
        // The front-proxy CA reader stays in kube-system, for the moved ServiceAccount.
        let reader = &find(&docs, "RoleBinding", "stadion-controller-auth-reader", Some("kube-system"))[0];
        assert_eq!(reader["subjects"][0]["namespace"].as_str(), Some("games-system"));
        // One sidecar Role per game-server namespace, bound to that namespace's account.
        for ns in ["default", "games"] {
            assert_eq!(find(&docs, "Role", SDK_SERVICE_ACCOUNT, Some(ns)).len(), 1, "{ns}");
            let rb = &find(&docs, "RoleBinding", SDK_SERVICE_ACCOUNT, Some(ns))[0];
            assert_eq!(rb["subjects"][0]["namespace"].as_str(), Some(ns));
        }
        let text = serde_saphyr::to_string(&docs).unwrap();
        assert!(!text.contains("stadion-system"), "no document left in the old namespace");
        assert!(find(&docs, "RoleBinding", "stadion-controller-auth-reader", Some("games-system")).is_empty());
    }

    /// The sidecar runs in every game-server Pod: it may only read, watch and update
    /// GameServers and create Events, nothing else, and only in its own namespace.
    #[test]
    fn sidecar_rbac_is_least_privilege() {
        let docs = docs(&render(&InstallOptions::default(), &[]).unwrap());
        let sdk_docs: Vec<_> = docs.iter().filter(|d| is_sdk_rbac(d)).collect();
        assert!(sdk_docs.iter().all(|d| d["kind"] != "ClusterRole" && d["kind"] != "ClusterRoleBinding"));
        let role = &find(&docs, "Role", SDK_SERVICE_ACCOUNT, Some("default"))[0];
        let mut granted: Vec<(String, String, String)> = Vec::new();
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        granted.push((
                            group.as_str().unwrap().into(),
                            resource.as_str().unwrap().into(),
                            verb.as_str().unwrap().into(),
                        ));
                    }
                }
            }
        }
        granted.sort();
        let expected: Vec<(String, String, String)> = [
            ("agones.dev", "gameservers", "get"),
            ("agones.dev", "gameservers", "update"),
            ("agones.dev", "gameservers", "watch"),
            ("events.k8s.io", "events", "create"),
        ]
        .iter()
        .map(|(g, r, v)| ((*g).into(), (*r).into(), (*v).into()))
        .collect();
        assert_eq!(granted, expected);
        let binding = &find(&docs, "RoleBinding", SDK_SERVICE_ACCOUNT, Some("default"))[0];
        assert_eq!(binding["roleRef"]["kind"].as_str(), Some("Role"));
        assert_eq!(binding["subjects"][0]["name"].as_str(), Some(SDK_SERVICE_ACCOUNT));
    }

    /// Where the OwnerReferencesPermissionEnforcement admission plugin runs, setting
    /// blockOwnerDeletion on an owner reference needs update on the owner's finalizers.
    #[test]
    fn controller_may_block_owner_deletion() {
        let docs = docs(&render(&InstallOptions::default(), &[]).unwrap());
        let cluster_role = &find(&docs, "ClusterRole", "stadion-controller", None)[0];
        let rules = cluster_role["rules"].as_array().unwrap();
        for owner in ["gameservers", "gameserversets", "fleets"] {
            let finalizers = format!("{owner}/finalizers");
            let granted = rules.iter().any(|rule| {
                rule["apiGroups"].as_array().unwrap().iter().any(|g| g.as_str() == Some("agones.dev"))
                    && rule["resources"].as_array().unwrap().iter().any(|r| r.as_str() == Some(&finalizers))
                    && rule["verbs"].as_array().unwrap().iter().any(|v| v.as_str() == Some("update"))
            });
            assert!(granted, "no update on {finalizers}");
        }
    }

    /// `kubectl create` of a GameServerAllocation reaches the controller: the APIService names
    /// the Service, the Service selects the controller Pods' `allocation` port, and the
    /// controller listens there.
    #[test]
    fn allocation_api_is_registered_and_reachable() {
        use crate::kube::allocation_api::{GROUP, SERVICE_NAME, VERSION};
        let crds = stadion_crds::crd::render_all().unwrap();
        let docs = docs(&render(&InstallOptions::default(), &crds).unwrap());
        let api_service = &find(&docs, "APIService", &format!("{VERSION}.{GROUP}"), None)[0];
        assert_eq!(api_service["apiVersion"].as_str(), Some("apiregistration.k8s.io/v1"));
        let spec = &api_service["spec"];
        assert_eq!(spec["group"].as_str(), Some(GROUP));
        assert_eq!(spec["version"].as_str(), Some(VERSION));
        assert!(spec.get("insecureSkipTLSVerify").is_none(), "the aggregator verifies the certificate");
        assert_eq!(spec["groupPriorityMinimum"].as_u64(), Some(1000));
        assert_eq!(spec["versionPriority"].as_u64(), Some(15));
        assert_eq!(spec["service"]["name"].as_str(), Some(SERVICE_NAME));
        assert_eq!(spec["service"]["namespace"].as_str(), Some(DEFAULT_NAMESPACE));
        // A CRD for the same resource would fight the APIService for it.
        assert!(find(&docs, "CustomResourceDefinition", &format!("gameserverallocations.{GROUP}"), None).is_empty());

        let service = &find(&docs, "Service", SERVICE_NAME, Some(DEFAULT_NAMESPACE))[0];
        let port = &service["spec"]["ports"][0];
        assert_eq!(port["port"].as_u64(), spec["service"]["port"].as_u64());
        assert_eq!(port["targetPort"].as_str(), Some("allocation"));
        let controller = &find(&docs, "Deployment", "stadion-controller", Some(DEFAULT_NAMESPACE))[0];
        let pod_labels = controller["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
        for (key, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(pod_labels.get(key), Some(value), "the Service selects the controller Pods");
        }
        let container = &controller["spec"]["template"]["spec"]["containers"][0];
        let ports = container["ports"].as_array().unwrap();
        let allocation = ports.iter().find(|p| p["name"] == "allocation").expect("an allocation port");
        assert_eq!(allocation["containerPort"].as_u64(), Some(8443));
        let env = container["env"].as_array().unwrap();
        let addr = env.iter().find(|v| v["name"] == "STADION_ALLOCATION_API_ADDR").expect("address set");
        assert_eq!(addr["value"].as_str(), Some("0.0.0.0:8443"));
        // The controller may read the front-proxy CA it checks the aggregator against.
        let reader = &find(&docs, "RoleBinding", "stadion-controller-auth-reader", Some("kube-system"))[0];
        assert_eq!(reader["roleRef"]["name"].as_str(), Some("extension-apiserver-authentication-reader"));
        assert_eq!(reader["subjects"][0]["name"].as_str(), Some("stadion-controller"));
    }

    /// The APIService's caBundle trusts the certificate in the Secret the controller mounts, and
    /// that certificate names the Service the aggregator dials.
    #[test]
    fn allocation_certificate_is_trusted_by_the_api_service() {
        use base64::Engine;
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let options = InstallOptions { namespace: "games-system".into(), ..InstallOptions::default() };
        let docs = docs(&render(&options, &[]).unwrap());
        let decode = |v: &Value| base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64")).unwrap();
        let api_service = &find(&docs, "APIService", "v1.allocation.agones.dev", None)[0];
        let ca_pem = decode(&api_service["spec"]["caBundle"]);
        let secret = &find(&docs, "Secret", ALLOCATION_TLS_SECRET, Some("games-system"))[0];
        assert_eq!(secret["type"].as_str(), Some("kubernetes.io/tls"));
        assert_eq!(decode(&secret["data"]["ca.crt"]), ca_pem);
        let cert_pem = decode(&secret["data"]["tls.crt"]);
        // The key is the certificate's: rustls accepts the pair.
        let dir = std::env::temp_dir().join(format!("stadion-install-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), &cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), decode(&secret["data"]["tls.key"])).unwrap();
        let source =
            crate::kube::allocation_api::tls::TlsSource::Files { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
        source.server_config(true).expect("the Secret's certificate and key match");
        std::fs::remove_dir_all(&dir).unwrap();
        // The CA verifies the certificate for the name the aggregator checks.
        let ca = crate::kube::allocation_api::tls::parse_pem_bundle(&ca_pem, std::path::Path::new("ca")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf: Vec<CertificateDer<'static>> =
            crate::kube::allocation_api::tls::parse_pem_bundle(&cert_pem, std::path::Path::new("tls.crt")).unwrap();
        let name = ServerName::try_from("stadion-allocation.games-system.svc").unwrap();
        verifier.verify_server_cert(&leaf[0], &[], &name, &[], UnixTime::now()).expect("trusted for the Service name");
        let elsewhere = ServerName::try_from("stadion-allocation.stadion-system.svc").unwrap();
        assert!(verifier.verify_server_cert(&leaf[0], &[], &elsewhere, &[], UnixTime::now()).is_err());
        // The controller mounts that Secret and serves its files, and rolls when it changes.
        let controller = &find(&docs, "Deployment", "stadion-controller", Some("games-system"))[0];
        let pod = &controller["spec"]["template"];
        assert_eq!(pod["spec"]["volumes"][0]["secret"]["secretName"].as_str(), Some(ALLOCATION_TLS_SECRET));
        let container = &pod["spec"]["containers"][0];
        let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
        let env = container["env"].as_array().unwrap();
        let cert_env = env.iter().find(|v| v["name"] == "STADION_TLS_CERT").unwrap();
        assert_eq!(cert_env["value"].as_str(), Some(format!("{mount}/tls.crt").as_str()));
        let key_env = env.iter().find(|v| v["name"] == "STADION_TLS_KEY").unwrap();
        assert_eq!(key_env["value"].as_str(), Some(format!("{mount}/tls.key").as_str()));
        assert_eq!(
            pod["metadata"]["annotations"][ALLOCATION_TLS_ANNOTATION].as_str(),
            Some(fingerprint(std::str::from_utf8(&cert_pem).unwrap()).as_str())
        );
    }

    /// What users bind to allocate: create on gameserverallocations, nothing else.
    #[test]
    fn allocator_role_grants_only_create() {
        let docs = docs(&render(&InstallOptions::default(), &[]).unwrap());
        let role = &find(&docs, "ClusterRole", "stadion-allocator", None)[0];
        let rules = role["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["apiGroups"][0].as_str(), Some("allocation.agones.dev"));
        assert_eq!(rules[0]["resources"].as_array().unwrap().len(), 1);
        assert_eq!(rules[0]["resources"][0].as_str(), Some("gameserverallocations"));
        assert_eq!(rules[0]["verbs"].as_array().unwrap().len(), 1);
        assert_eq!(rules[0]["verbs"][0].as_str(), Some("create"));
    }

    /// Leases are the one thing the controller writes only in its own namespace.
    #[test]
    fn controller_leases_are_namespaced() {
        let docs = docs(&render(&InstallOptions::default(), &[]).unwrap());
        let cluster_role = &find(&docs, "ClusterRole", "stadion-controller", None)[0];
        let text = serde_saphyr::to_string(cluster_role).unwrap();
        assert!(!text.contains("leases"));
        let role = &find(&docs, "Role", "stadion-controller-leader-election", Some("stadion-system"))[0];
        assert_eq!(role["rules"][0]["resources"][0].as_str(), Some("leases"));
    }
}
