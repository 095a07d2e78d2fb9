//! What the controller and webhook tests share: a composite kind of their
//! own (a `Database` CRD in a group named after the test, so tests running at
//! once never see each other's composites), a controller started in-process
//! that only takes the Compositions and Policies labelled for the test, and
//! small readers.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Value, json};
use tessera_controller::{Options, Running};
use tessera_runtime::{Runtime, SecretKey};

use crate::harness::{ControlPlane, apply_yaml, eventually};

/// The field manager tests apply their own objects with.
pub const TEST_MANAGER: &str = "tessera-tests";

/// The label that routes a test's Compositions and Policies to its own
/// controller.
pub const TEST_LABEL: &str = "tessera.dev/test";

/// One test's world.
pub struct World {
    /// The shared control plane.
    pub control_plane: &'static ControlPlane,
    /// An admin client.
    pub client: Client,
    /// The test's namespace.
    pub namespace: String,
    /// The test's name: group `<id>.tessera.test`, label `tessera.dev/test=<id>`.
    pub id: String,
    /// The composite kind.
    pub resource: ApiResource,
}

impl World {
    /// A namespace and a `Database` CRD of the test's own.
    pub async fn new(id: &str) -> World {
        let control_plane = ControlPlane::shared().await;
        let client = control_plane.client();
        let namespace = control_plane.namespace(id).await;
        let group = format!("{id}.tessera.test");
        apply_yaml(&client, &tessera_controller::crd::crds_yaml(), TEST_MANAGER)
            .await
            .expect("applying the Tessera CRDs");
        apply_yaml(&client, &database_crd(&group), TEST_MANAGER)
            .await
            .expect("applying the Database CRD");
        let resource =
            ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1alpha1", "Database"));
        World {
            control_plane,
            client,
            namespace,
            id: id.to_string(),
            resource,
        }
    }

    /// The composite's apiVersion.
    pub fn api_version(&self) -> String {
        self.resource.api_version.clone()
    }

    /// Options for a controller of this test: resync every 2 s (so steady
    /// state is exercised often), plugin files re-read every second, only
    /// this test's Compositions and Policies, and the pooling allocator as
    /// `tessera-controller run` uses it (fewer slots than its default: many
    /// tests run in this process at once).
    pub fn options(&self) -> Options {
        let runtime = Runtime::builder()
            .cache_dir(crate::cache_dir())
            .pooling(16)
            .build()
            .expect("runtime");
        let mut options =
            Options::new(runtime, Arc::new(SecretKey::new(vec![7; 32]).expect("key")));
        options.identity = format!("{}-controller", self.id);
        options.resync = Duration::from_secs(2);
        options.plugin_resync = Duration::from_secs(1);
        options.selector = Some(format!("{TEST_LABEL}={}", self.id));
        options
    }

    /// Starts a controller (no webhook) for this test.
    pub async fn start_controller(&self) -> Running {
        tessera_controller::start(self.client.clone(), self.options())
            .await
            .expect("starting the controller")
    }

    /// Applies a Composition for this test's Database kind.
    pub async fn apply_composition(&self, plugin: &str, settings: Value, extra: Value) {
        let mut spec = json!({
            "composite": {"apiVersion": self.api_version(), "kind": "Database"},
            "plugin": {"path": plugin},
            "settings": settings,
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let composition = json!({
            "apiVersion": "tessera.dev/v1alpha1",
            "kind": "Composition",
            "metadata": {"name": format!("{}-databases", self.id), "labels": {TEST_LABEL: self.id}},
            "spec": spec,
        });
        apply_yaml(&self.client, &composition.to_string(), TEST_MANAGER)
            .await
            .expect("applying the Composition");
    }

    /// Applies a Policy labelled for this test.
    pub async fn apply_policy(&self, name: &str, spec: Value) {
        let policy = json!({
            "apiVersion": "tessera.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name, "labels": {TEST_LABEL: self.id}},
            "spec": spec,
        });
        apply_yaml(&self.client, &policy.to_string(), TEST_MANAGER)
            .await
            .expect("applying the Policy");
    }

    /// Waits until the Policy `name` is loaded (its `Ready` condition is
    /// True), so that what follows does not race its first load.
    pub async fn wait_policy_ready(&self, name: &str) {
        let policies: Api<tessera_controller::crd::Policy> = Api::all(self.client.clone());
        eventually(
            &format!("Policy {name}: Ready=True"),
            Duration::from_secs(60),
            || async {
                let object = serde_json::to_value(policies.get(name).await.ok()?).ok()?;
                (condition(&object, "Ready")?["status"] == "True").then_some(())
            },
        )
        .await;
    }

    /// The composites' API in the test namespace.
    pub fn composites(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &self.resource)
    }

    /// Creates or updates (server-side apply, as the test's manager) a
    /// Database named `name` with `spec` and `labels`.
    pub async fn apply_database(&self, name: &str, spec: Value, labels: Value) {
        let object = json!({
            "apiVersion": self.api_version(),
            "kind": "Database",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels,
                "annotations": {"tessera.dev/origin": "git@example.com:shop/platform.git//db.yaml",
                    "tessera.dev/version": "1.0.0"}},
            "spec": spec,
        });
        self.composites()
            .patch(
                name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .expect("applying the Database");
    }

    /// The composite as JSON.
    pub async fn database(&self, name: &str) -> Value {
        let object = self
            .composites()
            .get(name)
            .await
            .expect("reading the Database");
        serde_json::to_value(object).expect("JSON")
    }

    /// Waits until the composite's condition `type_` has `status`, and
    /// returns the condition.
    pub async fn wait_condition(&self, name: &str, type_: &str, status: &str) -> Value {
        eventually(
            &format!("Database {name}: {type_}={status}"),
            Duration::from_secs(60),
            || async {
                let object = self.composites().get(name).await.ok()?;
                let condition = condition(&serde_json::to_value(object).ok()?, type_)?;
                (condition["status"] == status).then_some(condition)
            },
        )
        .await
    }

    /// Every child of the composite `name` (by the composite-name label) of
    /// the kinds the database plugin makes, as `Kind/name` → object.
    pub async fn children(&self, name: &str) -> std::collections::BTreeMap<String, Value> {
        let mut children = std::collections::BTreeMap::new();
        let selector = format!("tessera.dev/composite-name={name}");
        for (group, version, kind) in CHILD_KINDS {
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .expect("listing children");
            for object in list {
                let value = serde_json::to_value(&object).expect("JSON");
                children.insert(
                    format!(
                        "{kind}/{}",
                        object.metadata.name.clone().unwrap_or_default()
                    ),
                    value,
                );
            }
        }
        children
    }

    /// Reasons of the events about `name` in the test namespace.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = events
            .list(&ListParams::default())
            .await
            .expect("listing events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }
}

/// The kinds the database plugin makes.
pub const CHILD_KINDS: [(&str, &str, &str); 5] = [
    ("", "v1", "Secret"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Service"),
    ("apps", "v1", "StatefulSet"),
    ("policy", "v1", "PodDisruptionBudget"),
];

/// The condition `type_` of an object's status.
pub fn condition(object: &Value, type_: &str) -> Option<Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// A string field by JSON pointer ("" when absent).
pub fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A namespaced `Database` CRD in `group` with a status subresource; the spec
/// is open so that the plugin, not the schema, judges bad values.
pub fn database_crd(group: &str) -> String {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("databases.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": "Database", "plural": "databases", "singular": "database"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                }}},
            }],
        },
    })
    .to_string()
}

/// The sha256 of a file, as `sha256:<hex>`, computed here independently of
/// the runtime.
pub fn file_digest(path: &str) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).expect("reading the plugin");
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
