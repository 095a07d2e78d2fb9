//! The custom resources the controller and the webhook read: `Composition`
//! and `Policy` (group `tessera.dev`, version `v1alpha1`, both
//! cluster-scoped). `deploy/crds.yaml` is generated from these types
//! (`tessera-controller crds`) and a test checks that it matches.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_runtime::Limits;

/// Which composite resources a composition expands, and with which plugin.
///
/// ```yaml
/// apiVersion: tessera.dev/v1alpha1
/// kind: Composition
/// metadata: {name: databases}
/// spec:
///   composite: {apiVersion: platform.tessera.dev/v1alpha1, kind: Database}
///   plugin: {path: /plugins/database.wasm}
///   settings: {maxReplicas: 5}
///   policies: [require-labels]
/// ```
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tessera.dev",
    version = "v1alpha1",
    kind = "Composition",
    status = "CompositionStatus",
    shortname = "comp",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.composite.kind"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Plugin","type":"string","jsonPath":".status.pluginDigest","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CompositionSpec {
    /// The composite kind this composition expands.
    pub composite: TypeRef,
    /// The composition plugin.
    pub plugin: PluginSource,
    /// Settings passed to the plugin, checked against its settings schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub settings: Option<Value>,
    /// Limits for each evaluation; unset fields keep the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PluginLimits>,
    /// Names of the `Policy` objects every child must pass before it is
    /// applied. A child denied by an enforcing policy stops the whole
    /// composite: nothing is applied or pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

/// An apiVersion and kind.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeRef {
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// The kind.
    pub kind: String,
}

/// Where a plugin's bytes come from: a file on the controller's file system
/// (e.g. a mounted volume) or an HTTP(S) URL. `sha256` is required with
/// `url` and optional with `path`; when given, bytes with another digest are
/// refused.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSource {
    /// Path of a `.wasm` file readable by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// URL of a `.wasm` file (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The expected sha256 of the plugin's bytes: 64 hex digits, optionally
    /// prefixed with `sha256:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Limits of one evaluation. Durations are written like `500ms` or `2s`,
/// sizes as Kubernetes quantities (`64Mi`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginLimits {
    /// Wall-clock deadline of one call (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Memory cap of one instance (default `64Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Cap on the answer's size (default `4Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// What the controller reports about a composition.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionStatus {
    /// `Ready`: the plugin is loaded and its settings accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `sha256:<hex>` of the loaded plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
}

/// A policy plugin, what it judges, and what happens when it denies or
/// fails. Used by the admission webhook for matching requests, and by the
/// controller for the children of the compositions that name it.
///
/// ```yaml
/// apiVersion: tessera.dev/v1alpha1
/// kind: Policy
/// metadata: {name: require-labels}
/// spec:
///   plugin: {path: /plugins/require_labels.wasm}
///   settings: {labels: [team]}
///   match:
///     rules: [{apiGroups: [""], kinds: [ConfigMap], operations: [CREATE, UPDATE]}]
///   mode: Enforce
///   failurePolicy: Fail
/// ```
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tessera.dev",
    version = "v1alpha1",
    kind = "Policy",
    status = "PolicyStatus",
    shortname = "tpol",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// The policy plugin.
    pub plugin: PluginSource,
    /// Settings passed to the plugin, checked against its settings schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub settings: Option<Value>,
    /// Limits for each evaluation. The webhook also caps the deadline well
    /// under the API server's webhook timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PluginLimits>,
    /// Which admission requests the webhook sends to this policy. Without
    /// rules the policy only checks the children of compositions naming it.
    #[serde(default, rename = "match")]
    pub match_: PolicyMatch,
    /// `Enforce` denies; `Audit` only warns.
    #[serde(default)]
    pub mode: PolicyMode,
    /// What to do when the plugin fails (trap, deadline, bad answer): `Fail`
    /// denies, `Ignore` allows with a warning.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

/// Which requests a policy judges.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMatch {
    /// A request matches when any rule matches. Empty: no admission request.
    #[serde(default)]
    pub rules: Vec<MatchRule>,
    /// Only objects in namespaces with these labels (cluster-scoped objects
    /// always match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// One admission rule: each list matches anything when it holds `*`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchRule {
    /// API groups (`""` for the core group).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Kinds, e.g. `ConfigMap`.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE` (default: CREATE and UPDATE).
    #[serde(default)]
    pub operations: Vec<String>,
}

/// What a policy does with a deny.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PolicyMode {
    /// Deny the request (or stop the composite).
    #[default]
    Enforce,
    /// Allow, with the findings as warnings (and events in the controller).
    Audit,
}

/// What a policy does when its plugin fails.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailurePolicy {
    /// Fail closed: deny.
    #[default]
    Fail,
    /// Fail open: allow with a warning.
    Ignore,
}

/// What the controller reports about a policy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// `Ready`: the plugin is loaded and its settings accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `sha256:<hex>` of the loaded plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
}

/// Settings: any JSON object; `settings:` left empty in YAML (null) reads as
/// no settings.
fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl PluginLimits {
    /// The runtime limits: the defaults with what this sets.
    pub fn to_limits(&self) -> Result<Limits, String> {
        let mut limits = Limits::default();
        if let Some(deadline) = &self.deadline {
            limits = limits
                .deadline(parse_duration(deadline).map_err(|e| format!("limits.deadline: {e}"))?);
        }
        if let Some(memory) = &self.memory {
            limits = limits
                .memory_bytes(parse_bytes(memory).map_err(|e| format!("limits.memory: {e}"))?);
        }
        if let Some(output) = &self.output {
            limits = limits
                .max_output_bytes(parse_bytes(output).map_err(|e| format!("limits.output: {e}"))?);
        }
        Ok(limits)
    }
}

/// Parses `250ms`, `2s`, `1m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 500ms or 2s, got {text:?}"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.saturating_mul(60)),
        _ => {
            return Err(format!(
                "expected a duration like 500ms or 2s, got {text:?}"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("must be more than zero, got {text:?}"));
    }
    Ok(duration)
}

/// Parses a byte quantity: `64Mi`, `1Gi`, `512Ki`, `1M`, `4096`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let (number, unit) = split_unit(text);
    let value: usize = number
        .parse()
        .map_err(|_| format!("expected a quantity like 64Mi, got {text:?}"))?;
    let scale: usize = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(format!("expected a quantity like 64Mi, got {text:?}")),
    };
    match value.checked_mul(scale) {
        Some(0) => Err(format!("must be more than zero, got {text:?}")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("too large: {text:?}")),
    }
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(split)
}

/// The YAML stream of both CRDs, as committed in `deploy/crds.yaml`.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::from(
        "# Generated by `tessera-controller crds` from host/controller/src/crd.rs; do not edit.\n",
    );
    for crd in [Composition::crd(), Policy::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd).expect("a CRD serializes"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("2h").unwrap_err().contains("\"2h\""));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("1Ti").is_err());
        assert!(parse_bytes("99999999999999999999Gi").is_err());
    }

    #[test]
    fn limits_name_the_field() {
        let limits = PluginLimits {
            memory: Some("lots".into()),
            ..PluginLimits::default()
        };
        assert!(
            limits
                .to_limits()
                .unwrap_err()
                .starts_with("limits.memory:")
        );
    }

    #[test]
    fn crds_are_cluster_scoped_and_structural() {
        let yaml = crds_yaml();
        assert_eq!(yaml.matches("scope: Cluster").count(), 2, "{yaml}");
        assert!(yaml.contains("x-kubernetes-preserve-unknown-fields: true"));
    }
}
