//! Provenance: what the host (never the plugin) stamps on every child, and
//! the checks on children before they are stamped.
//!
//! Annotations (policies and users rely on these exact keys):
//! - `tessera.dev/composed-by`: `<plugin name>@<plugin version>`
//! - `tessera.dev/plugin-digest`: `sha256:<hex of the .wasm>`
//! - `tessera.dev/composite`: `<apiVersion>/<kind>/<namespace>/<name>`
//!   (namespace empty for cluster-scoped composites)
//! - `tessera.dev/composite-uid`, `tessera.dev/composite-generation`: when
//!   the composite has them
//! - `tessera.dev/input-digest`: `sha256:<hex>` of the canonical JSON of the
//!   input (see [`input_digest`])
//! - `tessera.dev/plugin-ref`: the OCI reference the plugin was pulled from,
//!   as resolved (`oci://REGISTRY/REPO[:TAG]@sha256:<hex>`), when it was
//!   loaded with such a reference as its source; otherwise removed
//!
//! Label: `tessera.dev/composite-name`: the composite's name.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tessera_types::names;

pub use tessera_types::provenance::{
    COMPOSED_BY, COMPOSITE, COMPOSITE_GENERATION, COMPOSITE_NAME_LABEL, COMPOSITE_UID,
    INPUT_DIGEST, PLUGIN_DIGEST, PLUGIN_REF,
};

/// Kinds that are cluster-scoped in every current Kubernetes, as (API group,
/// kind); the core group is `""`. Offline there is no discovery: any other
/// kind is taken to be namespaced. In the cluster the controller asks
/// discovery and refuses with the same message ([`cluster_scoped_child`]).
const CLUSTER_SCOPED_KINDS: &[(&str, &str)] = &[
    ("", "ComponentStatus"),
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("node.k8s.io", "RuntimeClass"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("resource.k8s.io", "DeviceClass"),
    ("resource.k8s.io", "ResourceSlice"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"),
];

/// The API group of an apiVersion: `""` for the core group (`v1`).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Whether `kind` of `api_version` is a well-known cluster-scoped kind.
pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    let group = group_of(api_version);
    CLUSTER_SCOPED_KINDS.contains(&(group, kind))
}

/// Why child `index` cannot be a child of a namespaced composite: owner
/// references cannot point from a cluster-scoped object to a namespaced
/// one, so the composite could never own (nor prune) it. The one message
/// for this, from the runtime (by [`is_cluster_scoped`]) and from the
/// controller (by discovery).
pub fn cluster_scoped_child(index: usize, kind: &str, name: &str) -> String {
    format!(
        "child {index} ({kind} {name}) is cluster-scoped and cannot be owned by a namespaced composite"
    )
}

/// JSON with object keys sorted and no insignificant white space: the same
/// value always gives the same bytes, whatever order its keys came in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes [`canonical_json`] of `value` to `out` without building it in
/// memory first (the input digest streams it into the hasher). Strings and
/// numbers are written by serde_json, so they read exactly as
/// `Value::to_string` writes them.
fn write_canonical(value: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.write_all(b"{")?;
            let mut first = true;
            for (key, item) in entries {
                write_key(out, &mut first, key)?;
                write_canonical(item, out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(item, out)?;
            }
            out.write_all(b"]")
        }
        other => Ok(serde_json::to_writer(out, other)?),
    }
}

/// Writes `"key":` of an object entry, after a comma unless it is the
/// object's first.
fn write_key(out: &mut impl std::io::Write, first: &mut bool, key: &str) -> std::io::Result<()> {
    if !std::mem::take(first) {
        out.write_all(b",")?;
    }
    serde_json::to_writer(&mut *out, key)?;
    out.write_all(b":")
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The digest stamped as `tessera.dev/input-digest`: sha256 of the canonical
/// JSON of `{"composite": C, "settings": S}` where C keeps only the
/// composite's user intent: `apiVersion`, `kind`, `spec` and
/// `metadata.{name, namespace, uid, generation, labels, annotations}`.
///
/// Observed children and the composite's `status` and bookkeeping metadata
/// (resourceVersion, managedFields, ...) are left out on purpose: they change
/// every time the children are applied, and a digest that includes them
/// would make the stamped children change on every reconcile, so a
/// controller would never reach a steady state.
pub fn input_digest(composite: &Value, settings: &Value) -> String {
    // The canonical JSON of {"composite": intent, "settings": settings}:
    // keys in sorted order, the intent borrowed from the composite instead
    // of copied, written into one buffer and hashed at once (cheaper than
    // feeding the hasher dozens of small writes).
    let intent_keys = ["apiVersion", "kind", "metadata", "spec"];
    let metadata_keys = [
        "annotations",
        "generation",
        "labels",
        "name",
        "namespace",
        "uid",
    ];
    let mut canonical = Vec::with_capacity(1024);
    let mut write = || -> std::io::Result<()> {
        canonical.write_all(br#"{"composite":{"#)?;
        let mut first = true;
        for key in intent_keys {
            let Some(value) = composite.get(key) else {
                continue;
            };
            if key != "metadata" {
                write_key(&mut canonical, &mut first, key)?;
                write_canonical(value, &mut canonical)?;
                continue;
            }
            // Only an object metadata counts, and only its identity fields.
            let Some(metadata) = value.as_object() else {
                continue;
            };
            write_key(&mut canonical, &mut first, key)?;
            canonical.write_all(b"{")?;
            let mut first_field = true;
            for field in metadata_keys {
                if let Some(v) = metadata.get(field) {
                    write_key(&mut canonical, &mut first_field, field)?;
                    write_canonical(v, &mut canonical)?;
                }
            }
            canonical.write_all(b"}")?;
        }
        canonical.write_all(br#"},"settings":"#)?;
        write_canonical(settings, &mut canonical)?;
        canonical.write_all(b"}")
    };
    write().expect("writing to a Vec cannot fail");
    sha256_digest(&canonical)
}

/// The identity of a composite, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositeRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, empty when cluster-scoped.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, when set.
    pub uid: Option<String>,
    /// `metadata.generation`, when set.
    pub generation: Option<i64>,
}

impl CompositeRef {
    /// Reads the identity of a composite; the error names the missing field.
    pub fn from_object(composite: &Value) -> Result<Self, String> {
        if !composite.is_object() {
            return Err("the composite is not an object".into());
        }
        let required = |pointer: &str, field: &str| -> Result<String, String> {
            match composite.pointer(pointer) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(other) if !other.is_null() => Err(format!(
                    "the composite's {field} must be a non-empty string"
                )),
                _ => Err(format!("the composite has no {field}")),
            }
        };
        let optional = |pointer: &str, field: &str| -> Result<Option<String>, String> {
            match composite.pointer(pointer) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
                Some(_) => Err(format!("the composite's {field} must be a string")),
            }
        };
        let generation = match composite.pointer("/metadata/generation") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or("the composite's metadata.generation must be an integer")?,
            ),
        };
        Ok(CompositeRef {
            api_version: required("/apiVersion", "apiVersion")?,
            kind: required("/kind", "kind")?,
            name: required("/metadata/name", "metadata.name")?,
            namespace: optional("/metadata/namespace", "metadata.namespace")?.unwrap_or_default(),
            uid: optional("/metadata/uid", "metadata.uid")?,
            generation,
        })
    }

    /// `<apiVersion>/<kind>/<namespace>/<name>`, the `tessera.dev/composite`
    /// annotation.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.api_version, self.kind, self.namespace, self.name
        )
    }

    /// The identity secrets are derived for: the path plus the uid.
    pub(crate) fn secret_identity(&self) -> String {
        format!("{}/{}", self.path(), self.uid.as_deref().unwrap_or(""))
    }
}

/// What the host stamps, computed once per evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    composed_by: String,
    plugin_digest: String,
    input_digest: String,
    /// `composite.path()`, the `tessera.dev/composite` annotation.
    composite_path: String,
    /// The composite's generation as the annotation's string.
    generation: Option<String>,
    /// The `tessera.dev/plugin-ref` annotation, for a plugin pulled from a
    /// registry.
    plugin_ref: Option<String>,
    pub(crate) composite: CompositeRef,
}

impl Stamp {
    pub(crate) fn new(
        composed_by: String,
        plugin_digest: String,
        input_digest: String,
        composite: CompositeRef,
    ) -> Self {
        Stamp {
            composed_by,
            plugin_digest,
            input_digest,
            composite_path: composite.path(),
            generation: composite.generation.map(|g| g.to_string()),
            plugin_ref: None,
            composite,
        }
    }

    /// Stamps `tessera.dev/plugin-ref` when the plugin's source is an OCI
    /// reference pinned to a digest (`oci://...@sha256:...`, the source the
    /// CLI loads a pulled plugin with).
    #[must_use]
    pub(crate) fn with_plugin_source(mut self, source: &std::path::Path) -> Self {
        self.plugin_ref = source
            .to_str()
            .filter(|s| s.starts_with("oci://") && s.contains("@sha256:"))
            .map(str::to_string);
        self
    }
}

/// Checks one child and stamps provenance on it. Errors name the child by
/// its index and say what is wrong.
///
/// The checks are those the API server makes on what it is sent, so that a
/// child `tessera render` prints is one the cluster takes, and the CLI and
/// the controller (both come through here) refuse the same children: the
/// apiVersion and kind syntax, the name as the kind's API validates it
/// (`check_name`), the namespace (a DNS-1123 label), the scope (a
/// cluster-scoped kind cannot be the child of a namespaced composite, nor
/// have a namespace), no duplicates, label keys and values, annotation keys,
/// and the 256 KiB the API server allows all annotations together. Text the
/// plugin chose is quoted escaped and shortened in the errors.
pub(crate) fn check_and_stamp(
    index: usize,
    child: &mut Value,
    stamp: &Stamp,
    seen: &mut HashSet<String>,
) -> Result<(), String> {
    let object = child
        .as_object_mut()
        .ok_or_else(|| format!("child {index} is not a JSON object"))?;
    let api_version = non_empty(object.get("apiVersion"))
        .ok_or_else(|| format!("child {index} has no apiVersion"))?
        .to_string();
    check_api_version(&api_version).map_err(|why| {
        format!(
            "child {index} has an invalid apiVersion {}: {why}",
            quote(&api_version)
        )
    })?;
    let kind = non_empty(object.get("kind"))
        .ok_or_else(|| format!("child {index} ({api_version}) has no kind"))?
        .to_string();
    check_kind(&kind).map_err(|why| {
        format!(
            "child {index} ({api_version}) has an invalid kind {}: {why}",
            quote(&kind)
        )
    })?;
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("child {index} ({kind}) has no metadata"))?;
    let name = non_empty(metadata.get("name"))
        .ok_or_else(|| format!("child {index} ({kind}) has no metadata.name"))?
        .to_string();
    check_name(&api_version, &kind, &name).map_err(|why| {
        format!(
            "child {index} ({kind}): metadata.name {} is not a valid name: {why}",
            quote(&name)
        )
    })?;

    let composite_ns = &stamp.composite.namespace;
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(ns)) => ns.clone(),
        Some(_) => {
            return Err(format!(
                "child {index} ({kind} {name}): metadata.namespace must be a string"
            ));
        }
    };
    if !namespace.is_empty() {
        dns1123_label(&namespace).map_err(|why| {
            format!(
                "child {index} ({kind} {name}): metadata.namespace {} is not a valid namespace: {why}",
                quote(&namespace)
            )
        })?;
    }
    let namespace = if is_cluster_scoped(&api_version, &kind) {
        if !composite_ns.is_empty() {
            return Err(cluster_scoped_child(index, &kind, &name));
        }
        if !namespace.is_empty() {
            return Err(format!(
                "child {index} ({kind} {name}) is cluster-scoped but has namespace {namespace:?}"
            ));
        }
        namespace
    } else if namespace.is_empty() {
        if !composite_ns.is_empty() {
            metadata.insert("namespace".into(), Value::String(composite_ns.clone()));
        }
        composite_ns.clone()
    } else if !composite_ns.is_empty() && namespace != *composite_ns {
        // Owner references cannot cross namespaces: such a child could
        // never be owned, and so never pruned, by its composite.
        return Err(format!(
            "child {index} ({kind} {name}) is in namespace {namespace:?}, not the composite's {composite_ns:?}"
        ));
    } else {
        namespace
    };

    // One string per child: the four parts, each after its length, so that
    // no two different children make the same key (a part may hold any
    // character).
    let mut key =
        String::with_capacity(api_version.len() + kind.len() + namespace.len() + name.len() + 16);
    for part in [api_version.as_str(), &kind, &namespace, &name] {
        let _ = write!(key, "{}:{part}", part.len());
    }
    if !seen.insert(key) {
        return Err(format!(
            "child {index} ({api_version} {kind} {namespace}/{name}) duplicates an earlier child"
        ));
    }

    let subject = || format!("child {index} ({kind} {name})");
    let annotations = map_field(metadata, "annotations", index)?;
    check_annotation_keys(annotations).map_err(|why| format!("{}: {why}", subject()))?;
    annotations.insert(COMPOSED_BY.into(), Value::String(stamp.composed_by.clone()));
    annotations.insert(
        PLUGIN_DIGEST.into(),
        Value::String(stamp.plugin_digest.clone()),
    );
    annotations.insert(
        COMPOSITE.into(),
        Value::String(stamp.composite_path.clone()),
    );
    match &stamp.composite.uid {
        Some(uid) => annotations.insert(COMPOSITE_UID.into(), Value::String(uid.clone())),
        None => annotations.remove(COMPOSITE_UID),
    };
    match &stamp.generation {
        Some(g) => annotations.insert(COMPOSITE_GENERATION.into(), Value::String(g.clone())),
        None => annotations.remove(COMPOSITE_GENERATION),
    };
    annotations.insert(
        INPUT_DIGEST.into(),
        Value::String(stamp.input_digest.clone()),
    );
    match &stamp.plugin_ref {
        Some(r) => annotations.insert(PLUGIN_REF.into(), Value::String(r.clone())),
        None => annotations.remove(PLUGIN_REF),
    };
    // Counted as the API server counts it, stamps included: what it is sent.
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > TOTAL_ANNOTATION_SIZE {
        return Err(format!(
            "{}: metadata.annotations are {size} bytes together, over the API server's limit of {TOTAL_ANNOTATION_SIZE} bytes",
            subject()
        ));
    }

    let labels = map_field(metadata, "labels", index)?;
    check_labels(labels).map_err(|why| format!("{}: {why}", subject()))?;
    labels.insert(
        COMPOSITE_NAME_LABEL.into(),
        Value::String(stamp.composite.name.clone()),
    );
    Ok(())
}

/// What the API server allows all annotations of an object together
/// (`TotalAnnotationSizeLimitB` in apimachinery): 256 KiB, keys and values.
const TOTAL_ANNOTATION_SIZE: usize = 256 << 10;

/// The longest DNS-1123 label (and DNS-1035 label, label value, and name
/// part of a qualified name): 63 characters.
const MAX_LABEL: usize = 63;

/// The longest DNS-1123 subdomain: 253 characters.
const MAX_SUBDOMAIN: usize = 253;

/// Plugin text in an error: escaped (no control character survives) and
/// cut to a readable size.
fn quote(text: &str) -> String {
    format!("{:?}", tessera_types::text::shorten(text, 100))
}

/// `group/version` or `version` (the core group): the group a DNS-1123
/// subdomain, the version a DNS-1035 label, as CRDs require.
fn check_api_version(api_version: &str) -> Result<(), String> {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (Some(group), version),
        None => (None, api_version),
    };
    if let Some(group) = group {
        dns1123_subdomain(group).map_err(|why| format!("the group {why}"))?;
    }
    dns1035_label(version).map_err(|why| format!("the version {why}"))
}

/// A kind whose lower case is a DNS-1035 label, as the API server requires
/// of a CRD's kind.
fn check_kind(kind: &str) -> Result<(), String> {
    dns1035_label(&kind.to_ascii_lowercase())
}

/// `metadata.name` as the API server validates it for this kind: every
/// object's name is a path segment (not `.` or `..`, no `/` or `%`); RBAC
/// roles and bindings need no more (`system:controller:x` is a valid
/// ClusterRole), a Namespace is a DNS-1123 label, a Service a DNS-1035
/// label, and everything else (custom resources included) a DNS-1123
/// subdomain of at most 253 characters. No name may hold a control
/// character, which the API server refuses for every kind but these.
fn check_name(api_version: &str, kind: &str, name: &str) -> Result<(), String> {
    path_segment(name)?;
    match (group_of(api_version), kind) {
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => {
            if name.chars().any(char::is_control) {
                return Err("may not contain control characters".into());
            }
            Ok(())
        }
        ("", "Namespace") => dns1123_label(name),
        ("", "Service") => dns1035_label(name),
        _ => dns1123_subdomain(name),
    }
}

/// `IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn path_segment(name: &str) -> Result<(), String> {
    match name {
        "." => Err("may not be '.'".into()),
        ".." => Err("may not be '..'".into()),
        _ if name.contains('/') => Err("may not contain '/'".into()),
        _ if name.contains('%') => Err("may not contain '%'".into()),
        _ => Ok(()),
    }
}

/// `IsDNS1123Label`.
fn dns1123_label(text: &str) -> Result<(), String> {
    if text.len() > MAX_LABEL {
        return Err(format!("must be no more than {MAX_LABEL} characters"));
    }
    if !names::is_dns1123_label(text, MAX_LABEL) {
        return Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

/// `IsDNS1123Subdomain`.
fn dns1123_subdomain(text: &str) -> Result<(), String> {
    if text.len() > MAX_SUBDOMAIN {
        return Err(format!("must be no more than {MAX_SUBDOMAIN} characters"));
    }
    if !names::is_dns1123_subdomain(text, MAX_SUBDOMAIN) {
        return Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

/// `IsDNS1035Label`.
fn dns1035_label(text: &str) -> Result<(), String> {
    if text.len() > MAX_LABEL {
        return Err(format!("must be no more than {MAX_LABEL} characters"));
    }
    if !names::is_dns1035_label(text, MAX_LABEL) {
        return Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character".into());
    }
    Ok(())
}

/// Alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric: the
/// name part of a qualified name, and a non-empty label value.
fn is_qualified_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: a name part with an optional DNS-1123 subdomain
/// prefix and `/`.
fn qualified_name(text: &str) -> Result<(), String> {
    let (prefix, name) = match text.split_once('/') {
        None => (None, text),
        Some((_, name)) if name.contains('/') => {
            return Err("a qualified name is a name with an optional DNS subdomain prefix and one '/' (e.g. 'example.com/MyName')".into());
        }
        Some((prefix, name)) => (Some(prefix), name),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns1123_subdomain(prefix).map_err(|why| format!("prefix part {why}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > MAX_LABEL {
        return Err(format!(
            "name part must be no more than {MAX_LABEL} characters"
        ));
    }
    if !is_qualified_part(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

/// Label keys are qualified names and label values strings of at most 63
/// characters, empty or alphanumerics, `-`, `_` and `.` between
/// alphanumerics (`IsValidLabelValue`).
fn check_labels(labels: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in labels {
        qualified_name(key).map_err(|why| {
            format!(
                "metadata.labels: {} is not a valid label key: {why}",
                quote(key)
            )
        })?;
        let Some(value) = value.as_str() else {
            return Err(format!("metadata.labels[{key}] must be a string"));
        };
        let why = if value.len() > MAX_LABEL {
            format!("must be no more than {MAX_LABEL} characters")
        } else if !value.is_empty() && !is_qualified_part(value) {
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into()
        } else {
            continue;
        };
        return Err(format!(
            "metadata.labels[{key}]: {} is not a valid label value: {why}",
            quote(value)
        ));
    }
    Ok(())
}

/// Annotation keys are qualified names once lower-cased (as the API server
/// checks them); values are strings.
fn check_annotation_keys(annotations: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in annotations {
        qualified_name(&key.to_ascii_lowercase()).map_err(|why| {
            format!(
                "metadata.annotations: {} is not a valid annotation key: {why}",
                quote(key)
            )
        })?;
        if !value.is_string() {
            return Err(format!("metadata.annotations[{key}] must be a string"));
        }
    }
    Ok(())
}

fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn map_field<'a>(
    metadata: &'a mut Map<String, Value>,
    key: &str,
    index: usize,
) -> Result<&'a mut Map<String, Value>, String> {
    // Looked up before inserting: `entry` would allocate the key even when
    // the field is there, as it usually is.
    if matches!(metadata.get(key), None | Some(Value::Null)) {
        metadata.insert(key.into(), Value::Object(Map::new()));
    }
    metadata
        .get_mut(key)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("child {index}: metadata.{key} must be an object"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": null}], "c": "x"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn input_digest_is_the_sha256_of_the_canonical_intent() {
        // The streaming digest must hash exactly the canonical JSON of the
        // composite's intent and the settings (digests already stamped on
        // children must not change).
        let composite = json!({
            "spec": {"b": [1, 2.5, "x\"y"], "a": null},
            "kind": "Database", "status": {"ready": true},
            "metadata": {"uid": "u-1", "resourceVersion": "9", "name": "orders",
                "labels": {"z": "1", "a": "é"}, "namespace": "shop", "generation": 3,
                "annotations": {"k": "v"}, "managedFields": []},
            "apiVersion": "platform.tessera.dev/v1alpha1",
        });
        let settings = json!({"y": 1, "x": {"b": true, "a": false}});
        let intent = json!({"composite": {
            "apiVersion": composite["apiVersion"], "kind": composite["kind"],
            "spec": composite["spec"],
            "metadata": {"name": "orders", "namespace": "shop", "uid": "u-1",
                "generation": 3, "labels": composite["metadata"]["labels"],
                "annotations": composite["metadata"]["annotations"]},
        }, "settings": settings});
        assert_eq!(
            input_digest(&composite, &settings),
            sha256_digest(canonical_json(&intent).as_bytes())
        );
        // Without metadata or spec the keys left are still in order.
        let bare = json!({"kind": "K", "apiVersion": "v1"});
        let intent = json!({"composite": {"apiVersion": "v1", "kind": "K"}, "settings": {}});
        assert_eq!(
            input_digest(&bare, &json!({})),
            sha256_digest(canonical_json(&intent).as_bytes())
        );
    }

    #[test]
    fn input_digest_ignores_status_and_bookkeeping() {
        let a =
            json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"x": 1}});
        let mut b = a.clone();
        b["status"] = json!({"ready": true});
        b["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(input_digest(&a, &json!({})), input_digest(&b, &json!({})));
        b["spec"]["x"] = json!(2);
        assert_ne!(input_digest(&a, &json!({})), input_digest(&b, &json!({})));
        assert_ne!(
            input_digest(&a, &json!({})),
            input_digest(&a, &json!({"s": 1}))
        );
    }

    fn stamp(namespace: &str) -> Stamp {
        Stamp::new(
            "p@1".into(),
            "sha256:00".into(),
            "sha256:11".into(),
            CompositeRef {
                api_version: "g/v1".into(),
                kind: "K".into(),
                namespace: namespace.into(),
                name: "n".into(),
                uid: Some("u".into()),
                generation: Some(3),
            },
        )
    }

    #[test]
    fn stamps_and_defaults_namespace() {
        let mut child = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        check_and_stamp(0, &mut child, &stamp("ns"), &mut HashSet::new()).unwrap();
        assert_eq!(child["metadata"]["namespace"], "ns");
        let a = &child["metadata"]["annotations"];
        assert_eq!(a[COMPOSED_BY], "p@1");
        assert_eq!(a[COMPOSITE], "g/v1/K/ns/n");
        assert_eq!(a[COMPOSITE_UID], "u");
        assert_eq!(a[COMPOSITE_GENERATION], "3");
        assert_eq!(child["metadata"]["labels"][COMPOSITE_NAME_LABEL], "n");
    }

    #[test]
    fn rejects_bad_children_by_index() {
        let s = stamp("ns");
        let cases = [
            (json!("x"), "child 2 is not a JSON object"),
            (
                json!({"kind": "K", "metadata": {"name": "a"}}),
                "child 2 has no apiVersion",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
                "child 2 (v1) has no kind",
            ),
            (
                json!({"apiVersion": "v1", "kind": "K", "metadata": {}}),
                "child 2 (K) has no metadata.name",
            ),
            (
                json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "namespace": "other"}}),
                "child 2 (K a) is in namespace \"other\", not the composite's \"ns\"",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "ns"}}),
                "child 2 (Namespace a) is cluster-scoped and cannot be owned by a namespaced composite",
            ),
        ];
        for (mut child, expected) in cases {
            let err = check_and_stamp(2, &mut child, &s, &mut HashSet::new()).unwrap_err();
            assert_eq!(err, expected);
        }
        let mut seen = HashSet::new();
        let mut a = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a"}});
        check_and_stamp(0, &mut a.clone(), &s, &mut seen).unwrap();
        let err = check_and_stamp(1, &mut a, &s, &mut seen).unwrap_err();
        assert_eq!(err, "child 1 (v1 K ns/a) duplicates an earlier child");
        // Parts that could run into each other are still told apart.
        let mut seen = HashSet::new();
        for (kind, name) in [("Kx", "y"), ("K", "xy")] {
            let mut child = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}});
            check_and_stamp(0, &mut child, &s, &mut seen).unwrap();
        }
    }

    fn refusal(child: Value, namespace: &str) -> String {
        let mut child = child;
        check_and_stamp(3, &mut child, &stamp(namespace), &mut HashSet::new()).unwrap_err()
    }

    fn named(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
    }

    #[test]
    fn cluster_scoped_children_only_of_cluster_scoped_composites() {
        for (api_version, kind) in [
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("v1", "Namespace"),
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
            ),
            (
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
            ),
        ] {
            assert_eq!(
                refusal(named(api_version, kind, "x"), "ns"),
                cluster_scoped_child(3, kind, "x")
            );
            let mut child = named(api_version, kind, "x");
            check_and_stamp(0, &mut child, &stamp(""), &mut HashSet::new()).unwrap();
            assert!(child["metadata"].get("namespace").is_none(), "{child}");
        }
        let mut with_namespace = named("v1", "Namespace", "a");
        with_namespace["metadata"]["namespace"] = json!("ns");
        assert_eq!(
            refusal(with_namespace, ""),
            "child 3 (Namespace a) is cluster-scoped but has namespace \"ns\""
        );
        // The same kind name in another group is not the built-in one.
        let mut custom = named("example.com/v1", "Namespace", "x");
        check_and_stamp(0, &mut custom, &stamp("ns"), &mut HashSet::new()).unwrap();
        assert_eq!(custom["metadata"]["namespace"], "ns");
    }

    #[test]
    fn names_the_api_server_refuses_are_refused_with_the_childs_index() {
        let long = "a".repeat(254);
        for (api_version, kind, name, why) in [
            ("v1", "Secret", "Bad_Name", "a lowercase RFC 1123 subdomain"),
            ("v1", "Secret", "UPPER", "a lowercase RFC 1123 subdomain"),
            ("v1", "Secret", long.as_str(), "no more than 253 characters"),
            ("v1", "Secret", "a/b", "may not contain '/'"),
            ("v1", "Secret", ".", "may not be '.'"),
            ("v1", "Secret", "..", "may not be '..'"),
            ("v1", "Secret", "a\0b", "a lowercase RFC 1123 subdomain"),
            ("v1", "Secret", "-a", "a lowercase RFC 1123 subdomain"),
            (
                "example.com/v1",
                "Thing",
                "a..b",
                "a lowercase RFC 1123 subdomain",
            ),
            ("v1", "Service", "1st", "a DNS-1035 label"),
            ("v1", "Namespace", "a.b", "a lowercase RFC 1123 label"),
            (
                "rbac.authorization.k8s.io/v1",
                "Role",
                "a/b",
                "may not contain '/'",
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "Role",
                "a%b",
                "may not contain '%'",
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "Role",
                "a\u{1b}b",
                "control characters",
            ),
        ] {
            let namespace = if kind == "Namespace" { "" } else { "ns" };
            let err = refusal(named(api_version, kind, name), namespace);
            let prefix = format!(
                "child 3 ({kind}): metadata.name {} is not a valid name: ",
                quote(name)
            );
            assert!(err.starts_with(&prefix), "{err}");
            assert!(err.contains(why), "{err} lacks {why}");
            assert!(!err.chars().any(char::is_control), "{err:?}");
            assert!(err.len() < 400, "{err}");
        }
        assert_eq!(
            refusal(named("v1", "Secret", "Bad_Name"), "ns"),
            "child 3 (Secret): metadata.name \"Bad_Name\" is not a valid name: a lowercase RFC 1123 \
             subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
             start and end with an alphanumeric character"
        );
        // What the API server takes passes.
        for (api_version, kind, name) in [
            ("v1", "Secret", "a.b-c.d"),
            ("v1", "Secret", &"a".repeat(253)),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "system:controller:Weird_Name",
            ),
            ("v1", "Service", "web"),
            ("example.com/v1", "Thing", "x0"),
        ] {
            let mut child = named(api_version, kind, name);
            let namespace = if kind == "ClusterRole" { "" } else { "ns" };
            check_and_stamp(0, &mut child, &stamp(namespace), &mut HashSet::new())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn api_versions_kinds_and_namespaces_are_checked() {
        assert!(
            refusal(named("Apps/v1", "Deployment", "a"), "ns")
                .starts_with("child 3 has an invalid apiVersion \"Apps/v1\": the group ")
        );
        assert!(refusal(named("a/b/c", "K", "a"), "ns").contains("invalid apiVersion"));
        assert!(
            refusal(named("v1", "Config\u{1b}[2JMap", "a"), "ns")
                .starts_with("child 3 (v1) has an invalid kind \"Config\\u{1b}[2JMap\": ")
        );
        let mut child = named("v1", "ConfigMap", "a");
        child["metadata"]["namespace"] = json!("Bad_NS");
        assert!(refusal(child, "").starts_with(
            "child 3 (ConfigMap a): metadata.namespace \"Bad_NS\" is not a valid namespace: "
        ));
        let mut child = named("v1", "ConfigMap", "a");
        child["metadata"]["namespace"] = json!("a".repeat(64));
        assert!(refusal(child, "").contains("no more than 63 characters"));
    }

    #[test]
    fn labels_and_annotations_are_checked() {
        let with = |field: &str, value: Value| {
            let mut child = named("v1", "ConfigMap", "a");
            child["metadata"][field] = value;
            child
        };
        for (field, value, why) in [
            (
                "labels",
                json!({"Bad Key": "x"}),
                "is not a valid label key: name part must consist",
            ),
            (
                "labels",
                json!({"/x": "x"}),
                "prefix part must be non-empty",
            ),
            ("labels", json!({"a/b/c": "x"}), "is not a valid label key"),
            (
                "labels",
                json!({"Example.com/x": "x"}),
                "prefix part a lowercase RFC 1123 subdomain",
            ),
            (
                "labels",
                json!({"x": "a b"}),
                "metadata.labels[x]: \"a b\" is not a valid label value",
            ),
            (
                "labels",
                json!({"x": "a".repeat(64)}),
                "no more than 63 characters",
            ),
            (
                "labels",
                json!({"x": 1}),
                "metadata.labels[x] must be a string",
            ),
            (
                "annotations",
                json!({"bad key": "x"}),
                "is not a valid annotation key",
            ),
            (
                "annotations",
                json!({"x": true}),
                "metadata.annotations[x] must be a string",
            ),
            (
                "annotations",
                json!({"x": "y".repeat(256 << 10)}),
                "over the API server's limit of 262144 bytes",
            ),
        ] {
            let err = refusal(with(field, value), "ns");
            assert!(err.starts_with("child 3 (ConfigMap a): metadata."), "{err}");
            assert!(err.contains(why), "{err} lacks {why}");
        }
        // Upper case in an annotation key's prefix is fine (it is checked
        // lower-cased), as are empty label values and names with dots.
        let mut child = with("annotations", json!({"Example.COM/Some_Key": "x"}));
        child["metadata"]["labels"] = json!({"app.kubernetes.io/name": "", "x": "A-b_c.d"});
        check_and_stamp(0, &mut child, &stamp("ns"), &mut HashSet::new()).unwrap();
    }
}
