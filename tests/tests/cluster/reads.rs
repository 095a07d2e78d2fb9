//! Plugins that read the cluster (`Composition.spec.reads`): the
//! `team-database` plugin reads the ConfigMap `database-defaults`. Its
//! children are the same offline (`tessera render --resources --reads`)
//! and in the cluster, they roll when the ConfigMap changes, a kind the
//! controller cannot watch says `ReadsUnavailable`, and a read outside the
//! binding's reads fails the same way offline and in the cluster. Policies
//! (`Policy.spec.reads`) read the same way in the webhook and offline
//! (`tessera validate --resources --reads`).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tessera_tests::plugins::TEAM_DATABASE;

use crate::fixture::{TEST_MANAGER, World, text};
use crate::harness::eventually;

/// What one run of the CLI printed.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `tessera ARGS` through the CLI's library, on a blocking thread (the
/// CLI runs its own tokio runtime).
async fn tessera(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut argv = vec![
            "tessera".to_string(),
            "--cache-dir".into(),
            crate::cache_dir().display().to_string(),
        ];
        argv.extend(args);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = tessera_cli::run(
            argv,
            &mut tessera_cli::Stdio {
                stdin: &mut std::io::empty(),
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
        );
        Output {
            code,
            stdout: String::from_utf8(stdout).expect("UTF-8 output"),
            stderr: String::from_utf8(stderr).expect("UTF-8 errors"),
        }
    })
    .await
    .expect("the CLI thread")
}

/// `object` without what the API server (or the controller's own step,
/// ownerReferences) sets: what the plugin and the host's stamping made.
fn normalised(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "ownerReferences",
        ] {
            metadata.remove(field);
        }
    }
    object
}

/// The ConfigMap the plugin reads, in `namespace`.
fn defaults(namespace: &str, team: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "database-defaults", "namespace": namespace},
        "data": {"engine": "postgres", "version": "16", "storage": "10Gi", "team": team},
    })
}

async fn apply_defaults(world: &World, namespace: &str, team: &str) {
    let api: Api<ConfigMap> = Api::namespaced(world.client.clone(), namespace);
    api.patch(
        "database-defaults",
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&defaults(namespace, team)),
    )
    .await
    .expect("applying the defaults ConfigMap");
}

/// Renders the composite `name` as the cluster holds it, offline, with the
/// ConfigMap the cluster holds and `reads`; returns the CLI's output.
async fn render_offline(
    world: &World,
    dir: &Path,
    name: &str,
    reads: &Value,
    settings: &Value,
) -> Output {
    // As the controller sees it: uid and generation are part of the input
    // digest the host stamps.
    let composite = world.database(name).await;
    let api: Api<ConfigMap> = Api::namespaced(world.client.clone(), &world.namespace);
    let read = serde_json::to_value(api.get("database-defaults").await.expect("the ConfigMap"))
        .expect("JSON");
    let files = [
        ("composite.json", composite),
        ("resources.json", normalised(read)),
        ("reads.json", reads.clone()),
        ("settings.json", settings.clone()),
    ];
    for (file, value) in &files {
        std::fs::write(dir.join(file), value.to_string()).expect("writing an input");
    }
    let path = |file: &str| dir.join(file).display().to_string();
    tessera(vec![
        "render".into(),
        path("composite.json"),
        "--plugin".into(),
        TEAM_DATABASE.into(),
        "--settings".into(),
        path("settings.json"),
        "--resources".into(),
        path("resources.json"),
        "--reads".into(),
        path("reads.json"),
        "--output".into(),
        "json".into(),
        "--secret-key".into(),
        path("key"),
    ])
    .await
}

/// The children `render --output json` printed.
fn rendered(out: &Output) -> Vec<Value> {
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    serde_json::from_str(&out.stdout).expect("a JSON list of children")
}

#[tokio::test]
async fn children_read_the_cluster_as_offline_and_roll_when_the_read_object_changes() {
    let world = World::new("reads").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The controller's key, so derived credentials (none here) would agree.
    std::fs::write(dir.path().join("key"), [7u8; 32]).expect("writing the key");
    apply_defaults(&world, &world.namespace, "payments").await;
    // No periodic resync within the test: only the read's watch can roll
    // the child.
    let mut options = world.options();
    options.resync = Duration::from_secs(3600);
    let _controller = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the controller");
    let reads = json!([{"apiVersion": "v1", "kind": "ConfigMap"}]);
    world
        .apply_composition(TEAM_DATABASE, json!({}), json!({"reads": reads}))
        .await;
    world
        .apply_database("ledger", json!({"version": "17"}), json!({}))
        .await;
    world.wait_condition("ledger", "Synced", "True").await;

    let configs: Api<ConfigMap> = Api::namespaced(world.client.clone(), &world.namespace);
    let child = |team: &'static str| {
        let configs = configs.clone();
        async move {
            let child = configs.get_opt("ledger-database").await.ok()??;
            let child = serde_json::to_value(child).ok()?;
            (text(&child, "/data/team") == team).then_some(child)
        }
    };
    let in_cluster = eventually(
        "the child with team payments",
        Duration::from_secs(60),
        || child("payments"),
    )
    .await;
    assert_eq!(text(&in_cluster, "/metadata/labels/team"), "payments");
    assert_eq!(text(&in_cluster, "/data/storage"), "10Gi");
    let offline = rendered(&render_offline(&world, dir.path(), "ledger", &reads, &json!({})).await);
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(
        normalised(in_cluster),
        offline[0],
        "offline and in the cluster"
    );

    // Changing the ConfigMap the composite read rolls its child.
    apply_defaults(&world, &world.namespace, "platform").await;
    let rolled = eventually(
        "the child with team platform",
        Duration::from_secs(30),
        || child("platform"),
    )
    .await;
    assert_eq!(text(&rolled, "/metadata/labels/team"), "platform");
    let offline = rendered(&render_offline(&world, dir.path(), "ledger", &reads, &json!({})).await);
    assert_eq!(
        normalised(rolled),
        offline[0],
        "offline and in the cluster, rolled"
    );
}

#[tokio::test]
async fn a_kind_the_controller_cannot_watch_says_reads_unavailable() {
    let world = World::new("reads-unavailable").await;
    let _controller = world.start_controller().await;
    world
        .apply_composition(
            TEAM_DATABASE,
            json!({}),
            json!({"reads": [{"apiVersion": "ghosts.tessera.test/v1", "kind": "Ghost"}]}),
        )
        .await;
    world
        .apply_database("ledger", json!({"version": "17"}), json!({}))
        .await;
    let synced = world.wait_condition("ledger", "Synced", "False").await;
    assert_eq!(synced["reason"], "ReadsUnavailable", "{synced}");
    let message = synced["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("cannot read ghosts.tessera.test/v1 Ghost at all: "),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn a_read_outside_the_binding_fails_the_same_offline_and_in_the_cluster() {
    let world = World::new("reads-denied").await;
    let other = world.control_plane.namespace("reads-other").await;
    apply_defaults(&world, &world.namespace, "payments").await;
    apply_defaults(&world, &other, "platform").await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("key"), [7u8; 32]).expect("writing the key");
    let _controller = world.start_controller().await;
    // The plugin reads in `other`; the reads name only the home namespace.
    let settings = json!({"defaultsNamespace": other});
    let reads = json!([{"apiVersion": "v1", "kind": "ConfigMap"}]);
    world
        .apply_composition(TEAM_DATABASE, settings.clone(), json!({"reads": reads}))
        .await;
    world
        .apply_database("ledger", json!({"version": "17"}), json!({}))
        .await;
    let synced = world.wait_condition("ledger", "Synced", "False").await;
    let expected = format!(
        "plugin team-database may not read v1/ConfigMap in namespace {other}: its binding allows only namespace {}",
        world.namespace
    );
    assert_eq!(synced["reason"], "PluginFailed", "{synced}");
    assert!(
        synced["message"]
            .as_str()
            .unwrap_or("")
            .ends_with(&expected),
        "{synced}"
    );
    let out = render_offline(&world, dir.path(), "ledger", &reads, &settings).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.trim_end().ends_with(&expected), "{}", out.stderr);
}

/// `deploy/samples/team-database.yaml` is accepted, and the CRD keeps its
/// `reads` (a field the schema lacked would be pruned silently).
#[tokio::test]
async fn the_sample_with_reads_is_accepted_and_keeps_its_reads() {
    let world = World::new("reads-sample").await;
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples/team-database.yaml"),
    )
    .expect("reading the sample");
    crate::harness::apply_yaml(&world.client, &sample, TEST_MANAGER)
        .await
        .expect("deploy/samples/team-database.yaml is accepted");
    let compositions: Api<tessera_controller::crd::Composition> = Api::all(world.client.clone());
    let composition = compositions
        .get("teamdatabases")
        .await
        .expect("the sample Composition");
    assert_eq!(
        serde_json::to_value(&composition.spec.reads).expect("JSON"),
        json!([{"apiVersion": "v1", "kind": "ConfigMap"}])
    );
}

/// A controller whose RBAC does not grant list and watch of a kind its
/// Composition reads says `ReadsUnavailable` within the first-list timeout,
/// naming the kind and namespace, instead of hanging.
#[tokio::test]
async fn a_kind_the_controller_may_not_list_says_reads_unavailable() {
    let world = World::new("reads-rbac").await;
    let group = world.resource.group.clone();
    let grant = json!([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "tessera-reads-rbac-test"},
         "rules": [
            {"apiGroups": ["tessera.dev"], "resources": ["compositions", "policies"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["tessera.dev"], "resources": ["compositions/status", "policies/status"], "verbs": ["patch"]},
            {"apiGroups": [group], "resources": ["databases"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [group], "resources": ["databases/status"], "verbs": ["patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
         ]},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "controller", "namespace": world.namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": format!("tessera-reads-rbac-test-{}", world.namespace)},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tessera-reads-rbac-test"},
         "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": world.namespace}]},
    ]);
    for object in grant.as_array().expect("a list") {
        crate::harness::apply_yaml(&world.client, &object.to_string(), TEST_MANAGER)
            .await
            .expect("applying the controller's grant");
    }
    let token =
        crate::harness::service_account_token(&world.client, &world.namespace, "controller").await;
    let _controller = tessera_controller::start(
        world.control_plane.client_for_token(&token),
        world.options(),
    )
    .await
    .expect("starting the controller as the service account");
    world
        .apply_composition(
            TEAM_DATABASE,
            json!({}),
            json!({"reads": [{"apiVersion": "v1", "kind": "ConfigMap"}]}),
        )
        .await;
    world
        .apply_database("ledger", json!({"version": "17"}), json!({}))
        .await;
    let synced = world.wait_condition("ledger", "Synced", "False").await;
    assert_eq!(synced["reason"], "ReadsUnavailable", "{synced}");
    let message = synced["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(&format!(
            "cannot read v1 ConfigMap in namespace {}: ",
            world.namespace
        )),
        "{message}"
    );
    assert!(message.contains("forbidden"), "{message}");
}

/// A Secret named `name` in `namespace`, as submitted and as judged
/// offline.
fn secret(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"key": "value"},
    })
}

/// The ConfigMap `ticket` the policy looks for, in `namespace`.
fn ticket(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ticket", "namespace": namespace},
    })
}

/// Creates `object` through the API server: the refusal's message, or
/// `None` when admitted.
async fn create_secret(world: &World, object: &Value) -> Option<String> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: Api<Secret> = Api::namespaced(world.client.clone(), &world.namespace);
    let secret: Secret = serde_json::from_value(object.clone()).expect("a Secret");
    match secrets
        .create(&kube::api::PostParams::default(), &secret)
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(other) => panic!("creating a Secret: {other}"),
    }
}

/// `tessera validate` of `object` with faulty-policy and `settings`,
/// reading `resources` within `reads`.
async fn validate_offline(
    dir: &Path,
    object: &Value,
    settings: &Value,
    resources: &[Value],
    reads: &Value,
) -> Output {
    let files = [
        ("object.json", object.to_string()),
        ("settings.json", settings.to_string()),
        (
            "resources.json",
            Value::from(resources.to_vec()).to_string(),
        ),
        ("reads.json", reads.to_string()),
    ];
    for (file, text) in &files {
        std::fs::write(dir.join(file), text).expect("writing an input");
    }
    let path = |file: &str| dir.join(file).display().to_string();
    tessera(vec![
        "validate".into(),
        path("object.json"),
        "--policy".into(),
        tessera_tests::plugins::FAULTY_POLICY.into(),
        "--settings".into(),
        path("settings.json"),
        "--resources".into(),
        path("resources.json"),
        "--reads".into(),
        path("reads.json"),
        "--output".into(),
        "json".into(),
    ])
    .await
}

/// A Policy that reads (faulty-policy's `require-configmap`: a Secret is
/// denied unless the ConfigMap `ticket` is in its namespace) judges the
/// same offline (`tessera validate --resources --reads`) and through the
/// API server and the webhook, with the reviewed object's namespace as
/// home: a ticket elsewhere does not count, and one created later is seen
/// from the webhook's watch cache. A read outside the policy's reads is
/// refused the same way offline and in the cluster.
#[tokio::test]
async fn a_policy_reads_the_cluster_as_offline() {
    use base64::Engine as _;

    let world = World::new("reads-policy").await;
    let other = world.control_plane.namespace("reads-policy-other").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = world.control_plane.serving_cert();
    let mut options = world.options();
    options.controller = false;
    options.webhook = Some(tessera_controller::WebhookOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        budget: Duration::from_secs(3),
        policy_deadline: Duration::from_secs(2),
    });
    let running = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the webhook");
    let address = running.webhook_addr.expect("webhook address");

    let name = format!("{}-ticket", world.id);
    let reads = json!([{"apiVersion": "v1", "kind": "ConfigMap"}]);
    let policy = |settings: &Value| {
        json!({
            "plugin": {"path": tessera_tests::plugins::FAULTY_POLICY},
            "settings": settings,
            "reads": reads,
            "match": {"rules": [{"apiGroups": [""], "kinds": ["Secret"]}]},
            "failurePolicy": "Fail",
        })
    };
    let settings = json!({"mode": "require-configmap", "configMap": "ticket"});
    world.apply_policy(&name, policy(&settings)).await;
    // A ticket in another namespace: outside the home namespace, not seen.
    crate::harness::apply_yaml(&world.client, &ticket(&other).to_string(), TEST_MANAGER)
        .await
        .expect("applying the other namespace's ticket");
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
            "clientConfig": {
                "url": format!("https://{address}/validate"),
                "caBundle": base64::engine::general_purpose::STANDARD
                    .encode(world.control_plane.ca_pem().as_bytes()),
            },
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.namespace}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"],
                "operations": ["CREATE"]}],
        }],
    });
    crate::harness::apply_yaml(&world.client, &configuration.to_string(), TEST_MANAGER)
        .await
        .expect("registering the webhook");

    // No ticket at home: denied, in the cluster and offline.
    let expected = format!("no ConfigMap ticket in namespace {}", world.namespace);
    let mut attempt = 0;
    let refused = eventually(
        "the reading policy to refuse",
        Duration::from_secs(60),
        || {
            attempt += 1;
            let object = secret(&world.namespace, &format!("denied-{attempt}"));
            let world = &world;
            async move { create_secret(world, &object).await }
        },
    )
    .await;
    assert!(
        refused.contains(&format!("policy {name} denied Secret")) && refused.contains(&expected),
        "{refused}"
    );
    let object = secret(&world.namespace, "offline");
    let out = validate_offline(dir.path(), &object, &settings, &[ticket(&other)], &reads).await;
    assert_eq!(out.code, tessera_cli::EXIT_DENIED, "{}", out.stderr);
    let verdicts: Value = serde_json::from_str(&out.stdout).expect("JSON verdicts");
    assert_eq!(verdicts[0]["allowed"], false, "{verdicts}");
    assert!(out.stderr.contains(&expected), "{}", out.stderr);

    // A ticket at home: admitted once the webhook's cache has it, and
    // allowed offline with the same objects.
    crate::harness::apply_yaml(
        &world.client,
        &ticket(&world.namespace).to_string(),
        TEST_MANAGER,
    )
    .await
    .expect("applying the ticket");
    let mut attempt = 0;
    eventually("the ticket to admit", Duration::from_secs(30), || {
        attempt += 1;
        let object = secret(&world.namespace, &format!("admitted-{attempt}"));
        let world = &world;
        async move { create_secret(world, &object).await.is_none().then_some(()) }
    })
    .await;
    let out = validate_offline(
        dir.path(),
        &object,
        &settings,
        &[ticket(&other), ticket(&world.namespace)],
        &reads,
    )
    .await;
    assert_eq!(out.code, tessera_cli::EXIT_OK, "{}", out.stderr);
    let verdicts: Value = serde_json::from_str(&out.stdout).expect("JSON verdicts");
    assert_eq!(verdicts[0]["allowed"], true, "{verdicts}");

    // Reading in the other namespace, which the reads do not name: the
    // plugin's read fails, the policy fails closed, the same words offline.
    let outside = json!({"mode": "require-configmap", "configMap": "ticket", "namespace": other});
    world.apply_policy(&name, policy(&outside)).await;
    let expected = format!(
        "plugin faulty-policy may not read v1/ConfigMap in namespace {other}: its binding allows only namespace {}",
        world.namespace
    );
    let mut attempt = 0;
    let refused = eventually(
        "the read outside the reads to refuse",
        Duration::from_secs(60),
        || {
            attempt += 1;
            let object = secret(&world.namespace, &format!("outside-{attempt}"));
            let (world, expected) = (&world, &expected);
            async move {
                let message = create_secret(world, &object).await?;
                message.contains(expected.as_str()).then_some(message)
            }
        },
    )
    .await;
    assert!(
        refused.contains(&format!("policy {name} failed on Secret")),
        "{refused}"
    );
    let out = validate_offline(
        dir.path(),
        &object,
        &outside,
        &[ticket(&other), ticket(&world.namespace)],
        &reads,
    )
    .await;
    assert_eq!(out.code, tessera_cli::EXIT_ERROR, "{}", out.stderr);
    assert!(out.stderr.trim_end().ends_with(&expected), "{}", out.stderr);

    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(world.client.clone());
    configurations
        .delete(&format!("tessera-{}", world.namespace), &Default::default())
        .await
        .expect("removing the webhook configuration");
    running.shutdown().await.expect("clean shutdown");
}

/// Offline, `tessera validate --resources` without `--reads` lets a policy
/// read the kinds in the files except Secrets, in each reviewed object's
/// own namespace only.
#[tokio::test]
async fn validate_reads_the_resources_in_each_objects_namespace_by_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |file: &str| dir.path().join(file).display().to_string();
    let objects = [secret("shop", "a"), secret("bare", "b")];
    let files = [
        ("objects.json", Value::from(objects.to_vec()).to_string()),
        (
            "resources.json",
            Value::from(vec![ticket("shop"), ticket("elsewhere")]).to_string(),
        ),
        (
            "settings.json",
            json!({"mode": "require-configmap", "configMap": "ticket"}).to_string(),
        ),
        (
            "outside.json",
            json!({"mode": "require-configmap", "configMap": "ticket", "namespace": "elsewhere"})
                .to_string(),
        ),
    ];
    for (file, text) in &files {
        std::fs::write(dir.path().join(file), text).expect("writing an input");
    }
    let validate = |settings: &str| {
        tessera(vec![
            "validate".into(),
            path("objects.json"),
            "--policy".into(),
            tessera_tests::plugins::FAULTY_POLICY.into(),
            "--settings".into(),
            path(settings),
            "--resources".into(),
            path("resources.json"),
            "--output".into(),
            "json".into(),
        ])
    };
    let out = validate("settings.json").await;
    assert_eq!(out.code, tessera_cli::EXIT_DENIED, "{}", out.stderr);
    let verdicts: Value = serde_json::from_str(&out.stdout).expect("JSON verdicts");
    let allowed: Vec<(&str, bool)> = verdicts
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or(""), v["allowed"] == true))
        .collect();
    assert_eq!(allowed, [("a", true), ("b", false)], "{verdicts}");
    assert!(
        out.stderr.contains("no ConfigMap ticket in namespace bare"),
        "{}",
        out.stderr
    );
    // A namespace other than the object's own is not open without --reads.
    let out = validate("outside.json").await;
    assert_eq!(out.code, tessera_cli::EXIT_ERROR, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "plugin faulty-policy may not read v1/ConfigMap in namespace elsewhere: its binding allows only namespace shop"
        ),
        "{}",
        out.stderr
    );
}

/// A webhook whose RBAC does not grant list and watch of a kind a Policy
/// reads does not hang admission: the policy fails within the webhook's
/// budget, by its failurePolicy (Fail: denied), naming the policy and the
/// kind.
#[tokio::test]
async fn a_read_cache_not_ready_fails_the_policy_within_the_budget() {
    use base64::Engine as _;

    let world = World::new("reads-policy-rbac").await;
    let role = format!("tessera-reads-policy-rbac-{}", world.namespace);
    let grant = json!([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role},
         "rules": [
            {"apiGroups": ["tessera.dev"], "resources": ["policies"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
         ]},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "webhook", "namespace": world.namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": "webhook", "namespace": world.namespace}]},
    ]);
    for object in grant.as_array().expect("a list") {
        crate::harness::apply_yaml(&world.client, &object.to_string(), TEST_MANAGER)
            .await
            .expect("applying the webhook's grant");
    }
    let token =
        crate::harness::service_account_token(&world.client, &world.namespace, "webhook").await;
    let (cert, key) = world.control_plane.serving_cert();
    let mut options = world.options();
    options.controller = false;
    options.webhook = Some(tessera_controller::WebhookOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        budget: Duration::from_secs(3),
        policy_deadline: Duration::from_secs(2),
    });
    let running = tessera_controller::start(world.control_plane.client_for_token(&token), options)
        .await
        .expect("starting the webhook as the service account");
    let address = running.webhook_addr.expect("webhook address");

    let name = format!("{}-ticket", world.id);
    world
        .apply_policy(
            &name,
            json!({
                "plugin": {"path": tessera_tests::plugins::FAULTY_POLICY},
                "settings": {"mode": "require-configmap", "configMap": "ticket"},
                "reads": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                "match": {"rules": [{"apiGroups": [""], "kinds": ["Secret"]}]},
                "failurePolicy": "Fail",
            }),
        )
        .await;
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
            "clientConfig": {
                "url": format!("https://{address}/validate"),
                "caBundle": base64::engine::general_purpose::STANDARD
                    .encode(world.control_plane.ca_pem().as_bytes()),
            },
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.namespace}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"],
                "operations": ["CREATE"]}],
        }],
    });
    crate::harness::apply_yaml(&world.client, &configuration.to_string(), TEST_MANAGER)
        .await
        .expect("registering the webhook");

    let mut attempt = 0;
    let (refused, took) = eventually(
        "the policy to fail on its reads",
        Duration::from_secs(60),
        || {
            attempt += 1;
            let object = secret(&world.namespace, &format!("unready-{attempt}"));
            let (world, name) = (&world, &name);
            async move {
                let started = std::time::Instant::now();
                let message = create_secret(world, &object).await?;
                message
                    .contains(name.as_str())
                    .then(|| (message, started.elapsed()))
            }
        },
    )
    .await;
    let expected = format!(
        "policy {name} failed on Secret {ns}/unready-{attempt}: cannot read v1 ConfigMap in namespace {ns}: its cache was not ready in time",
        ns = world.namespace
    );
    assert!(refused.contains(&expected), "{refused}");
    // With what the watch said: the webhook's RBAC lacks the kind.
    assert!(refused.contains("; the watch says: "), "{refused}");
    assert!(refused.contains("forbidden"), "{refused}");
    assert!(!refused.contains('\n'), "{refused}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(world.client.clone());
    configurations
        .delete(&format!("tessera-{}", world.namespace), &Default::default())
        .await
        .expect("removing the webhook configuration");
    running.shutdown().await.expect("clean shutdown");
}

/// A Composition's policy that reads judges the children in the controller
/// with the composite's namespace as home: denied while the ConfigMap it
/// looks for is missing there, synced once it is created.
#[tokio::test]
async fn a_compositions_policy_reads_in_the_composites_namespace() {
    let world = World::new("reads-composition-policy").await;
    let other = world
        .control_plane
        .namespace("reads-composition-other")
        .await;
    apply_defaults(&world, &world.namespace, "payments").await;
    // A ticket elsewhere does not count.
    crate::harness::apply_yaml(&world.client, &ticket(&other).to_string(), TEST_MANAGER)
        .await
        .expect("applying the other namespace's ticket");
    let _controller = world.start_controller().await;
    let name = format!("{}-ticket", world.id);
    world
        .apply_policy(
            &name,
            json!({
                "plugin": {"path": tessera_tests::plugins::FAULTY_POLICY},
                "settings": {"mode": "require-configmap", "configMap": "ticket"},
                "reads": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                "match": {"rules": [{"apiGroups": [""], "kinds": ["ConfigMap"]}]},
            }),
        )
        .await;
    world
        .apply_composition(
            TEAM_DATABASE,
            json!({}),
            json!({"reads": [{"apiVersion": "v1", "kind": "ConfigMap"}], "policies": [name]}),
        )
        .await;
    world
        .apply_database("ledger", json!({"version": "17"}), json!({}))
        .await;
    let synced = eventually(
        "Synced=False, PolicyDenied",
        Duration::from_secs(60),
        || async {
            let synced = world.wait_condition("ledger", "Synced", "False").await;
            (synced["reason"] == "PolicyDenied").then_some(synced)
        },
    )
    .await;
    let message = synced["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("policy {name} denied"))
            && message.contains(&format!(
                "no ConfigMap ticket in namespace {}",
                world.namespace
            )),
        "{synced}"
    );
    crate::harness::apply_yaml(
        &world.client,
        &ticket(&world.namespace).to_string(),
        TEST_MANAGER,
    )
    .await
    .expect("applying the ticket");
    world.wait_condition("ledger", "Synced", "True").await;
}
