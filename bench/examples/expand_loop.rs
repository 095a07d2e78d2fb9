//! Runs one scenario in a loop, for profilers (`perf record`, `valgrind
//! --tool=callgrind`): `cargo build --release -p tessera-bench --example
//! expand_loop`, then `expand_loop <scenario> <iterations>` with scenario
//! `fresh`, `pooled`, `warm`, `instantiate`, `native`, `validate`,
//! `validate-warm`, `validate-native` or `load`
//! (from a warm cache). BENCHMARKS.md
//! ("Profile") has the callgrind command and what it showed.

use std::hint::black_box;

use serde_json::{Value, json};
use tessera_bench::{bind, database_inputs, label_settings, plugins, review, runtime};
use tessera_runtime::{Context, Reuse};

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "pooled".into());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rt = tessera_bench::tokio_runtime();
    let (composite, observed) = database_inputs();
    // valgrind cannot reserve the pooling allocator's address space: profile
    // `fresh` and `native` under it.
    let pooling = matches!(scenario.as_str(), "pooled" | "instantiate" | "validate").then_some(4);
    let runtime = runtime(pooling);
    let db = bind(&rt, &runtime, plugins::DATABASE, json!({}));
    let warm = db.clone().reuse_instances(Reuse::default());
    let labels = bind(&rt, &runtime, plugins::REQUIRE_LABELS, label_settings());
    let warm_labels = labels.clone().reuse_instances(Reuse::default());
    let review = review();
    let ctx = Context::default();
    let composite_text = composite.to_string();
    let object_text = review
        .object
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_default();
    let settings = label_settings();
    let observed_text: Vec<String> = observed.iter().map(Value::to_string).collect();
    let cache = tempfile::tempdir().expect("temp dir");
    let cached = tessera_runtime::Runtime::builder()
        .cache_dir(cache.path())
        .build()
        .expect("runtime");
    let database_file = tessera_bench::plugin_file(plugins::DATABASE);
    let run = || match scenario.as_str() {
        "load" => {
            black_box(rt.block_on(cached.load_file(&database_file)).unwrap());
        }
        "fresh" | "pooled" => {
            black_box(rt.block_on(db.expand(&composite, &observed, &ctx)).unwrap());
        }
        "warm" => {
            black_box(
                rt.block_on(warm.expand(&composite, &observed, &ctx))
                    .unwrap(),
            );
        }
        "instantiate" => rt.block_on(db.instantiate()).unwrap(),
        "native" => {
            black_box(tessera_bench::native_expand(
                &composite_text,
                &observed_text,
            ));
        }
        "validate" => {
            black_box(rt.block_on(labels.validate(&review)).unwrap());
        }
        "validate-warm" => {
            black_box(rt.block_on(warm_labels.validate(&review)).unwrap());
        }
        "validate-native" => {
            black_box(tessera_bench::native_validate(&object_text, &settings));
        }
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    };
    // One call outside the measured loop, so lazily initialised state is
    // not counted.
    run();
    measured_loop(iterations, run);
}

/// The loop a profiler can single out:
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_loop*'`.
#[inline(never)]
fn measured_loop(iterations: usize, mut run: impl FnMut()) {
    for _ in 0..iterations {
        run();
    }
}
