//! GameServerAllocation validation cases.

use serde_json::json;

use crate::{ALLOCATION, case, run};

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
            "metadata patch with an allocation TTL",
            ALLOCATION,
            vec![("/spec/metadata", j!({"annotations": {"stadion.dev/allocation-ttl": "5h5h"}}))],
            vec![("spec.metadata.annotations[stadion.dev/allocation-ttl]", "is not a duration")],
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
