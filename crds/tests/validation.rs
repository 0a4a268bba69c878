//! Invalid manifests are rejected with every problem and its exact field path (table-driven:
//! a valid base manifest per kind, one change per case).

use serde_json::{Value, json};
use stadion_crds::manifest::{Resource, parse_documents};

const GAMESERVER: &str = r#"{
  "apiVersion": "agones.dev/v1", "kind": "GameServer",
  "metadata": { "name": "gs-1" },
  "spec": {
    "ports": [ { "name": "default", "containerPort": 7654 } ],
    "template": { "spec": { "containers": [ { "name": "game", "image": "example.com/game:1" } ] } }
  }
}"#;

const FLEET: &str = r#"{
  "apiVersion": "agones.dev/v1", "kind": "Fleet",
  "metadata": { "name": "arena" },
  "spec": {
    "replicas": 2,
    "template": { "spec": {
      "ports": [ { "name": "default", "containerPort": 7654 } ],
      "template": { "spec": { "containers": [ { "name": "game", "image": "example.com/game:1" } ] } }
    } }
  }
}"#;

const FLEET_AUTOSCALER: &str = r#"{
  "apiVersion": "autoscaling.agones.dev/v1", "kind": "FleetAutoscaler",
  "metadata": { "name": "arena-autoscaler" },
  "spec": {
    "fleetName": "arena",
    "policy": { "type": "Buffer", "buffer": { "bufferSize": 5, "minReplicas": 0, "maxReplicas": 10 } }
  }
}"#;

const ALLOCATION: &str = r#"{
  "apiVersion": "allocation.agones.dev/v1", "kind": "GameServerAllocation",
  "spec": { "selectors": [ { "matchLabels": { "agones.dev/fleet": "arena" } } ] }
}"#;

/// Sets (or with `null`, removes) the value at a JSON pointer, creating objects on the way.
fn set(doc: &mut Value, pointer: &str, value: &Value) {
    let mut segments: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = segments.pop().expect("non-empty pointer");
    let mut node = doc;
    for segment in segments {
        node = match node {
            Value::Array(items) => &mut items[segment.parse::<usize>().expect("array index")],
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other.as_object_mut().expect("object").entry(segment).or_insert_with(|| json!({}))
            }
        };
    }
    match (node, value) {
        (Value::Object(map), Value::Null) => {
            map.remove(last);
        }
        (Value::Object(map), v) => {
            map.insert(last.to_owned(), v.clone());
        }
        (Value::Array(items), v) => {
            let index = last.parse::<usize>().expect("array index");
            if index == items.len() {
                items.push(v.clone());
            } else {
                items[index] = v.clone();
            }
        }
        (other, _) => panic!("cannot set {pointer} in {other}"),
    }
}

/// Parses `base` with `changes` applied, applies defaults, validates; returns `path: message`s.
fn problems(base: &str, changes: &[(&str, Value)]) -> Vec<String> {
    let mut doc: Value = serde_json::from_str(base).expect("base is JSON");
    for (pointer, value) in changes {
        set(&mut doc, pointer, value);
    }
    let text = serde_json::to_string(&doc).expect("json");
    let mut resources = parse_documents(&text, "case").unwrap_or_else(|e| panic!("{e}"));
    let errors = match resources.pop().expect("one document") {
        Resource::GameServer(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::GameServerSet(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::Fleet(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::FleetAutoscaler(mut r) => {
            r.apply_defaults();
            r.validate()
        }
        Resource::GameServerAllocation(mut r) => {
            r.apply_defaults();
            r.validate()
        }
    };
    errors.iter().map(ToString::to_string).collect()
}

struct Case {
    name: &'static str,
    base: &'static str,
    changes: Vec<(&'static str, Value)>,
    /// Every expected problem: `(path, part of the message)`, in any order.
    expected: Vec<(&'static str, &'static str)>,
}

fn case(
    name: &'static str,
    base: &'static str,
    changes: Vec<(&'static str, Value)>,
    expected: Vec<(&'static str, &'static str)>,
) -> Case {
    Case { name, base, changes, expected }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let found = problems(c.base, &c.changes);
        let mut missing = Vec::new();
        for (path, message) in &c.expected {
            let hit = found.iter().any(|f| f.starts_with(&format!("{path}: ")) && f.contains(message));
            if !hit {
                missing.push(format!("{path}: …{message}…"));
            }
        }
        if !missing.is_empty() || found.len() != c.expected.len() {
            failures.push(format!("{}\n  expected {:?}\n  found    {found:?}", c.name, c.expected));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

fn game_container(name: &str) -> Value {
    json!({ "name": name, "image": "example.com/game:1" })
}

#[test]
fn gameserver_rules() {
    use json as j;
    let ports = "/spec/ports";
    run(vec![
        case("valid base", GAMESERVER, vec![], vec![]),
        case(
            "Dynamic with hostPort",
            GAMESERVER,
            vec![("/spec/ports/0/hostPort", j!(7777))],
            vec![("spec.ports[0].hostPort", "must not be set when portPolicy is Dynamic")],
        ),
        case(
            "Dynamic without containerPort",
            GAMESERVER,
            vec![("/spec/ports/0/containerPort", Value::Null)],
            vec![("spec.ports[0].containerPort", "required when portPolicy is Dynamic")],
        ),
        case(
            "Static without hostPort",
            GAMESERVER,
            vec![("/spec/ports/0/portPolicy", j!("Static"))],
            vec![("spec.ports[0].hostPort", "required when portPolicy is Static")],
        ),
        case(
            "Passthrough with ports",
            GAMESERVER,
            vec![("/spec/ports/0/portPolicy", j!("Passthrough")), ("/spec/ports/0/hostPort", j!(7001))],
            vec![
                ("spec.ports[0].containerPort", "must not be set when portPolicy is Passthrough"),
                ("spec.ports[0].hostPort", "must not be set when portPolicy is Passthrough"),
            ],
        ),
        case(
            "None with hostPort and no containerPort",
            GAMESERVER,
            vec![
                ("/spec/ports/0/portPolicy", j!("None")),
                ("/spec/ports/0/hostPort", j!(7001)),
                ("/spec/ports/0/containerPort", Value::Null),
            ],
            vec![
                ("spec.ports[0].containerPort", "required when portPolicy is None"),
                ("spec.ports[0].hostPort", "must not be set when portPolicy is None"),
            ],
        ),
        case(
            "port numbers out of range",
            GAMESERVER,
            vec![
                ("/spec/ports/0/containerPort", j!(70000)),
                ("/spec/ports/1", j!({"name": "s", "portPolicy": "Static", "containerPort": 1, "hostPort": -2})),
            ],
            vec![
                ("spec.ports[0].containerPort", "must be between 1 and 65535"),
                ("spec.ports[1].hostPort", "must be between 1 and 65535"),
            ],
        ),
        case(
            "unnamed and duplicate ports",
            GAMESERVER,
            vec![
                ("/spec/ports/1", j!({"containerPort": 1})),
                ("/spec/ports/2", j!({"name": "default", "containerPort": 2})),
            ],
            vec![
                ("spec.ports[1].name", "required when there is more than one port"),
                ("spec.ports[2].name", "duplicate port name \"default\""),
            ],
        ),
        case(
            "TCPUDP expansion collides",
            GAMESERVER,
            vec![
                ("/spec/ports/0/protocol", j!("TCPUDP")),
                ("/spec/ports/1", j!({"name": "default-udp", "containerPort": 2})),
            ],
            vec![("spec.ports[0].name", "expands to \"default-udp\"")],
        ),
        case(
            "port names an unknown container",
            GAMESERVER,
            vec![("/spec/ports/0/container", j!("sidecar"))],
            vec![("spec.ports[0].container", "\"sidecar\" is not a container of the pod template")],
        ),
        case(
            "range on a Static port",
            GAMESERVER,
            vec![(
                ports,
                j!([{"name": "s", "portPolicy": "Static", "containerPort": 1, "hostPort": 7000, "range": "low"}]),
            )],
            vec![("spec.ports[0].range", "may only be set when portPolicy is Dynamic or Passthrough")],
        ),
        case(
            "several containers and no spec.container",
            GAMESERVER,
            vec![("/spec/template/spec/containers/1", game_container("sidecar"))],
            vec![("spec.container", "required when the pod template has more than one container")],
        ),
        case(
            "spec.container names no container",
            GAMESERVER,
            vec![("/spec/container", j!("gaem"))],
            // The port inherits the wrong name through defaulting, so it is reported too.
            vec![("spec.container", "\"gaem\" is not a container"), ("spec.ports[0].container", "\"gaem\"")],
        ),
        case(
            "no containers",
            GAMESERVER,
            vec![("/spec/template/spec/containers", j!([]))],
            vec![("spec.template.spec.containers", "must have at least one container")],
        ),
        case(
            "bad health values",
            GAMESERVER,
            vec![("/spec/health", j!({"periodSeconds": 0, "failureThreshold": -1, "initialDelaySeconds": -5}))],
            vec![
                ("spec.health.periodSeconds", "must be greater than 0"),
                ("spec.health.failureThreshold", "must be greater than 0"),
                ("spec.health.initialDelaySeconds", "must not be negative"),
            ],
        ),
        case(
            "disabled health ignores its values",
            GAMESERVER,
            vec![("/spec/health", j!({"disabled": true, "periodSeconds": 0}))],
            vec![],
        ),
        case(
            "SDK server ports",
            GAMESERVER,
            vec![
                ("/spec/sdkServer", j!({"grpcPort": 9358, "httpPort": 9358})),
                ("/spec/sdkServer/logLevel", j!("Trace")),
            ],
            vec![("spec.sdkServer.httpPort", "must differ from grpcPort 9358")],
        ),
        case(
            "SDK server port out of range",
            GAMESERVER,
            vec![("/spec/sdkServer", j!({"grpcPort": 0}))],
            vec![("spec.sdkServer.grpcPort", "must be between 1 and 65535")],
        ),
        case(
            "counters and lists out of bounds",
            GAMESERVER,
            vec![
                ("/spec/counters", j!({"rooms": {"count": 11, "capacity": 10}, "bad": {"capacity": -1}})),
                (
                    "/spec/lists",
                    j!({
                        "huge": {"capacity": 1001},
                        "full": {"capacity": 1, "values": ["a", "b"]},
                        "dupes": {"capacity": 5, "values": ["a", "b", "a"]}
                    }),
                ),
            ],
            vec![
                ("spec.counters[rooms].count", "11 must be between 0 and capacity 10"),
                ("spec.counters[bad].capacity", "must not be negative"),
                ("spec.lists[huge].capacity", "must be between 0 and 1000"),
                ("spec.lists[full].values", "more than the capacity 1"),
                ("spec.lists[dupes].values[2]", "duplicate value \"a\""),
            ],
        ),
        case(
            "negative player capacity",
            GAMESERVER,
            vec![("/spec/players", j!({"initialCapacity": -1}))],
            vec![("spec.players.initialCapacity", "must not be negative")],
        ),
        case("generateName instead of name", GAMESERVER, vec![("/metadata", j!({"generateName": "gs-"}))], vec![]),
        case(
            "neither name nor generateName",
            GAMESERVER,
            vec![("/metadata/name", Value::Null)],
            vec![("metadata.name", "name or generateName is required")],
        ),
        case(
            "name not a DNS subdomain",
            GAMESERVER,
            vec![("/metadata/name", j!("Game_Server"))],
            vec![("metadata.name", "not a valid DNS-1123 subdomain")],
        ),
        case(
            "name too long for its pod label",
            GAMESERVER,
            vec![("/metadata/name", j!("g".repeat(64)))],
            vec![("metadata.name", "must be no more than 63 characters")],
        ),
        case(
            "bad labels and annotations",
            GAMESERVER,
            vec![
                ("/metadata/labels", j!({"bad key": "v", "ok": "-bad-value"})),
                ("/metadata/annotations", j!({"/x": "v"})),
            ],
            vec![
                ("metadata.labels[bad key]", "invalid label key"),
                ("metadata.labels[ok]", "invalid label value"),
                ("metadata.annotations[/x]", "invalid annotation key"),
            ],
        ),
        case(
            "allocated ports are allowed once past PortAllocation",
            GAMESERVER,
            vec![
                (
                    "/spec/ports/1",
                    j!({"name": "p", "portPolicy": "Passthrough", "containerPort": 7002, "hostPort": 7002}),
                ),
                ("/spec/ports/0/hostPort", j!(7001)),
                ("/status", j!({"state": "Ready"})),
            ],
            vec![],
        ),
        case(
            "every problem at once",
            GAMESERVER,
            vec![
                ("/metadata/name", j!("")),
                ("/spec/ports/0/hostPort", j!(7777)),
                ("/spec/ports/1", j!({"name": "s", "portPolicy": "Static", "containerPort": 1})),
                ("/spec/health", j!({"periodSeconds": 0})),
            ],
            vec![
                ("metadata.name", "required"),
                ("spec.ports[0].hostPort", "Dynamic"),
                ("spec.ports[1].hostPort", "Static"),
                ("spec.health.periodSeconds", "greater than 0"),
            ],
        ),
    ]);
}

#[test]
fn fleet_and_gameserverset_rules() {
    use json as j;
    let set = FLEET.replace("\"Fleet\"", "\"GameServerSet\"");
    let set: &'static str = Box::leak(set.into_boxed_str());
    run(vec![
        case("valid fleet", FLEET, vec![], vec![]),
        case("valid set", set, vec![], vec![]),
        case(
            "negative replicas and an empty template",
            set,
            vec![("/spec/replicas", j!(-1)), ("/spec/template/spec/template/spec/containers", j!([]))],
            vec![
                ("spec.replicas", "-1 must not be negative"),
                ("spec.template.spec.template.spec.containers", "at least one container"),
            ],
        ),
        case(
            "template errors carry the template path",
            FLEET,
            vec![("/spec/template/spec/ports/0/hostPort", j!(7001))],
            vec![("spec.template.spec.ports[0].hostPort", "must not be set when portPolicy is Dynamic")],
        ),
        case(
            "template labels are checked",
            FLEET,
            vec![("/spec/template/metadata/labels", j!({"app": "a b"}))],
            vec![("spec.template.metadata.labels[app]", "invalid label value")],
        ),
        case(
            "rollingUpdate with Recreate",
            FLEET,
            vec![("/spec/strategy", j!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}))],
            vec![("spec.strategy.rollingUpdate", "may only be set when type is RollingUpdate")],
        ),
        case(
            "rolling limits out of range",
            FLEET,
            vec![("/spec/strategy/rollingUpdate", j!({"maxSurge": "150%", "maxUnavailable": -1}))],
            vec![
                ("spec.strategy.rollingUpdate.maxSurge", "150% must be between 0% and 100%"),
                ("spec.strategy.rollingUpdate.maxUnavailable", "-1 must not be negative"),
            ],
        ),
        case(
            "rolling limit not a number",
            FLEET,
            vec![("/spec/strategy/rollingUpdate", j!({"maxSurge": "lots"}))],
            vec![("spec.strategy.rollingUpdate.maxSurge", "must be an integer or a percentage")],
        ),
        case(
            "both rolling limits zero",
            FLEET,
            vec![("/spec/strategy/rollingUpdate", j!({"maxSurge": 0, "maxUnavailable": "0%"}))],
            vec![("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0")],
        ),
        case(
            "integer rolling limits",
            FLEET,
            vec![("/spec/strategy/rollingUpdate", j!({"maxSurge": 3, "maxUnavailable": 0}))],
            vec![],
        ),
        case(
            "priorities need distinct keys",
            FLEET,
            vec![(
                "/spec/priorities",
                j!([{"type": "Counter", "key": ""}, {"type": "List", "key": "p"}, {"type": "List", "key": "p"}]),
            )],
            vec![("spec.priorities[0].key", "required"), ("spec.priorities[2].key", "duplicate priority")],
        ),
        case(
            "allocation overflow labels",
            FLEET,
            vec![("/spec/allocationOverflow", j!({"labels": {"-x": "y"}}))],
            vec![("spec.allocationOverflow.labels[-x]", "invalid label key")],
        ),
        case(
            "fleet needs a name (no generateName)",
            FLEET,
            vec![("/metadata", j!({"generateName": "arena-"}))],
            vec![("metadata.name", "required")],
        ),
    ]);
}

#[test]
fn fleetautoscaler_rules() {
    use json as j;
    let buffer = "/spec/policy/buffer";
    run(vec![
        case("valid base", FLEET_AUTOSCALER, vec![], vec![]),
        case(
            "percent buffer may scale to zero (Agones refuses; Stadion allows)",
            FLEET_AUTOSCALER,
            vec![(buffer, j!({"bufferSize": "20%", "minReplicas": 0, "maxReplicas": 10}))],
            vec![],
        ),
        case(
            "fleetName missing",
            FLEET_AUTOSCALER,
            vec![("/spec/fleetName", j!(""))],
            vec![("spec.fleetName", "required")],
        ),
        case(
            "type without its policy, and a stray one",
            FLEET_AUTOSCALER,
            vec![("/spec/policy", j!({"type": "Webhook", "buffer": {"bufferSize": 1, "maxReplicas": 2}}))],
            vec![
                ("spec.policy.buffer", "must not be set when type is Webhook"),
                ("spec.policy.webhook", "required when type is Webhook"),
            ],
        ),
        case(
            "buffer size zero, max zero",
            FLEET_AUTOSCALER,
            vec![(buffer, j!({"bufferSize": 0, "minReplicas": 0, "maxReplicas": 0}))],
            vec![
                ("spec.policy.buffer.bufferSize", "0 must be greater than 0"),
                ("spec.policy.buffer.maxReplicas", "0 must be greater than 0"),
            ],
        ),
        case(
            "percent buffer out of range",
            FLEET_AUTOSCALER,
            vec![("/spec/policy/buffer/bufferSize", j!("100%"))],
            vec![("spec.policy.buffer.bufferSize", "100% must be between 1% and 99%")],
        ),
        case(
            "min above max, max below buffer",
            FLEET_AUTOSCALER,
            vec![(buffer, j!({"bufferSize": 8, "minReplicas": 7, "maxReplicas": 6}))],
            vec![
                ("spec.policy.buffer.minReplicas", "7 must not be greater than maxReplicas 6"),
                ("spec.policy.buffer.maxReplicas", "6 must be at least bufferSize 8"),
            ],
        ),
        case(
            "negative minReplicas",
            FLEET_AUTOSCALER,
            vec![("/spec/policy/buffer/minReplicas", j!(-1))],
            vec![("spec.policy.buffer.minReplicas", "must not be negative")],
        ),
        case(
            "webhook with url and service",
            FLEET_AUTOSCALER,
            vec![("/spec/policy", j!({"type": "Webhook", "webhook": {"url": "https://a", "service": {"name": "s"}}}))],
            vec![("spec.policy.webhook", "exactly one of url or service")],
        ),
        case(
            "webhook with neither",
            FLEET_AUTOSCALER,
            vec![("/spec/policy", j!({"type": "Webhook", "webhook": {}}))],
            vec![("spec.policy.webhook", "exactly one of url or service")],
        ),
        case(
            "webhook url not absolute http",
            FLEET_AUTOSCALER,
            vec![("/spec/policy", j!({"type": "Webhook", "webhook": {"url": "scaler.example.com/scale"}}))],
            vec![("spec.policy.webhook.url", "must be an absolute http:// or https:// URL")],
        ),
        case(
            "webhook service details",
            FLEET_AUTOSCALER,
            vec![(
                "/spec/policy",
                j!({"type": "Webhook", "webhook": {"service": {"name": "", "path": "scale", "port": 0}}}),
            )],
            vec![
                ("spec.policy.webhook.service.name", "required"),
                ("spec.policy.webhook.service.path", "must start with '/'"),
                ("spec.policy.webhook.service.port", "must be between 1 and 65535"),
            ],
        ),
        case(
            "counter policy",
            FLEET_AUTOSCALER,
            vec![(
                "/spec/policy",
                j!({"type": "Counter", "counter": {"bufferSize": 10, "minCapacity": 20, "maxCapacity": 5}}),
            )],
            vec![
                ("spec.policy.counter.key", "required"),
                ("spec.policy.counter.minCapacity", "20 must not be greater than maxCapacity 5"),
                ("spec.policy.counter.maxCapacity", "5 must be at least bufferSize 10"),
            ],
        ),
        case(
            "list policy",
            FLEET_AUTOSCALER,
            vec![(
                "/spec/policy",
                j!({"type": "List", "list": {"key": "players", "bufferSize": "0%", "minCapacity": -1, "maxCapacity": 10}}),
            )],
            vec![
                ("spec.policy.list.bufferSize", "0% must be between 1% and 99%"),
                ("spec.policy.list.minCapacity", "-1 must not be negative"),
            ],
        ),
        case(
            "negative sync interval",
            FLEET_AUTOSCALER,
            vec![("/spec/sync", j!({"type": "FixedInterval", "fixedInterval": {"seconds": -5}}))],
            vec![("spec.sync.fixedInterval.seconds", "must be greater than 0")],
        ),
        case(
            "chain entries",
            FLEET_AUTOSCALER,
            vec![(
                "/spec/policy",
                j!({"type": "Chain", "chain": [
                    {"id": "weekday", "type": "Buffer", "buffer": {"bufferSize": 2, "maxReplicas": 10}},
                    {"id": "weekday", "type": "Buffer", "buffer": {"bufferSize": 2, "maxReplicas": 0}},
                    {"type": "Webhook", "webhook": {"url": "http://scaler:8000"}}
                ]}),
            )],
            vec![
                ("spec.policy.chain[1].id", "duplicate id \"weekday\""),
                ("spec.policy.chain[1].buffer.maxReplicas", "must be greater than 0"),
                ("spec.policy.chain[2].id", "required"),
            ],
        ),
        case(
            "empty chain",
            FLEET_AUTOSCALER,
            vec![("/spec/policy", j!({"type": "Chain"}))],
            vec![("spec.policy.chain", "required when type is Chain")],
        ),
        case(
            "schedule",
            FLEET_AUTOSCALER,
            vec![(
                "/spec/policy",
                j!({"type": "Schedule", "schedule": {
                    "between": {"start": "2026-06-02T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
                    "activePeriod": {"timezone": "Europe/Berlin", "startCron": "0 18 * *", "duration": "2 hours"},
                    "policy": {"type": "Buffer", "buffer": {"bufferSize": "120%", "maxReplicas": 10}}
                }}),
            )],
            vec![
                ("spec.policy.schedule.between.end", "must be after between.start"),
                ("spec.policy.schedule.activePeriod.startCron", "must have 5 fields"),
                ("spec.policy.schedule.activePeriod.duration", "is not a duration"),
                ("spec.policy.schedule.policy.buffer.bufferSize", "120% must be between 1% and 99%"),
            ],
        ),
        case(
            "valid schedule",
            FLEET_AUTOSCALER,
            vec![(
                "/spec/policy",
                j!({"type": "Schedule", "schedule": {
                    "activePeriod": {"timezone": "America/New_York", "startCron": "0 18 * * 5", "duration": "48h"},
                    "policy": {"type": "Buffer", "buffer": {"bufferSize": "25%", "maxReplicas": 100}}
                }}),
            )],
            vec![],
        ),
    ]);
}

#[test]
fn allocation_rules() {
    use json as j;
    let selector = "/spec/selectors/0";
    run(vec![
        case("valid base", ALLOCATION, vec![], vec![]),
        case(
            "state must be Ready or Allocated",
            ALLOCATION,
            vec![("/spec/selectors/0/gameServerState", j!("Shutdown"))],
            vec![("spec.selectors[0].gameServerState", "Shutdown must be Ready or Allocated")],
        ),
        case(
            "match expressions",
            ALLOCATION,
            vec![(
                "/spec/selectors/0/matchExpressions",
                j!([
                    {"key": "version", "operator": "In"},
                    {"key": "draining", "operator": "Exists", "values": ["x"]},
                    {"key": "x", "operator": "Near", "values": ["y"]},
                    {"key": "bad key", "operator": "NotIn", "values": ["ok", "not ok"]}
                ]),
            )],
            vec![
                ("spec.selectors[0].matchExpressions[0].values", "must be non-empty when operator is In"),
                ("spec.selectors[0].matchExpressions[1].values", "must be empty when operator is Exists"),
                ("spec.selectors[0].matchExpressions[2].operator", "\"Near\" is not a valid operator"),
                ("spec.selectors[0].matchExpressions[3].key", "name part must consist of"),
                ("spec.selectors[0].matchExpressions[3].values[1]", "valid label value"),
            ],
        ),
        case(
            "match labels",
            ALLOCATION,
            vec![("/spec/selectors/0/matchLabels", j!({"agones.dev/fleet": "arena!"}))],
            vec![("spec.selectors[0].matchLabels[agones.dev/fleet]", "invalid label value")],
        ),
        case(
            "selector counter and list filters",
            ALLOCATION,
            vec![
                ("/spec/selectors/0/counters", j!({"rooms": {"minCount": 5, "maxCount": 2, "minAvailable": -1}})),
                ("/spec/selectors/0/lists", j!({"players": {"minAvailable": 1001}})),
                ("/spec/selectors/0/players", j!({"minAvailable": 3, "maxAvailable": 1})),
            ],
            vec![
                ("spec.selectors[0].counters[rooms].minCount", "5 must not be greater than maxCount 2"),
                ("spec.selectors[0].counters[rooms].minAvailable", "must not be negative"),
                ("spec.selectors[0].lists[players].minAvailable", "must not be greater than 1000"),
                ("spec.selectors[0].players.minAvailable", "3 must not be greater than maxAvailable 1"),
            ],
        ),
        case(
            "deprecated required/preferred are checked too",
            ALLOCATION,
            vec![
                ("/spec/required", j!({"matchLabels": {"a b": "c"}})),
                ("/spec/preferred", j!([{"gameServerState": "Error"}])),
            ],
            vec![
                ("spec.required.matchLabels[a b]", "invalid label key"),
                ("spec.preferred[0].gameServerState", "Error must be Ready or Allocated"),
            ],
        ),
        case(
            "counter and list actions",
            ALLOCATION,
            vec![
                (
                    "/spec/counters",
                    j!({
                        "rooms": {"action": "Increment", "amount": -1},
                        "score": {"amount": 2},
                        "slots": {"action": "Decrement", "capacity": -3}
                    }),
                ),
                ("/spec/lists", j!({"players": {"addValues": ["a"], "capacity": 2000}})),
            ],
            vec![
                ("spec.counters[rooms].amount", "-1 must not be negative"),
                ("spec.counters[score].action", "required when amount is set"),
                ("spec.counters[slots].amount", "required when action is set"),
                ("spec.counters[slots].capacity", "must not be negative"),
                ("spec.lists[players].capacity", "2000 must be between 0 and 1000"),
            ],
        ),
        case(
            "metadata patch",
            ALLOCATION,
            vec![(
                "/spec/metadata",
                j!({"labels": {"match": "m/42"}, "annotations": {"ok.example.com/id": "any value"}}),
            )],
            vec![("spec.metadata.labels[match]", "invalid label value")],
        ),
        case(
            "priorities",
            ALLOCATION,
            vec![("/spec/priorities", j!([{"type": "List", "key": ""}]))],
            vec![("spec.priorities[0].key", "required")],
        ),
        case(
            "selector state Allocated is fine",
            ALLOCATION,
            vec![(selector, j!({"gameServerState": "Allocated"}))],
            vec![],
        ),
    ]);
}
