//! The `require-labels` policy plugin.
//!
//! Settings:
//! ```json
//! {"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}}
//! ```
//! Denies an object with one error finding per missing required label and one
//! per label whose value is not among its allowed values; each finding names
//! the label. Deletes are always allowed: there is nothing left to label.

use tessera_sdk::{Finding, Metadata, Operation, Result, Review, Verdict, json};

/// The plugin's metadata, with the JSON schema of its settings.
pub fn metadata() -> Metadata {
    Metadata::new("require-labels", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "requiredLabels": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "uniqueItems": true
                },
                "allowedValues": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1
                    }
                }
            }
        }))
}

/// Judges one object's labels.
pub fn validate(review: Review) -> Result<Verdict> {
    if review.operation == Operation::Delete {
        return Ok(Verdict::allow());
    }
    let Some(object) = review.object.as_ref() else {
        return Ok(Verdict::allow());
    };
    let settings = review.settings();
    let required = settings.opt_str_list("requiredLabels")?.unwrap_or_default();
    let allowed = settings.opt_map("allowedValues")?;

    let mut findings = Vec::new();
    for label in required {
        if object.label(label).is_none() {
            findings.push(
                Finding::error(format!("missing required label {label:?}"))
                    .at(format!("metadata.labels.{label}")),
            );
        }
    }
    for (label, values) in allowed.into_iter().flatten() {
        let Some(value) = object.label(label) else {
            continue;
        };
        let values: Vec<&str> = values
            .as_array()
            .map(|items| items.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if !values.contains(&value) {
            findings.push(
                Finding::error(format!(
                    "label {label:?} has value {value:?}; allowed: {}",
                    values.join(", ")
                ))
                .at(format!("metadata.labels.{label}")),
            );
        }
    }
    Ok(Verdict::from_findings(findings))
}

tessera_sdk::export_policy!(metadata = metadata, validate = validate);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{Object, UserInfo, Value};

    fn review(labels: Value, settings: Value, operation: Operation) -> Review {
        let object = Object::from_value(
            "object",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}}),
        )
        .unwrap();
        Review {
            operation,
            object: Some(object.clone()),
            old_object: None,
            user_info: UserInfo::default(),
            settings,
        }
    }

    fn settings() -> Value {
        json!({"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}})
    }

    #[test]
    fn allows_complete_labels() {
        let verdict = validate(review(
            json!({"team": "a", "env": "prod"}),
            settings(),
            Operation::Create,
        ))
        .unwrap();
        assert!(verdict.allowed);
        assert!(verdict.findings.is_empty());
    }

    #[test]
    fn one_finding_per_missing_label_and_bad_value() {
        let verdict =
            validate(review(json!({"env": "qa"}), settings(), Operation::Update)).unwrap();
        assert!(!verdict.allowed);
        let messages: Vec<_> = verdict
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            messages,
            [
                r#"missing required label "team""#,
                r#"label "env" has value "qa"; allowed: dev, prod"#
            ]
        );
        assert_eq!(
            verdict.findings[0].field.as_deref(),
            Some("metadata.labels.team")
        );
        assert_eq!(
            verdict.findings[1].field.as_deref(),
            Some("metadata.labels.env")
        );
    }

    #[test]
    fn deletes_and_empty_settings_are_allowed() {
        assert!(
            validate(review(json!({}), settings(), Operation::Delete))
                .unwrap()
                .allowed
        );
        assert!(
            validate(review(json!({}), json!({}), Operation::Create))
                .unwrap()
                .allowed
        );
    }
}
