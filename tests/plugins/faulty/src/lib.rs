//! A composition plugin that misbehaves on request, for the runtime's error
//! paths. `settings.mode` picks the behaviour; see [`expand`].

use std::hash::{BuildHasher, Hasher};

use tessera_sdk::{
    CompositionRequest, Error, Expansion, Finding, Metadata, Object, Result, host, json,
};

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("faulty", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles("test.tessera.dev/v1", "Faulty")
        .settings_schema(json!({
            "type": "object",
            "properties": {"mode": {"type": "string"}},
            "required": ["mode"]
        }))
}

fn config_map(request: &CompositionRequest, name: &str) -> Object {
    request
        .child("v1", "ConfigMap", name)
        .with("data", json!({"key": "value"}))
}

/// Misbehaves as `settings.mode` says.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let mode = request.settings().str("mode")?.to_string();
    let ok = Expansion::new().child(config_map(&request, "ok"));
    match mode.as_str() {
        "ok" => Ok(ok),
        "refuse" => Err(Error::at(
            "spec.size",
            "spec.size is too large for this test",
        )),
        "panic" => panic!("faulty plugin panicked on purpose"),
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "exit" => std::process::exit(3),
        "no-name" => Ok(ok.child(Object::from_value(
            "c",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        )?)),
        "no-kind" => Ok(ok.child(Object::from_value(
            "c",
            json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
        )?)),
        "no-api-version" => Ok(ok.child(Object::from_value(
            "c",
            json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        )?)),
        "duplicate" => Ok(ok.child(config_map(&request, "ok"))),
        "other-namespace" => {
            Ok(ok.child(config_map(&request, "elsewhere").with_namespace("kube-system")))
        }
        "status-not-object" => Ok(ok.status(json!([1, 2]))),
        "big-output" => {
            // 8 children of 1 MiB each: over the default 4 MiB output cap.
            let blob = "x".repeat(1 << 20);
            let mut expansion = Expansion::new();
            for i in 0..8 {
                expansion = expansion.child(
                    request
                        .child("v1", "ConfigMap", format!("big-{i}"))
                        .with("data", json!({"blob": blob})),
                );
            }
            Ok(expansion)
        }
        "read-disallowed" => {
            let err = host::get_resource("v1", "Secret", Some("default"), "s").unwrap_err();
            Ok(ok.finding(Finding::info(err.message().to_string())))
        }
        "read-allowed" => {
            let found =
                host::get_resource("v1", "ConfigMap", request.composite.namespace(), "input")?
                    .ok_or_else(|| Error::new("fixture ConfigMap input not found"))?;
            let listed = host::list_resources("v1", "ConfigMap", None, Some("role=input"))?;
            let value = found.as_value()["data"]["value"].clone();
            Ok(
                Expansion::new().child(request.child("v1", "ConfigMap", "copied").with(
                    "data",
                    json!({"value": value, "listed": listed.len().to_string()}),
                )),
            )
        }
        "log-flood" => {
            for i in 0..100_000 {
                host::info(&format!("line {i}"));
            }
            Ok(ok)
        }
        "stderr" => {
            eprintln!("a note on stderr");
            println!("a note on stdout");
            Ok(ok)
        }
        "clock-random" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(42);
            Ok(
                Expansion::new().child(request.child("v1", "ConfigMap", "entropy").with(
                    "data",
                    json!({"now": now.to_string(), "hash": hasher.finish().to_string()}),
                )),
            )
        }
        other => Err(Error::at(
            "settings.mode",
            format!("unknown mode {other:?}"),
        )),
    }
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);
