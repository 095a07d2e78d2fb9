//! Guest code and the async workers: the two designs for keeping plugins
//! off tokio's workers, measured side by side (BENCHMARKS.md, "Guest code
//! and the async workers").
//!
//! - `blocking`: what the runtime does — every evaluation runs on one of
//!   tokio's blocking threads, behind the runtime's guest-thread semaphore,
//!   with the epoch callback trapping it at its deadline.
//! - `yield`: guest code runs on the async workers themselves and yields to
//!   the executor at every epoch tick (`epoch_deadline_async_yield_and_update`
//!   through the same callback; `RuntimeBuilder::yield_on_executor`).
//!
//! For each design, on a tokio runtime with 2 workers (the webhook's shape on
//! a 2-core node): the throughput of short evaluations (`require-labels` on a
//! labelled ConfigMap) from 8 tasks, and, while 0, 2 and 8 evaluations of
//! `faulty-policy` loop, the latency of a spawned no-op task, the overshoot
//! of a 1 ms timer (timers and I/O readiness are both noticed when a worker
//! polls the driver) and the latency of one short evaluation.
//!
//! `cargo run --release -p tessera-bench --example guest_threads [SECONDS]`
//! (each window lasts SECONDS, default 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_bench::{bind, label_settings, plugins, review};
use tessera_runtime::{Binding, Limits, Runtime};

/// Short evaluations in flight at once in the throughput window.
const SHORT_TASKS: usize = 8;

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let window = Duration::from_secs_f64(seconds);
    println!(
        "| design | looping evaluations | short evaluations/s ({SHORT_TASKS} tasks) | spawned task p50 / p99 / max | 1 ms timer overshoot p50 / p99 / max | one short evaluation p50 / p99 / max |"
    );
    println!("|---|---|---|---|---|---|");
    for design in ["blocking", "yield"] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a tokio runtime");
        let runtime = Runtime::builder()
            .no_cache()
            .pooling(64)
            .yield_on_executor(design == "yield")
            .build()
            .expect("the runtime");
        let labels = bind(&rt, &runtime, plugins::REQUIRE_LABELS, label_settings());
        let looper = bind(
            &rt,
            &runtime,
            plugins::FAULTY_POLICY,
            json!({"mode": "loop"}),
        )
        .with_limits(Limits::default().deadline(Duration::from_secs(600)));
        // Warm-up: the first evaluations touch the pool's slots.
        rt.block_on(async {
            for _ in 0..200 {
                labels.validate(&review()).await.expect("allowed");
            }
        });
        for loopers in [0, 2, 8] {
            let row = rt.block_on(measure(&labels, &looper, loopers, window));
            println!("| {design} | {loopers} | {row} |");
        }
    }
}

/// One row: the figures with `loopers` evaluations spinning meanwhile.
async fn measure(labels: &Binding, looper: &Binding, loopers: usize, window: Duration) -> String {
    let spinning: Vec<_> = (0..loopers)
        .map(|_| {
            let looper = looper.clone();
            tokio::spawn(async move {
                let _ = looper.validate(&review()).await;
            })
        })
        .collect();
    // Let the loopers start spinning.
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Throughput of short evaluations from SHORT_TASKS tasks.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let short: Vec<_> = (0..SHORT_TASKS)
        .map(|_| {
            let (labels, stop, done) = (labels.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let review = review();
                while !stop.load(Ordering::Relaxed) {
                    labels.validate(&review).await.expect("allowed");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for task in short {
        task.await.expect("a short task");
    }
    let per_second = done.load(Ordering::Relaxed) as f64 / window.as_secs_f64();

    // Latencies, sampled from a task on the workers (as a request handler).
    let labels = labels.clone();
    let (spawned, timer, evaluation) = tokio::spawn(async move {
        let (mut spawned, mut timer, mut evaluation) = (Vec::new(), Vec::new(), Vec::new());
        let review = review();
        let ends = Instant::now() + window;
        while Instant::now() < ends {
            let started = Instant::now();
            let took = tokio::spawn(async move { started.elapsed() })
                .await
                .expect("a no-op task");
            spawned.push(took);
            let started = Instant::now();
            tokio::time::sleep(Duration::from_millis(1)).await;
            timer.push(started.elapsed().saturating_sub(Duration::from_millis(1)));
            let started = Instant::now();
            labels.validate(&review).await.expect("allowed");
            evaluation.push(started.elapsed());
        }
        (spawned, timer, evaluation)
    })
    .await
    .expect("the sampler");
    for task in spinning {
        task.abort();
    }
    format!(
        "{per_second:.0} | {} | {} | {}",
        percentiles(spawned),
        percentiles(timer),
        percentiles(evaluation)
    )
}

/// p50 / p99 / max of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(index).copied().unwrap_or_default()
    };
    format!(
        "{} / {} / {} ({} samples)",
        format_duration(at(0.5)),
        format_duration(at(0.99)),
        format_duration(samples.last().copied().unwrap_or_default()),
        samples.len()
    )
}

fn format_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}
