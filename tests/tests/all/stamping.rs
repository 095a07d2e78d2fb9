//! Provenance the host stamps on every child, and determinism.

use serde_json::{Value, json};
use tessera_runtime::provenance::{self, canonical_json};
use tessera_tests::{example, plugins::DATABASE};

use crate::common::{bind, ctx, yaml_file};

/// sha256 of a file by `sha256sum`, an implementation independent of ours.
fn sha256sum(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

#[tokio::test]
async fn every_child_carries_exact_provenance() {
    let binding = bind(DATABASE, json!({})).await;
    let mut composite = yaml_file(&example("database.yaml"));
    composite["metadata"]["uid"] = json!("6c0e0b5c-5a7d-4f55-9d7c-1f0c7b1f2a10");
    composite["metadata"]["generation"] = json!(7);
    let composed = binding.expand(&composite, &[], &ctx()).await.unwrap();

    let digest = sha256sum(DATABASE);
    assert_eq!(binding.plugin().digest(), digest);
    let input = provenance::input_digest(&composite, &json!({}));
    for child in &composed.children {
        let annotations = &child["metadata"]["annotations"];
        let expected = json!({
            "tessera.dev/composed-by": "database@0.1.0",
            "tessera.dev/plugin-digest": digest,
            "tessera.dev/composite": "platform.tessera.dev/v1alpha1/Database/shop/orders",
            "tessera.dev/composite-uid": "6c0e0b5c-5a7d-4f55-9d7c-1f0c7b1f2a10",
            "tessera.dev/composite-generation": "7",
            "tessera.dev/input-digest": input,
        });
        assert_eq!(annotations, &expected, "{}", child["kind"]);
        assert_eq!(
            child["metadata"]["labels"]["tessera.dev/composite-name"],
            "orders"
        );
    }
}

#[tokio::test]
async fn input_digest_is_sha256_of_canonical_intent() {
    let composite = yaml_file(&example("database.yaml"));
    let settings = json!({"storageClassName": "fast"});
    // Recompute by hand: the composite's intent and the settings, keys sorted.
    let intent = json!({
        "composite": {
            "apiVersion": composite["apiVersion"],
            "kind": composite["kind"],
            "metadata": {
                "name": "orders", "namespace": "shop",
                "labels": composite["metadata"]["labels"],
                "annotations": composite["metadata"]["annotations"],
            },
            "spec": composite["spec"],
        },
        "settings": settings,
    });
    let canonical = canonical_json(&intent);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canonical.json");
    std::fs::write(&file, &canonical).unwrap();
    assert_eq!(
        provenance::input_digest(&composite, &settings),
        sha256sum(file.to_str().unwrap())
    );
    // Status and bookkeeping do not change it; the spec does.
    let mut touched = composite.clone();
    touched["status"] = json!({"endpoint": "x"});
    touched["metadata"]["resourceVersion"] = json!("991");
    assert_eq!(
        provenance::input_digest(&touched, &settings),
        provenance::input_digest(&composite, &settings)
    );
    touched["spec"]["replicas"] = json!(1);
    assert_ne!(
        provenance::input_digest(&touched, &settings),
        provenance::input_digest(&composite, &settings)
    );
}

#[tokio::test]
async fn cluster_scoped_composites_leave_the_namespace_empty() {
    let binding = bind(DATABASE, json!({})).await;
    let composite = json!({
        "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "Database",
        "metadata": {"name": "global"},
        "spec": {"engine": "postgres", "version": "16", "storage": "1Gi"},
    });
    let composed = binding.expand(&composite, &[], &ctx()).await.unwrap();
    for child in &composed.children {
        assert!(child["metadata"].get("namespace").is_none(), "{child}");
        assert_eq!(
            child["metadata"]["annotations"]["tessera.dev/composite"],
            "platform.tessera.dev/v1alpha1/Database//global"
        );
        assert!(
            child["metadata"]["annotations"]
                .get("tessera.dev/composite-uid")
                .is_none()
        );
    }
}

#[tokio::test]
async fn composites_without_identity_are_refused_as_input() {
    let binding = bind(DATABASE, json!({})).await;
    for (composite, message) in [
        (
            json!({"kind": "Database", "metadata": {"name": "x"}}),
            "the composite has no apiVersion",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Database", "metadata": {}}),
            "the composite has no metadata.name",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Database", "metadata": {"name": "x", "generation": "two"}}),
            "metadata.generation must be an integer",
        ),
        (json!([1]), "the composite is not an object"),
    ] {
        let err = binding.expand(&composite, &[], &ctx()).await.unwrap_err();
        assert!(
            matches!(err, tessera_runtime::Error::Input { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[tokio::test]
async fn output_is_byte_identical_across_runs_and_runtimes() {
    let composite = yaml_file(&example("database.yaml"));
    let render = |children: &[Value]| serde_json::to_string(children).unwrap();
    let first = bind(DATABASE, json!({})).await;
    let a = first.expand(&composite, &[], &ctx()).await.unwrap();
    let b = first.expand(&composite, &[], &ctx()).await.unwrap();
    // A second runtime, without the cache: compiled afresh.
    let runtime = tessera_runtime::Runtime::builder()
        .no_cache()
        .build()
        .unwrap();
    let plugin = runtime.load_file(DATABASE).await.unwrap();
    assert_eq!(
        plugin.artifact_source(),
        tessera_runtime::ArtifactSource::Compiled
    );
    let second = tessera_runtime::Binding::new(plugin, json!({})).unwrap();
    let c = second.expand(&composite, &[], &ctx()).await.unwrap();
    assert_eq!(render(&a.children), render(&b.children));
    assert_eq!(render(&a.children), render(&c.children));
    assert_eq!(a.status, c.status);
}
