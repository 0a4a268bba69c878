//! Load generators: closed-loop request rates, open-loop ticket streams, and UDP readiness
//! probes, with the percentiles the table reports.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Result of a burst of requests.
#[derive(Debug, Default)]
pub struct Rate {
    /// Requests answered with the expected status.
    pub ok: usize,
    /// Other answers (e.g. 429 once the fleet is empty) and transport errors.
    pub failed: usize,
    /// Wall time of the burst.
    pub elapsed: Duration,
    /// Per-request latencies of the successful ones.
    pub latencies: Vec<Duration>,
}

impl Rate {
    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `total` requests made by `concurrency` workers back to back; `request` makes one and says
/// whether it succeeded.
pub async fn closed_loop<F, Fut>(total: usize, concurrency: usize, request: F) -> Rate
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Rate::default()));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (request, next, results) = (request.clone(), next.clone(), results.clone());
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return;
                }
                let sent = Instant::now();
                let ok = request(index).await;
                let took = sent.elapsed();
                let mut results = results.lock().await;
                if ok {
                    results.ok += 1;
                    results.latencies.push(took);
                } else {
                    results.failed += 1;
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let mut rate = std::mem::take(&mut *results.lock().await);
    rate.elapsed = started.elapsed();
    rate
}

/// Starts one `task(index)` every `1 / rate` seconds for `duration` (open loop: a slow answer
/// does not slow the arrivals), then waits for all; returns each task's latency, if it had one.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, task: F) -> (usize, Vec<Duration>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Option<Duration>> + Send + 'static,
{
    let count = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        tokio::time::sleep_until(started + interval.mul_f64(index as f64)).await;
        tasks.spawn(task(index));
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(latency)) = done {
            latencies.push(latency);
        }
    }
    (count, latencies)
}

/// The `p` quantile (0..=1) of `values`, nearest-rank.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with one decimal, for the table.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// Waits until every port in `ports` on loopback answers a UDP datagram, or `timeout` passes;
/// returns how many answered.
pub fn wait_udp_answers(ports: &[u16], timeout: Duration) -> anyhow::Result<usize> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut waiting: BTreeSet<u16> = ports.iter().copied().collect();
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 512];
    while !waiting.is_empty() && Instant::now() < deadline {
        for port in &waiting {
            // Not yet bound ports answer ICMP unreachable, which the next read reports as an
            // error: ignored, the port is simply tried again.
            let _ = socket.send_to(b"ping", SocketAddr::from(([127, 0, 0, 1], *port)));
        }
        let round = Instant::now() + Duration::from_millis(100);
        while Instant::now() < round {
            if let Ok((_, from)) = socket.recv_from(&mut buffer) {
                waiting.remove(&from.port());
            }
        }
    }
    Ok(ports.len() - waiting.len())
}

/// Submits tickets of queue `bench` at `rate` for `duration`; each waits on its event stream
/// for `assigned`: how many were sent, and the latencies of those assigned.
pub async fn ticket_to_assigned(
    http: &reqwest::Client,
    api: &str,
    rate: f64,
    duration: Duration,
) -> (usize, Vec<Duration>) {
    let run = format!("{:x}", std::process::id() as u64 * 1000 + rate as u64);
    open_loop(rate, duration, |index| {
        let (http, api, player) = (http.clone(), api.to_owned(), format!("p-{run}-{index}"));
        async move {
            let sent = Instant::now();
            let body = json!({"queue": "bench", "players": [{"id": player}]});
            let created: Value =
                http.post(format!("{api}/v1/tickets")).json(&body).send().await.ok()?.json().await.ok()?;
            let id = created["id"].as_str()?.to_owned();
            let events = http.get(format!("{api}/v1/tickets/{id}/events")).timeout(Duration::from_secs(60)).send();
            // The stream ends after a final state, so its whole body holds the outcome.
            let text = events.await.ok()?.text().await.ok()?;
            text.contains("\"state\":\"assigned\"").then(|| sent.elapsed())
        }
    })
    .await
}
