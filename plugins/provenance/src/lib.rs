//! The `provenance` policy plugin.
//!
//! Settings:
//! ```json
//! {"requireOrigin": true, "allowedPluginDigests": ["sha256:..."]}
//! ```
//! - A *composed* resource (one carrying `tessera.dev/plugin-digest`) must
//!   carry well-formed Tessera provenance: `tessera.dev/composed-by`
//!   (`name@version`), `tessera.dev/plugin-digest` and
//!   `tessera.dev/input-digest` (`sha256:` + 64 lowercase hex digits),
//!   `tessera.dev/composite` (`<apiVersion>/<kind>/<namespace>/<name>`), the
//!   label `tessera.dev/composite-name` matching that name, and
//!   `tessera.dev/composite-generation`, when present, a whole number. When
//!   `allowedPluginDigests` is given, the plugin digest must be in it.
//! - A *user* resource (anything else) must carry non-empty
//!   `tessera.dev/origin` and `tessera.dev/version` annotations when
//!   `requireOrigin` is true.
//!
//! Deletes are always allowed.

use tessera_sdk::{Finding, Metadata, Object, Operation, Result, Review, Verdict, json};

/// Annotation naming where a user resource comes from (a repository, a path).
pub const ORIGIN: &str = "tessera.dev/origin";
/// Annotation naming the version of a user resource's source.
pub const VERSION: &str = "tessera.dev/version";
use tessera_sdk::provenance::{
    COMPOSED_BY, COMPOSITE, COMPOSITE_GENERATION, COMPOSITE_NAME_LABEL, INPUT_DIGEST, PLUGIN_DIGEST,
};

/// The plugin's metadata, with the JSON schema of its settings.
pub fn metadata() -> Metadata {
    Metadata::new("provenance", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "requireOrigin": {"type": "boolean"},
                "allowedPluginDigests": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
                }
            }
        }))
}

/// Judges one object's provenance.
pub fn validate(review: Review) -> Result<Verdict> {
    if review.operation == Operation::Delete {
        return Ok(Verdict::allow());
    }
    let Some(object) = review.object.as_ref() else {
        return Ok(Verdict::allow());
    };
    let settings = review.settings();
    let require_origin = settings.opt_bool("requireOrigin")?.unwrap_or(false);
    let allowed_digests = settings.opt_str_list("allowedPluginDigests")?;

    let findings = if object.annotation(PLUGIN_DIGEST).is_some() {
        check_composed(object, allowed_digests.as_deref())
    } else if require_origin {
        check_origin(object)
    } else {
        Vec::new()
    };
    Ok(Verdict::from_findings(findings))
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations.{key}")
}

fn check_origin(object: &Object) -> Vec<Finding> {
    [ORIGIN, VERSION]
        .into_iter()
        .filter(|key| object.annotation(key).is_none_or(|v| v.trim().is_empty()))
        .map(|key| {
            Finding::error(format!(
                "missing annotation {key:?}: where this resource comes from must be recorded"
            ))
            .at(annotation_field(key))
        })
        .collect()
}

fn is_sha256(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn check_composed(object: &Object, allowed_digests: Option<&[&str]>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut bad = |key: &str, problem: String| {
        findings.push(
            Finding::error(format!("provenance annotation {key:?} {problem}"))
                .at(annotation_field(key)),
        );
    };

    match object.annotation(COMPOSED_BY) {
        None => bad(COMPOSED_BY, "is missing".into()),
        Some(v) => match v.split_once('@') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => {}
            _ => bad(
                COMPOSED_BY,
                format!("must be <plugin>@<version>, got {v:?}"),
            ),
        },
    }
    let digest = object.annotation(PLUGIN_DIGEST).unwrap_or_default();
    if !is_sha256(digest) {
        bad(
            PLUGIN_DIGEST,
            format!("must be sha256:<64 hex digits>, got {digest:?}"),
        );
    } else if let Some(allowed) = allowed_digests
        && !allowed.contains(&digest)
    {
        bad(
            PLUGIN_DIGEST,
            format!("names a plugin that is not allowed: {digest}"),
        );
    }
    match object.annotation(INPUT_DIGEST) {
        None => bad(INPUT_DIGEST, "is missing".into()),
        Some(v) if !is_sha256(v) => bad(
            INPUT_DIGEST,
            format!("must be sha256:<64 hex digits>, got {v:?}"),
        ),
        Some(_) => {}
    }
    let composite_name = match object.annotation(COMPOSITE) {
        None => {
            bad(COMPOSITE, "is missing".into());
            None
        }
        Some(v) => {
            // `<group>/<version>/<kind>/<ns>/<name>` or `<version>/<kind>/<ns>/<name>`.
            let parts: Vec<&str> = v.split('/').collect();
            let well_formed = matches!(parts.len(), 4 | 5)
                && parts
                    .iter()
                    .enumerate()
                    .all(|(i, p)| !p.is_empty() || i == parts.len() - 2);
            if well_formed {
                parts.last().copied()
            } else {
                bad(
                    COMPOSITE,
                    format!("must be <apiVersion>/<kind>/<namespace>/<name>, got {v:?}"),
                );
                None
            }
        }
    };
    if let Some(generation) = object.annotation(COMPOSITE_GENERATION)
        && generation.parse::<u64>().is_err()
    {
        bad(
            COMPOSITE_GENERATION,
            format!("must be a whole number, got {generation:?}"),
        );
    }
    if let Some(name) = composite_name {
        match object.label(COMPOSITE_NAME_LABEL) {
            Some(label) if label == name => {}
            Some(label) => findings.push(
                Finding::error(format!(
                    "label {COMPOSITE_NAME_LABEL:?} is {label:?} but the composite is {name:?}"
                ))
                .at(format!("metadata.labels.{COMPOSITE_NAME_LABEL}")),
            ),
            None => findings.push(
                Finding::error(format!("label {COMPOSITE_NAME_LABEL:?} is missing"))
                    .at(format!("metadata.labels.{COMPOSITE_NAME_LABEL}")),
            ),
        }
    }
    findings
}

tessera_sdk::export_policy!(metadata = metadata, validate = validate);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{UserInfo, Value};

    const DIGEST: &str = "sha256:f91cb6afaca7230f2e52154c5cb852530bb7434f6170a50b7204b33872f81590";

    fn review(metadata: Value, settings: Value) -> Review {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
        object["metadata"]["name"] = json!("c");
        Review {
            operation: Operation::Create,
            object: Some(Object::from_value("object", object).unwrap()),
            old_object: None,
            user_info: UserInfo::default(),
            settings,
        }
    }

    fn composed() -> Value {
        json!({
            "labels": {COMPOSITE_NAME_LABEL: "orders"},
            "annotations": {
                COMPOSED_BY: "database@0.1.0",
                PLUGIN_DIGEST: DIGEST,
                COMPOSITE: "platform.tessera.dev/v1alpha1/Database/shop/orders",
                COMPOSITE_GENERATION: "3",
                INPUT_DIGEST: DIGEST,
            }
        })
    }

    #[test]
    fn user_resources_need_origin_when_required() {
        let verdict = validate(review(json!({}), json!({"requireOrigin": true}))).unwrap();
        assert!(!verdict.allowed);
        assert_eq!(verdict.findings.len(), 2);
        assert_eq!(
            verdict.findings[0].field.as_deref(),
            Some("metadata.annotations.tessera.dev/origin")
        );
        let ok = json!({"annotations": {ORIGIN: "git@example.com:a/b", VERSION: "1.0"}});
        assert!(
            validate(review(ok, json!({"requireOrigin": true})))
                .unwrap()
                .allowed
        );
        assert!(validate(review(json!({}), json!({}))).unwrap().allowed);
    }

    #[test]
    fn composed_resources_need_well_formed_provenance() {
        assert!(
            validate(review(composed(), json!({"requireOrigin": true})))
                .unwrap()
                .allowed
        );
        let mut broken = composed();
        broken["annotations"][COMPOSED_BY] = json!("database");
        broken["annotations"][INPUT_DIGEST] = json!("sha256:XYZ");
        broken["labels"][COMPOSITE_NAME_LABEL] = json!("other");
        let verdict = validate(review(broken, json!({}))).unwrap();
        assert!(!verdict.allowed);
        let messages: Vec<_> = verdict
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("must be <plugin>@<version>"));
        assert!(messages[1].contains("tessera.dev/input-digest"));
        assert!(messages[2].contains("\"other\""));
    }

    #[test]
    fn digests_must_be_allowed_when_listed() {
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let verdict =
            validate(review(composed(), json!({"allowedPluginDigests": [other]}))).unwrap();
        assert!(!verdict.allowed);
        assert!(verdict.findings[0].message.contains("not allowed"));
        assert!(
            validate(review(
                composed(),
                json!({"allowedPluginDigests": [DIGEST]})
            ))
            .unwrap()
            .allowed
        );
    }

    #[test]
    fn cluster_scoped_composites_have_an_empty_namespace_segment() {
        let mut c = composed();
        c["annotations"][COMPOSITE] = json!("platform.tessera.dev/v1alpha1/Cluster//orders");
        assert!(validate(review(c, json!({}))).unwrap().allowed);
    }
}
