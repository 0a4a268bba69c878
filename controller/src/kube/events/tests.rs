use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::EventType;

use super::{EventPublisher, QUEUE, WRITERS, fit_note};
use crate::kube::fixtures::{ApiServer, Expect, events_path};

fn server_ref(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("agones.dev/v1".into()),
        kind: Some("GameServer".into()),
        namespace: Some("default".into()),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..ObjectReference::default()
    }
}

#[test]
fn notes_fit_the_api_servers_limit() {
    assert_eq!(fit_note("short"), "short");
    let exact = "x".repeat(1024);
    assert_eq!(fit_note(&exact), exact);
    let long = "é".repeat(700); // 1400 bytes, two per character
    let cut = fit_note(&long);
    assert!(cut.len() <= 1024, "{}", cut.len());
    assert!(cut.ends_with("(truncated)"));
}

#[tokio::test]
async fn publishing_never_waits_for_the_api_server() {
    let (client, server) = ApiServer::start();
    let events = EventPublisher::new(client, Some("pod-1".into()));
    // Nothing answers yet: each publish must still return at once.
    let published = tokio::time::timeout(Duration::from_secs(2), async {
        for (name, reason) in [("gs-1", "Creating"), ("gs-2", "Scheduled"), ("gs-3", "Ready")] {
            events.publish_to(&server_ref(name), EventType::Normal, reason, format!("{name} {reason}")).await;
        }
    })
    .await;
    assert!(published.is_ok(), "publishing waited for the API server");
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let script = (0..3)
        .map(|_| {
            let reasons = reasons.clone();
            Expect::post(&events_path("default"))
                .check(move |e| {
                    assert_eq!(e["reportingController"], "stadion-controller");
                    assert_eq!(e["reportingInstance"], "pod-1");
                    assert_eq!(e["regarding"]["kind"], "GameServer");
                    assert_eq!(e["type"], "Normal");
                    assert!(e["eventTime"].is_string(), "{e}");
                    assert_eq!(
                        e["note"].as_str().unwrap(),
                        format!("{} {}", e["regarding"]["name"].as_str().unwrap(), e["reason"].as_str().unwrap())
                    );
                    reasons.lock().unwrap().push(e["reason"].as_str().unwrap().to_owned());
                })
                .respond_echo()
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(5), server.run(script)).await.expect("all three written").unwrap();
    let mut reasons = reasons.lock().unwrap().clone();
    reasons.sort();
    assert_eq!(reasons, ["Creating", "Ready", "Scheduled"]);
}

#[tokio::test]
async fn a_repeated_event_extends_its_series_instead_of_creating_another() {
    // The PATCH names the first Event, known only once it is written: requests served one by one.
    let (client, mut server) = ApiServer::start();
    let events = EventPublisher::inline(client, None);
    let publish = |reason: &'static str| {
        let events = events.clone();
        let type_ = if reason == "Ready" { EventType::Normal } else { EventType::Warning };
        tokio::spawn(async move { events.publish_to(&server_ref("gs-1"), type_, reason, "no ports".into()).await })
    };
    let first = publish("PortAllocation");
    let created = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let remember = created.clone();
    let post = Expect::post(&events_path("default")).check(move |e| {
        assert_eq!(e["type"], "Warning");
        *remember.lock().unwrap() = e["metadata"]["name"].as_str().unwrap().to_owned();
    });
    server.serve_one(0, post.respond_echo()).await;
    first.await.unwrap();
    let created = created.lock().unwrap().clone();
    assert!(created.starts_with("gs-1."), "{created}");

    // The same object, type and reason again: the first Event's count goes up.
    let second = publish("PortAllocation");
    let existing = serde_json::json!({ "metadata": { "name": created, "namespace": "default" } });
    let patch = Expect::patch(&format!("{}/{created}", events_path("default")))
        .check(|patch| assert_eq!(patch["series"]["count"], 2, "{patch}"));
    server.serve_one(1, patch.respond_json(&existing)).await;
    second.await.unwrap();

    // A different reason on the same object is a new Event.
    let third = publish("Ready");
    server.serve_one(2, Expect::event("Ready")).await;
    third.await.unwrap();
}

#[tokio::test]
async fn a_full_queue_drops_new_events_and_counts_them() {
    let (client, _server) = ApiServer::start();
    let events = EventPublisher::new(client, None);
    let total = QUEUE + WRITERS + 40;
    for i in 0..total {
        events.publish_to(&server_ref(&format!("gs-{i}")), EventType::Normal, "Creating", String::new()).await;
    }
    // The API server never answers: at most WRITERS are in flight, QUEUE wait, the rest dropped.
    let dropped = usize::try_from(events.dropped()).unwrap();
    assert!(dropped >= total - QUEUE - WRITERS && dropped <= total - QUEUE, "dropped {dropped} of {total}");
}
