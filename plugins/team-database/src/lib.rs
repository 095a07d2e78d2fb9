//! The `team-database` composition plugin: an example of a plugin that
//! reads the cluster.
//!
//! A `TeamDatabase` (`platform.tessera.dev/v1alpha1`) becomes a ConfigMap
//! `<name>-database` whose `engine`, `version` and `storage` come from the
//! composite's spec, else from the ConfigMap `database-defaults` it reads
//! through the host, else from built-in defaults; its `team` data and label
//! come from that ConfigMap's `team` key.
//!
//! The ConfigMap is read in the composite's own namespace, or in the one
//! the `defaultsNamespace` setting names — which the binding's `reads` must
//! then name too, or the read fails with the host's error, offline and in
//! the cluster alike. Bindings allow the read with:
//!
//! ```yaml
//! reads: [{apiVersion: v1, kind: ConfigMap}]
//! ```

use tessera_sdk::{CompositionRequest, Expansion, Metadata, Object, Result, host, json};

/// The apiVersion of the composite this plugin expands.
pub const API_VERSION: &str = "platform.tessera.dev/v1alpha1";

/// The kind of the composite this plugin expands.
pub const KIND: &str = "TeamDatabase";

/// The ConfigMap of defaults the plugin reads.
pub const DEFAULTS: &str = "database-defaults";

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("team-database", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles(API_VERSION, KIND)
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "defaultsNamespace": {"type": "string", "minLength": 1}
            }
        }))
}

/// Expands a `TeamDatabase`.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let spec = request.spec();
    let namespace = request
        .settings()
        .opt_str("defaultsNamespace")?
        .or(request.composite.namespace());
    let defaults: Option<Object> = host::get_resource("v1", "ConfigMap", namespace, DEFAULTS)?;
    let default = |key: &str, builtin: &str| -> String {
        defaults
            .as_ref()
            .and_then(|d| d.as_value().pointer(&format!("/data/{key}")))
            .and_then(|v| v.as_str())
            .unwrap_or(builtin)
            .to_string()
    };
    let engine = match spec.opt_str("engine")? {
        Some(engine) => engine.to_string(),
        None => default("engine", "postgres"),
    };
    let version = match spec.opt_str("version")? {
        Some(version) => version.to_string(),
        None => default("version", "16"),
    };
    let storage = match spec.opt_str("storage")? {
        Some(storage) => storage.to_string(),
        None => default("storage", "1Gi"),
    };
    let team = default("team", "unassigned");

    let name = format!("{}-database", request.composite.name());
    let config = request
        .child("v1", "ConfigMap", name)
        .with_label("team", &team)
        .with(
            "data",
            json!({"engine": engine, "version": version, "storage": storage, "team": team}),
        );
    Ok(Expansion::new().child(config).ready(true))
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);
