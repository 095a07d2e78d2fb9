//! Tessera against native code, measured in one run so that the noise of a
//! shared machine cancels out in the ratios. Method and results:
//! BENCHMARKS.md. Run: `cargo bench -p tessera-bench --bench ratios`
//! (`TESSERA_BENCH_SECONDS` sets the throughput window, default 2;
//! `TESSERA_BENCH_THREADS` the thread counts, default `1,2`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_bench::{
    bind, database_inputs, label_settings, labelled_object, native_expand, native_validate,
    plugins::{DATABASE, REQUIRE_LABELS},
    review, runtime, tokio_runtime,
};
use tessera_runtime::{Binding, Context, Reuse, Runtime};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `f` `iterations` times per round, rounds interleaved with the other
/// scenarios by the caller; returns per-call samples.
fn sample(iterations: usize, f: &mut dyn FnMut()) -> Vec<Duration> {
    (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

/// A scenario: its name, the native figure it is compared with, one call.
type Scenario<'a> = (&'static str, Base, Box<dyn FnMut() + 'a>);

/// One evaluation on a thread's own tokio runtime, for the throughput table.
type Call<'a> = &'a (dyn Fn(&tokio::runtime::Runtime) + Sync);

/// Which native figure a scenario's ratio is taken against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Expand,
    Validate,
    None,
}

/// Evaluations per second completed by `threads` threads running `call`
/// freely for `seconds`, each thread with its own single-threaded tokio
/// runtime.
fn throughput(threads: usize, seconds: f64, call: Call<'_>) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let rt = tokio_runtime();
                    let mut n = 0;
                    while Instant::now() < deadline {
                        call(&rt);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / seconds
}

/// Thread counts for the throughput table: `TESSERA_BENCH_THREADS` (e.g.
/// `1,2,4,8,16` on a larger machine), default `1,2`.
fn thread_counts() -> Vec<usize> {
    std::env::var("TESSERA_BENCH_THREADS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .filter(|list: &Vec<usize>| !list.is_empty())
        .unwrap_or_else(|| vec![1, 2])
}

/// Pooling slots: a fresh instance on every thread plus the warm binding's
/// kept instances (at most one per CPU), with room to spare.
fn pool_slots(threads: &[usize]) -> u32 {
    let most = threads.iter().copied().max().unwrap_or(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(most + cpus + 8).unwrap_or(u32::MAX)
}

fn main() {
    let rt = tokio_runtime();
    let threads = thread_counts();
    let (composite, observed) = database_inputs();
    let composite_text = composite.to_string();
    let observed_text: Vec<String> = observed.iter().map(Value::to_string).collect();
    let object_text = labelled_object().to_string();
    let settings = label_settings();

    let default_rt = runtime(None);
    let pooled_rt = runtime(Some(pool_slots(&threads)));
    let db_default = bind(&rt, &default_rt, DATABASE, json!({}));
    let db_pooled = bind(&rt, &pooled_rt, DATABASE, json!({}));
    let db_warm = db_pooled.clone().reuse_instances(Reuse::default());
    let labels_default = bind(&rt, &default_rt, REQUIRE_LABELS, settings.clone());
    let labels_pooled = bind(&rt, &pooled_rt, REQUIRE_LABELS, settings.clone());
    let labels_warm = labels_pooled.clone().reuse_instances(Reuse::default());
    let review = review();
    let ctx = Context::default();

    // Compile versus loading a cached artifact.
    let cache = tempfile::tempdir().unwrap();
    let cached_rt = Runtime::builder().cache_dir(cache.path()).build().unwrap();
    let database_file = tessera_bench::plugin_file(DATABASE);
    rt.block_on(cached_rt.load_file(&database_file)).unwrap();
    let compile = median(sample(5, &mut || {
        black_box(rt.block_on(default_rt.load_file(&database_file)).unwrap());
    }));
    let cache_load = median(sample(50, &mut || {
        black_box(rt.block_on(cached_rt.load_file(&database_file)).unwrap());
    }));

    // Each scenario: its name, the native figure it is compared with (none
    // for instantiation alone), and one call.
    let expand = |binding: &Binding| {
        black_box(
            rt.block_on(binding.expand(&composite, &observed, &ctx))
                .unwrap(),
        );
    };
    let validate = |binding: &Binding| {
        black_box(rt.block_on(binding.validate(&review)).unwrap());
    };
    let mut scenarios: Vec<Scenario<'_>> = vec![
        (
            "expand: native",
            Base::Expand,
            Box::new(|| {
                black_box(native_expand(&composite_text, &observed_text));
            }),
        ),
        (
            "expand: fresh instance, default allocator",
            Base::Expand,
            Box::new(|| expand(&db_default)),
        ),
        (
            "expand: fresh instance, pooling allocator",
            Base::Expand,
            Box::new(|| expand(&db_pooled)),
        ),
        (
            "expand: warm instance reuse",
            Base::Expand,
            Box::new(|| expand(&db_warm)),
        ),
        (
            "instantiate only, default allocator",
            Base::None,
            Box::new(|| rt.block_on(db_default.instantiate()).unwrap()),
        ),
        (
            "instantiate only, pooling allocator",
            Base::None,
            Box::new(|| rt.block_on(db_pooled.instantiate()).unwrap()),
        ),
        (
            "validate: native",
            Base::Validate,
            Box::new(|| {
                black_box(native_validate(&object_text, &settings));
            }),
        ),
        (
            "validate: fresh instance, default allocator",
            Base::Validate,
            Box::new(|| validate(&labels_default)),
        ),
        (
            "validate: fresh instance, pooling allocator",
            Base::Validate,
            Box::new(|| validate(&labels_pooled)),
        ),
        (
            "validate: warm instance reuse",
            Base::Validate,
            Box::new(|| validate(&labels_warm)),
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); scenarios.len()];
    // Warm up every path, then interleave rounds so drift hits all alike.
    for round in 0..6 {
        let n = if round == 0 { 100 } else { 500 };
        for (i, (_, _, call)) in scenarios.iter_mut().enumerate() {
            let run = sample(n, call);
            if round > 0 {
                samples[i].extend(run);
            }
        }
    }

    let seconds: f64 = std::env::var("TESSERA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let evaluate = |binding: &Binding, rt: &tokio::runtime::Runtime| {
        rt.block_on(binding.expand(&composite, &observed, &Context::default()))
            .unwrap();
    };
    let configs: [(&str, Call<'_>); 4] = [
        ("native", &|_| {
            black_box(native_expand(&composite_text, &observed_text));
        }),
        ("fresh instances, default allocator", &|rt| {
            evaluate(&db_default, rt)
        }),
        ("fresh instances, pooling allocator", &|rt| {
            evaluate(&db_pooled, rt)
        }),
        ("warm instance reuse", &|rt| evaluate(&db_warm, rt)),
    ];
    let rates: Vec<(&str, Vec<f64>)> = configs
        .iter()
        .map(|(label, call)| {
            let per_count = threads
                .iter()
                .map(|&n| throughput(n, seconds, *call))
                .collect();
            (*label, per_count)
        })
        .collect();

    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let base_of = |wanted: Base| {
        scenarios
            .iter()
            .zip(&medians)
            .find(|((name, base, _), _)| *base == wanted && name.ends_with("native"))
            .map(|(_, d)| us(*d))
    };
    println!("| measurement | median | ratio to native |");
    println!("|---|---|---|");
    for ((name, base, _), d) in scenarios.iter().zip(&medians) {
        let ratio = match base_of(*base) {
            Some(native) => format!("{:.2}x", us(*d) / native),
            None => "-".to_string(),
        };
        println!("| {name} | {:.1} µs | {ratio} |", us(*d));
    }
    println!(
        "| compile (no cache) | {:.1} ms | - |",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "| load from cache | {:.3} ms | {:.0}x faster than compiling |",
        cache_load.as_secs_f64() * 1e3,
        compile.as_secs_f64() / cache_load.as_secs_f64()
    );
    println!();
    // Each cell: evaluations per second, and the ratio to the first
    // thread count.
    let header: Vec<String> = threads.iter().map(|n| format!("{n} threads")).collect();
    println!("| expand throughput | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(threads.len()));
    for (label, per_count) in rates {
        let cells: Vec<String> = per_count
            .iter()
            .map(|rate| format!("{rate:.0}/s ({:.2}x)", rate / per_count[0]))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
}
