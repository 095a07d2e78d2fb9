//! The crate `tessera new composition|policy NAME` writes: a plugin crate
//! that builds for `wasm32-wasip2` and whose sample suite passes, as
//! generated.

use std::path::{Path, PathBuf};

/// Which world the new plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A composition plugin (`expand`).
    Composition,
    /// A policy plugin (`validate`).
    Policy,
}

/// The language of the new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// A cargo crate on the Rust SDK (`guest-sdk`).
    Rust,
    /// A Python project on `guest-sdk/python` (componentize-py).
    Python,
    /// A JavaScript project on `guest-sdk/js` (componentize-js).
    JavaScript,
}

/// Where the guest SDK of this tessera build lives, for the generated
/// project's dependency on it (the SDKs are not published to a registry
/// yet).
pub fn default_sdk_path(language: Language) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
    match language {
        Language::Rust => root,
        Language::Python => root.join("python"),
        Language::JavaScript => root.join("js"),
    }
}

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    // JSON's escapes are TOML's, for a string.
    serde_json::Value::from(text).to_string()
}

/// Checks a plugin name: a crate name that is also a Kubernetes label value
/// (`[a-z][a-z0-9-]*`, at most 63 characters).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plugin name {name:?} must be lowercase letters, digits and '-', starting with a letter (at most 63 characters)"
        ))
    }
}

/// Writes the project into `dir` (which must not exist yet). Returns the
/// files written.
pub fn generate(
    kind: Kind,
    language: Language,
    name: &str,
    dir: &Path,
    sdk: &Path,
) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
    if dir.exists() {
        return Err(format!(
            "{}: already exists; choose another --dir",
            dir.display()
        ));
    }
    let sdk = std::fs::canonicalize(sdk).map_err(|e| {
        format!(
            "{}: the guest SDK is not there ({e}); pass --sdk PATH to the tessera checkout's guest-sdk",
            sdk.display()
        )
    })?;
    let suite = match kind {
        Kind::Composition => COMPOSITION_SUITE,
        Kind::Policy => POLICY_SUITE,
    };
    let world = match kind {
        Kind::Composition => "composition",
        Kind::Policy => "policy",
    };
    let sdk_text = sdk.display().to_string();
    let files: Vec<(&str, String)> = match language {
        Language::Rust => vec![
            ("Cargo.toml", CARGO_TOML.replace("@SDK@", &sdk_text)),
            ("rust-toolchain.toml", TOOLCHAIN.to_string()),
            (".gitignore", "/target\n".to_string()),
            (
                "src/lib.rs",
                match kind {
                    Kind::Composition => COMPOSITION_LIB,
                    Kind::Policy => POLICY_LIB,
                }
                .to_string(),
            ),
            ("README.md", README.to_string()),
        ],
        Language::Python => vec![
            (
                "pyproject.toml",
                PYPROJECT
                    .replace("@WORLD@", world)
                    .replace("@SDK@", &toml_string(&sdk_text)),
            ),
            (".gitignore", "/target\n__pycache__/\n".to_string()),
            (
                "@CRATE@.py",
                match kind {
                    Kind::Composition => COMPOSITION_PY,
                    Kind::Policy => POLICY_PY,
                }
                .to_string(),
            ),
            ("README.md", README_GUEST.replace("@SOURCE@", "@CRATE@.py")),
        ],
        Language::JavaScript => vec![
            (
                "package.json",
                PACKAGE_JSON.replace("@WORLD@", world).replace(
                    "@SDK@",
                    &serde_json::Value::from(sdk_text.clone()).to_string(),
                ),
            ),
            (".gitignore", "/target\nnode_modules/\n".to_string()),
            (
                "index.js",
                match kind {
                    Kind::Composition => COMPOSITION_JS,
                    Kind::Policy => POLICY_JS,
                }
                .to_string(),
            ),
            ("README.md", README_GUEST.replace("@SOURCE@", "index.js")),
        ],
    };
    let files = files
        .into_iter()
        .chain([("tests/@NAME@.tessera.yaml", suite.to_string())]);
    let mut written = Vec::new();
    for (path, text) in files {
        let path = dir.join(
            path.replace("@NAME@", name)
                .replace("@CRATE@", &name.replace('-', "_")),
        );
        let text = text
            .replace("@NAME@", name)
            .replace("@CRATE@", &name.replace('-', "_"));
        std::fs::create_dir_all(path.parent().expect("files are in the crate"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

const CARGO_TOML: &str = r#"[package]
name = "@NAME@"
version = "0.1.0"
edition = "2024"
description = "A Tessera plugin."
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
tessera-sdk = { path = "@SDK@" }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = "debuginfo"

# A crate of its own, not a member of an enclosing workspace.
[workspace]
"#;

const TOOLCHAIN: &str = r#"[toolchain]
channel = "1.95.0"
targets = ["wasm32-wasip2"]
profile = "minimal"
"#;

const COMPOSITION_LIB: &str = r#"//! The `@NAME@` composition plugin: a `Greeting` becomes a ConfigMap.

use tessera_sdk::{CompositionRequest, Expansion, Metadata, Result, json};

/// The kind this plugin expands.
pub const API_VERSION: &str = "example.tessera.dev/v1";

/// What the plugin says about itself.
pub fn metadata() -> Metadata {
    Metadata::new("@NAME@", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles(API_VERSION, "Greeting")
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"punctuation": {"type": "string", "maxLength": 3}}
        }))
}

/// Expands a `Greeting` into a ConfigMap holding the message.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let spec = request.spec();
    let who = spec.str("who")?;
    let punctuation = request.settings().opt_str("punctuation")?.unwrap_or("!");
    let name = request.composite.name().to_string();
    let config = request
        .child("v1", "ConfigMap", format!("{name}-greeting"))
        .with("data", json!({"message": format!("Hello, {who}{punctuation}")}));
    Ok(Expansion::new()
        .child(config)
        .status(json!({"greeted": who}))
        .ready(true))
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);
"#;

const COMPOSITION_SUITE: &str = r#"# Run with: tessera test
apiVersion: tessera.dev/v1alpha1
kind: TestSuite
cases:
  - name: a greeting becomes a ConfigMap
    composition:
      plugin: @NAME@
      composite:
        apiVersion: example.tessera.dev/v1
        kind: Greeting
        metadata: {name: hello, namespace: demo}
        spec: {who: world}
    expect:
      childNames: [ConfigMap/hello-greeting]
      children:
        - kind: ConfigMap
          metadata: {name: hello-greeting, namespace: demo}
          data: {message: "Hello, world!"}
      status: {greeted: world}
      ready: true

  - name: a greeting needs someone to greet
    composition:
      plugin: @NAME@
      composite:
        apiVersion: example.tessera.dev/v1
        kind: Greeting
        metadata: {name: hello}
        spec: {}
    expect:
      error: {class: refused, field: spec.who, messageContains: spec.who is required}
"#;

const POLICY_LIB: &str = r#"//! The `@NAME@` policy plugin: objects must name an owner.

use tessera_sdk::{Finding, Metadata, Operation, Result, Review, Verdict, json};

/// What the plugin says about itself.
pub fn metadata() -> Metadata {
    Metadata::new("@NAME@", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"label": {"type": "string", "minLength": 1}}
        }))
}

/// Denies objects without the owner label (settings.label, default `owner`).
pub fn validate(review: Review) -> Result<Verdict> {
    if review.operation == Operation::Delete {
        return Ok(Verdict::allow());
    }
    let Some(object) = review.object.as_ref() else {
        return Ok(Verdict::allow());
    };
    let label = review.settings().opt_str("label")?.unwrap_or("owner");
    let mut findings = Vec::new();
    if object.label(label).is_none() {
        findings.push(
            Finding::error(format!("missing label {label:?}: who owns this?"))
                .at(format!("metadata.labels.{label}")),
        );
    }
    Ok(Verdict::from_findings(findings))
}

tessera_sdk::export_policy!(metadata = metadata, validate = validate);
"#;

const POLICY_SUITE: &str = r#"# Run with: tessera test
apiVersion: tessera.dev/v1alpha1
kind: TestSuite
cases:
  - name: an owned object is allowed
    policy:
      plugin: @NAME@
      object:
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c, labels: {owner: team-a}}
    expect:
      allowed: true

  - name: an object without an owner is denied
    policy:
      plugin: @NAME@
      object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
    expect:
      allowed: false
      findings:
        - {severity: error, field: metadata.labels.owner}
"#;

const README: &str = r#"# @NAME@

A Tessera plugin, generated by `tessera new`.

```sh
cargo build --release --target wasm32-wasip2      # target/wasm32-wasip2/release/@CRATE@.wasm
tessera test                                      # runs tests/*.tessera.yaml (builds the plugin)
tessera inspect target/wasm32-wasip2/release/@CRATE@.wasm
```

Edit `src/lib.rs`; describe what it should do in `tests/@NAME@.tessera.yaml`.
"#;

const PYPROJECT: &str = r#"[project]
name = "@NAME@"
version = "0.1.0"
description = "A Tessera plugin."
requires-python = ">=3.11"

# Read by `tessera build` and `tessera test`: the world the plugin
# implements, the module holding it, and the Python SDK it is built with
# (componentize-py, installed into the tools cache on the first build).
[tool.tessera]
world = "@WORLD@"
module = "@CRATE@"
sdk = @SDK@
"#;

const COMPOSITION_PY: &str = r#""""The ``@NAME@`` composition plugin: a ``Greeting`` becomes a ConfigMap."""

from tessera_sdk import CompositionRequest, Expansion, Metadata, composition

#: The kind this plugin expands.
API_VERSION = "example.tessera.dev/v1"

METADATA = (
    Metadata("@NAME@", "0.1.0")
    .description("A Tessera plugin.")
    .handles(API_VERSION, "Greeting")
    .settings_schema(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"punctuation": {"type": "string", "maxLength": 3}},
        }
    )
)


@composition(METADATA)
def expand(request: CompositionRequest) -> Expansion:
    """Expands a ``Greeting`` into a ConfigMap holding the message."""
    who = request.spec().string("who")
    punctuation = request.settings().opt_string("punctuation") or "!"
    name = request.composite.name
    config = request.child("v1", "ConfigMap", f"{name}-greeting").with_field(
        "data", {"message": f"Hello, {who}{punctuation}"}
    )
    return Expansion().child(config).status({"greeted": who}).ready(True)
"#;

const POLICY_PY: &str = r#""""The ``@NAME@`` policy plugin: objects must name an owner."""

from tessera_sdk import Finding, Metadata, Operation, Review, Verdict, policy, rust_debug

METADATA = (
    Metadata("@NAME@", "0.1.0")
    .description("A Tessera plugin.")
    .settings_schema(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"label": {"type": "string", "minLength": 1}},
        }
    )
)


@policy(METADATA)
def validate(review: Review) -> Verdict:
    """Denies objects without the owner label (settings.label, default ``owner``)."""
    if review.operation is Operation.DELETE or review.object is None:
        return Verdict.allow()
    label = review.settings().opt_string("label") or "owner"
    findings = []
    if review.object.label(label) is None:
        findings.append(
            Finding.error(f"missing label {rust_debug(label)}: who owns this?").at(f"metadata.labels.{label}")
        )
    return Verdict.from_findings(findings)
"#;

const PACKAGE_JSON: &str = r#"{
  "name": "@NAME@",
  "version": "0.1.0",
  "description": "A Tessera plugin.",
  "type": "module",
  "private": true,
  "main": "index.js",
  "tessera": {
    "world": "@WORLD@",
    "sdk": @SDK@
  }
}
"#;

const COMPOSITION_JS: &str = r#"// The `@NAME@` composition plugin: a `Greeting` becomes a ConfigMap.

import { Expansion, Metadata, composition } from 'tessera-sdk';

/** The kind this plugin expands. */
const API_VERSION = 'example.tessera.dev/v1';

function metadata() {
  return new Metadata('@NAME@', '0.1.0')
    .description('A Tessera plugin.')
    .handles(API_VERSION, 'Greeting')
    .settingsSchema({
      type: 'object',
      additionalProperties: false,
      properties: { punctuation: { type: 'string', maxLength: 3 } },
    });
}

/**
 * Expands a `Greeting` into a ConfigMap holding the message.
 * @param {import('tessera-sdk').CompositionRequest} request
 */
function expand(request) {
  const who = request.spec().str('who');
  const punctuation = request.settings().optStr('punctuation') ?? '!';
  const name = request.composite.name();
  const config = request
    .child('v1', 'ConfigMap', `${name}-greeting`)
    .with('data', { message: `Hello, ${who}${punctuation}` });
  return new Expansion().child(config).status({ greeted: who }).ready(true);
}

export default composition({ metadata, expand });
"#;

const POLICY_JS: &str = r#"// The `@NAME@` policy plugin: objects must name an owner.

import { Finding, Metadata, Verdict, policy, rustDebug } from 'tessera-sdk';

function metadata() {
  return new Metadata('@NAME@', '0.1.0')
    .description('A Tessera plugin.')
    .settingsSchema({
      type: 'object',
      additionalProperties: false,
      properties: { label: { type: 'string', minLength: 1 } },
    });
}

/**
 * Denies objects without the owner label (settings.label, default `owner`).
 * @param {import('tessera-sdk').Review} review
 */
function validate(review) {
  if (review.operation === 'delete' || review.object === undefined) return Verdict.allow();
  const label = review.settings().optStr('label') ?? 'owner';
  const findings = [];
  if (review.object.label(label) === undefined) {
    findings.push(Finding.error(`missing label ${rustDebug(label)}: who owns this?`).at(`metadata.labels.${label}`));
  }
  return Verdict.fromFindings(findings);
}

export default policy({ metadata, validate });
"#;

const README_GUEST: &str = r#"# @NAME@

A Tessera plugin, generated by `tessera new`.

```sh
tessera build          # target/wasm32-wasip2/release/@CRATE@.wasm
tessera test           # runs tests/*.tessera.yaml (builds the plugin)
tessera inspect target/wasm32-wasip2/release/@CRATE@.wasm
```

Edit `@SOURCE@`; describe what it should do in `tests/@NAME@.tessera.yaml`.
The first build installs the pinned toolchain into the tools cache.
"#;
