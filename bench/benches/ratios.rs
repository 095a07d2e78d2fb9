//! Tessera against native code, measured in one run so that the noise of a
//! shared machine cancels out in the ratios. Method and results:
//! BENCHMARKS.md. Run: `cargo bench -p tessera-tests --bench ratios`
//! (`TESSERA_BENCH_SECONDS` sets the throughput window, default 2).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_runtime::{Binding, Context, Operation, Review, Runtime, UserInfo};
use tessera_sdk::{CompositionRequest, Object};
use tessera_tests::plugins::{DATABASE, REQUIRE_LABELS};

/// The example composite, with its Secret already observed so that the
/// native path (which has no host to derive a password) does the same work.
fn inputs() -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(tessera_tests::example("database.yaml")).unwrap();
    let composite: Value = serde_yaml_ng::from_str(&text).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "orders-credentials", "namespace": "shop"},
        "data": {"password": "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTBhYmNk"}});
    (composite, vec![secret])
}

fn labelled_object() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "flags", "namespace": "shop", "labels": {"team": "web", "env": "prod"}}})
}

fn label_settings() -> Value {
    json!({"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}})
}

/// The plugin's logic called natively: parse the JSON text the host would
/// send, run the same Rust function, serialize the children as the plugin
/// does. No sandbox, no copies across a boundary.
fn native_expand(composite_text: &str, observed_text: &[String]) -> usize {
    let parse =
        |what: &str, t: &str| Object::from_value(what, serde_json::from_str(t).unwrap()).unwrap();
    let request = CompositionRequest {
        composite: parse("composite", composite_text),
        observed: observed_text.iter().map(|t| parse("observed", t)).collect(),
        settings: json!({}),
        context: tessera_sdk::Context {
            caller: "bench".into(),
            dry_run: true,
        },
    };
    let expansion = database::expand(request).unwrap();
    expansion
        .children()
        .iter()
        .map(|c| c.as_value().to_string().len())
        .sum()
}

fn native_validate(object_text: &str, settings: &Value) -> bool {
    let review = tessera_sdk::Review {
        operation: tessera_sdk::Operation::Create,
        object: Some(
            Object::from_value("object", serde_json::from_str(object_text).unwrap()).unwrap(),
        ),
        old_object: None,
        user_info: tessera_sdk::UserInfo::default(),
        settings: settings.clone(),
    };
    require_labels::validate(review).unwrap().allowed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `f` `iterations` times per round, rounds interleaved with the other
/// scenarios by the caller; returns per-call samples.
fn sample(iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

struct Scenario {
    name: &'static str,
    samples: Vec<Duration>,
}

fn throughput(
    threads: usize,
    seconds: f64,
    binding: &Binding,
    composite: &Value,
    observed: &[Value],
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .unwrap();
                    let mut n = 0;
                    while Instant::now() < deadline {
                        rt.block_on(binding.expand(composite, observed, &Context::default()))
                            .unwrap();
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

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (composite, observed) = inputs();
    let composite_text = composite.to_string();
    let observed_text: Vec<String> = observed.iter().map(Value::to_string).collect();
    let object = labelled_object();
    let object_text = object.to_string();
    let settings = label_settings();

    let default_rt = Runtime::builder().no_cache().build().unwrap();
    let pooled_rt = Runtime::builder().no_cache().pooling(16).build().unwrap();
    let bind = |runtime: &Runtime, path: &str, settings: Value| {
        let plugin = rt.block_on(runtime.load_file(path)).unwrap();
        Binding::new(plugin, settings).unwrap()
    };
    let db_default = bind(&default_rt, DATABASE, json!({}));
    let db_pooled = bind(&pooled_rt, DATABASE, json!({}));
    let labels_default = bind(&default_rt, REQUIRE_LABELS, settings.clone());
    let labels_pooled = bind(&pooled_rt, REQUIRE_LABELS, settings.clone());
    let review = Review {
        operation: Operation::Create,
        object: Some(object.clone()),
        old_object: None,
        user_info: UserInfo::default(),
    };
    let ctx = Context::default();

    // Compile versus loading a cached artifact.
    let cache = tempfile::tempdir().unwrap();
    let cached_rt = Runtime::builder().cache_dir(cache.path()).build().unwrap();
    rt.block_on(cached_rt.load_file(DATABASE)).unwrap();
    let compile = median(sample(5, || {
        black_box(rt.block_on(default_rt.load_file(DATABASE)).unwrap());
    }));
    let cache_load = median(sample(20, || {
        black_box(rt.block_on(cached_rt.load_file(DATABASE)).unwrap());
    }));

    let mut scenarios: Vec<Scenario> = [
        "expand: native",
        "expand: fresh instance, default allocator",
        "expand: fresh instance, pooling allocator",
        "instantiate only, default allocator",
        "instantiate only, pooling allocator",
        "validate: native",
        "validate: fresh instance, default allocator",
        "validate: fresh instance, pooling allocator",
    ]
    .into_iter()
    .map(|name| Scenario {
        name,
        samples: Vec::new(),
    })
    .collect();
    // Warm up every path, then interleave rounds so drift hits all alike.
    for round in 0..6 {
        let n = if round == 0 { 100 } else { 500 };
        let mut runs: Vec<Vec<Duration>> = vec![
            sample(n, || {
                black_box(native_expand(&composite_text, &observed_text));
            }),
            sample(n, || {
                black_box(
                    rt.block_on(db_default.expand(&composite, &observed, &ctx))
                        .unwrap(),
                );
            }),
            sample(n, || {
                black_box(
                    rt.block_on(db_pooled.expand(&composite, &observed, &ctx))
                        .unwrap(),
                );
            }),
            sample(n, || {
                rt.block_on(db_default.instantiate()).unwrap();
            }),
            sample(n, || {
                rt.block_on(db_pooled.instantiate()).unwrap();
            }),
            sample(n, || {
                black_box(native_validate(&object_text, &settings));
            }),
            sample(n, || {
                black_box(rt.block_on(labels_default.validate(&review)).unwrap());
            }),
            sample(n, || {
                black_box(rt.block_on(labels_pooled.validate(&review)).unwrap());
            }),
        ];
        if round > 0 {
            for (scenario, samples) in scenarios.iter_mut().zip(runs.drain(..)) {
                scenario.samples.extend(samples);
            }
        }
    }

    let seconds: f64 = std::env::var("TESSERA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let mut rates = Vec::new();
    for (label, binding) in [
        ("default allocator", &db_default),
        ("pooling allocator", &db_pooled),
    ] {
        let one = throughput(1, seconds, binding, &composite, &observed);
        let two = throughput(2, seconds, binding, &composite, &observed);
        rates.push((label, one, two));
    }

    let medians: Vec<(String, Duration)> = scenarios
        .into_iter()
        .map(|s| (s.name.to_string(), median(s.samples)))
        .collect();
    let native_expand_us = us(medians[0].1);
    let native_validate_us = us(medians[5].1);
    println!("| measurement | median | ratio to native |");
    println!("|---|---|---|");
    for (i, (name, d)) in medians.iter().enumerate() {
        let base = if i < 5 {
            native_expand_us
        } else {
            native_validate_us
        };
        let ratio = if name.contains("instantiate") {
            "-".to_string()
        } else {
            format!("{:.2}x", us(*d) / base)
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
    println!("| expand throughput, fresh instances | 1 thread | 2 threads | scaling |");
    println!("|---|---|---|---|");
    for (label, one, two) in rates {
        println!("| {label} | {one:.0}/s | {two:.0}/s | {:.2}x |", two / one);
    }
    let _ = Arc::new(());
}
