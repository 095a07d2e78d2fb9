//! Faults the controller survives with nothing lost, against the real control
//! plane: kube-apiserver stopped for 10 s in the middle of reconciling 50
//! composites; the `tessera-controller` process killed (SIGKILL) mid-apply
//! and a new replica started; the process sent SIGTERM while reconciling,
//! with a standby replica taking over. After each, every composite
//! converges and its children are exactly the expected set: each child
//! controlled by its live composite (right name and uid), none duplicated,
//! none orphaned, and every child that existed before the fault still there
//! with the same uid (nothing deleted and recreated).
//!
//! The process tests run the `tessera-controller` binary that `cargo test
//! --workspace` builds next to this test binary (`TESSERA_CONTROLLER_BIN`
//! overrides it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::json;
use tessera_controller::leader::LeaseConfig;
use tessera_runtime::provenance::COMPOSITE_NAME_LABEL;
use tessera_tests::plugins;

use crate::fixture::{CHILD_KINDS, TEST_LABEL, TEST_MANAGER, World, condition, database_crd};
use crate::harness::{ControlPlane, apply_yaml, eventually};

/// Composites per test.
const COUNT: usize = 50;
/// Name of the controllers' Lease (in the test namespace).
const LEASE: &str = "tessera-controller";
/// How long all composites may take to converge after a fault.
const CONVERGE: Duration = Duration::from_secs(180);

/// `db-00` .. `db-49`.
fn names() -> Vec<String> {
    (0..COUNT).map(|i| format!("db-{i:02}")).collect()
}

/// What the database plugin makes for one replica: `Kind/name` of each.
fn expected_children(composite: &str) -> BTreeSet<String> {
    [
        format!("ConfigMap/{composite}-config"),
        format!("Secret/{composite}-credentials"),
        format!("Service/{composite}"),
        format!("StatefulSet/{composite}"),
    ]
    .into()
}

/// Applies the Composition and the 50 composites (all at once).
async fn create_composites(world: &World) {
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    let spec = json!({"engine": "postgres", "version": "16.4", "replicas": 1, "storage": "1Gi"});
    let labels = json!({"team": "payments"});
    let names = names();
    let creates = names
        .iter()
        .map(|name| world.apply_database(name, spec.clone(), labels.clone()));
    futures::future::join_all(creates).await;
}

/// A child of some composite: `(composite label, Kind/name)` → its uid and
/// its controlling owner `(kind, name, uid)`.
type Children = BTreeMap<(String, String), (String, Option<(String, String, String)>)>;

/// Every object of the database plugin's kinds in the namespace that carries
/// the composite-name label, read straight from the API server.
async fn list_children(world: &World) -> anyhow::Result<Children> {
    let mut children = Children::new();
    for (group, version, kind) in CHILD_KINDS {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(world.client.clone(), &world.namespace, &resource);
        let list = api
            .list(&ListParams::default().labels(COMPOSITE_NAME_LABEL))
            .await?;
        for object in list {
            let label = object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPOSITE_NAME_LABEL))
                .cloned()
                .unwrap_or_default();
            let name = object.metadata.name.clone().unwrap_or_default();
            let uid = object.metadata.uid.clone().unwrap_or_default();
            let controller = object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone()));
            children.insert((label, format!("{kind}/{name}")), (uid, controller));
        }
    }
    Ok(children)
}

/// Waits until the controller has applied some children but not all of
/// them (the fault then hits it mid-way), and returns those children.
async fn wait_for_first_children(world: &World) -> Children {
    let children = eventually(
        "the first children to be applied",
        Duration::from_secs(120),
        || async {
            let children = list_children(world).await.ok()?;
            (!children.is_empty()).then_some(children)
        },
    )
    .await;
    assert!(
        children.len() < COUNT * 4,
        "the fault should hit mid-way, but all {} children were already there",
        children.len()
    );
    children
}

/// Composites not yet Synced=True for their current generation, each with
/// its Synced condition.
async fn unsynced(world: &World) -> anyhow::Result<Vec<String>> {
    let list = world.composites().list(&ListParams::default()).await?;
    let mut unsynced = Vec::new();
    for object in list {
        let value = serde_json::to_value(&object)?;
        let synced = condition(&value, "Synced");
        let done = synced.as_ref().is_some_and(|c| c["status"] == "True")
            && value.pointer("/status/observedGeneration") == value.pointer("/metadata/generation");
        if !done {
            unsynced.push(format!(
                "{} (generation {}, observed {}): {}",
                object.metadata.name.unwrap_or_default(),
                value["metadata"]["generation"],
                value["status"]["observedGeneration"],
                synced.unwrap_or_default()
            ));
        }
    }
    Ok(unsynced)
}

/// Waits until all 50 composites are Synced; then checks their children
/// are exactly the expected ones (no duplicate, no orphan, none missing),
/// and that every child in `before` still exists with the same uid. On
/// timeout the failure shows what is not synced and `logs()`.
async fn assert_converged_and_nothing_lost(
    world: &World,
    before: &Children,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let unsynced = unsynced(world).await;
        if unsynced.as_ref().is_ok_and(Vec::is_empty) {
            break;
        }
        if Instant::now() >= deadline {
            let unsynced = match unsynced {
                Ok(list) => format!(
                    "{} not synced, first: {:#?}",
                    list.len(),
                    &list[..list.len().min(5)]
                ),
                Err(e) => format!("listing composites: {e}"),
            };
            panic!(
                "timed out after {CONVERGE:?} waiting for all {COUNT} composites to be Synced after the fault: {unsynced}\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let composites: BTreeMap<String, String> = world
        .composites()
        .list(&ListParams::default())
        .await
        .expect("listing composites")
        .into_iter()
        .map(|o| {
            (
                o.metadata.name.unwrap_or_default(),
                o.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        composites.keys().cloned().collect::<Vec<_>>(),
        names(),
        "the composites"
    );
    let children = list_children(world).await.expect("listing children");

    // Exactly the expected set per composite: nothing duplicated or extra,
    // nothing missing.
    let mut by_composite: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (composite, key) in children.keys() {
        by_composite
            .entry(composite.clone())
            .or_default()
            .insert(key.clone());
    }
    for name in names() {
        assert_eq!(
            by_composite.remove(&name).unwrap_or_default(),
            expected_children(&name),
            "children of {name}"
        );
    }
    assert!(
        by_composite.is_empty(),
        "children labelled for composites that do not exist: {by_composite:?}"
    );

    // No orphan: each child is controlled by its live composite.
    for ((composite, key), (_, owner)) in &children {
        let expected = (
            "Database".to_string(),
            composite.clone(),
            composites[composite].clone(),
        );
        assert_eq!(
            owner.as_ref(),
            Some(&expected),
            "{key} of {composite}: its controlling owner"
        );
    }

    // Nothing deleted that should exist: what was there before the fault
    // is the same object now.
    for (key, (uid, _)) in before {
        let now = children.get(key).map(|(uid, _)| uid);
        assert_eq!(
            now,
            Some(uid),
            "{key:?}: the same object as before the fault"
        );
    }
}

/// kube-apiserver stopped for 10 s while the controller reconciles 50
/// composites, then started on the same port with the same etcd data: every
/// composite converges, nothing is duplicated, orphaned or lost, and the
/// leader (its lease lasts 60 s) keeps leading.
#[tokio::test]
async fn apiserver_outage_loses_nothing() {
    let control_plane = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("starting the fault test's control plane: {e:#}"));
    // World wants a 'static control plane; this one is stopped on the way
    // out, passing or failing.
    let control_plane: &'static ControlPlane = Box::leak(Box::new(control_plane));
    let _stop = StopOnDrop(control_plane);
    let world = own_world(control_plane, "outage").await;
    let mut options = world.options();
    options.lease = Some(LeaseConfig {
        namespace: world.namespace.clone(),
        name: LEASE.into(),
        identity: "outage".into(),
        // Longer than the outage and the restart together, on a busy machine.
        duration: Duration::from_secs(60),
        renew: Duration::from_secs(1),
    });
    let mut running = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the controller");
    create_composites(&world).await;

    let before = wait_for_first_children(&world).await;
    let started = Instant::now();
    control_plane.stop_apiserver();
    tokio::time::sleep(Duration::from_secs(10)).await;
    control_plane
        .start_apiserver()
        .await
        .unwrap_or_else(|e| panic!("restarting kube-apiserver: {e:#}"));
    eprintln!(
        "fault test: kube-apiserver down {:.1} s, {} children before",
        started.elapsed().as_secs_f64(),
        before.len()
    );
    assert_converged_and_nothing_lost(&world, &before, String::new).await;
    assert!(running.is_leading(), "the leader kept its lease");
    // The controller did not stop by itself meanwhile.
    let ended = tokio::time::timeout(Duration::from_millis(10), running.wait()).await;
    assert!(ended.is_err(), "the controller ended: {ended:?}");
    running.shutdown().await.expect("clean shutdown");
}

/// The controller process killed with SIGKILL while applying, a new replica
/// started: it takes over once the lease has expired (it was not released),
/// and every composite converges with nothing duplicated, orphaned or lost.
#[tokio::test]
async fn controller_killed_mid_apply_loses_nothing() {
    let world = World::new("sigkill").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = ControllerProcess::start(&world, dir.path(), "first", "4s");
    first.wait_for_lease(&world, Duration::from_secs(60)).await;
    create_composites(&world).await;

    let before = wait_for_first_children(&world).await;
    first.child.kill().expect("SIGKILL to the controller");
    let status = first
        .child
        .wait()
        .expect("waiting for the killed controller");
    assert!(!status.success(), "killed: {status}");
    let lease = lease_holder(&world).await;
    assert_eq!(
        lease.as_deref(),
        Some("first"),
        "a killed leader releases nothing"
    );

    let mut second = ControllerProcess::start(&world, dir.path(), "second", "4s");
    second.wait_for_lease(&world, Duration::from_secs(60)).await;
    assert_converged_and_nothing_lost(&world, &before, || second.log_tail()).await;
    let status = second.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}\n{}", second.log_tail());
}

/// The leader process sent SIGTERM while reconciling 50 composites, a
/// standby replica running: the leader exits 0 having released its lease
/// (the standby leads well within the 20 s the lease lasts, which it could
/// not before the lease expired if it were not released), and the new
/// leader finishes the work with nothing duplicated, orphaned or lost.
#[tokio::test]
async fn sigterm_releases_the_lease_and_the_standby_finishes() {
    let world = World::new("sigterm").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = ControllerProcess::start(&world, dir.path(), "first", "20s");
    first.wait_for_lease(&world, Duration::from_secs(60)).await;
    let mut second = ControllerProcess::start(&world, dir.path(), "second", "20s");
    create_composites(&world).await;

    let before = wait_for_first_children(&world).await;
    let status = first.terminate(Duration::from_secs(40)).await;
    let stopped = Instant::now();
    assert!(
        status.success(),
        "SIGTERM: exit {status}\n{}",
        first.log_tail()
    );
    second.wait_for_lease(&world, Duration::from_secs(10)).await;
    eprintln!(
        "fault test: the standby leads {:.1} s after the leader exited",
        stopped.elapsed().as_secs_f64()
    );
    assert_converged_and_nothing_lost(&world, &before, || second.log_tail()).await;
    let status = second.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}\n{}", second.log_tail());
}

/// A leader under SIGTERM while a reconcile would run for two minutes (the
/// plugin parks in a sleep under a 120 s deadline): it renews its lease for
/// the grace (`--shutdown-grace 2s`), then cuts the reconcile short (its
/// controller's task aborted and ended: the log says every controller
/// stopped before it says the lease was released), releases the lease and
/// exits 0, and the standby takes over at once.
/// Without the grace the process would wait for the reconcile, not renewing
/// its lease, until after it expired.
#[tokio::test]
async fn sigterm_cuts_a_stuck_reconcile_short_after_the_grace() {
    let world = World::new("grace").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = ControllerProcess::start_with(
        &world,
        dir.path(),
        "first",
        "20s",
        &["--shutdown-grace", "2s"],
    );
    first.wait_for_lease(&world, Duration::from_secs(60)).await;
    let mut second = ControllerProcess::start(&world, dir.path(), "second", "20s");
    world
        .apply_composition(
            plugins::FAULTY,
            json!({"mode": "sleep-forever"}),
            json!({"limits": {"deadline": "120s"}}),
        )
        .await;
    let compositions = Api::<DynamicObject>::all_with(
        world.client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "tessera.dev",
            "v1alpha1",
            "Composition",
        )),
    );
    let composition = format!("{}-databases", world.id);
    eventually(
        "the leader to load the Composition",
        Duration::from_secs(60),
        || async {
            let object = serde_json::to_value(compositions.get(&composition).await.ok()?).ok()?;
            (condition(&object, "Ready")?["status"] == "True").then_some(())
        },
    )
    .await;
    world
        .apply_database("stuck", json!({}), json!({"team": "payments"}))
        .await;
    // The reconcile starts at once (the controller runs and watches); give
    // it a moment on a busy machine. The log checked below says whether it
    // was running when SIGTERM came.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let status = first.terminate(Duration::from_secs(30)).await;
    let stopped = Instant::now();
    assert!(
        status.success(),
        "SIGTERM: exit {status}\n{}",
        first.log_tail()
    );
    let log = std::fs::read_to_string(&first.log).unwrap_or_default();
    assert!(
        log.contains("cut short"),
        "a reconcile should have been cut short after the grace\n{}",
        first.log_tail()
    );
    // The old leader writes nothing once its lease is released: every
    // controller (the stuck reconcile aborted) stopped before the release.
    let stopped_at = log.find("every composition controller stopped");
    let released_at = log.find("released the lease");
    assert!(
        matches!((stopped_at, released_at), (Some(s), Some(r)) if s < r),
        "every controller should have stopped before the lease was released\n{}",
        first.log_tail()
    );
    second.wait_for_lease(&world, Duration::from_secs(10)).await;
    eprintln!(
        "fault test: the standby leads {:.1} s after the leader exited",
        stopped.elapsed().as_secs_f64()
    );
    let status = second.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", second.log_tail());
}

/// A world like [`World::new`]'s, on a control plane of the test's own.
async fn own_world(control_plane: &'static ControlPlane, id: &str) -> World {
    let client = control_plane.client();
    let namespace = control_plane.namespace(id).await;
    let group = format!("{id}.tessera.test");
    apply_yaml(&client, &tessera_controller::crd::crds_yaml(), TEST_MANAGER)
        .await
        .expect("applying the Tessera CRDs");
    apply_yaml(&client, &database_crd(&group), TEST_MANAGER)
        .await
        .expect("applying the Database CRD");
    World {
        control_plane,
        client,
        namespace,
        id: id.to_string(),
        resource: ApiResource::from_gvk(&GroupVersionKind::gvk(&group, "v1alpha1", "Database")),
    }
}

/// Stops a leaked control plane when dropped.
struct StopOnDrop(&'static ControlPlane);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The holder of the test's Lease, if any.
async fn lease_holder(world: &World) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.namespace);
    let lease = leases.get_opt(LEASE).await.ok()??;
    lease
        .spec?
        .holder_identity
        .filter(|holder| !holder.is_empty())
}

/// The `tessera-controller` binary: `$TESSERA_CONTROLLER_BIN`, else the one
/// cargo built next to this test binary (`target/<profile>/`).
fn controller_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TESSERA_CONTROLLER_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("tessera-controller"));
    match path {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "no tessera-controller binary next to {}: run the tests with `cargo test --workspace` \
             (add `--test cli` when selecting `--test cluster`), or set TESSERA_CONTROLLER_BIN",
            exe.display()
        ),
    }
}

/// A `tessera-controller run` process for a test, killed if still running
/// when dropped.
struct ControllerProcess {
    identity: String,
    child: Child,
    log: PathBuf,
}

impl ControllerProcess {
    /// Starts a replica named `identity` electing a leader on the test's
    /// Lease (lasting `lease`, renewed every second), for the test's
    /// Compositions only; its log goes to `dir/<identity>.log`.
    fn start(world: &World, dir: &Path, identity: &str, lease: &str) -> ControllerProcess {
        Self::start_with(world, dir, identity, lease, &[])
    }

    /// [`ControllerProcess::start`] with more arguments to `run`.
    fn start_with(
        world: &World,
        dir: &Path,
        identity: &str,
        lease: &str,
        extra: &[&str],
    ) -> ControllerProcess {
        let key = dir.join("secret-key");
        std::fs::write(&key, [7u8; 32]).expect("writing the secret key");
        let log = dir.join(format!("{identity}.log"));
        let out = std::fs::File::create(&log).expect("creating the controller's log");
        let err = out.try_clone().expect("the controller's log");
        let selector = format!("{TEST_LABEL}={}", world.id);
        let child = Command::new(controller_binary())
            .arg("run")
            .arg("--secret-key-file")
            .arg(&key)
            .args(["--identity", identity, "--leader-elect"])
            .args(["--lease-namespace", &world.namespace, "--lease-name", LEASE])
            .args(["--lease-duration", lease, "--lease-renew", "1s"])
            .args(["--resync", "2s", "--plugin-resync", "1s"])
            .args(["--instance-slots", "8", "--selector", &selector])
            .arg("--cache-dir")
            .arg(crate::cache_dir())
            .args(extra)
            .env("KUBECONFIG", world.control_plane.kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            // Several replicas on one machine: no metrics port each.
            .env("TESSERA_METRICS_BIND_ADDRESS", "off")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("TESSERA_SECRET_KEY_FILE")
            .env_remove("TESSERA_CACHE_DIR")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting tessera-controller");
        ControllerProcess {
            identity: identity.to_string(),
            child,
            log,
        }
    }

    /// Waits until this replica holds the test's Lease.
    async fn wait_for_lease(&self, world: &World, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if lease_holder(world).await.as_deref() == Some(self.identity.as_str()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not take the lease within {timeout:?}\n{}",
                self.identity,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit (SIGKILL after
    /// `timeout`, a failure).
    async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the controller") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {timeout:?} of SIGTERM\n{}",
                    self.identity,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the process's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- last lines of {}:\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
