//! Extism against Tessera and native code, in one process and one run, so
//! that the ratios hold on a noisy machine. Method: BENCHMARKS.md ("Extism
//! peer"). Run with `scripts/bench-extism`, which builds both plugins.
//!
//! Usage: `extism-peer <tessera database.wasm> <extism database_extism.wasm>
//! <composite.yaml>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use extism::{CompiledPlugin, Function, Manifest, Plugin, PluginBuilder, UserData, ValType, Wasm};
use serde_json::{Value, json};
use tessera_runtime::{Binding, Context, Runtime};
use tessera_sdk::{CompositionRequest, Object};

/// The composite from the example file, with its Secret observed so that
/// no path needs the host's secret derivation.
fn inputs(path: &str) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(path).expect("reading the composite");
    let composite: Value = serde_yaml_ng::from_str(&text).expect("parsing the composite");
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "orders-credentials", "namespace": "shop"},
        "data": {"password": "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTBhYmNk"}});
    (composite, vec![secret])
}

/// The same work natively: JSON text in, the plugin's function, the children
/// as JSON text out, parsed back into values as a host would.
fn native(composite: &Value, observed: &[Value]) -> Vec<Value> {
    let text = serde_json::to_string(composite).unwrap();
    let observed_text: Vec<String> = observed
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    let parse =
        |what: &str, t: &str| Object::from_value(what, serde_json::from_str(t).unwrap()).unwrap();
    let request = CompositionRequest {
        composite: parse("composite", &text),
        observed: observed_text.iter().map(|t| parse("observed", t)).collect(),
        settings: json!({}),
        context: tessera_sdk::Context {
            caller: "bench".into(),
            dry_run: true,
        },
    };
    let expansion = database::expand(request).unwrap();
    let out: Vec<&Value> = expansion.children().iter().map(Object::as_value).collect();
    serde_json::from_slice(&serde_json::to_vec(&out).unwrap()).unwrap()
}

/// The plugin imports `derive-secret` (the SDK links it); the benchmark
/// input never reaches it, so the stub refuses.
fn derive_secret_stub() -> Function {
    Function::new(
        "derive-secret",
        [ValType::I32, ValType::I32, ValType::I32, ValType::I32],
        [],
        UserData::new(()),
        |_, _, _, _| Err(extism::Error::msg("derive-secret is not available here")),
    )
    .with_namespace("tessera:plugin/credentials@0.1.0")
}

fn extism_call(plugin: &mut Plugin, composite: &Value, observed: &[Value]) -> Vec<Value> {
    let input = serde_json::to_vec(&json!({
        "composite": composite, "observed": observed, "settings": {},
    }))
    .unwrap();
    let output: &[u8] = plugin.call("compose", input).unwrap();
    serde_json::from_slice(output).unwrap()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn sample(iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, tessera_wasm, extism_wasm, composite_path] = args.as_slice() else {
        eprintln!("usage: extism-peer <tessera.wasm> <extism.wasm> <composite.yaml>");
        std::process::exit(2);
    };
    let (composite, observed) = inputs(composite_path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    let runtime = Runtime::builder().no_cache().pooling(4).build().unwrap();
    let plugin = rt.block_on(runtime.load_file(tessera_wasm)).unwrap();
    let fresh = Binding::new(plugin.clone(), json!({})).unwrap();
    let warm = Binding::new(plugin, json!({}))
        .unwrap()
        .reuse_instances(tessera_runtime::Reuse::default());
    let ctx = Context::default();

    // Extism with the same limits as the Tessera binding: a 1 s deadline
    // (Extism also uses epoch interruption) and 64 MiB of memory.
    let manifest = Manifest::new([Wasm::file(extism_wasm)])
        .with_timeout(Duration::from_secs(1))
        .with_memory_max(1024);
    let compiled: CompiledPlugin = PluginBuilder::new(manifest)
        .with_wasi(false)
        .with_functions([derive_secret_stub()])
        .with_cache_disabled()
        .compile()
        .unwrap();
    let mut extism = Plugin::new_from_compiled(&compiled).unwrap();

    // Same answer from all three, or the comparison means nothing.
    let expected = native(&composite, &observed);
    let from_extism = extism_call(&mut extism, &composite, &observed);
    let from_tessera = rt
        .block_on(fresh.expand(&composite, &observed, &ctx))
        .unwrap()
        .children;
    assert_eq!(expected.len(), from_extism.len());
    assert_eq!(
        expected, from_extism,
        "Extism's children differ from native"
    );
    for (ours, theirs) in from_tessera.iter().zip(&expected) {
        assert_eq!(ours["spec"], theirs["spec"], "Tessera's children differ");
    }

    let names = [
        "expand: native",
        "expand: Tessera, fresh instance (pooling)",
        "expand: Tessera, warm instance reuse",
        "expand: Extism, one reused instance",
        "expand: Extism, new plugin per call",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let rounds = 6;
    for round in 0..rounds {
        let n = if round == 0 { 100 } else { 400 };
        let runs = vec![
            sample(n, || {
                black_box(native(&composite, &observed));
            }),
            sample(n, || {
                black_box(
                    rt.block_on(fresh.expand(&composite, &observed, &ctx))
                        .unwrap(),
                );
            }),
            sample(n, || {
                black_box(
                    rt.block_on(warm.expand(&composite, &observed, &ctx))
                        .unwrap(),
                );
            }),
            sample(n, || {
                black_box(extism_call(&mut extism, &composite, &observed));
            }),
            sample(n, || {
                let mut plugin = Plugin::new_from_compiled(&compiled).unwrap();
                black_box(extism_call(&mut plugin, &composite, &observed));
            }),
        ];
        if round > 0 {
            for (all, run) in samples.iter_mut().zip(runs) {
                all.extend(run);
            }
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let native_us = medians[0].as_secs_f64() * 1e6;
    println!("| measurement | median | ratio to native |");
    println!("|---|---|---|");
    for (name, d) in names.iter().zip(&medians) {
        let us = d.as_secs_f64() * 1e6;
        println!("| {name} | {us:.1} µs | {:.2}x |", us / native_us);
    }
    let extism_us = medians[3].as_secs_f64() * 1e6;
    println!();
    println!(
        "Tessera fresh instance / Extism reused instance: {:.2}x",
        medians[1].as_secs_f64() * 1e6 / extism_us
    );
}
