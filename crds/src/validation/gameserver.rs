//! GameServer rules: metadata, pod template and game container, ports by policy, health, SDK
//! server, counters and lists. GameServerSet and Fleet templates reuse the spec rules.

use std::collections::{BTreeMap, BTreeSet};

use super::{FieldErrors, LABELLED_NAME_MAX, check_metadata, check_port_number};
use crate::allocation_ttl;
use crate::common::{CounterStatus, ListStatus, MAX_LIST_CAPACITY};
use crate::gameserver::{GameServer, GameServerPort, GameServerSpec, GameServerState, PortPolicy, Protocol};

impl GameServer {
    /// Every problem with this GameServer, each with its field path. The name (or `generateName`)
    /// is also a label value on its pod, so it is limited to 63 characters. Once the controller
    /// has allocated host ports (state past PortAllocation), Dynamic and Passthrough ports carry
    /// the ports it chose, so the "must not be set" rules for them no longer apply. A
    /// `stadion.dev/allocation-ttl` annotation must parse.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        check_metadata("metadata", &self.metadata, true, LABELLED_NAME_MAX, &mut errors);
        allocation_ttl::check_annotation("metadata.annotations", self.metadata.annotations.as_ref(), &mut errors);
        let ports_allocated = self.state().is_some_and(|s| s != GameServerState::PortAllocation);
        check_spec("spec", &self.spec, ports_allocated, &mut errors);
        errors
    }
}

impl GameServerSpec {
    /// Every problem with this spec as a template (no ports allocated yet), with paths under
    /// `path`, e.g. `spec.template.spec`.
    pub fn validate_at(&self, path: &str) -> FieldErrors {
        let mut errors = FieldErrors::default();
        check_spec(path, self, false, &mut errors);
        errors
    }
}

/// Treats 0 as unset, as Agones does for port numbers.
fn set(port: Option<i32>) -> Option<i32> {
    port.filter(|p| *p != 0)
}

pub(crate) fn check_spec(path: &str, spec: &GameServerSpec, ports_allocated: bool, errors: &mut FieldErrors) {
    let containers = check_containers(path, spec, errors);
    check_ports(path, spec, &containers, ports_allocated, errors);

    if let Some(health) = &spec.health
        && !health.disabled
    {
        for (field, value) in [("periodSeconds", health.period_seconds), ("failureThreshold", health.failure_threshold)]
        {
            if let Some(v) = value
                && v <= 0
            {
                errors.push(format!("{path}.health.{field}"), format!("{v} must be greater than 0"));
            }
        }
        // 0 is meaningful here: start checking at once.
        if let Some(v) = health.initial_delay_seconds
            && v < 0
        {
            errors.push(format!("{path}.health.initialDelaySeconds"), format!("{v} must not be negative"));
        }
    }

    if let Some(sdk) = &spec.sdk_server {
        if let Some(port) = sdk.grpc_port {
            check_port_number(&format!("{path}.sdkServer.grpcPort"), port, errors);
        }
        if let Some(port) = sdk.http_port {
            check_port_number(&format!("{path}.sdkServer.httpPort"), port, errors);
        }
        if sdk.grpc_port() == sdk.http_port() {
            errors.push(format!("{path}.sdkServer.httpPort"), format!("must differ from grpcPort {}", sdk.grpc_port()));
        }
    }

    if let Some(players) = &spec.players
        && players.initial_capacity < 0
    {
        errors.push(format!("{path}.players.initialCapacity"), "must not be negative");
    }
    check_counters(&format!("{path}.counters"), &spec.counters, errors);
    check_lists(&format!("{path}.lists"), &spec.lists, errors);
}

/// Checks the pod template's containers and `spec.container`; returns the container names.
fn check_containers(path: &str, spec: &GameServerSpec, errors: &mut FieldErrors) -> Vec<String> {
    let containers = spec.template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if containers.is_empty() {
        errors.push(format!("{path}.template.spec.containers"), "must have at least one container");
    }
    let mut names = Vec::with_capacity(containers.len());
    for (i, container) in containers.iter().enumerate() {
        if container.name.is_empty() {
            errors.push(format!("{path}.template.spec.containers[{i}].name"), "required");
        } else if names.contains(&container.name) {
            errors.push(
                format!("{path}.template.spec.containers[{i}].name"),
                format!("duplicate container name {:?}", container.name),
            );
        } else {
            names.push(container.name.clone());
        }
    }
    match spec.container.as_deref() {
        Some("") => errors.push(format!("{path}.container"), "must not be empty"),
        Some(name) if !names.iter().any(|n| n == name) && !containers.is_empty() => {
            errors.push(format!("{path}.container"), not_a_container(name, &names));
        }
        None if containers.len() > 1 => {
            errors.push(format!("{path}.container"), "required when the pod template has more than one container");
        }
        _ => {}
    }
    names
}

fn not_a_container(name: &str, names: &[String]) -> String {
    format!("{name:?} is not a container of the pod template (containers: {})", names.join(", "))
}

fn check_ports(
    path: &str,
    spec: &GameServerSpec,
    containers: &[String],
    ports_allocated: bool,
    errors: &mut FieldErrors,
) {
    let several = spec.ports.len() > 1;
    let mut seen = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let at = format!("{path}.ports[{i}]");
        if port.name.is_empty() {
            if several {
                errors.push(format!("{at}.name"), "required when there is more than one port");
            }
        } else if !seen.insert(port.name.as_str()) {
            errors.push(format!("{at}.name"), format!("duplicate port name {:?}", port.name));
        }
        if port.protocol() == Protocol::TcpUdp {
            // TCPUDP becomes `<name>-tcp` and `<name>-udp` in the status; those must stay unique.
            for suffix in ["tcp", "udp"] {
                let expanded = format!("{}-{suffix}", port.name);
                if spec.ports.iter().any(|other| other.name == expanded) {
                    errors.push(
                        format!("{at}.name"),
                        format!("protocol TCPUDP expands to {expanded:?}, which another port already uses"),
                    );
                }
            }
        }
        check_port_policy(&at, port, ports_allocated, errors);
        if let Some(container) = port.container.as_deref()
            && !containers.is_empty()
            && !containers.iter().any(|c| c == container)
        {
            errors.push(format!("{at}.container"), not_a_container(container, containers));
        }
        match port.range.as_deref() {
            Some("") => errors.push(format!("{at}.range"), "must not be empty"),
            Some(range)
                if range != crate::gameserver::DEFAULT_PORT_RANGE && !port.policy().needs_host_port_allocation() =>
            {
                errors.push(format!("{at}.range"), "may only be set when portPolicy is Dynamic or Passthrough");
            }
            _ => {}
        }
    }
}

fn check_port_policy(at: &str, port: &GameServerPort, ports_allocated: bool, errors: &mut FieldErrors) {
    let policy = port.policy();
    let policy_name = match policy {
        PortPolicy::Dynamic => "Dynamic",
        PortPolicy::Static => "Static",
        PortPolicy::Passthrough => "Passthrough",
        PortPolicy::None => "None",
    };
    let (container_port, host_port) = (set(port.container_port), set(port.host_port));
    let required = format!("required when portPolicy is {policy_name}");
    let forbidden = format!("must not be set when portPolicy is {policy_name}");

    let container_required = matches!(policy, PortPolicy::Dynamic | PortPolicy::Static | PortPolicy::None);
    match container_port {
        None if container_required => errors.push(format!("{at}.containerPort"), required.clone()),
        Some(_) if policy == PortPolicy::Passthrough && !ports_allocated => {
            errors.push(format!("{at}.containerPort"), forbidden.clone());
        }
        Some(p) => check_port_number(&format!("{at}.containerPort"), p, errors),
        None => {}
    }
    match host_port {
        None if policy == PortPolicy::Static => errors.push(format!("{at}.hostPort"), required),
        Some(_) if policy == PortPolicy::None => errors.push(format!("{at}.hostPort"), forbidden),
        Some(_) if policy.needs_host_port_allocation() && !ports_allocated => {
            errors.push(format!("{at}.hostPort"), forbidden);
        }
        Some(p) => check_port_number(&format!("{at}.hostPort"), p, errors),
        None => {}
    }
}

/// Counters: capacity ≥ 0 and count within [0, capacity].
pub(crate) fn check_counters(path: &str, counters: &BTreeMap<String, CounterStatus>, errors: &mut FieldErrors) {
    for (name, counter) in counters {
        let at = format!("{path}[{name}]");
        if name.is_empty() {
            errors.push(path, "counter names must not be empty");
        }
        if counter.capacity < 0 {
            errors.push(format!("{at}.capacity"), format!("{} must not be negative", counter.capacity));
        } else if !(0..=counter.capacity).contains(&counter.count) {
            errors.push(
                format!("{at}.count"),
                format!("{} must be between 0 and capacity {}", counter.count, counter.capacity),
            );
        }
    }
}

/// Lists: capacity within [0, 1000], no more values than the capacity, values unique.
pub(crate) fn check_lists(path: &str, lists: &BTreeMap<String, ListStatus>, errors: &mut FieldErrors) {
    for (name, list) in lists {
        let at = format!("{path}[{name}]");
        if name.is_empty() {
            errors.push(path, "list names must not be empty");
        }
        if !(0..=MAX_LIST_CAPACITY).contains(&list.capacity) {
            errors
                .push(format!("{at}.capacity"), format!("{} must be between 0 and {MAX_LIST_CAPACITY}", list.capacity));
        } else if i64::try_from(list.values.len()).unwrap_or(i64::MAX) > list.capacity {
            errors.push(
                format!("{at}.values"),
                format!("has {} values, more than the capacity {}", list.values.len(), list.capacity),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, value) in list.values.iter().enumerate() {
            if !seen.insert(value) {
                errors.push(format!("{at}.values[{j}]"), format!("duplicate value {value:?}"));
            }
        }
    }
}
