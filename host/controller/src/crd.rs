//! The custom resources the controller and the webhook read: `Composition`
//! and `Policy` (group `tessera.dev`, version `v1alpha1`, both
//! cluster-scoped). `deploy/crds.yaml` is generated from these types
//! (`tessera-controller crds`) and a test checks that it matches.

use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_runtime::{Limits, LimitsError, LimitsSpec, ReadRule};

/// Which composite resources a composition expands, and with which plugin.
///
/// ```yaml
/// apiVersion: tessera.dev/v1alpha1
/// kind: Composition
/// metadata: {name: databases}
/// spec:
///   composite: {apiVersion: platform.tessera.dev/v1alpha1, kind: Database}
///   plugin: {oci: "oci://registry.example/plugins/database:1.2"}
///   settings: {maxReplicas: 5}
///   policies: [require-labels]
///   reads: [{apiVersion: v1, kind: ConfigMap}]
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
    /// What the plugin may read through the host (`get-resource`,
    /// `list-resources`): each entry a kind, by default in the composite's
    /// own namespace only. Reads are answered from watch caches the
    /// controller starts on first use; a composite is expanded again when
    /// an object it read changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ReadRule>,
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

/// Where a plugin's bytes come from: an OCI artifact in a registry (`oci`),
/// a file on the controller's file system (`path`, e.g. a mounted volume) or
/// an HTTP(S) URL (`url`). Exactly one of them. `sha256` is required with
/// `url` and optional with `path`; when given, bytes with another digest are
/// refused.
///
/// A new plugin is activated only after its self-test passes: the suite the
/// OCI artifact bundles (`tessera push --suite`), or the suite directory
/// `suite` names next to a `path` plugin. Until then, and whenever a newer
/// plugin is refused (unsigned, failing its suite, the registry down), the
/// plugin that was serving keeps serving.
///
/// ```yaml
/// plugin:
///   oci: oci://registry.example/plugins/database:1.2
///   pullSecrets: [{name: registry-credentials}]
///   verify:
///     allOf: [{kind: pubKey, key: "-----BEGIN PUBLIC KEY-----\n..."}]
/// ```
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSource {
    /// An OCI artifact: `oci://REGISTRY/REPO:TAG` or
    /// `oci://REGISTRY/REPO@sha256:HEX`. A tag is resolved to a digest on
    /// every plugin resync; only a new digest is downloaded and compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    /// Secrets of type `kubernetes.io/dockerconfigjson`, in the controller's
    /// namespace, with the registry's credentials (like a Pod's
    /// `imagePullSecrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<SecretName>,
    /// The keys that must have signed an `oci` plugin (cosign-compatible
    /// signatures), in addition to the controller's cluster-wide trust
    /// policy (`--trust-policy`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<TrustPolicySpec>,
    /// Path of a `.wasm` file readable by the controller. At most 64 MiB;
    /// a ConfigMap volume holds at most 1 MiB, so larger plugins ship
    /// through a registry (`oci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A directory of `*.tessera.yaml` suites next to a `path` plugin: its
    /// self-test, run before a new file is activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// URL of a `.wasm` file (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The expected sha256 of the plugin's bytes: 64 hex digits, optionally
    /// prefixed with `sha256:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A Secret named in the controller's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretName {
    /// The Secret's name.
    pub name: String,
}

/// A trust policy, in the shape of `tessera verify --trust-policy` files
/// (and Kubewarden's): every `allOf` key must have signed, and at least
/// `anyOf.minimumMatches` of the `anyOf` keys.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustPolicySpec {
    /// Keys that must each have signed the artifact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<TrustedKey>,
    /// Keys of which at least `minimumMatches` must have signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<AnyOfKeys>,
}

/// `anyOf` of a [`TrustPolicySpec`].
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnyOfKeys {
    /// How many of `signatures` must match (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_matches: Option<u32>,
    /// The keys.
    pub signatures: Vec<TrustedKey>,
}

/// One public key of a [`TrustPolicySpec`].
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct TrustedKey {
    /// `pubKey` (the only kind).
    #[serde(default = "pub_key")]
    pub kind: String,
    /// The ECDSA P-256 public key, PEM (`cosign.pub`).
    pub key: String,
}

fn pub_key() -> String {
    "pubKey".into()
}

/// Limits of one evaluation: the runtime's [`LimitsSpec`], the same type the
/// CLI's flags and test suites use (durations like `500ms`, sizes as
/// Kubernetes quantities like `64Mi`). See [`binding_limits`] for what the
/// cluster refuses.
pub type PluginLimits = LimitsSpec;

/// What the controller reports about a composition.
pub type CompositionStatus = PluginStatus<OfComposition>;

/// What the controller reports about a `Composition` or a `Policy`: one type
/// for both; `O` ([`OfComposition`] or [`OfPolicy`]) only chooses the
/// description in the object's CRD schema.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = describe_status::<O>)]
pub struct PluginStatus<O: StatusOwner> {
    /// `Ready`: a plugin is loaded and its settings accepted.
    /// `PluginUpToDate`: the serving plugin is the one the source names now;
    /// False when a newer one was refused (`SelfTestFailed`, `Untrusted`,
    /// `PullFailed`, ...) and the previous one keeps serving.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `sha256:<hex>` of the loaded plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
    /// The `oci` reference of the serving plugin, pinned to its manifest
    /// digest (`oci://REGISTRY/REPO:TAG@sha256:...`): after a restart, the
    /// plugin served again if the tag has moved to one that is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_ref: Option<String>,
    #[serde(skip)]
    owner: PhantomData<O>,
}

/// The kind of object a [`PluginStatus`] belongs to.
pub trait StatusOwner {
    /// The description of the status in the CRD schema.
    const DESCRIPTION: &'static str;
}

/// Marks the status of a [`Composition`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfComposition;

impl StatusOwner for OfComposition {
    const DESCRIPTION: &'static str = "What the controller reports about a composition.";
}

/// Marks the status of a [`Policy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfPolicy;

impl StatusOwner for OfPolicy {
    const DESCRIPTION: &'static str = "What the controller reports about a policy.";
}

fn describe_status<O: StatusOwner>(schema: &mut Schema) {
    schema.insert("description".into(), O::DESCRIPTION.into());
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
    /// What the plugin may read through the host: each entry a kind, by
    /// default in the reviewed object's namespace only (for a Composition's
    /// policies, the composite's), answered from the controller's watch
    /// caches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ReadRule>,
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
pub type PolicyStatus = PluginStatus<OfPolicy>;

/// Settings: any JSON object; `settings:` left empty in YAML (null) reads as
/// no settings.
fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The limits of a binding in the cluster: the defaults with what `spec`
/// sets. A fuel budget is refused: the controller's runtime does not count
/// fuel (it would slow every evaluation), and a budget that is silently not
/// enforced would be worse than none.
pub fn binding_limits(spec: &LimitsSpec) -> Result<Limits, LimitsError> {
    if spec.fuel.is_some() {
        return Err(LimitsError {
            field: "fuel",
            message: "the controller does not count fuel; fuel budgets are for offline runs (tessera test --fuel)".into(),
        });
    }
    spec.to_limits()
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
    fn fuel_is_refused_in_the_cluster() {
        let limits = PluginLimits {
            fuel: Some(1000),
            ..PluginLimits::default()
        };
        assert!(
            binding_limits(&limits)
                .unwrap_err()
                .to_string()
                .starts_with("limits.fuel:")
        );
    }

    #[test]
    fn limits_name_the_field() {
        let limits = PluginLimits {
            memory: Some("lots".into()),
            ..PluginLimits::default()
        };
        assert!(
            binding_limits(&limits)
                .unwrap_err()
                .to_string()
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
