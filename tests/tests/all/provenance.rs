//! The `provenance` policy plugin, through the runtime, on real composed
//! output.

use serde_json::{Value, json};
use tessera_runtime::{Binding, Operation, Review, UserInfo};
use tessera_tests::{
    example,
    plugins::{DATABASE, PROVENANCE},
};

use crate::common::{bind, ctx, load, yaml_file};

fn create(object: Value) -> Review {
    Review {
        operation: Operation::Create,
        object: Some(object),
        old_object: None,
        user_info: UserInfo::default(),
    }
}

async fn composed_children() -> Vec<Value> {
    let database = bind(DATABASE, json!({})).await;
    database
        .expand(&yaml_file(&example("database.yaml")), &[], &ctx())
        .await
        .unwrap()
        .children
}

#[tokio::test]
async fn composed_children_pass_with_their_digest_allowed() {
    let children = composed_children().await;
    let digest = children[0]["metadata"]["annotations"]["tessera.dev/plugin-digest"].clone();
    let policy = Binding::new(
        load(PROVENANCE).await,
        json!({"requireOrigin": true, "allowedPluginDigests": [digest]}),
    )
    .unwrap();
    for child in children {
        let verdict = policy.validate(&create(child)).await.unwrap();
        assert!(verdict.allowed, "{:?}", verdict.findings);
    }
}

#[tokio::test]
async fn composed_children_of_an_unlisted_plugin_are_denied() {
    let children = composed_children().await;
    let other = format!("sha256:{}", "0".repeat(64));
    let policy = Binding::new(
        load(PROVENANCE).await,
        json!({"allowedPluginDigests": [other]}),
    )
    .unwrap();
    let verdict = policy.validate(&create(children[0].clone())).await.unwrap();
    assert!(!verdict.allowed);
    assert!(
        verdict.findings[0]
            .message
            .contains("names a plugin that is not allowed"),
        "{:?}",
        verdict.findings
    );
}

#[tokio::test]
async fn tampered_provenance_is_denied() {
    let mut child = composed_children().await.remove(0);
    child["metadata"]["labels"]["tessera.dev/composite-name"] = json!("someone-else");
    let policy = bind(PROVENANCE, json!({})).await;
    let verdict = policy.validate(&create(child)).await.unwrap();
    assert!(!verdict.allowed);
    assert_eq!(
        verdict.findings[0].field.as_deref(),
        Some("metadata.labels.tessera.dev/composite-name")
    );
}

#[tokio::test]
async fn user_resources_need_origin_and_version() {
    let policy = bind(PROVENANCE, json!({"requireOrigin": true})).await;
    let composite = yaml_file(&example("database.yaml"));
    assert!(
        policy
            .validate(&create(composite.clone()))
            .await
            .unwrap()
            .allowed
    );
    let mut bare = composite;
    bare["metadata"]["annotations"] = json!({});
    let verdict = policy.validate(&create(bare)).await.unwrap();
    assert!(!verdict.allowed);
    let fields: Vec<_> = verdict
        .findings
        .iter()
        .map(|f| f.field.clone().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "metadata.annotations.tessera.dev/origin",
            "metadata.annotations.tessera.dev/version"
        ]
    );
}
