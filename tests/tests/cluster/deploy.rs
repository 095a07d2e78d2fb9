//! `deploy/`: the committed CRDs match the code, the API server accepts every
//! manifest, and the controller does its job with exactly the RBAC that
//! `deploy/rbac.yaml` and the sample grant (it runs with the service
//! account's token, not as an administrator).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tessera_controller::leader::LeaseConfig;
use tessera_tests::{plugins, workspace};

use crate::fixture::{TEST_LABEL, World, condition};
use crate::harness::{apply_yaml, eventually};
use crate::olareg::{Olareg, openssl_key};
use crate::registry::tessera;

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn committed_crds_match_the_code() {
    assert!(
        read("deploy/crds.yaml") == tessera_controller::crd::crds_yaml(),
        "deploy/crds.yaml is stale: run `cargo run -p tessera-controller -- crds > deploy/crds.yaml`"
    );
}

/// YAML documents as JSON.
fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn to_yaml(documents: &[Value]) -> String {
    documents
        .iter()
        .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).expect("YAML")))
        .collect()
}

#[tokio::test]
async fn manifests_are_accepted_and_their_rbac_is_enough() {
    // The Database kind of the sample is the real one, so this test does not
    // use a group of its own; `World` still gives it a namespace.
    let world = World::new("deploy").await;
    let client = world.client.clone();
    for file in [
        "deploy/crds.yaml",
        "deploy/rbac.yaml",
        "deploy/controller.yaml",
    ] {
        apply_yaml(&client, &read(file), "tessera-tests")
            .await
            .unwrap_or_else(|e| panic!("{file}: {e:#}"));
    }
    // The webhook configuration would send every matching request in the
    // cluster to a Service without pods: validated by a dry run only.
    let webhook = documents(&read("deploy/webhook.yaml")).remove(0);
    let configurations = Api::<DynamicObject>::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        )),
    );
    let mut dry_run = PatchParams::apply("tessera-tests").force();
    dry_run.dry_run = true;
    configurations
        .patch("tessera", &dry_run, &Patch::Apply(&webhook))
        .await
        .expect("deploy/webhook.yaml is accepted");

    // The sample's plugins, built by this test run, pushed signed to a real
    // registry on loopback, and the registry credentials the sample's pull
    // secret names (olareg takes any); its Composition and Policies
    // labelled for this test's controller.
    let registry = Olareg::start();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(work.path(), "release");
    for (name, plugin) in [
        ("database", plugins::DATABASE),
        ("require-labels", plugins::REQUIRE_LABELS),
        ("provenance", plugins::PROVENANCE),
    ] {
        let reference = registry.reference(&format!("tessera/{name}:0.1.0"));
        let cache = work.path().join("cli-cache");
        let key = key.to_str().unwrap();
        tessera(&cache, &["push", plugin, &reference, "--sign", key]).await;
    }
    let credentials = json!({"auths": {registry.host.clone(): {"auth": "dGVzdDp0ZXN0"}}});
    let pull_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "tessera-registry", "namespace": "tessera-system"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": credentials.to_string()},
    }))
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "tessera-system");
    let _ = secrets
        .delete("tessera-registry", &Default::default())
        .await;
    secrets
        .create(&Default::default(), &pull_secret)
        .await
        .expect("creating the pull secret");
    let sample = read("deploy/samples/database.yaml").replace(
        "oci://registry.example.com/",
        &format!("oci://{}/", registry.host),
    );
    let mut sample = documents(&sample);
    for document in &mut sample {
        if document["apiVersion"] == "tessera.dev/v1alpha1" {
            document["metadata"]["labels"] = json!({TEST_LABEL: "deploy"});
        }
    }
    apply_yaml(&client, &to_yaml(&sample), "tessera-tests")
        .await
        .expect("deploy/samples/database.yaml");

    // kube-controller-manager aggregates the sample's role.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    eventually(
        "the composite role to be aggregated",
        Duration::from_secs(30),
        || async {
            let role = roles.get("tessera-controller-composites").await.ok()?;
            let rules = role.rules.unwrap_or_default();
            rules
                .iter()
                .any(|r| r.resources.iter().flatten().any(|x| x == "databases"))
                .then_some(())
        },
    )
    .await;

    // The controller, as the service account.
    let token =
        crate::harness::service_account_token(&client, "tessera-system", "tessera-controller")
            .await;
    let service_account = world.control_plane.client_for_token(&token);
    let mut options = world.options();
    options.lease = Some(LeaseConfig {
        namespace: "tessera-system".into(),
        name: "tessera-controller".into(),
        identity: "deploy-test".into(),
        duration: Duration::from_secs(15),
        renew: Duration::from_secs(2),
    });
    // As controller.yaml runs it: the cluster-wide trust policy, pull
    // secrets read from tessera-system.
    let policy = work.path().join("policy.yaml");
    std::fs::write(&policy, "allOf:\n  - kind: pubKey\n    path: release.pub\n").unwrap();
    assert!(public.ends_with("release.pub"));
    options.oci = tessera_controller::OciOptions {
        registry: tessera_oci::RegistryOptions::default().plain_http_host(registry.host.clone()),
        trust_policy: Some(tessera_oci::TrustPolicy::from_file(&policy).expect("trust policy")),
        store: Some(tessera_oci::Store::new(work.path().join("controller-oci"))),
        namespace: "tessera-system".into(),
    };
    let running = tessera_controller::start(service_account.clone(), options)
        .await
        .expect("starting as the service account");

    let example = read("examples/database.yaml").replace(
        "namespace: shop",
        &format!("namespace: {}", world.namespace),
    );
    apply_yaml(&client, &example, "tessera-tests")
        .await
        .expect("examples/database.yaml");
    let databases = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &world.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "platform.tessera.dev",
            "v1alpha1",
            "Database",
        )),
    );
    let composite = eventually(
        "the sample Database to be Synced",
        Duration::from_secs(90),
        || async {
            let object = serde_json::to_value(databases.get("orders").await.ok()?).ok()?;
            let synced = condition(&object, "Synced")?;
            (synced["status"] == "True").then_some(object)
        },
    )
    .await;
    assert_eq!(
        composite["status"]["resourceRefs"].as_array().map(Vec::len),
        Some(5)
    );
    assert!(running.is_leading());

    // Least privilege: what the roles do not grant is refused.
    let deployments = Api::<DynamicObject>::namespaced_with(
        service_account,
        &world.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
    );
    match deployments.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("listing Deployments as the controller should be forbidden: {other:?}"),
    }
    running.shutdown().await.expect("clean shutdown");
}
