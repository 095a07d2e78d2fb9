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
//!
//! Label: `tessera.dev/composite-name`: the composite's name.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use tessera_types::provenance::{
    COMPOSED_BY, COMPOSITE, COMPOSITE_GENERATION, COMPOSITE_NAME_LABEL, COMPOSITE_UID,
    INPUT_DIGEST, PLUGIN_DIGEST,
};

/// Kinds that are cluster-scoped in every current Kubernetes. Offline there is
/// no discovery; any other kind is taken to be namespaced.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// Whether `kind` is a well-known cluster-scoped kind.
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED_KINDS.contains(&kind)
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
            composite,
        }
    }
}

/// Checks one child and stamps provenance on it. Errors name the child by
/// its index and say what is wrong.
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
    let kind = non_empty(object.get("kind"))
        .ok_or_else(|| format!("child {index} ({api_version}) has no kind"))?
        .to_string();
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("child {index} ({kind}) has no metadata"))?;
    let name = non_empty(metadata.get("name"))
        .ok_or_else(|| format!("child {index} ({kind}) has no metadata.name"))?
        .to_string();

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
    let namespace = if is_cluster_scoped(&kind) {
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

    let annotations = map_field(metadata, "annotations", index)?;
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

    let labels = map_field(metadata, "labels", index)?;
    labels.insert(
        COMPOSITE_NAME_LABEL.into(),
        Value::String(stamp.composite.name.clone()),
    );
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
                "child 2 (Namespace a) is cluster-scoped but has namespace \"ns\"",
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
        for (kind, name) in [("K\0x", "y"), ("K", "x\0y")] {
            let mut child = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}});
            check_and_stamp(0, &mut child, &s, &mut seen).unwrap();
        }
    }
}
