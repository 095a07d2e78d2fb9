//! A loaded plugin: compiled, checked against its world, pre-linked.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use wasmtime::Store;

use crate::bindings;
use crate::bindings::tessera::plugin::types as wit;
use crate::error::{CrashKind, Error, Phase, PluginId, Result};
use crate::limits::Limits;
use crate::runtime::{ArtifactSource, Runtime, RuntimeInner};
use crate::state::State;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Exports `expand`.
    Composition,
    /// Exports `validate`.
    Policy,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Composition => "composition",
            World::Policy => "policy",
        })
    }
}

/// A kind a plugin handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindRef {
    /// `apiVersion`, e.g. `platform.tessera.dev/v1alpha1`.
    pub api_version: String,
    /// `kind`, e.g. `Database`.
    pub kind: String,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// A one-line description.
    pub description: String,
    /// The kinds it handles.
    pub kinds: Vec<KindRef>,
    /// The JSON schema of its settings.
    pub settings_schema: Option<Value>,
}

#[derive(Clone)]
pub(crate) enum PluginPre {
    Composition(bindings::CompositionPre<State>),
    Policy(bindings::policy::PolicyPre<State>),
}

/// A loaded plugin. Cheap to clone; each evaluation gets a fresh instance
/// unless its binding opts into reuse ([`crate::Reuse`]).
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    pub(crate) id: PluginId,
    pub(crate) path: PathBuf,
    pub(crate) world: World,
    pub(crate) metadata: Metadata,
    pub(crate) settings_schema: Option<jsonschema::Validator>,
    pub(crate) pre: PluginPre,
    pub(crate) size: usize,
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
    pub(crate) artifact: ArtifactSource,
    pub(crate) runtime: Arc<RuntimeInner>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.inner.id)
            .field("world", &self.inner.world)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name and digest.
    pub fn id(&self) -> &PluginId {
        &self.inner.id
    }

    /// `sha256:<hex>` of the plugin's bytes.
    pub fn digest(&self) -> &str {
        &self.inner.id.digest
    }

    /// The world it implements.
    pub fn world(&self) -> World {
        self.inner.world
    }

    /// What it says about itself.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The size of its `.wasm` in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The instances it imports (`tessera:plugin/host@0.1.0`,
    /// `wasi:cli/environment@0.2.x`, ...), sorted.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// The names it exports, sorted.
    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    /// The version of the Tessera WIT package it was built against, read
    /// from its imports of `tessera:plugin/...@<version>`.
    pub fn wit_version(&self) -> Option<&str> {
        self.inner
            .imports
            .iter()
            .find_map(|name| name.strip_prefix("tessera:plugin/")?.split_once('@'))
            .map(|(_, version)| version)
    }

    /// Whether the runtime that loaded it counts fuel
    /// ([`crate::RuntimeBuilder::fuel`], [`Runtime::fuel_enabled`]): only
    /// then does a [`Limits::fuel`] budget apply to its evaluations; without
    /// fuel counting, a budget is ignored.
    pub fn fuel_enabled(&self) -> bool {
        self.inner.runtime.fuel
    }

    /// Whether its compiled code came from the cache.
    pub fn artifact_source(&self) -> ArtifactSource {
        self.inner.artifact
    }

    /// Checks settings against the plugin's schema. `null` reads as `{}`;
    /// anything but an object is refused.
    pub fn check_settings(&self, settings: Value) -> Result<Value> {
        let settings = if settings.is_null() {
            Value::Object(Default::default())
        } else {
            settings
        };
        if !settings.is_object() {
            return Err(Error::Settings {
                plugin: self.inner.id.clone(),
                message: "settings must be an object".into(),
            });
        }
        if let Some(schema) = &self.inner.settings_schema {
            let problems = settings_problems(schema, &settings);
            if !problems.is_empty() {
                return Err(Error::Settings {
                    plugin: self.inner.id.clone(),
                    message: problems.join("; "),
                });
            }
        }
        Ok(settings)
    }

    /// A runtime handle for the engine this plugin was compiled for.
    pub(crate) fn runtime(&self) -> &RuntimeInner {
        &self.inner.runtime
    }
}

impl PluginInner {
    pub(crate) async fn call_metadata(&self) -> Result<Metadata> {
        let limits = Limits::default();
        let env = Runtime::metadata_env(&self.id.name, &limits);
        let lease = Runtime::lease(&self.runtime, &limits, env, 0).await;
        // Guest code: off the async workers, like every evaluation.
        let pre = self.pre.clone();
        let (lease, raw) = Runtime::run_guest(
            &self.runtime,
            lease,
            &limits,
            Phase::Metadata,
            async move |store| {
                match &pre {
                    PluginPre::Composition(pre) => {
                        let instance = pre
                            .instantiate_async(&mut *store)
                            .await
                            .map_err(|e| (Phase::Instantiate, e))?;
                        instance.call_metadata(&mut *store).await
                    }
                    PluginPre::Policy(pre) => {
                        let instance = pre
                            .instantiate_async(&mut *store)
                            .await
                            .map_err(|e| (Phase::Instantiate, e))?;
                        instance.call_metadata(&mut *store).await
                    }
                }
                .map_err(|e| (Phase::Metadata, e))
            },
        )
        .await
        .map_err(|e| {
            Error::host(
                Some(&self.id),
                Phase::Metadata,
                "the metadata call's thread failed",
                e,
            )
        })?;
        let raw = raw.map_err(|(phase, e)| classify(e, &lease.store, &self.id, phase))?;
        metadata_from_wit(raw).map_err(|message| Error::Crashed {
            plugin: self.id.clone(),
            phase: Phase::Metadata,
            kind: CrashKind::InvalidOutput,
            message,
            stderr: String::new(),
        })
    }
}

/// Bounds on what a plugin may say about itself. The name and version are
/// stamped on every child (`tessera.dev/composed-by`), so they must be short
/// and printable.
const MAX_NAME: usize = 63;
const MAX_VERSION: usize = 64;
const MAX_DESCRIPTION: usize = 1024;
const MAX_KINDS: usize = 256;
const MAX_SCHEMA: usize = 256 << 10;

fn metadata_from_wit(raw: wit::PluginMetadata) -> std::result::Result<Metadata, String> {
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= MAX_NAME
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(format!(
            "metadata name must be 1-{MAX_NAME} lowercase letters, digits and '-', got {:?}",
            raw.name.chars().take(80).collect::<String>()
        ));
    }
    let version_ok = !raw.version.is_empty()
        && raw.version.len() <= MAX_VERSION
        && raw.version.bytes().all(|b| b.is_ascii_graphic());
    if !version_ok {
        return Err(format!(
            "metadata version must be 1-{MAX_VERSION} printable ASCII characters, got {:?}",
            raw.version.chars().take(80).collect::<String>()
        ));
    }
    if raw.description.len() > MAX_DESCRIPTION {
        return Err(format!(
            "metadata description is longer than {MAX_DESCRIPTION} bytes"
        ));
    }
    if raw.kinds.len() > MAX_KINDS {
        return Err(format!("metadata lists more than {MAX_KINDS} kinds"));
    }
    if raw
        .settings_schema
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SCHEMA)
    {
        return Err(format!(
            "metadata settings schema is larger than {} KiB",
            MAX_SCHEMA >> 10
        ));
    }
    let settings_schema = raw
        .settings_schema
        .map(|text| {
            serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("metadata settings-schema is not valid JSON: {e}"))
        })
        .transpose()?;
    Ok(Metadata {
        name: raw.name,
        version: raw.version,
        description: raw.description,
        kinds: raw
            .kinds
            .into_iter()
            .map(|k| KindRef {
                api_version: k.api_version,
                kind: k.kind,
            })
            .collect(),
        settings_schema,
    })
}

// Bounds on a plugin's settings schema. The schema comes from the plugin's
// `metadata`, that is from untrusted code, and the host compiles it and
// validates settings against it in host code, outside any deadline, so it
// is bounded before it is compiled (`bound_schema`).
//
// Bounding the work, not a time budget: validation is host code, and a
// deadline for host code could only be a thread the caller stops waiting
// for; a Rust thread cannot be stopped, so a runaway validation would keep
// its core and its memory after the caller gave up. Instead the schema is
// made small where it counts: the compiler and the validator do work in
// proportion to the schema with every `$ref` expanded (an `anyOf` of two
// references to a definition that is itself such an `anyOf`, repeated,
// doubles at each level), so that expanded size is what is capped; the
// regular expressions run with a backtracking limit; and settings are
// written by the binding's owner, not by the plugin. With these bounds a
// schema at the limit compiles and checks `{}` in milliseconds.

/// How deep the schema may nest, counting every `$ref` followed as a level.
const MAX_SCHEMA_DEPTH: usize = 64;
/// How many JSON values the schema may hold with every `$ref` expanded. A
/// large hand-written settings schema has a few thousand.
const MAX_SCHEMA_NODES: usize = 100_000;
/// How deeply `allOf` / `anyOf` / `oneOf` / `not` / `if` / `then` / `else` /
/// `dependentSchemas` may nest in one another (with `$ref` expanded).
const MAX_COMBINATOR_NESTING: usize = 16;
/// How many distinct `pattern` / `patternProperties` regular expressions a
/// schema may hold; each compiles to at most `PATTERN_SIZE_LIMIT` bytes (and
/// its lazy DFA cache as much), so all of them together to 32 MiB at most.
const MAX_PATTERNS: usize = 64;
const PATTERN_SIZE_LIMIT: usize = 256 << 10;
/// Backtracking steps one match of a `fancy-regex` pattern (lookaround,
/// backreferences) may take before it fails.
const PATTERN_BACKTRACK_LIMIT: usize = 100_000;
/// Settings errors reported at most; past that validation stops.
const MAX_SETTINGS_ERRORS: usize = 20;
/// Longest settings error kept (an error can quote the settings).
const MAX_SETTINGS_ERROR_LEN: usize = 512;

/// Keywords whose subschemas are alternatives or conditions, each of which
/// the validator may evaluate against the same value.
const COMBINATORS: &[&str] = &[
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
];

/// The `$schema` values a settings schema may declare: drafts whose
/// meta-schemas jsonschema bundles (nothing is fetched for them).
const KNOWN_DRAFTS: &[&str] = &[
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-06/schema#",
];

/// Refuses every retrieval: a settings schema may only refer to itself.
/// `bound_schema` already refuses references that leave the schema; this
/// keeps it so whatever features of jsonschema a build enables.
struct NoRetrieval;

impl jsonschema::Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("a settings schema may not fetch anything (asked for {uri})").into())
    }
}

pub(crate) fn compile_schema(id: &PluginId, schema: &Value) -> Result<jsonschema::Validator> {
    let invalid = |message: String| Error::Crashed {
        plugin: id.clone(),
        phase: Phase::Metadata,
        kind: CrashKind::InvalidOutput,
        message: tessera_types::text::one_line(tessera_types::text::truncate(
            &format!("its settings schema {message}"),
            MAX_SETTINGS_ERROR_LEN,
        )),
        stderr: String::new(),
    };
    bound_schema(schema).map_err(|why| invalid(format!("is refused: {why}")))?;
    jsonschema::options()
        .with_retriever(NoRetrieval)
        .with_pattern_options(
            jsonschema::PatternOptions::fancy_regex()
                .backtrack_limit(PATTERN_BACKTRACK_LIMIT)
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_SIZE_LIMIT),
        )
        .build(schema)
        .map_err(|e| invalid(format!("is not a valid JSON schema: {e}")))
}

/// What is wrong with `settings`, at most `MAX_SETTINGS_ERRORS` entries of
/// at most `MAX_SETTINGS_ERROR_LEN` bytes each. The schema was bounded before
/// it was compiled (`bound_schema`), so the validation is small; the errors
/// are taken lazily and validation stops after the last one kept.
fn settings_problems(schema: &jsonschema::Validator, settings: &Value) -> Vec<String> {
    let mut errors = schema.iter_errors(settings);
    let mut problems: Vec<String> = errors
        .by_ref()
        .take(MAX_SETTINGS_ERRORS)
        .map(|e| {
            let at = e.instance_path().to_string();
            let text = if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            };
            tessera_types::text::truncate(&text, MAX_SETTINGS_ERROR_LEN).to_string()
        })
        .collect();
    if errors.next().is_some() {
        problems.push(format!(
            "(only the first {MAX_SETTINGS_ERRORS} errors are shown)"
        ));
    }
    problems
}

/// Checks a settings schema against the bounds above before anything
/// compiles it; the error says which bound and where.
pub(crate) fn bound_schema(schema: &Value) -> std::result::Result<(), String> {
    let mut walk = SchemaWalk {
        root: schema,
        nodes: 0,
        patterns: std::collections::HashSet::new(),
        expanding: Vec::new(),
    };
    walk.visit(schema, 0, 0, true)
}

/// A walk over a schema that follows each `$ref` where it is used, as the
/// validator does. It stops at the first bound passed, so the walk itself
/// visits at most `MAX_SCHEMA_NODES` values.
struct SchemaWalk<'a> {
    root: &'a Value,
    nodes: usize,
    patterns: std::collections::HashSet<&'a str>,
    /// The references being expanded, outermost first: one met again is a
    /// cycle.
    expanding: Vec<&'a str>,
}

impl<'a> SchemaWalk<'a> {
    fn visit(
        &mut self,
        value: &'a Value,
        depth: usize,
        combinators: usize,
        root: bool,
    ) -> std::result::Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_SCHEMA_NODES {
            return Err(format!(
                "it has more than {MAX_SCHEMA_NODES} values with every `$ref` expanded"
            ));
        }
        if depth > MAX_SCHEMA_DEPTH {
            return Err(format!(
                "it nests deeper than {MAX_SCHEMA_DEPTH} levels (counting each `$ref` followed)"
            ));
        }
        if combinators > MAX_COMBINATOR_NESTING {
            return Err(format!(
                "allOf/anyOf/oneOf/not/if/then/else nest deeper than {MAX_COMBINATOR_NESTING} levels"
            ));
        }
        let map = match value {
            Value::Array(items) => {
                for item in items {
                    self.visit(item, depth + 1, combinators, false)?;
                }
                return Ok(());
            }
            Value::Object(map) => map,
            _ => return Ok(()),
        };
        for (key, child) in map {
            // Keys are checked wherever they appear, in data (`default`,
            // `enum`) and property names too: stricter than needed, and it
            // needs no knowledge of which values are schemas.
            match (key.as_str(), child) {
                ("$ref" | "$dynamicRef" | "$recursiveRef", Value::String(reference)) => {
                    self.follow(key, reference, depth, combinators)?;
                }
                ("$schema", Value::String(draft))
                    if !root || !KNOWN_DRAFTS.contains(&draft.as_str()) =>
                {
                    return Err(format!(
                        "`$schema: {draft}` is not allowed; only the root may name a draft, one of {}",
                        KNOWN_DRAFTS.join(", ")
                    ));
                }
                ("$id", Value::String(uri)) if !root => {
                    // An inner `$id` starts a resource whose `#/...` refer to
                    // it, not to the root this walk resolves against.
                    return Err(format!(
                        "`$id: {uri}` below the root is not allowed (one resource per schema)"
                    ));
                }
                ("pattern", Value::String(pattern)) => self.pattern(pattern)?,
                ("patternProperties", Value::Object(patterns)) => {
                    for pattern in patterns.keys() {
                        self.pattern(pattern)?;
                    }
                }
                _ => {}
            }
            let nested = if COMBINATORS.contains(&key.as_str()) {
                combinators + 1
            } else {
                combinators
            };
            self.visit(child, depth + 1, nested, false)?;
        }
        Ok(())
    }

    fn follow(
        &mut self,
        keyword: &str,
        reference: &'a str,
        depth: usize,
        combinators: usize,
    ) -> std::result::Result<(), String> {
        let Some(pointer) = reference.strip_prefix('#') else {
            return Err(format!(
                "`{keyword}: {reference}` points outside the schema; only `#/...` references within it are allowed (the host fetches nothing)"
            ));
        };
        if !(pointer.is_empty() || pointer.starts_with('/')) || pointer.contains('%') {
            return Err(format!(
                "`{keyword}: {reference}` is not a plain JSON pointer within the schema (`#/...`)"
            ));
        }
        let Some(target) = self.root.pointer(pointer) else {
            return Err(format!("`{keyword}: {reference}` points at nothing"));
        };
        if self.expanding.contains(&reference) {
            return Err(format!(
                "`{keyword}: {reference}` refers to itself; recursive references are not allowed"
            ));
        }
        self.expanding.push(reference);
        self.visit(target, depth + 1, combinators, false)?;
        self.expanding.pop();
        Ok(())
    }

    fn pattern(&mut self, pattern: &'a str) -> std::result::Result<(), String> {
        self.patterns.insert(pattern);
        if self.patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "it has more than {MAX_PATTERNS} distinct regular expressions"
            ));
        }
        Ok(())
    }
}

/// Turns a wasmtime error from instantiating or calling a plugin into the
/// right class of [`Error`].
pub(crate) fn classify(
    error: wasmtime::Error,
    store: &Store<State>,
    id: &PluginId,
    phase: Phase,
) -> Error {
    let state = store.data();
    let stderr = state.stderr.text();
    if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        // Not the plugin's fault: every pooled slot is busy.
        return Error::Host {
            plugin: Some(id.clone()),
            phase,
            message: format!("no free instance slot: {full}"),
            source: None,
        };
    }
    let trap = error.downcast_ref::<wasmtime::Trap>();
    let (kind, message) = match trap {
        // These say exactly what happened, whatever came before.
        Some(wasmtime::Trap::Interrupt) => {
            (CrashKind::Deadline, "ran past its deadline".to_string())
        }
        Some(wasmtime::Trap::OutOfFuel) => (CrashKind::OutOfFuel, "ran out of fuel".to_string()),
        Some(wasmtime::Trap::StackOverflow) => (
            CrashKind::StackOverflow,
            wasmtime::Trap::StackOverflow.to_string(),
        ),
        // A table the limiter refused (at instantiation, or a `table.grow`
        // the plugin then died of): host memory outside linear memory.
        _ if state.limiter.hit_table_cap => (
            CrashKind::OutOfMemory,
            format!(
                "tried to grow its tables past the {} elements (all tables together) the host allows ({})",
                crate::state::MAX_TABLE_ELEMENTS,
                root_message(&error)
            ),
        ),
        // A generic trap after a refused `memory.grow` is how language
        // runtimes die of an allocation failure.
        _ if state.limiter.hit_memory_cap => (
            CrashKind::OutOfMemory,
            format!(
                "tried to grow its memory past the {} MiB cap ({})",
                state.limiter.cap_mib(),
                root_message(&error)
            ),
        ),
        Some(other) => (CrashKind::Trap, other.to_string()),
        // wasmtime's hostcall fuel ran out while copying the answer (see
        // `Runtime::new_store`); its error type is private, its message is
        // not.
        None if root_message(&error)
            .contains("fuel allocated for hostcalls has been exhausted") =>
        {
            (
                CrashKind::OutputTooLarge,
                format!(
                    "returned more data than the host copies for one call ({} bytes)",
                    state.hostcall_budget
                ),
            )
        }
        None => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => (
                CrashKind::Trap,
                format!("called exit({}) instead of returning", exit.0),
            ),
            None => (CrashKind::Trap, root_message(&error)),
        },
    };
    Error::Crashed {
        plugin: id.clone(),
        phase,
        kind,
        message,
        stderr,
    }
}

fn root_message(error: &wasmtime::Error) -> String {
    error
        .chain()
        .last()
        .map(|e| e.to_string())
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::*;

    fn id() -> PluginId {
        PluginId {
            name: "hostile".into(),
            digest: "sha256:00".into(),
        }
    }

    /// `#/$defs/d{levels}`, where each `d{k}` is an `anyOf` of two
    /// references to `d{k-1}` and `d0` wants a string: a small schema whose
    /// expansion doubles at each level.
    fn doubling(levels: usize) -> Value {
        let mut defs = serde_json::Map::new();
        defs.insert("d0".into(), json!({"type": "string"}));
        for k in 1..=levels {
            let below = format!("#/$defs/d{}", k - 1);
            defs.insert(
                format!("d{k}"),
                json!({"anyOf": [{"$ref": below}, {"$ref": below}]}),
            );
        }
        json!({"$defs": defs, "$ref": format!("#/$defs/d{levels}")})
    }

    fn refused(schema: &Value) -> String {
        let started = Instant::now();
        let err = compile_schema(&id(), schema).expect_err("refused");
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        match &err {
            Error::Crashed { kind, .. } => assert_eq!(*kind, CrashKind::InvalidOutput),
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("hostile"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        text
    }

    #[test]
    fn an_exponential_schema_is_refused_before_it_is_compiled() {
        // 2^40 expanded checks; refused after the walk reaches its bound.
        let text = refused(&doubling(40));
        assert!(text.contains("more than 100000 values"), "{text}");
    }

    #[test]
    fn a_schema_at_the_bounds_compiles_and_validates_quickly() {
        // The largest doubling schema the bounds allow: its expansion is
        // just under MAX_SCHEMA_NODES, and `{}` fails every branch, so the
        // validator does all of it (and collects every error's context).
        let levels = (1..=MAX_COMBINATOR_NESTING)
            .take_while(|&k| bound_schema(&doubling(k)).is_ok())
            .last()
            .unwrap();
        assert!(levels >= 12, "{levels}");
        let started = Instant::now();
        let validator = compile_schema(&id(), &doubling(levels)).unwrap();
        let problems = settings_problems(&validator, &json!({}));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].len() <= MAX_SETTINGS_ERROR_LEN);
        // Not a speed target (CI shares two cores): proves it is bounded.
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn deep_and_combinator_heavy_schemas_are_refused() {
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        let text = refused(&deep);
        assert!(text.contains("deeper than 64 levels"), "{text}");

        let mut nested = json!({"type": "string"});
        for _ in 0..20 {
            nested = json!({"anyOf": [nested, {"type": "integer"}]});
        }
        let text = refused(&nested);
        assert!(text.contains("nest deeper than 16 levels"), "{text}");

        let mut many = serde_json::Map::new();
        for i in 0..=MAX_PATTERNS {
            many.insert(format!("p{i}"), json!({"pattern": format!("^a{{{i}}}$")}));
        }
        let text = refused(&json!({"properties": many}));
        assert!(
            text.contains("more than 64 distinct regular expressions"),
            "{text}"
        );
    }

    #[test]
    fn a_schema_cannot_fetch_anything() {
        // Nothing listens on port 1 and nothing is asked: refused before
        // compiling, without a connection attempt, at once.
        for reference in [
            "http://127.0.0.1:1/x",
            "https://127.0.0.1:1/x",
            "file:///etc/passwd",
            "other.json#/a",
            "urn:x",
        ] {
            let text = refused(&json!({"$ref": reference}));
            assert!(text.contains("points outside the schema"), "{text}");
            let nested = json!({"properties": {"a": {"items": {"$ref": reference}}}});
            refused(&nested);
        }
        let text = refused(&json!({"$schema": "http://127.0.0.1:1/meta"}));
        assert!(text.contains("is not allowed"), "{text}");
        let text =
            refused(&json!({"properties": {"a": {"$id": "http://127.0.0.1:1/", "$ref": "#/x"}}}));
        assert!(text.contains("below the root"), "{text}");
        // And the compiler itself, past the walk, refuses any retrieval.
        let started = Instant::now();
        let err = jsonschema::options()
            .with_retriever(NoRetrieval)
            .build(&json!({"$ref": "http://127.0.0.1:1/x"}))
            .expect_err("no retrieval");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains("may not fetch anything"), "{err}");
    }

    #[test]
    fn recursive_and_dangling_references_are_refused() {
        let text = refused(&json!({"anyOf": [{"$ref": "#"}]}));
        assert!(
            text.contains("recursive references are not allowed"),
            "{text}"
        );
        let looped = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
        refused(&looped);
        let text = refused(&json!({"$ref": "#/$defs/missing"}));
        assert!(text.contains("points at nothing"), "{text}");
        let text = refused(&json!({"$ref": "#anchor"}));
        assert!(text.contains("not a plain JSON pointer"), "{text}");
    }

    #[test]
    fn ordinary_schemas_still_work() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://tessera.example/settings",
            "type": "object",
            "$defs": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
            "properties": {
                "owner": {"$ref": "#/$defs/name"},
                "team": {"$ref": "#/$defs/name"},
                "size": {"enum": ["small", "large"], "default": "small"}
            },
            "required": ["owner"]
        });
        let validator = compile_schema(&id(), &schema).unwrap();
        assert!(settings_problems(&validator, &json!({"owner": "ann"})).is_empty());
        let problems = settings_problems(&validator, &json!({"owner": "Ann", "team": 3}));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn settings_errors_are_capped() {
        let required: Vec<String> = (0..100).map(|i| format!("field{i}")).collect();
        let validator = compile_schema(&id(), &json!({"required": required})).unwrap();
        let problems = settings_problems(&validator, &json!({}));
        assert_eq!(problems.len(), MAX_SETTINGS_ERRORS + 1, "{problems:?}");
        assert!(problems.last().unwrap().contains("only the first 20"));
    }
}
