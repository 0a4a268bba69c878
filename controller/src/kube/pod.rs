//! The Pod a GameServer runs in: its template plus everything Agones adds — labels, the owner
//! reference, host ports, Packed affinity, the SDK env vars, the health liveness probe and the
//! SDK sidecar. Pure: [`build_pod`] takes the GameServer and returns the Pod to create.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, Pod, PodAffinity,
    PodAffinityTerm, PodSpec, Probe, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use stadion_crds::GameServer;
use stadion_crds::common::SchedulingStrategy;
use stadion_crds::gameserver::{PortPolicy, Protocol, SdkServerLogLevel};
use stadion_crds::labels;

use super::{Error, Result};
use stadion_core::env::{NetworkMode, game_process_env, merge_reserved};
use stadion_core::gameserver::pod_labels;

/// Name of the injected SDK sidecar container.
pub const SIDECAR_CONTAINER: &str = "stadion-sdk";
/// Port of the sidecar's health server (`/healthz` for itself, `/gshealthz` for the game). It
/// listens on all interfaces because the kubelet probes the Pod IP, unlike the SDK ports.
pub const SIDECAR_HEALTH_PORT: i32 = 8080;
/// Path of the sidecar's own liveness endpoint.
pub const SIDECAR_HEALTHZ_PATH: &str = "/healthz";
/// Path that fails once the GameServer is Unhealthy: the game container's liveness probe.
pub const GAMESERVER_HEALTHZ_PATH: &str = "/gshealthz";
/// Env var naming the sidecar's GameServer.
pub const ENV_GAMESERVER_NAME: &str = "GAMESERVER_NAME";
/// Env var naming the sidecar's namespace.
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Env var giving the sidecar its health server address.
pub const ENV_SIDECAR_HEALTH_ADDR: &str = "STADION_SDK_HEALTH_ADDR";
/// Node label Packed affinity groups by.
pub const HOSTNAME_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// What the controller adds to every game-server Pod.
#[derive(Clone, Debug)]
pub struct PodConfig {
    /// Image of the SDK sidecar.
    pub sidecar_image: String,
    /// ServiceAccount a Pod runs as when its template names none (allowed to update its
    /// GameServer).
    pub service_account: String,
}

/// Builds the Pod for `gs` (which must have its host ports allocated and a uid for the owner
/// reference).
pub fn build_pod(gs: &GameServer, config: &PodConfig) -> Result<Pod> {
    let name = gs.metadata.name.clone().ok_or_else(|| Error::MissingField("GameServer has no name".into()))?;
    let owner = gs
        .controller_owner_ref(&())
        .ok_or_else(|| Error::MissingField(format!("GameServer {name} has no uid yet, so it cannot own a Pod")))?;
    let template = &gs.spec.template;
    let mut spec: PodSpec = template.spec.clone().unwrap_or_default();
    let game_container = gs.game_container_name().map(str::to_owned);

    let env = game_process_env(gs, NetworkMode::Container);
    let health = gs.health();
    for container in &mut spec.containers {
        if game_container.as_deref() == Some(container.name.as_str()) {
            add_env(container, &env);
            if !health.disabled && container.liveness_probe.is_none() {
                container.liveness_probe = Some(Probe {
                    http_get: Some(http_get(GAMESERVER_HEALTHZ_PATH)),
                    initial_delay_seconds: Some(health.initial_delay_seconds()),
                    period_seconds: Some(health.period_seconds()),
                    failure_threshold: Some(health.failure_threshold()),
                    ..Probe::default()
                });
            }
        }
        add_ports(gs, container, game_container.as_deref());
    }
    spec.containers.push(sidecar(gs, &name, config));
    if spec.service_account_name.is_none() {
        spec.service_account_name = Some(config.service_account.clone());
    }
    if gs.spec.scheduling.unwrap_or_default() == SchedulingStrategy::Packed {
        add_packed_affinity(&mut spec);
    }

    let mut pod_labels_map = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    pod_labels_map.extend(pod_labels(gs));
    let mut annotations = template.metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default();
    if let Some(container) = &game_container {
        annotations.insert(labels::CONTAINER.to_owned(), container.clone());
    }
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(gs.namespace().to_owned()),
            labels: Some(pod_labels_map),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

fn add_env(container: &mut Container, vars: &[(String, String)]) {
    let make =
        |name: &str, value: &str| EnvVar { name: name.to_owned(), value: Some(value.to_owned()), value_from: None };
    merge_reserved(container.env.get_or_insert_with(Vec::new), vars, |e| e.name.as_str(), make);
}

/// Declares each GameServer port on its container, with its host port (TCPUDP: one TCP and one
/// UDP entry on the same numbers).
fn add_ports(gs: &GameServer, container: &mut Container, game_container: Option<&str>) {
    for port in &gs.spec.ports {
        let target = port.container.as_deref().or(game_container);
        if target != Some(container.name.as_str()) {
            continue;
        }
        let Some(container_port) = port.container_port.or(port.host_port) else { continue };
        let host_port = match port.policy() {
            PortPolicy::None => None,
            PortPolicy::Dynamic | PortPolicy::Static | PortPolicy::Passthrough => port.host_port,
        };
        let protocols: &[&str] = match port.protocol() {
            Protocol::Udp => &["UDP"],
            Protocol::Tcp => &["TCP"],
            Protocol::TcpUdp => &["TCP", "UDP"],
        };
        let ports = container.ports.get_or_insert_with(Vec::new);
        for protocol in protocols {
            ports.push(ContainerPort {
                container_port,
                host_port,
                protocol: Some((*protocol).to_owned()),
                ..ContainerPort::default()
            });
        }
    }
}

fn http_get(path: &str) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.to_owned()),
        port: IntOrString::Int(SIDECAR_HEALTH_PORT),
        ..HTTPGetAction::default()
    }
}

fn sidecar(gs: &GameServer, name: &str, config: &PodConfig) -> Container {
    let sdk = gs.spec.sdk_server.clone().unwrap_or_default();
    let log = match sdk.log_level.unwrap_or_default() {
        SdkServerLogLevel::Error => "error",
        SdkServerLogLevel::Info => "info",
        SdkServerLogLevel::Debug => "debug",
        SdkServerLogLevel::Trace => "trace",
    };
    let value = |name: &str, value: String| EnvVar { name: name.to_owned(), value: Some(value), value_from: None };
    Container {
        name: SIDECAR_CONTAINER.to_owned(),
        image: Some(config.sidecar_image.clone()),
        // As Agones (without --always-pull-sidecar): a `:latest` sidecar loaded into the nodes
        // (kind load, a pre-pulled mirror) is used, not pulled again for every game server.
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(vec!["sdk-server".to_owned()]),
        env: Some(vec![
            value(ENV_GAMESERVER_NAME, name.to_owned()),
            EnvVar {
                name: ENV_POD_NAMESPACE.to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.namespace".to_owned(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                }),
            },
            value(stadion_core::env::AGONES_SDK_GRPC_PORT, sdk.grpc_port().to_string()),
            value(stadion_core::env::AGONES_SDK_HTTP_PORT, sdk.http_port().to_string()),
            value(ENV_SIDECAR_HEALTH_ADDR, format!("0.0.0.0:{SIDECAR_HEALTH_PORT}")),
            value("RUST_LOG", log.to_owned()),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("sdk-health".to_owned()),
            container_port: SIDECAR_HEALTH_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(Probe {
            http_get: Some(http_get(SIDECAR_HEALTHZ_PATH)),
            initial_delay_seconds: Some(3),
            period_seconds: Some(3),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        ..Container::default()
    }
}

/// Packed: prefer nodes that already run game servers, so empty nodes can be scaled away.
fn add_packed_affinity(spec: &mut PodSpec) {
    let term = WeightedPodAffinityTerm {
        weight: 100,
        pod_affinity_term: PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(labels::ROLE.to_owned(), labels::ROLE_GAMESERVER.to_owned())])),
                match_expressions: None,
            }),
            topology_key: HOSTNAME_TOPOLOGY_KEY.to_owned(),
            ..PodAffinityTerm::default()
        },
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let pod_affinity = affinity.pod_affinity.get_or_insert_with(PodAffinity::default);
    pod_affinity.preferred_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(term);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fixtures::gameserver;

    #[test]
    fn tcpudp_declares_both_protocols_and_none_has_no_host_port() {
        let mut gs = gameserver("gs-1");
        gs.spec.ports[0].protocol = Some(Protocol::TcpUdp);
        gs.spec.ports.push(stadion_crds::gameserver::GameServerPort {
            name: "metrics".into(),
            port_policy: Some(PortPolicy::None),
            container_port: Some(9100),
            container: Some("game".into()),
            ..Default::default()
        });
        let pod = build_pod(&gs, &crate::kube::fixtures::pod_config()).unwrap();
        let ports = pod.spec.unwrap().containers[0].ports.clone().unwrap();
        let summary: Vec<_> =
            ports.iter().map(|p| (p.container_port, p.host_port, p.protocol.clone().unwrap())).collect();
        assert_eq!(
            summary,
            vec![(7654, Some(7000), "TCP".into()), (7654, Some(7000), "UDP".into()), (9100, None, "UDP".into())]
        );
    }

    #[test]
    fn distributed_has_no_affinity_and_disabled_health_no_probe() {
        let mut gs = gameserver("gs-1");
        gs.spec.scheduling = Some(SchedulingStrategy::Distributed);
        gs.spec.health = Some(stadion_crds::gameserver::Health { disabled: true, ..Default::default() });
        let pod = build_pod(&gs, &crate::kube::fixtures::pod_config()).unwrap();
        let spec = pod.spec.unwrap();
        assert!(spec.affinity.is_none());
        assert!(spec.containers[0].liveness_probe.is_none());
    }

    #[test]
    fn the_sdk_variables_are_reserved_and_other_template_env_kept() {
        let mut gs = gameserver("gs-1");
        let container = &mut gs.spec.template.spec.as_mut().expect("template").containers[0];
        container.env = Some(vec![
            EnvVar { name: "AGONES_SDK_GRPC_PORT".into(), value: Some("1".into()), value_from: None },
            EnvVar { name: "MODE".into(), value: Some("ctf".into()), value_from: None },
        ]);
        let pod = build_pod(&gs, &crate::kube::fixtures::pod_config()).unwrap();
        let env = pod.spec.unwrap().containers[0].env.clone().unwrap();
        let values = |name: &str| -> Vec<String> {
            env.iter().filter(|e| e.name == name).filter_map(|e| e.value.clone()).collect()
        };
        // The same rule as the local runtime (stadion_core::env::merge_reserved).
        assert_eq!(values("AGONES_SDK_GRPC_PORT"), ["9357"]);
        assert_eq!(values("MODE"), ["ctf"]);
    }

    #[test]
    fn needs_a_uid() {
        let mut gs = gameserver("gs-1");
        gs.metadata.uid = None;
        assert_eq!(build_pod(&gs, &crate::kube::fixtures::pod_config()).unwrap_err().kind(), "missing_field");
    }
}
