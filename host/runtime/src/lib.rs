//! The Tessera host runtime.
//!
//! A thin, opinionated layer over wasmtime that runs Tessera plugins:
//! WebAssembly components implementing the `composition` world (`expand` a
//! composite into children) or the `policy` world (`validate` an object).
//! Nothing outside this crate needs to import wasmtime.
//!
//! - One [`Runtime`] per process: engine (epoch interruption), linker with
//!   WASI 0.2 (nothing granted) and the host interfaces, on-disk cache of
//!   precompiled plugins.
//! - A [`Plugin`] is compiled once (or loaded from the cache), checked
//!   against its world, pre-linked, and asked for its metadata.
//! - A [`Binding`] adds settings (checked against the plugin's schema),
//!   [`Limits`], allowed reads and the secret key; each
//!   [`Binding::expand`] / [`Binding::validate`] runs in a fresh store and
//!   instance (unless the binding opts into [`Reuse`]) with a deadline and
//!   a memory cap.
//! - Errors come in three classes that are never confused: the plugin
//!   refused ([`Error::Refused`]), the plugin broke ([`Error::Crashed`]),
//!   the host failed ([`Error::Host`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_runtime::Error> {
//! use tessera_runtime::{Binding, Context, Runtime};
//! use serde_json::json;
//!
//! let runtime = Runtime::builder().build()?;
//! let plugin = runtime.load_file("database.wasm").await?;
//! let binding = Binding::new(plugin, json!({}))?;
//! let composite = json!({
//!     "apiVersion": "platform.tessera.dev/v1alpha1",
//!     "kind": "Database",
//!     "metadata": {"name": "orders", "namespace": "shop"},
//!     "spec": {"engine": "postgres", "version": "16", "storage": "20Gi"},
//! });
//! let composed = binding.expand(&composite, &[], &Context::default()).await?;
//! for child in &composed.children {
//!     println!("{}", child["kind"]);
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod binding;
mod bindings;
mod cache;
mod error;
mod limits;
mod plugin;
pub mod provenance;
mod resources;
mod runtime;
mod secrets;
mod state;

pub use binding::{
    Binding, Composed, Condition, ConditionStatus, Context, Finding, Operation, Report, Reuse,
    ReuseStats, Review, Severity, UserInfo, Verdict,
};
pub use error::{CrashKind, Error, Phase, PluginId, Result};
pub use limits::{Limits, LimitsError, LimitsSpec, parse_bytes, parse_duration};
pub use plugin::{KindRef, Metadata, Plugin, World};
pub use resources::{ALL_NAMESPACES, Fixtures, ReadAccess, ReadRule, ResourceSource};
pub use runtime::{
    ArtifactSource, DEFAULT_GUEST_THREADS, DEFAULT_INSTANCE_SLOTS, EPOCH_TICK, Runtime,
    RuntimeBuilder,
};
pub use secrets::{KeyTooShort, MIN_KEY_BYTES, SecretKey};
pub use state::{LogLevel, LogLine};
