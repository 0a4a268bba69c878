//! FleetAutoscaler validation cases.

use serde_json::json;

use crate::{FLEET_AUTOSCALER, case, run};

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
                // `path: scale` (no leading '/') is fine: Agones accepts it.
                ("spec.policy.webhook.service.name", "required"),
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
