//! GameServer validation cases.

use serde_json::{Value, json};

use crate::{GAMESERVER, case, game_container, run};

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
            // With a single container defaulting renames `spec.container` to it (as Agones does),
            // so the typo only shows once there are two containers to choose from.
            vec![("/spec/template/spec/containers/1", game_container("sidecar")), ("/spec/container", j!("gaem"))],
            // The port inherits the wrong name through defaulting, so it is reported too.
            vec![("spec.container", "\"gaem\" is not a container"), ("spec.ports[0].container", "\"gaem\"")],
        ),
        case(
            "spec.container is replaced by the only container",
            GAMESERVER,
            vec![("/spec/container", j!("gaem"))],
            vec![],
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
            "allocation TTL annotation that is not a duration",
            GAMESERVER,
            vec![("/metadata/annotations", j!({"stadion.dev/allocation-ttl": "soon"}))],
            vec![("metadata.annotations[stadion.dev/allocation-ttl]", "\"soon\" is not a duration")],
        ),
        case(
            "allocation TTL annotation as a duration, plain seconds or off",
            GAMESERVER,
            vec![("/metadata/annotations", j!({"stadion.dev/allocation-ttl": "1h30m", "other": "soon"}))],
            vec![],
        ),
        case(
            "allocation TTL off",
            GAMESERVER,
            vec![("/metadata/annotations", j!({"stadion.dev/allocation-ttl": "off"}))],
            vec![],
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
