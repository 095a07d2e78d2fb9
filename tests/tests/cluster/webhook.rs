//! The admission webhook end to end: a ValidatingWebhookConfiguration
//! pointing at the webhook (URL + caBundle), objects created through the
//! API server, good ones admitted, bad ones refused with the policy's
//! message; audit mode, fail-closed and fail-open.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;
use tessera_controller::WebhookOptions;
use tessera_tests::plugins;

use crate::fixture::World;
use crate::harness::{apply_yaml, eventually};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([("key".to_string(), "value".to_string())].into()),
        ..ConfigMap::default()
    }
}

/// The API server's message when it refused `object`, or None if admitted.
async fn create(api: &Api<ConfigMap>, object: &ConfigMap) -> Option<String> {
    match api.create(&PostParams::default(), object).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(other) => panic!("creating a ConfigMap: {other}"),
    }
}

#[tokio::test]
async fn webhook_admits_and_refuses_through_the_api_server() {
    let world = World::new("webhook").await;
    let (cert, key) = world.control_plane.serving_cert();
    let mut options = world.options();
    options.controller = false;
    options.webhook = Some(WebhookOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        budget: Duration::from_secs(3),
        policy_deadline: Duration::from_millis(500),
    });
    let running = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the webhook");
    let address = running.webhook_addr.expect("webhook address");

    // Policies: labels enforced on ConfigMaps named enforce-*... by kind, so
    // each mode gets its own namespace label instead.
    let rules = json!([{"apiGroups": [""], "kinds": ["ConfigMap"]}]);
    world
        .apply_policy(
            "webhook-require-team",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["team"]},
                "match": {"rules": rules, "namespaceSelector": {"matchLabels": {"tessera.dev/test": "webhook"}}},
                "mode": "Enforce",
            }),
        )
        .await;
    world
        .apply_policy(
            "webhook-audit-env",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["env"]},
                "match": {"rules": rules},
                "mode": "Audit",
            }),
        )
        .await;
    // Labels the namespace so the enforcing policy's selector matches it.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(world.client.clone());
    namespaces
        .patch(
            &world.namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"tessera.dev/test": "webhook"}}}),
            ),
        )
        .await
        .expect("labelling the namespace");

    let ca_bundle = base64(world.control_plane.ca_pem().as_bytes());
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": format!("tessera-{}", world.namespace)},
        "webhooks": [{
            "name": "policies.tessera.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "failurePolicy": "Fail",
            "clientConfig": {"url": format!("https://{address}/validate"), "caBundle": ca_bundle},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.namespace}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
                "operations": ["CREATE", "UPDATE"]}],
        }],
    });
    apply_yaml(&world.client, &configuration.to_string(), "tessera-tests")
        .await
        .expect("registering the webhook");

    let config_maps: Api<ConfigMap> = Api::namespaced(world.client.clone(), &world.namespace);
    // The API server picks the configuration up within a moment.
    let refused = eventually("the webhook to refuse", Duration::from_secs(30), || async {
        let name = format!("bad-{}", rand_suffix());
        create(&config_maps, &config_map(&name, &[])).await
    })
    .await;
    assert!(
        refused.contains("policy webhook-require-team denied ConfigMap"),
        "{refused}"
    );
    assert!(refused.contains("team"), "{refused}");

    // A good one is admitted, even though the audit policy finds a problem.
    assert_eq!(
        create(&config_maps, &config_map("good", &[("team", "payments")])).await,
        None
    );
    assert!(
        config_maps
            .get_opt("good")
            .await
            .expect("reading")
            .is_some()
    );

    // The audit policy's finding comes back as a warning (kubectl prints
    // those); asked directly, as the API server asks.
    let answer = post_review(&world, address, "audited", &[("team", "payments")]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let warnings = answer["response"]["warnings"].to_string();
    assert!(
        warnings.contains("(audit) policy webhook-audit-env denied"),
        "{answer}"
    );
    assert!(warnings.contains("env"), "{answer}");
    let answer = post_review(&world, address, "unlabelled", &[]).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 403, "{answer}");

    // Fail closed: a policy that loops past its deadline refuses.
    world
        .apply_policy(
            "webhook-broken",
            json!({
                "plugin": {"path": plugins::FAULTY_POLICY},
                "settings": {"mode": "loop"},
                "limits": {"deadline": "200ms"},
                "match": {"rules": rules},
                "failurePolicy": "Fail",
            }),
        )
        .await;
    let refused = eventually(
        "the broken policy to be loaded",
        Duration::from_secs(30),
        || async {
            let name = format!("closed-{}", rand_suffix());
            let message = create(&config_maps, &config_map(&name, &[("team", "payments")])).await?;
            message.contains("webhook-broken").then_some(message)
        },
    )
    .await;
    assert!(
        refused.contains("policy webhook-broken failed"),
        "{refused}"
    );
    assert!(refused.contains("deadline"), "{refused}");

    // Fail open: the same plugin with failurePolicy Ignore lets it through.
    world
        .apply_policy(
            "webhook-broken",
            json!({
                "plugin": {"path": plugins::FAULTY_POLICY},
                "settings": {"mode": "loop"},
                "limits": {"deadline": "200ms"},
                "match": {"rules": rules},
                "failurePolicy": "Ignore",
            }),
        )
        .await;
    eventually("fail-open to admit", Duration::from_secs(30), || async {
        let name = format!("open-{}", rand_suffix());
        create(&config_maps, &config_map(&name, &[("team", "payments")]))
            .await
            .is_none()
            .then_some(())
    })
    .await;

    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(world.client.clone());
    configurations
        .delete(&format!("tessera-{}", world.namespace), &Default::default())
        .await
        .expect("removing the webhook configuration");
    running.shutdown().await.expect("clean shutdown");
}

/// Sends an AdmissionReview for a ConfigMap straight to the webhook over
/// HTTPS (trusting the test CA) and returns the answer.
async fn post_review(
    world: &World,
    address: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d3e0b3c-review",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "namespace": world.namespace,
            "name": name,
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": world.namespace, "labels": labels}},
        },
    });
    let ca = reqwest::Certificate::from_pem(world.control_plane.ca_pem().as_bytes()).expect("CA");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("HTTPS client");
    let response = client
        .post(format!("https://{address}/validate"))
        .header("content-type", "application/json")
        .body(review.to_string())
        .send()
        .await
        .expect("posting the review");
    assert!(response.status().is_success(), "{}", response.status());
    let answer: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON answer");
    assert_eq!(answer["response"]["uid"], "0d3e0b3c-review", "{answer}");
    answer
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Standard base64, as the API server wants `caBundle` (k8s-openapi's
/// `ByteString` serializes that way).
fn base64(bytes: &[u8]) -> String {
    match serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())) {
        Ok(serde_json::Value::String(text)) => text,
        other => panic!("ByteString serializes as a string: {other:?}"),
    }
}
