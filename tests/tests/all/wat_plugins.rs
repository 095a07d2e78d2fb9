//! Composition plugins written here in the WebAssembly text format, for what
//! the Rust SDK cannot express: components that declare or grow tables past
//! the host's cap, and components whose `metadata` returns a hostile settings
//! schema. `hostile.rs` runs them as rows of SECURITY.md's table (`load: ...`
//! and `wat: ...`); the tests here run them under both allocators.
//!
//! The component is the `composition` world of `wit/tessera.wit` lifted by
//! hand: one core module with a memory, a bump `realloc`, a `metadata` that
//! returns a record laid out in a data segment, and an `expand` that answers
//! an empty expansion or grows a table until the host refuses. Further core
//! modules, each one table, are instantiated beside it.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;
use tessera_runtime::{Binding, CrashKind, Error, Plugin, Runtime};

/// What a hand-made composition plugin does.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Its name in `metadata`.
    pub name: &'static str,
    /// Core modules of one table each, instantiated with the component: the
    /// initial size of each table.
    pub tables: Vec<u32>,
    /// Whether `expand` grows its own table, 65,536 elements at a time,
    /// until `table.grow` fails, and then traps (`unreachable`).
    pub grow_in_expand: bool,
    /// The settings schema `metadata` returns (JSON text).
    pub schema: Option<String>,
}

/// Where the core module keeps what `metadata` returns.
const NAME_AT: u32 = 64;
const VERSION_AT: u32 = 128;
const METADATA_AT: u32 = 1024;
/// An all-zero area: read as `ok` with no children, no status, no
/// conditions, no findings, not ready.
const EMPTY_EXPANSION_AT: u32 = 2048;
const SCHEMA_AT: u32 = 4096;

/// Bytes as a WAT string literal, every byte escaped.
fn bytes(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3 + 2);
    out.push('"');
    for b in data {
        let _ = write!(out, "\\{b:02x}");
    }
    out.push('"');
    out
}

fn le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The component's text.
pub fn wat(spec: &Spec) -> String {
    let version = "0.1.0";
    let schema = spec.schema.as_deref().unwrap_or("");
    // plugin-metadata: name, version, description (empty), kinds (empty),
    // settings-schema: option<string> (discriminant at 32, string at 36).
    let metadata = le(&[
        NAME_AT,
        spec.name.len() as u32,
        VERSION_AT,
        version.len() as u32,
        0,
        0,
        0,
        0,
        u32::from(spec.schema.is_some()),
        SCHEMA_AT,
        schema.len() as u32,
    ]);
    let heap = (SCHEMA_AT + schema.len() as u32).next_multiple_of(8);
    let expand_body = if spec.grow_in_expand {
        "(block $refused (loop $more
            (br_if $refused (i32.eq (table.grow $grown (ref.null func) (i32.const 65536)) (i32.const -1)))
            (br $more)))
         unreachable"
            .to_string()
    } else {
        format!("(i32.const {EMPTY_EXPANSION_AT})")
    };
    let table_modules: String = spec
        .tables
        .iter()
        .enumerate()
        .map(|(i, size)| {
            format!(
                "(core module $t{i} (table {size} funcref))\n(core instance (instantiate $t{i}))\n"
            )
        })
        .collect();
    format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (table $grown 1 funcref)
    (global $heap (mut i32) (i32.const {heap}))
    (data (i32.const {NAME_AT}) {name})
    (data (i32.const {VERSION_AT}) {version})
    (data (i32.const {METADATA_AT}) {metadata})
    (data (i32.const {SCHEMA_AT}) {schema})
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
          (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (global.set $heap (i32.add (local.get $at) (local.get 3)))
      (block $enough (loop $grow
        (br_if $enough
          (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
      (local.get $at))
    (func (export "metadata") (result i32) (i32.const {METADATA_AT}))
    (func (export "expand")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      {expand_body}))
  (core instance $i (instantiate $m))
  {table_modules}
  (type $kind-ref' (record (field "api-version" string) (field "kind" string)))
  (export $kind-ref "kind-ref" (type $kind-ref'))
  (type $plugin-metadata' (record
    (field "name" string) (field "version" string) (field "description" string)
    (field "kinds" (list $kind-ref)) (field "settings-schema" (option string))))
  (export $plugin-metadata "plugin-metadata" (type $plugin-metadata'))
  (type $context' (record (field "caller" string) (field "dry-run" bool)))
  (export $context "context" (type $context'))
  (type $request' (record
    (field "composite" string) (field "observed" (list string))
    (field "settings" string) (field "context" $context)))
  (export $request "request" (type $request'))
  (type $severity' (enum "info" "warning" "error"))
  (export $severity "severity" (type $severity'))
  (type $finding' (record
    (field "severity" $severity) (field "message" string) (field "field" (option string))))
  (export $finding "finding" (type $finding'))
  (type $condition-status' (enum "true" "false" "unknown"))
  (export $condition-status "condition-status" (type $condition-status'))
  (type $condition' (record
    (field "type" string) (field "status" $condition-status)
    (field "reason" string) (field "message" string)))
  (export $condition "condition" (type $condition'))
  (type $expansion' (record
    (field "children" (list string)) (field "status" (option string))
    (field "conditions" (list $condition)) (field "findings" (list $finding))
    (field "ready" bool)))
  (export $expansion "expansion" (type $expansion'))
  (type $plugin-error' (record (field "message" string) (field "field" (option string))))
  (export $plugin-error "plugin-error" (type $plugin-error'))
  (func (export "metadata") (result $plugin-metadata)
    (canon lift (core func $i "metadata") (memory (core memory $i "memory"))))
  (func (export "expand") (param "request" $request) (result (result $expansion (error $plugin-error)))
    (canon lift (core func $i "expand") (memory (core memory $i "memory")) (realloc (core func $i "realloc")))))
"#,
        name = bytes(spec.name.as_bytes()),
        version = bytes(version.as_bytes()),
        metadata = bytes(&metadata),
        schema = bytes(schema.as_bytes()),
    )
}

/// The component's bytes.
pub fn component(spec: &Spec) -> Vec<u8> {
    wat::parse_str(wat(spec)).unwrap_or_else(|e| panic!("{}: {e}", spec.name))
}

/// `#/$defs/d{levels}`, each `d{k}` an `anyOf` of two references to
/// `d{k-1}`: 2^levels checks from a schema of a few hundred bytes.
pub fn doubling_schema(levels: usize) -> String {
    let mut defs = serde_json::Map::new();
    defs.insert("d0".into(), json!({"type": "string"}));
    for k in 1..=levels {
        let below = format!("#/$defs/d{}", k - 1);
        defs.insert(
            format!("d{k}"),
            json!({"anyOf": [{"$ref": below}, {"$ref": below}]}),
        );
    }
    json!({"$defs": defs, "$ref": format!("#/$defs/d{levels}")}).to_string()
}

/// The plugins SECURITY.md's rows name, by the words after `load:` or
/// `wat:`.
pub fn named(what: &str) -> Option<Spec> {
    let spec = match what {
        // Each table is under the cap; together they are six times over it.
        "16 tables of 100000 elements" => Spec {
            name: "many-tables",
            tables: vec![100_000; 16],
            ..Spec::default()
        },
        "one table of 1000000 elements" => Spec {
            name: "huge-table",
            tables: vec![1_000_000],
            ..Spec::default()
        },
        "table-grow" => Spec {
            name: "table-grow",
            grow_in_expand: true,
            ..Spec::default()
        },
        "exponential settings schema" => Spec {
            name: "doubling-schema",
            schema: Some(doubling_schema(40)),
            ..Spec::default()
        },
        "settings schema with a $ref to a URL" => Spec {
            name: "remote-schema",
            schema: Some(json!({"$ref": "http://127.0.0.1:1/x"}).to_string()),
            ..Spec::default()
        },
        _ => return None,
    };
    Some(spec)
}

async fn load(runtime: &Runtime, spec: &Spec) -> Result<Plugin, Error> {
    runtime
        .load(&component(spec), Path::new(&format!("{}.wasm", spec.name)))
        .await
}

/// Both allocators, as the front ends (pooling) and embedders (on demand)
/// build them.
fn runtimes() -> [(&'static str, Runtime); 2] {
    [
        (
            "on demand",
            Runtime::builder().no_cache().build().expect("runtime"),
        ),
        (
            "pooling",
            Runtime::standard_builder()
                .no_cache()
                .build()
                .expect("runtime"),
        ),
    ]
}

#[tokio::test]
async fn a_well_formed_hand_made_plugin_loads_and_answers() {
    // The fixture itself is sound: with tables under the cap it loads and
    // answers under both allocators, so the failures below are the caps'.
    let spec = Spec {
        name: "few-tables",
        tables: vec![1000; 4],
        ..Spec::default()
    };
    for (allocator, runtime) in runtimes() {
        let plugin = load(&runtime, &spec)
            .await
            .unwrap_or_else(|e| panic!("{allocator}: {e}"));
        let binding = Binding::new(plugin, json!({})).unwrap();
        let composite =
            json!({"apiVersion": "t/v1", "kind": "T", "metadata": {"name": "t", "namespace": "t"}});
        let composed = binding
            .expand(&composite, &[], &crate::common::ctx())
            .await
            .unwrap_or_else(|e| panic!("{allocator}: {e}"));
        assert!(composed.children.is_empty(), "{allocator}");
    }
}

fn assert_table_cap(allocator: &str, err: &Error) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "{allocator}: {text}");
    assert!(text.contains("262144"), "{allocator}: {text}");
    match err {
        Error::Crashed { kind, .. } => {
            assert_eq!(*kind, CrashKind::OutOfMemory, "{allocator}: {text}")
        }
        // The pooling allocator checks each table's declared size against
        // its slots when the component is compiled.
        Error::Incompatible { .. } => assert_eq!(allocator, "pooling", "{text}"),
        other => panic!("{allocator}: {other:?}"),
    }
}

#[tokio::test]
async fn tables_past_the_cap_fail_to_instantiate_under_both_allocators() {
    for what in [
        "16 tables of 100000 elements",
        "one table of 1000000 elements",
    ] {
        let spec = named(what).unwrap();
        for (allocator, runtime) in runtimes() {
            let err = load(&runtime, &spec).await.expect_err(what);
            println!("{what}, {allocator}: {err}");
            assert_table_cap(allocator, &err);
            if what.starts_with("16") {
                // Each table fits a pool slot: the store's cap refused them.
                assert!(
                    err.to_string().contains("all tables together"),
                    "{allocator}: {err}"
                );
            }
        }
    }
}

#[tokio::test]
async fn table_grow_past_the_cap_is_refused_under_both_allocators() {
    let spec = named("table-grow").unwrap();
    for (allocator, runtime) in runtimes() {
        let plugin = load(&runtime, &spec).await.unwrap();
        let binding = Binding::new(plugin, json!({})).unwrap();
        let composite =
            json!({"apiVersion": "t/v1", "kind": "T", "metadata": {"name": "t", "namespace": "t"}});
        // Twice: the second evaluation gets a fresh store and the same cap.
        for _ in 0..2 {
            let err = binding
                .expand(&composite, &[], &crate::common::ctx())
                .await
                .expect_err("refused");
            assert_table_cap(allocator, &err);
            assert!(err.to_string().contains("all tables together"), "{err}");
        }
    }
}

#[tokio::test]
async fn hostile_settings_schemas_fail_the_load_under_both_allocators() {
    for what in [
        "exponential settings schema",
        "settings schema with a $ref to a URL",
    ] {
        let spec = named(what).unwrap();
        for (allocator, runtime) in runtimes() {
            let started = std::time::Instant::now();
            let err = load(&runtime, &spec).await.expect_err(what);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{what}"
            );
            let text = err.to_string();
            assert_eq!(err.crash_kind(), Some(CrashKind::InvalidOutput), "{text}");
            assert!(text.contains(spec.name), "names the plugin: {text}");
            assert!(text.contains("settings schema is refused"), "{text}");
            println!("{what}, {allocator}: {text}");
        }
    }
}
