//! The `require-labels` policy plugin, through the runtime.

use serde_json::{Value, json};
use tessera_runtime::{Binding, Error, Operation, Review, UserInfo};
use tessera_tests::plugins::REQUIRE_LABELS;

use crate::common::load;

fn review(operation: Operation, labels: Value) -> Review {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}});
    Review {
        operation,
        object: (operation != Operation::Delete).then(|| object.clone()),
        old_object: (operation != Operation::Create).then_some(object),
        user_info: UserInfo::default(),
    }
}

async fn binding() -> Binding {
    Binding::new(
        load(REQUIRE_LABELS).await,
        json!({"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}}),
    )
    .unwrap()
}

#[tokio::test]
async fn allows_objects_with_the_required_labels() {
    let verdict = binding()
        .await
        .validate(&review(
            Operation::Create,
            json!({"team": "a", "env": "dev"}),
        ))
        .await
        .unwrap();
    assert!(verdict.allowed);
    assert!(verdict.findings.is_empty());
}

#[tokio::test]
async fn denies_with_one_finding_per_label() {
    let verdict = binding()
        .await
        .validate(&review(Operation::Update, json!({"env": "qa"})))
        .await
        .unwrap();
    assert!(!verdict.allowed);
    let found: Vec<(&str, Option<&str>)> = verdict
        .findings
        .iter()
        .map(|f| (f.message.as_str(), f.field.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (
                r#"missing required label "team""#,
                Some("metadata.labels.team")
            ),
            (
                r#"label "env" has value "qa"; allowed: dev, prod"#,
                Some("metadata.labels.env")
            ),
        ]
    );
}

#[tokio::test]
async fn deletes_are_allowed() {
    let verdict = binding()
        .await
        .validate(&review(Operation::Delete, json!({})))
        .await
        .unwrap();
    assert!(verdict.allowed);
}

#[tokio::test]
async fn bad_settings_are_refused_before_any_call() {
    let err = Binding::new(
        load(REQUIRE_LABELS).await,
        json!({"requiredLabels": "team"}),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Settings { .. }));
    let text = err.to_string();
    assert!(
        text.contains("plugin require-labels") && text.contains("/requiredLabels"),
        "{text}"
    );
}
