//! `oci` plugins in the cluster, against a real control plane and a real
//! registry (olareg on loopback): a Composition by tag composes; the tag
//! moved to a new signed artifact rolls out; moved to an unsigned one, or to
//! a signed one whose bundled suite fails, it is refused with a condition
//! saying why and the previous artifact keeps serving (new composites too);
//! the registry down changes nothing that works. Pull secrets that cannot be
//! used are named in the condition.

use std::path::Path;
use std::time::Duration;

use kube::api::Api;
use serde_json::{Value, json};
use tessera_controller::crd::Composition;
use tessera_oci::RegistryOptions;

use crate::fixture::{World, condition, text};
use crate::harness::eventually;
use crate::olareg::{Olareg, fake_registry, openssl_key};

/// A self-contained suite for the database plugin (the composite inline):
/// passes when `replicas` children are as the plugin makes them, fails
/// with a wrong expectation when `broken`.
fn suite(dir: &Path, case: &str, broken: bool) {
    let expected = if broken {
        "[Secret/orders-credentials, ConfigMap/orders-config]"
    } else {
        "[Secret/orders-credentials, ConfigMap/orders-config, Service/orders, StatefulSet/orders, PodDisruptionBudget/orders]"
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("database.tessera.yaml"),
        format!(
            r#"apiVersion: tessera.dev/v1alpha1
kind: TestSuite
cases:
  - name: {case}
    composition:
      plugin: database
      composite:
        apiVersion: platform.tessera.dev/v1alpha1
        kind: Database
        metadata: {{name: orders, namespace: shop}}
        spec: {{engine: postgres, version: "16", replicas: 3, storage: 20Gi}}
    expect:
      childNames: {expected}
"#
        ),
    )
    .unwrap();
}

/// Runs the CLI on a blocking thread (it has its own async runtime);
/// returns stdout's first line, or panics with stderr.
pub async fn tessera(cache: &Path, args: &[&str]) -> String {
    let mut argv = vec![
        "tessera".to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
        "--plain-http".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = tessera_cli::run(
            argv.clone(),
            &mut tessera_cli::Stdio {
                stdin: &mut std::io::empty(),
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
        );
        assert_eq!(code, 0, "{argv:?}: {}", String::from_utf8_lossy(&stderr));
        String::from_utf8_lossy(&stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
    .await
    .unwrap()
}

/// The Composition's status, once it says `type_` is `status`.
async fn composition_condition(
    compositions: &Api<Composition>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Value {
    eventually(
        &format!("Composition {name}: {type_}={status} ({reason})"),
        Duration::from_secs(60),
        || async {
            let object = serde_json::to_value(compositions.get(name).await.ok()?).ok()?;
            let found = condition(&object, type_)?;
            (found["status"] == status && found["reason"] == reason).then_some(object)
        },
    )
    .await
}

/// Every child of `composite` carries `plugin_ref` as its provenance.
async fn children_from(world: &World, composite: &str, plugin_ref: &str) {
    eventually(
        &format!("children of {composite} from {plugin_ref}"),
        Duration::from_secs(60),
        || async {
            let children = world.children(composite).await;
            (children.len() == 5
                && children.values().all(|c| {
                    text(c, "/metadata/annotations/tessera.dev~1plugin-ref") == plugin_ref
                }))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn oci_plugins_roll_out_only_signed_and_self_tested() {
    let world = World::new("oci").await;
    let registry = Olareg::start();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cli-cache");
    let (key, public) = openssl_key(work.path(), "release");
    let key = key.to_str().unwrap().to_string();
    let plugin = tessera_tests::plugins::DATABASE;
    let tag = registry.reference("platform/database:stable");
    let push = |case: &'static str, broken: bool, signed: bool| {
        let suite_dir = work.path().join(case.replace(' ', "-"));
        suite(&suite_dir, case, broken);
        let (cache, tag, key) = (cache.clone(), tag.clone(), key.clone());
        async move {
            let suite_dir = suite_dir.to_str().unwrap().to_string();
            let mut args = vec!["push", plugin, &tag, "--suite", &suite_dir];
            if signed {
                args.extend(["--sign", &key]);
            }
            tessera(&cache, &args).await
        }
    };

    let mut options = world.options();
    options.oci.registry = RegistryOptions::default()
        .plain_http_host(registry.host.clone())
        .timeout(Duration::from_secs(5));
    options.oci.store = Some(tessera_oci::Store::new(work.path().join("controller-oci")));
    options.oci.namespace = world.namespace.clone();
    let controller = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the controller");

    // 1. A signed artifact whose suite passes: the Composition by tag
    // composes, and its status pins the tag to the manifest digest.
    let v1 = push("five children", false, true).await;
    let public_pem = std::fs::read_to_string(&public).unwrap();
    let plugin_spec = json!({
        "oci": tag,
        "verify": {"allOf": [{"kind": "pubKey", "key": public_pem}]},
    });
    world
        .apply_composition(plugin, json!({}), json!({"plugin": plugin_spec}))
        .await;
    let compositions: Api<Composition> = Api::all(world.client.clone());
    let name = format!("{}-databases", world.id);
    let status = composition_condition(&compositions, &name, "Ready", "True", "PluginLoaded").await;
    assert_eq!(text(&status, "/status/pluginRef"), v1, "{status:#}");
    let spec = json!({"engine": "postgres", "version": "16", "replicas": 3, "storage": "20Gi"});
    world
        .apply_database("orders", spec.clone(), json!({"team": "shop"}))
        .await;
    children_from(&world, "orders", &v1).await;

    // 2. The tag moved to a new signed artifact: it rolls out.
    let v2 = push("five children again", false, true).await;
    assert_ne!(v1, v2);
    children_from(&world, "orders", &v2).await;
    let status = composition_condition(
        &compositions,
        &name,
        "PluginUpToDate",
        "True",
        "PluginLoaded",
    )
    .await;
    assert_eq!(text(&status, "/status/pluginRef"), v2);

    // 3. Moved to an unsigned artifact: refused, naming the reference and
    // the key; v2 keeps serving, new composites too.
    let v3 = push("unsigned", false, false).await;
    let status =
        composition_condition(&compositions, &name, "PluginUpToDate", "False", "Untrusted").await;
    let message = text(&condition(&status, "PluginUpToDate").unwrap(), "/message").to_string();
    assert!(message.contains(&v3), "{message}");
    assert!(
        message.contains("unsigned: no signature found"),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("still serving {v2}")),
        "{message}"
    );
    assert_eq!(text(&status, "/status/pluginRef"), v2);
    assert_eq!(
        text(&condition(&status, "Ready").unwrap(), "/status"),
        "True"
    );
    world
        .apply_database("payments", spec.clone(), json!({"team": "pay"}))
        .await;
    children_from(&world, "payments", &v2).await;

    // 4. Moved to a signed artifact whose bundled suite fails: refused with
    // the case and the difference; v2 keeps serving.
    let v4 = push("two children", true, true).await;
    let status = composition_condition(
        &compositions,
        &name,
        "PluginUpToDate",
        "False",
        "SelfTestFailed",
    )
    .await;
    let message = text(&condition(&status, "PluginUpToDate").unwrap(), "/message").to_string();
    assert!(message.contains(&v4), "{message}");
    assert!(message.contains("two children"), "{message}");
    assert!(message.contains("Service/orders"), "{message}");
    assert_eq!(text(&status, "/status/pluginRef"), v2);
    children_from(&world, "orders", &v2).await;

    // 5. The registry down: the tag cannot be resolved; what serves stays.
    drop(registry);
    let status = composition_condition(
        &compositions,
        &name,
        "PluginUpToDate",
        "False",
        "PullFailed",
    )
    .await;
    let message = text(&condition(&status, "PluginUpToDate").unwrap(), "/message").to_string();
    assert!(message.starts_with("plugin.oci: "), "{message}");
    assert!(
        message.ends_with(&format!("still serving {v2}")),
        "{message}"
    );
    world
        .apply_database("billing", spec, json!({"team": "billing"}))
        .await;
    children_from(&world, "billing", &v2).await;

    controller.shutdown().await.expect("clean shutdown");
}

/// Tightening the trust policy stops a plugin it no longer trusts: the
/// serving plugin is not kept as a fallback once its signature does not
/// satisfy the new `plugin.verify`.
#[tokio::test]
async fn a_tightened_trust_policy_stops_what_it_no_longer_trusts() {
    let world = World::new("tightened").await;
    let registry = Olareg::start();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cli-cache");
    let (key, public) = openssl_key(work.path(), "release");
    let (_, other) = openssl_key(work.path(), "other");
    let suite_dir = work.path().join("suite");
    suite(&suite_dir, "five children", false);
    let tag = registry.reference("platform/database:stable");
    let pinned = tessera(
        &cache,
        &[
            "push",
            tessera_tests::plugins::DATABASE,
            &tag,
            "--suite",
            suite_dir.to_str().unwrap(),
            "--sign",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let mut options = world.options();
    options.oci.registry = RegistryOptions::default().plain_http_host(registry.host.clone());
    options.oci.store = Some(tessera_oci::Store::new(work.path().join("controller-oci")));
    let controller = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the controller");
    let verify = |public: &Path| {
        let pem = std::fs::read_to_string(public).unwrap();
        json!({"plugin": {"oci": tag, "verify": {"allOf": [{"kind": "pubKey", "key": pem}]}}})
    };
    world
        .apply_composition("", json!({}), verify(&public))
        .await;
    let compositions: Api<Composition> = Api::all(world.client.clone());
    let name = format!("{}-databases", world.id);
    let status = composition_condition(&compositions, &name, "Ready", "True", "PluginLoaded").await;
    assert_eq!(text(&status, "/status/pluginRef"), pinned);

    world.apply_composition("", json!({}), verify(&other)).await;
    let status = composition_condition(&compositions, &name, "Ready", "False", "Untrusted").await;
    let message = text(&condition(&status, "Ready").unwrap(), "/message").to_string();
    assert!(message.contains(&pinned), "{message}");
    assert!(message.contains("plugin.verify allOf[0]"), "{message}");
    assert!(!message.contains("still serving"), "{message}");
    assert_eq!(text(&status, "/status/pluginRef"), "");
    controller.shutdown().await.expect("clean shutdown");
}

/// Nothing serving yet, and the registry unusable: a pull secret missing or
/// not a dockerconfigjson Secret, a registry that stalls (past the
/// deadline) or answers garbage. `Ready` is False naming the field or the
/// reference; nothing is served that was not pulled and verified.
#[tokio::test]
async fn unusable_registries_and_pull_secrets_are_named() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;

    let world = World::new("pullsecret").await;
    let registry = Olareg::start();
    let stalled = fake_registry(true, "");
    let garbage = fake_registry(false, "<html>\nnot\na registry\n</html>");
    let mut options = world.options();
    options.oci.registry = RegistryOptions::default()
        .plain_http_host(registry.host.clone())
        .plain_http_host(stalled.clone())
        .plain_http_host(garbage.clone())
        .timeout(Duration::from_secs(2));
    options.oci.namespace = world.namespace.clone();
    let controller = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the controller");
    let secrets: Api<Secret> = Api::namespaced(world.client.clone(), &world.namespace);
    let opaque: Secret = serde_json::from_value(json!({
        "metadata": {"name": "opaque"},
        "type": "Opaque",
        "stringData": {"password": "x"},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &opaque)
        .await
        .unwrap();
    let compositions: Api<Composition> = Api::all(world.client.clone());
    let name = format!("{}-databases", world.id);
    let at = |host: &str| format!("oci://{host}/platform/database:1");
    let namespace = &world.namespace;
    let cases = [
        (
            json!({"oci": at(&registry.host), "pullSecrets": [{"name": "missing"}]}),
            format!("plugin.pullSecrets[0]: Secret {namespace}/missing: not found"),
        ),
        (
            json!({"oci": at(&registry.host), "pullSecrets": [{"name": "opaque"}]}),
            format!(
                "plugin.pullSecrets[0]: Secret {namespace}/opaque: is of type \"Opaque\", not kubernetes.io/dockerconfigjson"
            ),
        ),
        (
            json!({"oci": at(&stalled)}),
            format!("plugin.oci: {}", at(&stalled)),
        ),
        (
            json!({"oci": at(&garbage)}),
            format!("plugin.oci: {}", at(&garbage)),
        ),
    ];
    for (plugin_spec, wanted) in cases {
        world
            .apply_composition("", json!({}), json!({"plugin": plugin_spec}))
            .await;
        let ready = eventually(
            &format!("Ready=False: {wanted}"),
            Duration::from_secs(60),
            || async {
                let object = serde_json::to_value(compositions.get(&name).await.ok()?).ok()?;
                let ready = condition(&object, "Ready")?;
                (ready["status"] == "False"
                    && ready["reason"] == "PullFailed"
                    && text(&ready, "/message").starts_with(&wanted))
                .then_some(ready)
            },
        )
        .await;
        let message = text(&ready, "/message");
        if plugin_spec["oci"] == at(&stalled) {
            assert!(
                message.contains("timed out") || message.contains("timeout"),
                "{message}"
            );
        }
        if plugin_spec["oci"] == at(&garbage) {
            assert!(message.contains("not an OCI image manifest"), "{message}");
        }
    }
    controller.shutdown().await.expect("clean shutdown");
}
