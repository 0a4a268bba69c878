//! Engine benchmark: ticket throughput and time-to-match at 10k and 100k queued tickets.
//!
//! `cargo bench -p stadion-matchmaker --bench engine` (release build). Plain `main`: it prints a
//! table rather than statistics, because what matters is the order of magnitude per tick.

use std::time::{Duration, Instant};

use stadion_matchmaker::engine::{EngineTicket, MatchSize, Millis, Pool, Rules, Widening};

/// xorshift64*: deterministic and dependency-free, good enough for workload generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal (sum of uniforms), mean 0, sd 1.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

const REGIONS: u32 = 4;

fn ticket(rng: &mut Rng, key: u64, enqueued_at: Millis, party: bool) -> EngineTicket {
    let size = if party && rng.unit() < 0.2 { 2 } else { 1 };
    let home = (rng.next() % u64::from(REGIONS)) as u32;
    let latencies = (0..REGIONS)
        .map(|r| {
            let base = if r == home { 15.0 } else { 60.0 + 40.0 * f64::from((r + REGIONS - home) % REGIONS) };
            (r, base + rng.unit() * 30.0)
        })
        .collect();
    EngineTicket { key, enqueued_at, size, skill: 1500.0 + 300.0 * rng.normal(), latencies }
}

fn rules(size: MatchSize) -> Rules {
    Rules {
        size,
        skill: Some(Widening { initial: 50.0, per_second: 25.0, cap: 600.0 }),
        latency: Some(Widening { initial: 50.0, per_second: 10.0, cap: 200.0 }),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    shape: &'static str,
    queued: usize,
    insert_per_sec: f64,
    first_tick: Duration,
    matched_first_tick: usize,
    tick_p50: Duration,
    tick_p99: Duration,
    matched_per_sec: f64,
    wait: [f64; 3],
}

/// 100k tickets none of which can match (skills far apart, no widening): the cost of a tick
/// that finds nothing, which is what a large stalled queue pays every tick.
fn stalled(queued: usize) -> (Duration, Duration) {
    let mut pool = Pool::new(Rules {
        size: MatchSize::FreeForAll { min: 2, max: 2 },
        skill: Some(Widening { initial: 1.0, per_second: 0.0, cap: 1.0 }),
        latency: Some(Widening { initial: 50.0, per_second: 0.0, cap: 50.0 }),
    });
    let mut rng = Rng(7);
    for k in 0..queued {
        let mut t = ticket(&mut rng, k as u64, 0, false);
        t.skill = k as f64 * 10.0;
        pool.insert(t);
    }
    let mut times: Vec<Duration> = (0..20u64)
        .map(|i| {
            let t = Instant::now();
            assert!(pool.tick(1_000 + i * 100).is_empty());
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// Backlog of `queued` tickets that arrived over the last minute, then 60 simulated seconds of
/// arrivals at 1/60 of the backlog per second, ticking every 100 ms.
fn run(shape: &'static str, size: MatchSize, queued: usize) -> Row {
    let mut rng = Rng(0x5eed_0000 + queued as u64);
    let party = matches!(size, MatchSize::Teams { .. });
    let mut pool = Pool::new(rules(size));
    let start: Millis = 60_000;
    let backlog: Vec<EngineTicket> =
        (0..queued).map(|k| ticket(&mut rng, k as u64, (k as u64 * 60_000) / queued as u64, party)).collect();
    let enqueued: Vec<Millis> = backlog.iter().map(|t| t.enqueued_at).collect();
    let mut enqueued_at = enqueued;
    let t0 = Instant::now();
    for t in backlog {
        pool.insert(t);
    }
    let insert_per_sec = queued as f64 / t0.elapsed().as_secs_f64();

    let mut waits = Vec::new();
    let mut tick_times = Vec::new();
    let mut matched_tickets = 0usize;
    let mut busy = Duration::ZERO;
    let mut first_tick = Duration::ZERO;
    let mut matched_first_tick = 0;
    let per_tick = (queued / 600).max(1);
    let mut next_key = queued as u64;
    for step in 0..600u64 {
        let now = start + step * 100;
        let t = Instant::now();
        if step > 0 {
            for _ in 0..per_tick {
                enqueued_at.push(now);
                pool.insert(ticket(&mut rng, next_key, now, party));
                next_key += 1;
            }
        }
        let matches = pool.tick(now);
        let elapsed = t.elapsed();
        busy += elapsed;
        tick_times.push(elapsed);
        let count: usize = matches.iter().map(|m| m.tickets().count()).sum();
        if step == 0 {
            first_tick = elapsed;
            matched_first_tick = count;
        }
        matched_tickets += count;
        for m in &matches {
            // Only tickets that arrived during the run: the backlog's age is not a wait the
            // engine caused.
            for key in m.tickets().filter(|&k| k as usize >= queued) {
                waits.push((m.formed_at - enqueued_at[key as usize]) as f64 / 1000.0);
            }
        }
    }
    tick_times.sort();
    waits.sort_by(f64::total_cmp);
    Row {
        shape,
        queued,
        insert_per_sec,
        first_tick,
        matched_first_tick,
        tick_p50: tick_times[tick_times.len() / 2],
        tick_p99: tick_times[tick_times.len() * 99 / 100],
        matched_per_sec: matched_tickets as f64 / busy.as_secs_f64(),
        wait: [percentile(&waits, 0.5), percentile(&waits, 0.9), percentile(&waits, 0.99)],
    }
}

fn main() {
    let shapes = [
        ("1v1", MatchSize::FreeForAll { min: 2, max: 2 }),
        ("5v5 (20% duos)", MatchSize::Teams { count: 2, min: 5, max: 5 }),
    ];
    println!(
        "| queue | queued | insert/s | 1st tick | matched in 1st tick | tick p50 | tick p99 | matched tickets/s (engine time) | new arrivals' wait p50 / p90 / p99 (simulated s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (shape, size) in shapes {
        for queued in [10_000, 100_000] {
            let r = run(shape, size, queued);
            println!(
                "| {} | {} | {:.0} | {:.1} ms | {} | {:.2} ms | {:.2} ms | {:.0} | {:.1} / {:.1} / {:.1} |",
                r.shape,
                r.queued,
                r.insert_per_sec,
                r.first_tick.as_secs_f64() * 1e3,
                r.matched_first_tick,
                r.tick_p50.as_secs_f64() * 1e3,
                r.tick_p99.as_secs_f64() * 1e3,
                r.matched_per_sec,
                r.wait[0],
                r.wait[1],
                r.wait[2],
            );
        }
    }
    for queued in [10_000, 100_000] {
        let (p50, max) = stalled(queued);
        println!(
            "\nstalled 1v1 queue, {queued} unmatchable tickets: tick p50 {:.1} ms, max {:.1} ms",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
