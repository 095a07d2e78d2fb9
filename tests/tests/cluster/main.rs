//! Tests against a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager) started on loopback once per test process; see
//! [`harness`]. Needs the binaries `scripts/build-kube` builds.

mod controller;
mod deploy;
mod faults;
mod fixture;
mod harness;
mod load;
mod metrics;
// Shared with the `oci` test binary; each uses part of it.
#[allow(dead_code)]
#[path = "../oci/olareg.rs"]
mod olareg;
mod reads;
mod registry;
mod webhook;

/// A plugin artifact cache shared by the tests of this process.
pub fn cache_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ObjectList;
use kube::{Resource as _, ResourceExt as _};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use harness::{ControlPlane, apply_yaml, eventually};

/// The control plane answers, stores objects, and its garbage collector
/// deletes a dependent whose owner is gone (kube-controller-manager runs).
#[tokio::test]
async fn control_plane_serves_requests() {
    let control_plane = ControlPlane::shared().await;
    let client = control_plane.client();

    let namespaces: ObjectList<Namespace> = Api::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("listing namespaces");
    let names: Vec<String> = namespaces.iter().map(|ns| ns.name_any()).collect();
    for expected in ["default", "kube-system"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    let namespace = control_plane.namespace("smoke").await;
    assert!(namespace.starts_with("smoke-"), "{namespace}");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);

    let owner = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".to_string()),
                    ..ObjectMeta::default()
                },
                data: Some([("role".to_string(), "owner".to_string())].into()),
                ..ConfigMap::default()
            },
        )
        .await
        .expect("creating the owner ConfigMap");
    let owner_reference = owner
        .controller_owner_ref(&())
        .expect("a created object has a name and uid");

    // A dependent applied from YAML (server-side apply through discovery).
    let applied = apply_yaml(
        &client,
        &format!(
            "
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  namespace: {namespace}
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: {uid}
data:
  role: dependent
",
            uid = owner_reference.uid
        ),
        "tessera-tests",
    )
    .await
    .expect("applying the dependent ConfigMap");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].name_any(), "dependent");
    let dependent = config_maps
        .get("dependent")
        .await
        .expect("the dependent exists");
    assert_eq!(dependent.owner_references().len(), 1);

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("deleting the owner");
    eventually(
        "the garbage collector to delete the dependent ConfigMap",
        Duration::from_secs(60),
        || async {
            config_maps
                .get_opt("dependent")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// What the harness hands out works: the kubeconfig file, serving
/// certificates chained to the CA, and service account tokens (TokenRequest,
/// signed by kube-apiserver; and legacy token Secrets, signed by
/// kube-controller-manager) that RBAC restricts.
#[tokio::test]
async fn harness_credentials_work() {
    let control_plane = ControlPlane::shared().await;
    assert!(
        control_plane.url().starts_with("https://127.0.0.1:"),
        "{}",
        control_plane.url()
    );
    assert!(
        ControlPlane::kube_bin_dir()
            .join("kube-apiserver")
            .is_file()
    );
    assert!(control_plane.dir().join("kube-apiserver.log").is_file());

    // The kubeconfig file, as a process started by a test would read it (the
    // first client() call above installed the ring crypto provider).
    let admin_client = control_plane.client();
    let kubeconfig = Kubeconfig::read_from(control_plane.kubeconfig()).expect("reading kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config from the kubeconfig");
    let from_file = kube::Client::try_from(config).expect("a client from the kubeconfig");
    Api::<Namespace>::all(from_file)
        .get("default")
        .await
        .expect("reading namespace default with the kubeconfig's credentials");

    // A serving certificate for loopback, chained to the CA.
    let (cert_pem, key_pem) = control_plane.serving_cert();
    assert!(key_pem.contains("BEGIN PRIVATE KEY"), "{key_pem}");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(control_plane.ca_pem().as_bytes()).expect("CA PEM"))
        .expect("adding the CA");
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("a verifier");
    let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate PEM");
    for name in ["127.0.0.1", "localhost"] {
        let name = ServerName::try_from(name).expect("a server name");
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("serving certificate for {name:?}: {e}"));
    }

    // A service account's token authenticates, and RBAC grants it nothing
    // until a RoleBinding does.
    let namespace = control_plane.namespace("credentials").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin_client.clone(), &namespace);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("probe".to_string()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("creating service account probe");
    let token_request = accounts
        .create_token_request(
            "probe",
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .expect("requesting a token for probe");
    let token = token_request
        .status
        .and_then(|status| status.token)
        .expect("a token in the token request's status");
    let probe = control_plane.client_for_token(&token);
    let expected_user = format!("system:serviceaccount:{namespace}:probe");
    assert_eq!(username(&probe).await, expected_user);

    let probe_config_maps: Api<ConfigMap> = Api::namespaced(probe.clone(), &namespace);
    match probe_config_maps.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("probe listed ConfigMaps before any RoleBinding: {other:?}"),
    }
    apply_yaml(
        &admin_client,
        &format!(
            "
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: read-config-maps
  namespace: {namespace}
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: probe-reads-config-maps
  namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: read-config-maps
subjects:
- kind: ServiceAccount
  name: probe
  namespace: {namespace}
"
        ),
        "tessera-tests",
    )
    .await
    .expect("applying the Role and RoleBinding");
    eventually(
        "the RoleBinding to let probe list ConfigMaps",
        Duration::from_secs(30),
        || async { probe_config_maps.list(&ListParams::default()).await.ok() },
    )
    .await;

    // A legacy token Secret, filled in by kube-controller-manager.
    let secrets: Api<Secret> = Api::namespaced(admin_client.clone(), &namespace);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("probe-token".to_string()),
                    annotations: Some(
                        [(
                            "kubernetes.io/service-account.name".to_string(),
                            "probe".to_string(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                type_: Some("kubernetes.io/service-account-token".to_string()),
                ..Secret::default()
            },
        )
        .await
        .expect("creating a service account token Secret");
    let ByteString(legacy_token) = eventually(
        "kube-controller-manager to fill in the token Secret",
        Duration::from_secs(30),
        || async { secrets.get("probe-token").await.ok()?.data?.remove("token") },
    )
    .await;
    let legacy =
        control_plane.client_for_token(&String::from_utf8(legacy_token).expect("a UTF-8 token"));
    assert_eq!(username(&legacy).await, expected_user);
}

/// Who the apiserver says `client` is.
async fn username(client: &kube::Client) -> String {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("creating a SelfSubjectReview");
    review
        .status
        .and_then(|status| status.user_info)
        .and_then(|user| user.username)
        .expect("a SelfSubjectReview names the user")
}

/// `apply_yaml` applies a CRD and, in the same stream, an object of its kind
/// (it waits for the CRD to be served); objects without a namespace go to the
/// client's default namespace.
#[tokio::test]
async fn apply_yaml_applies_a_crd_then_its_objects() {
    let control_plane = ControlPlane::shared().await;
    let namespace = control_plane.namespace("apply").await;
    let client = control_plane.client_in(&namespace);
    let applied = apply_yaml(
        &client,
        "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.harness.tessera.dev
spec:
  group: harness.tessera.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
---
# a comment-only document is skipped
---
apiVersion: harness.tessera.dev/v1
kind: Widget
metadata:
  name: first
spec:
  size: 3
",
        "tessera-tests",
    )
    .await
    .expect("applying the CRD and a Widget");
    let kinds: Vec<&str> = applied
        .iter()
        .map(|o| o.types.as_ref().map_or("", |t| t.kind.as_str()))
        .collect();
    assert_eq!(kinds, ["CustomResourceDefinition", "Widget"]);
    assert_eq!(applied[1].namespace().as_deref(), Some(namespace.as_str()));
    assert_eq!(applied[1].data["spec"]["size"], 3);
}
