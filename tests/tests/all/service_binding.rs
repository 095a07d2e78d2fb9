//! The `service-binding` composition plugin, through the runtime.

use serde_json::json;
use tessera_runtime::Error;
use tessera_tests::{example, plugins::SERVICE_BINDING};

use crate::common::{
    assert_valid_kubernetes, base64_decode, bind, child, ctx, kinds_and_names, yaml_file,
};

fn instance(class: &str, plan: &str) -> serde_json::Value {
    json!({
        "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "ServiceInstance",
        "metadata": {"name": "store", "namespace": "shop"},
        "spec": {"class": class, "plan": plan},
    })
}

#[tokio::test]
async fn renders_the_redis_example() {
    let binding = bind(SERVICE_BINDING, json!({})).await;
    let composed = binding
        .expand(&yaml_file(&example("service-instance.yaml")), &[], &ctx())
        .await
        .unwrap();
    assert_eq!(
        kinds_and_names(&composed.children),
        [
            "ConfigMap/sessions-config",
            "Service/sessions",
            "StatefulSet/sessions",
            "Secret/sessions-binding"
        ]
    );
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn the_binding_secret_carries_connection_details() {
    let binding = bind(SERVICE_BINDING, json!({})).await;
    let composed = binding
        .expand(&instance("postgresql", "small"), &[], &ctx())
        .await
        .unwrap();
    let secret = child(&composed.children, "Secret");
    assert_eq!(secret["metadata"]["name"], "store-binding");
    let data = |key: &str| base64_decode(secret["data"][key].as_str().unwrap());
    let host = "store.shop.svc.cluster.local";
    assert_eq!(data("host"), host);
    assert_eq!(data("port"), "5432");
    assert_eq!(data("username"), "app");
    let password = data("password");
    assert_eq!(password.len(), 32);
    assert_eq!(
        data("uri"),
        format!("postgresql://app:{password}@{host}:5432/store")
    );
    assert_eq!(composed.report.secrets_derived, 1);
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn large_plans_get_a_disruption_budget() {
    let binding = bind(SERVICE_BINDING, json!({})).await;
    let composed = binding
        .expand(&instance("postgresql", "large"), &[], &ctx())
        .await
        .unwrap();
    assert_eq!(
        child(&composed.children, "StatefulSet")["spec"]["replicas"],
        3
    );
    child(&composed.children, "PodDisruptionBudget");
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn unknown_parameters_are_refused_naming_the_field() {
    let binding = bind(SERVICE_BINDING, json!({})).await;
    let mut composite = instance("redis", "small");
    composite["spec"]["parameters"] = json!({"foo": 1});
    match binding.expand(&composite, &[], &ctx()).await.unwrap_err() {
        Error::Refused { field, message, .. } => {
            assert_eq!(field.as_deref(), Some("spec.parameters.foo"));
            assert!(
                message.contains("is not a parameter of class redis"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}
