//! Fleet and GameServerSet validation cases.

use serde_json::json;

use crate::{FLEET, GAMESERVERSET, case, run};

#[test]
fn fleet_and_gameserverset_rules() {
    use json as j;
    run(vec![
        case("valid fleet", FLEET, vec![], vec![]),
        case("valid set", GAMESERVERSET, vec![], vec![]),
        case(
            "negative replicas and an empty template",
            GAMESERVERSET,
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
            "template allocation TTL is checked for fleets and sets",
            FLEET,
            vec![("/spec/template/metadata/annotations", j!({"stadion.dev/allocation-ttl": "5 minutes"}))],
            vec![("spec.template.metadata.annotations[stadion.dev/allocation-ttl]", "is not a duration")],
        ),
        case(
            "set template allocation TTL",
            GAMESERVERSET,
            vec![("/spec/template/metadata/annotations", j!({"stadion.dev/allocation-ttl": "-1"}))],
            vec![("spec.template.metadata.annotations[stadion.dev/allocation-ttl]", "is not a duration")],
        ),
        case(
            "valid template allocation TTL",
            FLEET,
            vec![("/spec/template/metadata/annotations", j!({"stadion.dev/allocation-ttl": "90"}))],
            vec![],
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
