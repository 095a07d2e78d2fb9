//! The `web-app` composition plugin, through the runtime.

use serde_json::json;
use tessera_runtime::Error;
use tessera_tests::{example, plugins::WEB_APP};

use crate::common::{assert_valid_kubernetes, bind, child, ctx, kinds_and_names, yaml_file};

#[tokio::test]
async fn renders_the_example_with_ingress_and_autoscaler() {
    let binding = bind(WEB_APP, json!({"ingressClassName": "nginx"})).await;
    let composed = binding
        .expand(&yaml_file(&example("web-app.yaml")), &[], &ctx())
        .await
        .unwrap();
    assert_eq!(
        kinds_and_names(&composed.children),
        [
            "Deployment/storefront",
            "Service/storefront",
            "Ingress/storefront",
            "HorizontalPodAutoscaler/storefront"
        ]
    );
    let deployment = child(&composed.children, "Deployment");
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the autoscaler owns replicas"
    );
    assert_eq!(
        child(&composed.children, "Ingress")["spec"]["ingressClassName"],
        "nginx"
    );
    assert_eq!(
        child(&composed.children, "HorizontalPodAutoscaler")["spec"]["maxReplicas"],
        10
    );
    assert_eq!(
        composed.status.as_ref().unwrap()["url"],
        "http://shop.example.com"
    );
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn a_minimal_app_is_a_deployment_and_a_service() {
    let binding = bind(WEB_APP, json!({})).await;
    let composite = json!({
        "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "hello", "namespace": "demo"},
        "spec": {"image": "nginx:1.27", "port": 80, "replicas": 2},
    });
    let composed = binding.expand(&composite, &[], &ctx()).await.unwrap();
    assert_eq!(
        kinds_and_names(&composed.children),
        ["Deployment/hello", "Service/hello"]
    );
    assert_eq!(
        child(&composed.children, "Deployment")["spec"]["replicas"],
        2
    );
    assert_valid_kubernetes(&composed.children);
}

#[tokio::test]
async fn bad_specs_name_the_field() {
    let binding = bind(WEB_APP, json!({})).await;
    let composite = json!({
        "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "hello"},
        "spec": {"image": "nginx", "port": 80, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
    });
    let err = binding.expand(&composite, &[], &ctx()).await.unwrap_err();
    match err {
        Error::Refused { field, .. } => {
            assert_eq!(field.as_deref(), Some("spec.autoscaling.maxReplicas"))
        }
        other => panic!("{other:?}"),
    }
}
