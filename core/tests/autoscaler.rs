//! FleetAutoscaler policies: Buffer (int, percent, clamping, scale to zero), Webhook (request
//! shape, response handling, errors), Counter and List, Schedule and Chain.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stadion_core::autoscaler::{
    AutoscalerDecision, AutoscalerStep, FleetAutoscaleResponse, FleetAutoscaleReview, decide,
    decide_from_webhook_response,
};
use stadion_core::testing::{at, game_spec};
use stadion_crds::common::{AggregatedCounterStatus, CounterStatus, ListStatus};
use stadion_crds::fleet::{FleetSpec, FleetStatus};
use stadion_crds::fleetautoscaler::{
    Between, BufferPolicy, ChainEntry, CounterPolicy, FleetAutoscalerPolicy, FleetAutoscalerPolicyType as T,
    FleetAutoscalerSpec, SchedulePolicy, WebhookPolicy, WebhookService,
};
use stadion_crds::gameserverset::GameServerTemplateSpec;
use stadion_crds::{Fleet, FleetAutoscaler};

fn fleet(replicas: i32, allocated: i32) -> Fleet {
    let mut f = Fleet::new(
        "f",
        FleetSpec {
            replicas,
            template: GameServerTemplateSpec { metadata: Default::default(), spec: game_spec() },
            ..Default::default()
        },
    );
    f.metadata.namespace = Some("games".into());
    f.metadata.labels = Some([("team".to_owned(), "blue".to_owned())].into());
    f.status = Some(FleetStatus {
        replicas,
        allocated_replicas: allocated,
        ready_replicas: replicas - allocated,
        ..Default::default()
    });
    f
}

fn autoscaler(policy: FleetAutoscalerPolicy) -> FleetAutoscaler {
    let mut fas = FleetAutoscaler::new("fas", FleetAutoscalerSpec { fleet_name: "f".into(), policy, sync: None });
    fas.metadata.namespace = Some("games".into());
    fas.apply_defaults();
    fas
}

fn buffer(size: IntOrString, min: i32, max: i32) -> FleetAutoscalerPolicy {
    FleetAutoscalerPolicy {
        type_: T::Buffer,
        buffer: Some(BufferPolicy { buffer_size: size, min_replicas: min, max_replicas: max }),
        ..Default::default()
    }
}

fn decided(step: AutoscalerStep) -> AutoscalerDecision {
    match step {
        AutoscalerStep::Decided(d) => d,
        AutoscalerStep::CallWebhook(call) => panic!("unexpected webhook call to {}", call.url),
    }
}

fn run(policy: FleetAutoscalerPolicy, f: &Fleet) -> AutoscalerDecision {
    decided(decide(&autoscaler(policy), Some(f), at(0), "uid-1"))
}

#[test]
fn buffer_int_adds_to_allocated_and_clamps() {
    let d = run(buffer(IntOrString::Int(2), 0, 100), &fleet(5, 4));
    assert_eq!(d.replicas, Some(6));
    assert_eq!((d.status.desired_replicas, d.status.able_to_scale, d.status.scaling_limited), (6, true, false));
    assert_eq!(d.status.last_scale_time, Some(Time(at(0))));
    assert_eq!(d.status.last_applied_policy, Some(T::Buffer));

    let d = run(buffer(IntOrString::Int(2), 0, 5), &fleet(5, 4));
    assert_eq!((d.replicas, d.status.scaling_limited), (None, true), "clamped to max 5, already 5");
    let d = run(buffer(IntOrString::Int(2), 10, 20), &fleet(5, 4));
    assert_eq!((d.replicas, d.status.scaling_limited), (Some(10), true));
}

#[test]
fn buffer_percent_at_zero_one_and_hundred_allocated() {
    let pct = || buffer(IntOrString::String("20%".into()), 0, 1000);
    assert_eq!(run(pct(), &fleet(5, 0)).replicas, Some(0));
    assert_eq!(run(pct(), &fleet(5, 1)).replicas, Some(2), "ceil(1 × 100 / 80) = 2");
    assert_eq!(run(pct(), &fleet(5, 100)).replicas, Some(125), "100 × 100 / 80 = 125");
    let half = buffer(IntOrString::String("50%".into()), 1, 1000);
    assert_eq!(run(half.clone(), &fleet(5, 0)).replicas, Some(1), "min 1 wins at zero");
    assert_eq!(run(half, &fleet(5, 3)).replicas, Some(6));
}

#[test]
fn scale_to_zero_with_buffer_zero_and_min_zero() {
    let d = run(buffer(IntOrString::Int(0), 0, 10), &fleet(3, 0));
    assert_eq!(d.replicas, Some(0));
    assert!(d.status.able_to_scale);
}

#[test]
fn invalid_buffer_and_missing_fleet_do_not_scale() {
    let d = run(buffer(IntOrString::String("100%".into()), 0, 10), &fleet(3, 1));
    assert_eq!((d.replicas, d.status.able_to_scale), (None, false));
    assert_eq!(d.error.unwrap().kind(), "invalid_policy");
    let d = decided(decide(&autoscaler(buffer(IntOrString::Int(1), 0, 10)), None, at(0), "u"));
    assert_eq!((d.replicas, d.status.able_to_scale), (None, false));
    assert_eq!(d.error.unwrap().kind(), "fleet_not_found");
}

fn webhook(policy: WebhookPolicy) -> FleetAutoscalerPolicy {
    FleetAutoscalerPolicy { type_: T::Webhook, webhook: Some(policy), ..Default::default() }
}

#[test]
fn webhook_request_has_the_agones_shape() {
    let f = fleet(4, 1);
    let fas = autoscaler(webhook(WebhookPolicy {
        service: Some(WebhookService {
            name: "scaler".into(),
            namespace: String::new(),
            path: Some("scale".into()),
            port: None,
        }),
        ..Default::default()
    }));
    let AutoscalerStep::CallWebhook(call) = decide(&fas, Some(&f), at(0), "uid-7") else { panic!("expected a call") };
    // As in Agones: no namespace means `default` (not the autoscaler's), no port means 8000.
    assert_eq!(call.url, "http://scaler.default.svc:8000/scale");
    assert_eq!(call.timeout.as_secs(), 15);
    let body = serde_json::to_value(&call.body).unwrap();
    let request = &body["request"];
    assert_eq!(request["uid"], "uid-7");
    assert_eq!((request["name"].as_str(), request["namespace"].as_str()), (Some("f"), Some("games")));
    assert_eq!(request["status"]["allocatedReplicas"], 1);
    assert_eq!(request["labels"]["team"], "blue");
    assert!(body.get("response").is_none());
}

#[test]
fn webhook_response_scales_or_reports_errors() {
    let f = fleet(4, 1);
    let fas =
        autoscaler(webhook(WebhookPolicy { url: Some("https://example.test/scale".into()), ..Default::default() }));
    let reply: FleetAutoscaleReview =
        serde_json::from_str(r#"{"response": {"uid": "uid-1", "scale": true, "replicas": 9}}"#).unwrap();
    let d = decide_from_webhook_response(&fas, &f, "uid-1", &Ok(reply), at(1));
    assert_eq!((d.replicas, d.status.able_to_scale, d.status.last_applied_policy), (Some(9), true, Some(T::Webhook)));

    let no_scale = FleetAutoscaleReview {
        request: None,
        response: Some(FleetAutoscaleResponse { uid: "uid-1".into(), scale: false, replicas: 50 }),
    };
    assert_eq!(decide_from_webhook_response(&fas, &f, "uid-1", &Ok(no_scale), at(1)).replicas, None);

    let failed = decide_from_webhook_response(&fas, &f, "uid-1", &Err("connection refused".into()), at(1));
    assert_eq!((failed.replicas, failed.status.able_to_scale, failed.status.desired_replicas), (None, false, 4));
    assert!(failed.error.unwrap().to_string().contains("connection refused"));

    let wrong_uid: FleetAutoscaleReview =
        serde_json::from_str(r#"{"response": {"uid": "other", "scale": true, "replicas": 2}}"#).unwrap();
    assert!(!decide_from_webhook_response(&fas, &f, "uid-1", &Ok(wrong_uid), at(1)).status.able_to_scale);
}

fn counter_fleet(count: i64, replicas: i32) -> Fleet {
    let mut f = fleet(replicas, 0);
    f.spec.template.spec.counters.insert("rooms".into(), CounterStatus { count: 0, capacity: 10 });
    f.spec.template.spec.lists.insert("players".into(), ListStatus { capacity: 8, values: vec![] });
    let status = f.status.as_mut().unwrap();
    let capacity = i64::from(replicas) * 10;
    status.counters.insert("rooms".into(), AggregatedCounterStatus { count, capacity, ..Default::default() });
    status.lists.insert(
        "players".into(),
        AggregatedCounterStatus { count, capacity: i64::from(replicas) * 8, ..Default::default() },
    );
    f
}

fn capacity_policy(kind: T, key: &str, size: IntOrString, min: i64, max: i64) -> FleetAutoscalerPolicy {
    let policy = CounterPolicy { key: key.into(), buffer_size: size, min_capacity: min, max_capacity: max };
    match kind {
        T::Counter => FleetAutoscalerPolicy { type_: T::Counter, counter: Some(policy), ..Default::default() },
        _ => FleetAutoscalerPolicy { type_: T::List, list: Some(policy), ..Default::default() },
    }
}

#[test]
fn counter_policy_keeps_spare_capacity() {
    // 25 rooms in use, keep 10 spare: 35 capacity → 4 servers of 10.
    let d = run(capacity_policy(T::Counter, "rooms", IntOrString::Int(10), 0, 1000), &counter_fleet(25, 3));
    assert_eq!(d.replicas, Some(4));
    // Percent: 30 in use, 25% spare → 40 capacity → 4 servers.
    let d =
        run(capacity_policy(T::Counter, "rooms", IntOrString::String("25%".into()), 0, 1000), &counter_fleet(30, 3));
    assert_eq!(d.replicas, Some(4));
    // maxCapacity 25 caps at 2 servers (never above the max); minCapacity lifts an idle fleet.
    let d = run(capacity_policy(T::Counter, "rooms", IntOrString::Int(10), 0, 25), &counter_fleet(25, 3));
    assert_eq!((d.replicas, d.status.scaling_limited), (Some(2), true));
    let d = run(capacity_policy(T::Counter, "rooms", IntOrString::Int(0), 30, 100), &counter_fleet(0, 1));
    assert_eq!((d.replicas, d.status.scaling_limited), (Some(3), true));
    let d = run(capacity_policy(T::Counter, "missing", IntOrString::Int(1), 0, 10), &counter_fleet(0, 1));
    assert!(!d.status.able_to_scale);
}

#[test]
fn list_policy_counts_values() {
    // 12 players on lists of 8, keep 8 free: 20 → 3 servers.
    let d = run(capacity_policy(T::List, "players", IntOrString::Int(8), 0, 1000), &counter_fleet(12, 2));
    assert_eq!(d.replicas, Some(3));
}

#[test]
fn chain_uses_the_first_active_schedule_then_falls_back() {
    let weekend_boost = FleetAutoscalerPolicy {
        type_: T::Schedule,
        schedule: Some(Box::new(SchedulePolicy {
            between: Between { start: Some(Time(at(100))), end: Some(Time(at(200))) },
            active_period: Default::default(),
            policy: buffer(IntOrString::Int(10), 0, 100),
        })),
        ..Default::default()
    };
    let policy = FleetAutoscalerPolicy {
        type_: T::Chain,
        chain: vec![
            ChainEntry { id: "boost".into(), policy: weekend_boost },
            ChainEntry { id: "base".into(), policy: buffer(IntOrString::Int(1), 0, 100) },
        ],
        ..Default::default()
    };
    let fas = autoscaler(policy);
    let f = fleet(5, 2);
    let inside = decided(decide(&fas, Some(&f), at(150), "u"));
    assert_eq!(inside.replicas, Some(12));
    let outside = decided(decide(&fas, Some(&f), at(250), "u"));
    assert_eq!(outside.replicas, Some(3));
    assert_eq!(outside.status.last_applied_policy, Some(T::Buffer));
}
