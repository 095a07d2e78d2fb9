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
            let problems: Vec<String> = schema
                .iter_errors(&settings)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("{at}: {e}")
                    }
                })
                .collect();
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
        let mut lease = Runtime::lease(&self.runtime, &limits, env, 0).await;
        let store = &mut lease.store;
        let raw = crate::binding::within(&limits, Phase::Metadata, async {
            match &self.pre {
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
        })
        .await
        .map_err(|(phase, e)| classify(e, store, &self.id, phase))?;
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

pub(crate) fn compile_schema(id: &PluginId, schema: &Value) -> Result<jsonschema::Validator> {
    jsonschema::validator_for(schema).map_err(|e| Error::Crashed {
        plugin: id.clone(),
        phase: Phase::Metadata,
        kind: CrashKind::InvalidOutput,
        message: format!("its settings schema is not a valid JSON schema: {e}"),
        stderr: String::new(),
    })
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
