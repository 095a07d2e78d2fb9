//! The `database` composition plugin, through the runtime.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_runtime::{Binding, Error, SecretKey};
use tessera_tests::{example, plugins::DATABASE};

use crate::common::{
    assert_valid_kubernetes, base64_decode, bind, child, ctx, kinds_and_names, yaml_file,
};

fn composite(spec: Value) -> Value {
    json!({
        "apiVersion": "platform.tessera.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "orders", "namespace": "shop", "uid": "0b6f6c1e-1", "generation": 4, "labels": {"team": "payments"}},
        "spec": spec,
    })
}

#[tokio::test]
async fn renders_the_example_into_five_valid_children() {
    let binding = bind(DATABASE, json!({})).await;
    let composite = yaml_file(&example("database.yaml"));
    let composed = binding.expand(&composite, &[], &ctx()).await.unwrap();
    assert_eq!(
        kinds_and_names(&composed.children),
        [
            "Secret/orders-credentials",
            "ConfigMap/orders-config",
            "Service/orders",
            "StatefulSet/orders",
            "PodDisruptionBudget/orders"
        ]
    );
    let sts = child(&composed.children, "StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "postgres:16.4"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
    for c in &composed.children {
        assert_eq!(c["metadata"]["namespace"], "shop");
        assert_eq!(
            c["metadata"]["labels"]["team"], "payments",
            "composite labels are copied"
        );
    }
    assert_eq!(
        composed.status,
        Some(
            json!({"endpoint": "orders.shop.svc.cluster.local:5432", "secretName": "orders-credentials", "engine": "postgres"})
        )
    );
    assert!(!composed.ready, "nothing observed yet");
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn mysql_with_one_replica_has_no_disruption_budget() {
    let binding = bind(DATABASE, json!({"storageClassName": "fast"})).await;
    let composed = binding
        .expand(
            &composite(
                json!({"engine": "mysql", "version": "8.4", "replicas": 1, "storage": "5Gi"}),
            ),
            &[],
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(
        kinds_and_names(&composed.children),
        [
            "Secret/orders-credentials",
            "ConfigMap/orders-config",
            "Service/orders",
            "StatefulSet/orders"
        ]
    );
    let sts = child(&composed.children, "StatefulSet");
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "mysql:8.4"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "fast"
    );
    assert_eq!(
        child(&composed.children, "Service")["spec"]["ports"][0]["port"],
        3306
    );
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn bad_specs_are_refused_naming_the_field() {
    let binding = bind(DATABASE, json!({})).await;
    let cases = [
        (
            json!({"engine": "oracle", "version": "1", "storage": "1Gi"}),
            "spec.engine",
            r#"spec.engine must be one of postgres, mysql, got "oracle""#,
        ),
        (
            json!({"engine": "postgres", "version": "16", "replicas": "three", "storage": "1Gi"}),
            "spec.replicas",
            r#"spec.replicas must be an integer, got "three""#,
        ),
        (
            json!({"engine": "postgres", "version": "16", "replicas": 12, "storage": "1Gi"}),
            "spec.replicas",
            "spec.replicas must be between 1 and 9, got 12",
        ),
        (
            json!({"engine": "postgres", "version": "16", "storage": "lots"}),
            "spec.storage",
            r#"spec.storage must be a quantity such as 20Gi, got "lots""#,
        ),
        (
            json!({"engine": "postgres", "storage": "1Gi"}),
            "spec.version",
            "spec.version is required",
        ),
    ];
    for (spec, field, message) in cases {
        let err = binding
            .expand(&composite(spec), &[], &ctx())
            .await
            .unwrap_err();
        match &err {
            Error::Refused {
                message: m,
                field: f,
                plugin,
                ..
            } => {
                assert_eq!(m, message);
                assert_eq!(f.as_deref(), Some(field));
                assert_eq!(plugin.name, "database");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("plugin database (sha256:") && text.contains(field),
            "{text}"
        );
    }
}

#[tokio::test]
async fn settings_are_checked_against_the_schema_before_the_first_call() {
    let plugin = crate::common::load(DATABASE).await;
    let err = Binding::new(plugin.clone(), json!({"maxReplicas": 100})).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Settings { .. }), "{err:?}");
    assert!(
        text.contains("invalid settings") && text.contains("/maxReplicas"),
        "{text}"
    );
    let err = Binding::new(plugin.clone(), json!({"unknown": true})).unwrap_err();
    assert!(err.to_string().contains("unknown"), "{err}");
    let err = Binding::new(plugin, json!(["not", "an", "object"])).unwrap_err();
    assert!(
        err.to_string().contains("settings must be an object"),
        "{err}"
    );
}

#[tokio::test]
async fn credentials_are_derived_from_the_host_key_and_kept_once_observed() {
    let key_a = Arc::new(SecretKey::new(vec![1; 32]).unwrap());
    let key_b = Arc::new(SecretKey::new(vec![2; 32]).unwrap());
    let spec = json!({"engine": "postgres", "version": "16", "storage": "1Gi"});
    let password = |children: &[Value]| {
        base64_decode(
            child(children, "Secret")["data"]["password"]
                .as_str()
                .unwrap(),
        )
    };
    let binding = bind(DATABASE, json!({}))
        .await
        .with_secret_key(key_a.clone());
    let first = binding
        .expand(&composite(spec.clone()), &[], &ctx())
        .await
        .unwrap();
    let again = binding
        .expand(&composite(spec.clone()), &[], &ctx())
        .await
        .unwrap();
    let p = password(&first.children);
    assert_eq!(p.len(), 24);
    assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(p, password(&again.children), "deterministic");
    assert_eq!(first.report.secrets_derived, 1);

    // Another key gives another password: it is not guessable from the composite.
    let other = bind(DATABASE, json!({})).await.with_secret_key(key_b);
    let other = other
        .expand(&composite(spec.clone()), &[], &ctx())
        .await
        .unwrap();
    assert_ne!(p, password(&other.children));

    // Another composite gives another password under the same key.
    let mut renamed = composite(spec.clone());
    renamed["metadata"]["name"] = json!("invoices");
    let renamed = binding.expand(&renamed, &[], &ctx()).await.unwrap();
    assert_ne!(p, password(&renamed.children));

    // Once the Secret exists, its value is kept, whatever the key.
    let observed = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "orders-credentials", "namespace": "shop"},
        "data": {"password": "a2VwdC12YWx1ZQ=="},
    });
    let kept = binding
        .expand(&composite(spec), &[observed], &ctx())
        .await
        .unwrap();
    assert_eq!(password(&kept.children), "kept-value");
    assert_eq!(kept.report.secrets_derived, 0);
}

#[tokio::test]
async fn ready_follows_the_observed_statefulset() {
    let binding = bind(DATABASE, json!({})).await;
    let spec = json!({"engine": "postgres", "version": "16", "replicas": 2, "storage": "1Gi"});
    let observed = |ready: i64| json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "orders", "namespace": "shop"}, "status": {"readyReplicas": ready}});
    let half = binding
        .expand(&composite(spec.clone()), &[observed(1)], &ctx())
        .await
        .unwrap();
    assert!(!half.ready);
    let all = binding
        .expand(&composite(spec), &[observed(2)], &ctx())
        .await
        .unwrap();
    assert!(all.ready);
}

#[tokio::test]
async fn names_that_cannot_name_a_service_are_refused() {
    let binding = bind(DATABASE, json!({})).await;
    let mut bad = composite(json!({"engine": "postgres", "version": "16", "storage": "1Gi"}));
    bad["metadata"]["name"] = json!("Orders_DB");
    match binding.expand(&bad, &[], &ctx()).await.unwrap_err() {
        Error::Refused { field, message, .. } => {
            assert_eq!(field.as_deref(), Some("metadata.name"));
            assert!(message.ends_with(r#"got "Orders_DB""#), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
