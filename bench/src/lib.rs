//! Shared pieces of Tessera's benchmarks: the inputs, the native baselines
//! (the plugins' own Rust functions linked into the host), and helpers to
//! build runtimes and bindings. Method and results: `BENCHMARKS.md`.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tessera_runtime::{Binding, Operation, Review, Runtime, UserInfo};
use tessera_sdk::{CompositionRequest, Object};

pub use tessera_tests::plugins;

/// The example composite (`examples/database.yaml`), with its Secret
/// already observed so that the native path, which has no host to derive a
/// password, does the same work as the plugin.
pub fn database_inputs() -> (Value, Vec<Value>) {
    (yaml_example("database.yaml"), vec![observed_secret()])
}

/// The Secret the `database` plugin finds observed.
pub fn observed_secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "orders-credentials", "namespace": "shop"},
        "data": {"password": "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTBhYmNk"}})
}

/// A file that was built or checked out at a path compiled into this
/// binary, or, when that path does not exist (the binary was copied to
/// another machine, such as the 16-core one), the same file under
/// `fallback` relative to the working directory: run from a checkout with
/// the plugins built by `scripts/build-plugins`.
fn relocatable(compiled: &Path, fallback: &str) -> PathBuf {
    if compiled.exists() {
        return compiled.to_path_buf();
    }
    let name = compiled.file_name().unwrap_or_default();
    Path::new(fallback).join(name)
}

/// The `.wasm` of a plugin (a path from [`plugins`]), relocatable as
/// described for the examples.
pub fn plugin_file(path: &str) -> PathBuf {
    relocatable(Path::new(path), "target/wasm32-wasip2/plugin")
}

/// The first YAML document of a file under `examples/`.
pub fn yaml_example(name: &str) -> Value {
    let path = relocatable(&tessera_tests::example(name), "examples");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let first = text.split("\n---").next().unwrap_or_default();
    serde_yaml_ng::from_str(first).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A ConfigMap that `require-labels` (with [`label_settings`]) allows.
pub fn labelled_object() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "flags", "namespace": "shop", "labels": {"team": "web", "env": "prod"}}})
}

/// Settings for `require-labels`.
pub fn label_settings() -> Value {
    json!({"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}})
}

/// The review `require-labels` judges.
pub fn review() -> Review {
    Review {
        operation: Operation::Create,
        object: Some(labelled_object()),
        old_object: None,
        user_info: UserInfo::default(),
    }
}

/// The `database` plugin's logic called natively: parse the JSON text the
/// host would send, run the same Rust function, serialize the children as
/// the plugin does, and parse them back as the host does. No sandbox, no
/// copies across a boundary. Returns the children's total JSON size.
pub fn native_expand(composite_text: &str, observed_text: &[String]) -> usize {
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
        .map(|c| {
            // As the SDK does (`serde_json::to_string`, not `Display`).
            let text = serde_json::to_string(c.as_value()).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            std::hint::black_box(back);
            text.len()
        })
        .sum()
}

/// `require-labels`' logic called natively on the object's JSON text.
pub fn native_validate(object_text: &str, settings: &Value) -> bool {
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

/// A single-threaded tokio runtime with timers, as each benchmark thread
/// uses.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("building a tokio runtime")
}

/// A runtime without the on-disk cache: the default allocator, or the
/// pooling allocator sized for `concurrency` live instances.
pub fn runtime(pooling: Option<u32>) -> Runtime {
    let builder = Runtime::builder().no_cache();
    match pooling {
        Some(n) => builder.pooling(n),
        None => builder,
    }
    .build()
    .expect("building the runtime")
}

/// Loads `path` into `runtime` and binds it to `settings`.
pub fn bind(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    path: &str,
    settings: Value,
) -> Binding {
    let file = plugin_file(path);
    let plugin = rt
        .block_on(runtime.load_file(&file))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"));
    Binding::new(plugin, settings).unwrap_or_else(|e| panic!("binding {path}: {e}"))
}
