//! The composition controller against the real API server: children,
//! ownership, provenance, updates, pruning, drift, failures that destroy
//! nothing, policies, rollouts, leader election, and 200 composites.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};
use tessera_tests::plugins;

use crate::fixture::{World, condition, file_digest, text};
use crate::harness::eventually;

const FIVE: [&str; 5] = [
    "ConfigMap/orders-config",
    "PodDisruptionBudget/orders",
    "Secret/orders-credentials",
    "Service/orders",
    "StatefulSet/orders",
];

fn labels() -> Value {
    json!({"team": "payments", "env": "prod"})
}

fn spec(replicas: i64, version: &str) -> Value {
    json!({"engine": "postgres", "version": version, "replicas": replicas, "storage": "20Gi"})
}

fn resource_versions(
    children: &std::collections::BTreeMap<String, Value>,
) -> Vec<(String, String)> {
    children
        .iter()
        .map(|(k, v)| (k.clone(), text(v, "/metadata/resourceVersion").to_string()))
        .collect()
}

/// Create → children with ownerReferences and provenance, status; steady
/// state writes nothing; spec change → children updated; replicas 1 → PDB
/// pruned; a deleted or edited child is repaired; deleting the composite
/// lets the garbage collector remove the children.
#[tokio::test]
async fn database_lifecycle() {
    let world = World::new("lifecycle").await;
    let running = world.start_controller().await;
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    world
        .apply_database("orders", spec(3, "16.4"), labels())
        .await;

    let synced = world.wait_condition("orders", "Synced", "True").await;
    assert_eq!(synced["reason"], "ReconcileSuccess", "{synced}");
    let children = world.children("orders").await;
    assert_eq!(
        children.keys().map(String::as_str).collect::<Vec<_>>(),
        FIVE
    );

    let composite = world.database("orders").await;
    let uid = text(&composite, "/metadata/uid").to_string();
    let digest = file_digest(plugins::DATABASE);
    for (name, child) in &children {
        let owners = child["metadata"]["ownerReferences"]
            .as_array()
            .expect("ownerReferences");
        assert_eq!(owners.len(), 1, "{name}");
        assert_eq!(owners[0]["uid"], uid.as_str(), "{name}");
        assert_eq!(owners[0]["kind"], "Database", "{name}");
        assert_eq!(owners[0]["controller"], true, "{name}");
        assert_eq!(owners[0]["blockOwnerDeletion"], true, "{name}");
        let annotations = &child["metadata"]["annotations"];
        assert_eq!(
            annotations["tessera.dev/plugin-digest"],
            digest.as_str(),
            "{name}"
        );
        assert_eq!(
            annotations["tessera.dev/composite"],
            format!(
                "{}/Database/{}/orders",
                world.api_version(),
                world.namespace
            )
            .as_str(),
            "{name}"
        );
        assert_eq!(
            annotations["tessera.dev/composite-uid"],
            uid.as_str(),
            "{name}"
        );
        assert!(
            text(child, "/metadata/annotations/tessera.dev~1input-digest").starts_with("sha256:")
        );
        assert_eq!(child["metadata"]["labels"]["team"], "payments", "{name}");
        let managers: Vec<&str> = child["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(
            managers.contains(&"tessera-controller"),
            "{name}: {managers:?}"
        );
    }
    assert_eq!(composite["status"]["observedGeneration"], 1);
    assert_eq!(composite["status"]["pluginDigest"], digest.as_str());
    assert_eq!(
        composite["status"]["engine"], "postgres",
        "the plugin's status patch"
    );
    assert_eq!(
        composite["status"]["endpoint"],
        format!("orders.{}.svc.cluster.local:5432", world.namespace).as_str()
    );
    assert_eq!(
        composite["status"]["resourceRefs"].as_array().map(Vec::len),
        Some(5)
    );
    // No kubelet runs: the StatefulSet never becomes ready, and the plugin says so.
    let ready = condition(&composite, "Ready").expect("Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("Creating"))
    );

    // Steady state: several resyncs (every 2 s) write nothing at all.
    let before = running.metrics.snapshot();
    let versions = resource_versions(&world.children("orders").await);
    let composite_version =
        text(&world.database("orders").await, "/metadata/resourceVersion").to_string();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = running.metrics.snapshot();
    assert!(
        after[0] >= before[0] + 2,
        "resyncs ran: {before:?} → {after:?}"
    );
    assert_eq!(after[1], before[1], "no applies in steady state");
    assert_eq!(after[3], before[3], "no status writes in steady state");
    assert_eq!(resource_versions(&world.children("orders").await), versions);
    assert_eq!(
        text(&world.database("orders").await, "/metadata/resourceVersion"),
        composite_version
    );

    // A spec change reaches the StatefulSet.
    world
        .apply_database("orders", spec(3, "17.0"), labels())
        .await;
    eventually("the image to change", Duration::from_secs(60), || async {
        let children = world.children("orders").await;
        let image = text(
            &children["StatefulSet/orders"],
            "/spec/template/spec/containers/0/image",
        );
        (image == "postgres:17.0").then_some(())
    })
    .await;
    eventually("observedGeneration 2", Duration::from_secs(30), || async {
        (world.database("orders").await["status"]["observedGeneration"] == 2).then_some(())
    })
    .await;

    // One replica: the PodDisruptionBudget is pruned.
    world
        .apply_database("orders", spec(1, "17.0"), labels())
        .await;
    eventually("the PDB to be pruned", Duration::from_secs(60), || async {
        let children = world.children("orders").await;
        (!children.contains_key("PodDisruptionBudget/orders") && children.len() == 4).then_some(())
    })
    .await;
    assert!(running.metrics.prunes.load(Ordering::Relaxed) >= 1);

    // A deleted child comes back.
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(world.client.clone(), &world.namespace);
    let old_uid = config_maps
        .get("orders-config")
        .await
        .expect("ConfigMap")
        .metadata
        .uid;
    config_maps
        .delete("orders-config", &DeleteParams::default())
        .await
        .expect("deleting a child");
    eventually(
        "the ConfigMap to be recreated",
        Duration::from_secs(60),
        || async {
            let new = config_maps.get_opt("orders-config").await.ok()??;
            (new.metadata.uid != old_uid).then_some(())
        },
    )
    .await;

    // An edited child is put back (someone else scales the StatefulSet).
    let sts = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "StatefulSet"));
    let statefulsets: Api<DynamicObject> =
        Api::namespaced_with(world.client.clone(), &world.namespace, &sts);
    statefulsets
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .expect("editing a child");
    eventually(
        "the drift to be repaired",
        Duration::from_secs(60),
        || async {
            let object = statefulsets.get("orders").await.ok()?;
            (object.data["spec"]["replicas"] == 1).then_some(())
        },
    )
    .await;

    // Deleting the composite: the garbage collector (kube-controller-manager)
    // removes the children through their ownerReferences.
    world
        .composites()
        .delete("orders", &DeleteParams::foreground())
        .await
        .expect("deleting the composite");
    eventually(
        "the children to be garbage-collected",
        Duration::from_secs(90),
        || async { world.children("orders").await.is_empty().then_some(()) },
    )
    .await;
    running.shutdown().await.expect("clean shutdown");
}

/// A plugin that breaks (here: the sandbox's faulty plugin, looping past its
/// deadline) leaves the children exactly as they were and says why; the
/// Composition change rolls out without a restart, and so does the fix.
#[tokio::test]
async fn broken_plugin_changes_nothing() {
    let world = World::new("broken").await;
    let running = world.start_controller().await;
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    world
        .apply_database("orders", spec(3, "16.4"), labels())
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    let versions = resource_versions(&world.children("orders").await);

    world
        .apply_composition(
            plugins::FAULTY,
            json!({"mode": "loop"}),
            json!({"limits": {"deadline": "200ms"}}),
        )
        .await;
    let synced = world.wait_condition("orders", "Synced", "False").await;
    assert_eq!(synced["reason"], "PluginFailed", "{synced}");
    assert!(text(&synced, "/message").contains("deadline"), "{synced}");
    assert!(
        world
            .event_reasons("orders")
            .await
            .contains(&"PluginFailed".to_string())
    );
    // The failure is retried with back-off, and still nothing changes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(running.metrics.failures.load(Ordering::Relaxed) >= 2);
    assert_eq!(resource_versions(&world.children("orders").await), versions);
    let composite = world.database("orders").await;
    assert_eq!(
        composite["status"]["pluginDigest"],
        file_digest(plugins::DATABASE).as_str()
    );

    // A plugin file that is not there: the Composition says so.
    world
        .apply_composition("/nonexistent/plugin.wasm", json!({}), json!({}))
        .await;
    let synced = eventually("PluginUnavailable", Duration::from_secs(30), || async {
        let c = condition(&world.database("orders").await, "Synced")?;
        (c["reason"] == "PluginUnavailable").then_some(c)
    })
    .await;
    assert!(
        text(&synced, "/message").contains("/nonexistent/plugin.wasm"),
        "{synced}"
    );
    let compositions: Api<tessera_controller::crd::Composition> = Api::all(world.client.clone());
    let composition = compositions
        .get("broken-databases")
        .await
        .expect("Composition");
    let ready = &composition.status.expect("status").conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PluginUnavailable")
    );
    assert_eq!(resource_versions(&world.children("orders").await), versions);

    // The fix rolls out too.
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    running.shutdown().await.expect("clean shutdown");
}

/// A child the API server rejects (a StatefulSet's volumeClaimTemplates are
/// immutable): nothing is applied, not even the children the server would
/// accept, and the condition names the child.
#[tokio::test]
async fn rejected_child_applies_nothing() {
    let world = World::new("rejected").await;
    let running = world.start_controller().await;
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    world
        .apply_database("orders", spec(3, "16.4"), labels())
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    let versions = resource_versions(&world.children("orders").await);

    let mut bigger = spec(3, "16.4");
    bigger["storage"] = json!("30Gi");
    world.apply_database("orders", bigger, labels()).await;
    let synced = world.wait_condition("orders", "Synced", "False").await;
    assert_eq!(synced["reason"], "ApplyFailed", "{synced}");
    assert!(
        text(&synced, "/message").contains("StatefulSet"),
        "{synced}"
    );
    // Every child's provenance would change (new generation), yet none changed.
    assert_eq!(resource_versions(&world.children("orders").await), versions);
    running.shutdown().await.expect("clean shutdown");
}

/// A policy that denies a child stops the composite before anything is
/// applied, and the condition and an event say which policy and why; once
/// the composite complies, the children appear.
#[tokio::test]
async fn policy_denial_applies_nothing() {
    let world = World::new("denied").await;
    let running = world.start_controller().await;
    world
        .apply_policy(
            "denied-require-labels",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["team", "cost-center"]},
            }),
        )
        .await;
    // Loaded first: a composite reconciled before would say PolicyNotFound.
    world.wait_policy_ready("denied-require-labels").await;
    world
        .apply_composition(
            plugins::DATABASE,
            json!({}),
            json!({"policies": ["denied-require-labels"]}),
        )
        .await;
    world
        .apply_database("orders", spec(3, "16.4"), labels())
        .await;
    let synced = world.wait_condition("orders", "Synced", "False").await;
    assert_eq!(synced["reason"], "PolicyDenied", "{synced}");
    let message = text(&synced, "/message");
    assert!(
        message.contains("policy denied-require-labels denied"),
        "{message}"
    );
    assert!(message.contains("cost-center"), "{message}");
    assert!(world.children("orders").await.is_empty(), "nothing applied");
    assert!(
        world
            .event_reasons("orders")
            .await
            .contains(&"PolicyDenied".to_string())
    );
    assert_eq!(running.metrics.applies.load(Ordering::Relaxed), 0);

    let mut compliant = labels();
    compliant["cost-center"] = json!("cc-42");
    world
        .apply_database("orders", spec(3, "16.4"), compliant)
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    assert_eq!(world.children("orders").await.len(), 5);
    running.shutdown().await.expect("clean shutdown");
}

/// Two replicas: one leads; when it shuts down it releases the lease and the
/// other takes over and reconciles.
#[tokio::test]
async fn leader_election_hands_over() {
    let world = World::new("leader").await;
    let lease = |identity: &str| tessera_controller::leader::LeaseConfig {
        namespace: world.namespace.clone(),
        name: "tessera-controller".into(),
        identity: identity.into(),
        duration: Duration::from_secs(4),
        renew: Duration::from_millis(500),
    };
    let mut first = world.options();
    first.lease = Some(lease("first"));
    let first = tessera_controller::start(world.client.clone(), first)
        .await
        .expect("first");
    eventually("first to lead", Duration::from_secs(20), || async {
        first.is_leading().then_some(())
    })
    .await;
    let mut second = world.options();
    second.lease = Some(lease("second"));
    let second = tessera_controller::start(world.client.clone(), second)
        .await
        .expect("second");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        first.is_leading() && !second.is_leading(),
        "exactly one leader"
    );

    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    world
        .apply_database("orders", spec(1, "16.4"), labels())
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    assert_eq!(
        second.metrics.reconciles.load(Ordering::Relaxed),
        0,
        "the follower reconciles nothing"
    );

    first.shutdown().await.expect("graceful shutdown");
    let started = Instant::now();
    eventually("second to lead", Duration::from_secs(20), || async {
        second.is_leading().then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the released lease is taken before it expires"
    );
    world
        .apply_database("orders", spec(3, "16.4"), labels())
        .await;
    eventually(
        "the new leader to add the PDB",
        Duration::from_secs(60),
        || async {
            world
                .children("orders")
                .await
                .contains_key("PodDisruptionBudget/orders")
                .then_some(())
        },
    )
    .await;
    assert!(second.metrics.applies.load(Ordering::Relaxed) >= 1);
    second.shutdown().await.expect("graceful shutdown");
}

/// 200 composites converge; the time is printed for BENCHMARKS.md (not
/// asserted: the machine is shared).
#[tokio::test]
async fn two_hundred_composites_converge() {
    const COUNT: usize = 200;
    let world = World::new("many").await;
    let running = world.start_controller().await;
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    let started = Instant::now();
    let creates = (0..COUNT).map(|i| {
        let world = &world;
        async move {
            world
                .apply_database(&format!("db-{i:03}"), spec(1, "16.4"), labels())
                .await
        }
    });
    futures::future::join_all(creates).await;
    let created = started.elapsed();
    eventually(
        "200 composites to be Synced",
        Duration::from_secs(600),
        || async {
            let list = world.composites().list(&Default::default()).await.ok()?;
            let synced = list
                .items
                .iter()
                .filter(|o| {
                    let value = serde_json::to_value(o).unwrap_or_default();
                    condition(&value, "Synced").is_some_and(|c| c["status"] == "True")
                })
                .count();
            (synced == COUNT).then_some(())
        },
    )
    .await;
    let converged = started.elapsed();
    let metrics = running.metrics.snapshot();
    assert!(metrics[1] >= (COUNT * 4) as u64, "{metrics:?}");
    println!(
        "BENCH controller-converge composites={COUNT} children={} create_s={:.1} converge_s={:.1} reconciles={} applies={}",
        COUNT * 4,
        created.as_secs_f64(),
        converged.as_secs_f64(),
        metrics[0],
        metrics[1]
    );
    running.shutdown().await.expect("clean shutdown");
}

/// Serves `bytes` over plain HTTP on loopback (integrity comes from the
/// Composition's sha256, not the transport); returns the URL and the count
/// of requests served.
async fn serve_file(bytes: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listening");
    let address = listener.local_addr().expect("address");
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let bytes = bytes.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&bytes).await;
            });
        }
    });
    (format!("http://{address}/database.wasm"), requests)
}

/// A plugin fetched by URL is checked against the Composition's sha256: the
/// right digest composes, a wrong one is refused with both digests named.
#[tokio::test]
async fn plugin_by_url_is_checked_against_its_digest() {
    let world = World::new("url").await;
    let running = world.start_controller().await;
    let (url, _) = serve_file(std::fs::read(plugins::DATABASE).expect("plugin")).await;
    let digest = file_digest(plugins::DATABASE);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let composition = |sha: &str| {
        json!({
            "apiVersion": "tessera.dev/v1alpha1",
            "kind": "Composition",
            "metadata": {"name": "url-databases", "labels": {crate::fixture::TEST_LABEL: "url"}},
            "spec": {
                "composite": {"apiVersion": world.api_version(), "kind": "Database"},
                "plugin": {"url": url, "sha256": sha},
            },
        })
        .to_string()
    };
    crate::harness::apply_yaml(&world.client, &composition(&wrong), "tessera-tests")
        .await
        .expect("Composition");
    let compositions: Api<tessera_controller::crd::Composition> = Api::all(world.client.clone());
    let ready = eventually(
        "the digest mismatch to be reported",
        Duration::from_secs(30),
        || async {
            let status = compositions.get("url-databases").await.ok()?.status?;
            status.conditions.into_iter().find(|c| c.type_ == "Ready")
        },
    )
    .await;
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("plugin.sha256"), "{}", ready.message);
    assert!(
        ready.message.contains(digest.trim_start_matches("sha256:")),
        "{}",
        ready.message
    );

    crate::harness::apply_yaml(&world.client, &composition(&digest), "tessera-tests")
        .await
        .expect("Composition");
    world
        .apply_database("orders", spec(1, "16.4"), labels())
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    assert_eq!(world.children("orders").await.len(), 4);
    running.shutdown().await.expect("clean shutdown");
}

/// A plugin file replaced at the same path is noticed (files are re-read
/// every `plugin_resync`, 1 s here) and rolls out without a restart.
#[tokio::test]
async fn replaced_plugin_file_rolls_out() {
    let world = World::new("replaced").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(plugins::DATABASE, &path).expect("copying the plugin");
    let running = world.start_controller().await;
    world
        .apply_composition(path.to_str().expect("UTF-8 path"), json!({}), json!({}))
        .await;
    world
        .apply_database("orders", spec(1, "16.4"), labels())
        .await;
    world.wait_condition("orders", "Synced", "True").await;

    // Someone replaces the file with a policy plugin: wrong world.
    std::fs::copy(plugins::FAULTY_POLICY, &path).expect("replacing the plugin");
    let synced = world.wait_condition("orders", "Synced", "False").await;
    assert_eq!(synced["reason"], "PluginUnavailable", "{synced}");
    assert!(
        text(&synced, "/message").contains("policy plugin"),
        "{synced}"
    );
    assert_eq!(world.children("orders").await.len(), 4, "children kept");

    std::fs::copy(plugins::DATABASE, &path).expect("restoring the plugin");
    world.wait_condition("orders", "Synced", "True").await;
    running.shutdown().await.expect("clean shutdown");
}

/// A plugin pinned by URL and sha256 is downloaded once: neither the
/// Composition syncs nor the plugin resync ticks (1 s here) fetch it again
/// while a plugin with that digest is loaded.
#[tokio::test]
async fn pinned_url_plugin_is_fetched_once() {
    let world = World::new("fetch-once").await;
    let running = world.start_controller().await;
    let (url, requests) = serve_file(std::fs::read(plugins::DATABASE).expect("plugin")).await;
    let digest = file_digest(plugins::DATABASE);
    let composition = json!({
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "fetch-once-databases", "labels": {crate::fixture::TEST_LABEL: "fetch-once"}},
        "spec": {
            "composite": {"apiVersion": world.api_version(), "kind": "Database"},
            "plugin": {"url": url, "sha256": digest},
        },
    })
    .to_string();
    crate::harness::apply_yaml(&world.client, &composition, "tessera-tests")
        .await
        .expect("Composition");
    world
        .apply_database("orders", spec(1, "16.4"), labels())
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    // Several resync ticks, and a Composition sync of its own (a label
    // change is an event, not a new generation).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let compositions: Api<tessera_controller::crd::Composition> = Api::all(world.client.clone());
    compositions
        .patch(
            "fetch-once-databases",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("labelling the Composition");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 1, "requests for {url}");
    running.shutdown().await.expect("clean shutdown");
}
