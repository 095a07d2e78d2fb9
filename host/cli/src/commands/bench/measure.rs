//! What `tessera bench` measures: what a plugin costs.
//!
//! The runtime is configured as the controller and webhook configure theirs
//! ([`Runtime::standard_builder`]: the pooling allocator), so the figures are
//! what the cluster spends. Two evaluation figures, labelled: *fresh*, a new
//! (pooled) instance for every evaluation, which is what the controller and
//! webhook do; and *warm*, one instance reused across evaluations
//! ([`tessera_runtime::Reuse`]), comparable with tools that bench one warm
//! instance (`kwctl bench`).
//!
//! Wall-clock figures are reported but noisy on shared machines; fuel (a
//! count of executed WebAssembly instructions, deterministic for the same
//! plugin and input) is what `--baseline` gates on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_runtime::{Binding, Context, Operation, Reuse, Review, Runtime, UserInfo, World};

/// What to bench.
#[derive(Debug)]
pub struct BenchOptions {
    /// The plugin.
    pub wasm: PathBuf,
    /// The composite (composition) or object (policy).
    pub input: Value,
    /// Settings for the plugin.
    pub settings: Value,
    /// Timed evaluations.
    pub iterations: usize,
}

/// The measurements, as saved by `--save` and read by `--baseline`.
pub type Measurements = Value;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

async fn evaluate(
    binding: &Binding,
    world: World,
    input: &Value,
) -> Result<tessera_runtime::Report, String> {
    match world {
        World::Composition => binding
            .expand(input, &[], &Context::default())
            .await
            .map(|c| c.report)
            .map_err(|e| e.to_string()),
        World::Policy => {
            let review = Review {
                operation: Operation::Create,
                object: Some(input.clone()),
                old_object: None,
                user_info: UserInfo::default(),
            };
            binding
                .validate(&review)
                .await
                .map(|v| v.report)
                .map_err(|e| e.to_string())
        }
    }
}

/// Runs the benchmark. Each figure is measured in this one run.
pub async fn run(options: &BenchOptions) -> Result<Measurements, String> {
    let bytes = std::fs::read(&options.wasm)
        .map_err(|e| format!("{}: cannot read plugin: {e}", options.wasm.display()))?;
    let path = options.wasm.as_path();

    // Compile, with no cache.
    let uncached = Runtime::standard_builder()
        .no_cache()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    uncached
        .load(&bytes, path)
        .await
        .map_err(|e| e.to_string())?;
    let compile = started.elapsed();

    // Load from a warm cache: the best of five.
    let cache = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cached = Runtime::standard_builder()
        .cache_dir(cache.path())
        .build()
        .map_err(|e| e.to_string())?;
    let plugin = cached.load(&bytes, path).await.map_err(|e| e.to_string())?;
    let mut cache_load = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        cached.load(&bytes, path).await.map_err(|e| e.to_string())?;
        cache_load = cache_load.min(started.elapsed());
    }

    let world = plugin.world();
    let binding = Binding::new(plugin, options.settings.clone()).map_err(|e| e.to_string())?;
    let warmup = (options.iterations / 10).clamp(1, 100);
    for _ in 0..warmup {
        binding.instantiate().await.map_err(|e| e.to_string())?;
        evaluate(&binding, world, &options.input).await?;
    }
    let mut instantiate = Vec::with_capacity(options.iterations);
    for _ in 0..options.iterations {
        let started = Instant::now();
        binding.instantiate().await.map_err(|e| e.to_string())?;
        instantiate.push(started.elapsed());
    }
    let mut evaluations = Vec::with_capacity(options.iterations);
    let mut peak_memory = 0;
    let run_started = Instant::now();
    for _ in 0..options.iterations {
        let started = Instant::now();
        let report = evaluate(&binding, world, &options.input).await?;
        evaluations.push(started.elapsed());
        peak_memory = peak_memory.max(report.peak_memory_bytes);
    }
    let total = run_started.elapsed();

    // Warm: one binding whose instances are kept and reused.
    let warm_binding = binding.clone().reuse_instances(Reuse::default());
    for _ in 0..warmup {
        evaluate(&warm_binding, world, &options.input).await?;
    }
    let mut warm = Vec::with_capacity(options.iterations);
    let warm_started = Instant::now();
    for _ in 0..options.iterations {
        let started = Instant::now();
        evaluate(&warm_binding, world, &options.input).await?;
        warm.push(started.elapsed());
    }
    let warm_total = warm_started.elapsed();
    instantiate.sort();
    evaluations.sort();
    warm.sort();
    let pct =
        |v: &[Duration], p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];

    // Fuel: a runtime that counts it. Deterministic.
    let fuel_runtime = Runtime::standard_builder()
        .no_cache()
        .fuel(true)
        .build()
        .map_err(|e| e.to_string())?;
    let fuel_plugin = fuel_runtime
        .load(&bytes, path)
        .await
        .map_err(|e| e.to_string())?;
    let fuel_binding =
        Binding::new(fuel_plugin, options.settings.clone()).map_err(|e| e.to_string())?;
    let fuel = evaluate(&fuel_binding, world, &options.input)
        .await?
        .fuel_consumed;

    Ok(json!({
        "plugin": binding.plugin().metadata().name,
        "digest": binding.plugin().digest(),
        "world": world.to_string(),
        "iterations": options.iterations,
        "compileMs": ms(compile),
        "cacheLoadMs": ms(cache_load),
        "instantiateUs": {"p50": us(pct(&instantiate, 0.5)), "p95": us(pct(&instantiate, 0.95))},
        "evaluationUs": {
            "p50": us(pct(&evaluations, 0.5)),
            "p95": us(pct(&evaluations, 0.95)),
            "p99": us(pct(&evaluations, 0.99)),
        },
        "warmEvaluationUs": {
            "p50": us(pct(&warm, 0.5)),
            "p95": us(pct(&warm, 0.95)),
            "p99": us(pct(&warm, 0.99)),
        },
        "throughputPerSec": (options.iterations as f64 / total.as_secs_f64()).round(),
        "warmThroughputPerSec": (options.iterations as f64 / warm_total.as_secs_f64()).round(),
        "fuelPerEvaluation": fuel,
        "peakMemoryBytes": peak_memory,
    }))
}

/// Text for a terminal.
pub fn render_text(m: &Measurements) -> String {
    format!(
        "plugin            {} ({})\n\
         compile           {} ms\n\
         cache load        {} ms\n\
         instantiate       p50 {} µs, p95 {} µs\n\
         fresh evaluation  p50 {} µs, p95 {} µs, p99 {} µs ({} iterations, a new pooled instance each, as in the cluster)\n\
         warm evaluation   p50 {} µs, p95 {} µs, p99 {} µs (one instance reused)\n\
         throughput        {} evaluations/s fresh, {} warm (one thread)\n\
         fuel              {} per evaluation\n\
         peak memory       {} KiB per instance\n",
        // The plugin names itself: printed like any text a plugin controls.
        crate::Untrusted(m["plugin"].as_str().unwrap_or("?")),
        m["world"].as_str().unwrap_or("?"),
        m["compileMs"],
        m["cacheLoadMs"],
        m["instantiateUs"]["p50"],
        m["instantiateUs"]["p95"],
        m["evaluationUs"]["p50"],
        m["evaluationUs"]["p95"],
        m["evaluationUs"]["p99"],
        m["iterations"],
        m["warmEvaluationUs"]["p50"],
        m["warmEvaluationUs"]["p95"],
        m["warmEvaluationUs"]["p99"],
        m["throughputPerSec"],
        m["warmThroughputPerSec"],
        m["fuelPerEvaluation"],
        m["peakMemoryBytes"].as_u64().unwrap_or(0) / 1024,
    )
}

/// Compares fuel against a saved run. `Err` is a regression beyond
/// `threshold_percent`; the text says by how much.
pub fn compare(
    current: &Measurements,
    baseline_file: &Path,
    threshold_percent: f64,
) -> Result<Result<String, String>, String> {
    let text = std::fs::read_to_string(baseline_file)
        .map_err(|e| format!("{}: cannot read baseline: {e}", baseline_file.display()))?;
    let baseline: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a saved bench run: {e}", baseline_file.display()))?;
    let fuel = |m: &Value| m["fuelPerEvaluation"].as_u64();
    let (Some(before), Some(now)) = (fuel(&baseline), fuel(current)) else {
        return Err(format!(
            "{}: has no fuelPerEvaluation",
            baseline_file.display()
        ));
    };
    let change = (now as f64 - before as f64) / before.max(1) as f64 * 100.0;
    let wall = |m: &Value| m["evaluationUs"]["p50"].as_f64().unwrap_or(0.0);
    let line = format!(
        "fuel {before} -> {now} ({change:+.2}%), threshold {threshold_percent}%; p50 {} -> {} µs (wall time: informational)",
        wall(&baseline),
        wall(current)
    );
    Ok(if change > threshold_percent {
        Err(line)
    } else {
        Ok(line)
    })
}
