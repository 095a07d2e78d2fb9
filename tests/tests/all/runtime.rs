//! Loading plugins: world checks, clear load errors, the artifact cache.

use std::path::{Path, PathBuf};

use serde_json::json;
use tessera_runtime::{ArtifactSource, Binding, Error, Runtime, World};
use tessera_tests::plugins::{DATABASE, REQUIRE_LABELS};

use crate::common::{ctx, load};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn load_wat_error(text: &str) -> String {
    load_error(&wat::parse_str(text).expect("valid WAT")).await
}

async fn load_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "broken.wasm", bytes);
    let runtime = Runtime::builder().no_cache().build().unwrap();
    let err = runtime.load_file(&path).await.unwrap_err();
    assert!(matches!(err, Error::Incompatible { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&path.display().to_string()),
        "names the file: {text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");
    text
}

#[tokio::test]
async fn plugins_report_their_world_and_metadata() {
    let database = load(DATABASE).await;
    assert_eq!(database.world(), World::Composition);
    let meta = database.metadata();
    assert_eq!(
        (meta.name.as_str(), meta.version.as_str()),
        ("database", "0.1.0")
    );
    assert_eq!(meta.kinds[0].kind, "Database");
    assert!(meta.settings_schema.is_some());
    let labels = load(REQUIRE_LABELS).await;
    assert_eq!(labels.world(), World::Policy);
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused_clearly() {
    let text = load_error(b"definitely not wasm").await;
    assert!(
        text.contains("not a Tessera plugin: it is not a WebAssembly binary"),
        "{text}"
    );
    let text = load_error(b"\0asm\x01\0\0\0").await;
    assert!(
        text.contains("core WebAssembly module, not a component"),
        "{text}"
    );
    let whole = std::fs::read(DATABASE).unwrap();
    let text = load_error(&whole[..whole.len() / 2]).await;
    assert!(text.contains("not a Tessera plugin"), "{text}");
}

#[tokio::test]
async fn components_for_no_world_or_missing_imports_name_what_is_wrong() {
    let text = load_wat_error("(component)").await;
    assert!(
        text.contains("exports neither `expand` (composition world) nor `validate` (policy world)"),
        "{text}"
    );

    let text = load_wat_error(
        r#"(component
              (core module $m (func (export "f")))
              (core instance $i (instantiate $m))
              (func (export "expand") (canon lift (core func $i "f"))))"#,
    )
    .await;
    assert!(
        text.contains("missing the export `metadata` of the composition world"),
        "{text}"
    );

    let text = load_wat_error(
        r#"(component
              (core module $m (func (export "f")))
              (core instance $i (instantiate $m))
              (func (export "metadata") (canon lift (core func $i "f")))
              (func (export "expand") (canon lift (core func $i "f"))))"#,
    )
    .await;
    assert!(
        text.contains("its exports do not match the composition world"),
        "{text}"
    );

    let text = load_wat_error(crate::common::UNKNOWN_IMPORT_WAT).await;
    assert!(text.contains("tessera:plugin/unknown@0.1.0"), "{text}");
}

#[tokio::test]
async fn a_missing_file_is_an_io_error_naming_it() {
    let err = Runtime::builder()
        .no_cache()
        .build()
        .unwrap()
        .load_file("/nonexistent/p.wasm")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().starts_with("/nonexistent/p.wasm"), "{err}");
}

#[tokio::test]
async fn a_plugin_is_used_only_for_its_world() {
    let policy = Binding::new(load(REQUIRE_LABELS).await, json!({})).unwrap();
    let composite = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}});
    let err = policy.expand(&composite, &[], &ctx()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(") is a policy plugin; it cannot be used as a composition plugin"),
        "{err}"
    );
}

async fn expand(plugin: tessera_runtime::Plugin, composite: &serde_json::Value) -> String {
    let binding = Binding::new(plugin, json!({})).unwrap();
    serde_json::to_string(
        &binding
            .expand(composite, &[], &ctx())
            .await
            .unwrap()
            .children,
    )
    .unwrap()
}

/// The precompiled artifacts in a cache directory.
fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

fn cache_entry(dir: &Path) -> PathBuf {
    let entries = cache_entries(dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[tokio::test]
async fn the_cache_is_used_and_bad_entries_are_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = || Runtime::builder().cache_dir(dir.path()).build().unwrap();
    let composite = crate::common::yaml_file(&tessera_tests::example("database.yaml"));

    let first = runtime().load_file(DATABASE).await.unwrap();
    assert_eq!(first.artifact_source(), ArtifactSource::Compiled);
    let expected = expand(first, &composite).await;
    let entry = cache_entry(dir.path());
    let name = entry.file_name().unwrap().to_str().unwrap().to_string();
    let hex = tessera_runtime::provenance::sha256_digest(&std::fs::read(DATABASE).unwrap());
    assert!(
        name.starts_with(hex.trim_start_matches("sha256:")),
        "keyed by the wasm digest: {name}"
    );

    let second = runtime().load_file(DATABASE).await.unwrap();
    assert_eq!(second.artifact_source(), ArtifactSource::Cache);
    assert_eq!(expand(second, &composite).await, expected);

    // Corrupt one byte in the middle: the checksum catches it.
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let third = runtime().load_file(DATABASE).await.unwrap();
    assert_eq!(third.artifact_source(), ArtifactSource::Compiled);
    assert_eq!(expand(third, &composite).await, expected);
    assert_eq!(
        runtime()
            .load_file(DATABASE)
            .await
            .unwrap()
            .artifact_source(),
        ArtifactSource::Cache
    );

    // A truncated entry, and a foreign file under the entry's name.
    for bad in [bytes[..100].to_vec(), b"some other program's file".to_vec()] {
        std::fs::write(&entry, bad).unwrap();
        let again = runtime().load_file(DATABASE).await.unwrap();
        assert_eq!(again.artifact_source(), ArtifactSource::Compiled);
        assert_eq!(expand(again, &composite).await, expected);
    }

    // An entry others could have written is not trusted: recompiled.
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            runtime()
                .load_file(DATABASE)
                .await
                .unwrap()
                .artifact_source(),
            ArtifactSource::Cache
        );
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        let shared = runtime().load_file(DATABASE).await.unwrap();
        assert_eq!(shared.artifact_source(), ArtifactSource::Compiled);
        assert_eq!(expand(shared, &composite).await, expected);
    }

    // An engine with another configuration (fuel on) never reads this
    // engine's artifact: its key differs.
    let fuel = Runtime::builder()
        .cache_dir(dir.path())
        .fuel(true)
        .build()
        .unwrap();
    assert_eq!(
        fuel.load_file(DATABASE).await.unwrap().artifact_source(),
        ArtifactSource::Compiled
    );
    assert_eq!(cache_entries(dir.path()).len(), 2);
}

#[tokio::test]
async fn a_remembered_digest_is_used_only_while_the_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let runtime = || Runtime::builder().cache_dir(&cache).build().unwrap();
    let plugin = dir.path().join("database.wasm");
    let other = dir.path().join("labels.wasm");
    std::fs::copy(DATABASE, &plugin).unwrap();
    std::fs::copy(REQUIRE_LABELS, &other).unwrap();
    let composite = crate::common::yaml_file(&tessera_tests::example("database.yaml"));
    let memos = || -> Vec<PathBuf> {
        std::fs::read_dir(cache.join("digests"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };

    // A file changed moments before it was read is hashed on every load,
    // never remembered.
    let fresh = runtime().load_file(&plugin).await.unwrap();
    assert_eq!(fresh.artifact_source(), ArtifactSource::Compiled);
    let expected = expand(fresh.clone(), &composite).await;
    assert!(
        memos().is_empty(),
        "a file that has just changed is not remembered"
    );

    // Once it has settled (3 s), its digest is remembered, and the next
    // load takes the digest from the cache.
    std::thread::sleep(std::time::Duration::from_millis(3200));
    assert_eq!(
        runtime()
            .load_file(&plugin)
            .await
            .unwrap()
            .artifact_source(),
        ArtifactSource::Cache
    );
    assert_eq!(memos().len(), 1);
    let remembered = runtime().load_file(&plugin).await.unwrap();
    assert_eq!(remembered.artifact_source(), ArtifactSource::Cache);
    assert_eq!(remembered.id(), fresh.id());
    assert_eq!(expand(remembered, &composite).await, expected);

    // The remembered digest, not the file, decides what runs: pointed at
    // another cached plugin's digest, the same file loads as that plugin.
    // (Only this user can write the digests: a shared one is ignored.)
    let labels = runtime().load_file(&other).await.unwrap();
    let memo = memos()
        .into_iter()
        .find(|m| {
            std::fs::read_to_string(m)
                .unwrap()
                .contains(fresh.id().digest.trim_start_matches("sha256:"))
        })
        .unwrap();
    let line = std::fs::read_to_string(&memo).unwrap();
    let swapped = line.replace(
        fresh.id().digest.trim_start_matches("sha256:"),
        labels.id().digest.trim_start_matches("sha256:"),
    );
    std::fs::write(&memo, &swapped).unwrap();
    assert_eq!(
        runtime().load_file(&plugin).await.unwrap().id(),
        labels.id()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&memo, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(runtime().load_file(&plugin).await.unwrap().id(), fresh.id());
    }

    // Rewritten in place with other bytes of the same length, its
    // modification time put back: the change time still moves, so the file
    // is read again (and refused), not taken for the cached plugin.
    let modified = std::fs::metadata(&plugin).unwrap().modified().unwrap();
    let len = std::fs::metadata(&plugin).unwrap().len();
    std::fs::write(&plugin, vec![b'x'; usize::try_from(len).unwrap()]).unwrap();
    let file = std::fs::File::options().write(true).open(&plugin).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    let err = runtime().load_file(&plugin).await.unwrap_err();
    assert!(
        err.to_string().contains("not a WebAssembly binary"),
        "{err}"
    );
}

#[tokio::test]
async fn the_pooling_allocator_gives_the_same_answers() {
    let pooled = Runtime::builder().no_cache().pooling(8).build().unwrap();
    let composite = crate::common::yaml_file(&tessera_tests::example("database.yaml"));
    let plugin = pooled.load_file(DATABASE).await.unwrap();
    let reference = expand(load(DATABASE).await, &composite).await;
    for _ in 0..20 {
        assert_eq!(expand(plugin.clone(), &composite).await, reference);
    }
    // Limits still hold inside a pooled slot.
    let faulty = pooled
        .load_file(tessera_tests::plugins::FAULTY)
        .await
        .unwrap();
    let bomb = Binding::new(faulty, json!({"mode": "oom"}))
        .unwrap()
        .with_limits(tessera_runtime::Limits::default().memory_bytes(32 << 20));
    let err = bomb
        .expand(
            &json!({"apiVersion": "v1", "kind": "F", "metadata": {"name": "f"}}),
            &[],
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.crash_kind(),
        Some(tessera_runtime::CrashKind::OutOfMemory),
        "{err}"
    );
}

#[tokio::test]
async fn a_full_pool_makes_evaluations_wait_for_a_slot_instead_of_failing() {
    // One slot. A plugin asleep in WASI holds it until its 300 ms deadline;
    // an evaluation started meanwhile waits for the slot, then succeeds.
    let runtime = Runtime::builder().no_cache().pooling(1).build().unwrap();
    let faulty = runtime
        .load_file(tessera_tests::plugins::FAULTY)
        .await
        .unwrap();
    let sleeper = Binding::new(faulty, json!({"mode": "sleep-forever"}))
        .unwrap()
        .with_limits(
            tessera_runtime::Limits::default().deadline(std::time::Duration::from_millis(300)),
        );
    let database = Binding::new(runtime.load_file(DATABASE).await.unwrap(), json!({})).unwrap();
    let composite = crate::common::yaml_file(&tessera_tests::example("database.yaml"));
    let faulty_composite = json!({"apiVersion": "test.tessera.dev/v1", "kind": "Faulty",
        "metadata": {"name": "f", "namespace": "t"}});
    let context = ctx();
    let sleeping = sleeper.expand(&faulty_composite, &[], &context);
    let waiting = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        database.expand(&composite, &[], &ctx()).await
    };
    let (slept, waited) = tokio::join!(sleeping, waiting);
    assert!(
        matches!(slept, Err(Error::Crashed { .. })),
        "the sleeper ends at its deadline: {slept:?}"
    );
    assert_eq!(waited.expect("waited for the slot").children.len(), 5);
}

/// Compiling a plugin never holds an async worker: on a runtime with one
/// worker thread, another task keeps running while a plugin compiles (it
/// could not run at all while the compile ran on that thread).
#[test]
fn compiling_does_not_block_the_async_worker() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    executor.block_on(async {
        let runtime = Runtime::builder().no_cache().build().unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        // Let the ticker start, then count only what runs during the load.
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let plugin = runtime.load_file(DATABASE).await.unwrap();
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert_eq!(plugin.artifact_source(), ArtifactSource::Compiled);
        // The load itself yields a few times (metadata runs as a future); a
        // compile of ~100 ms on a blocking thread leaves the worker free for
        // many thousands of ticks.
        assert!(
            during > 1000,
            "the worker ran only {during} other polls while the plugin compiled"
        );
    });
}

/// A plugin spinning in a loop never holds the async worker: on a runtime
/// with one worker thread, another task keeps running while the plugin
/// spins to its 300 ms deadline (run on that thread, it would not run once
/// until the deadline). Its deadline still ends it.
#[test]
fn a_spinning_plugin_does_not_block_the_async_worker() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    executor.block_on(async {
        let runtime = Runtime::builder().no_cache().build().unwrap();
        let faulty = runtime
            .load_file(tessera_tests::plugins::FAULTY_POLICY)
            .await
            .unwrap();
        let looping = Binding::new(faulty, json!({"mode": "loop"}))
            .unwrap()
            .with_limits(
                tessera_runtime::Limits::default().deadline(std::time::Duration::from_millis(300)),
            );
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let err = looping.validate(&review()).await.unwrap_err();
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert_eq!(
            err.crash_kind(),
            Some(tessera_runtime::CrashKind::Deadline),
            "{err}"
        );
        // About 300 wake-ups of 1 ms each fit in the deadline; the guest on
        // the worker would have left room for one at most.
        assert!(
            during > 50,
            "the worker ran the other task only {during} times while the plugin spun"
        );
    });
}

/// An evaluation its caller drops (a webhook's budget ran out) stops then,
/// not at its own deadline: with a single guest thread, the next
/// evaluation gets that thread at once. (Left running, the looping guest
/// would hold the thread for 30 s.)
#[tokio::test]
async fn a_dropped_evaluation_stops_its_guest() {
    use std::time::Duration;

    let runtime = Runtime::builder()
        .no_cache()
        .guest_threads(1)
        .build()
        .unwrap();
    let faulty = runtime
        .load_file(tessera_tests::plugins::FAULTY_POLICY)
        .await
        .unwrap();
    let looping = Binding::new(faulty.clone(), json!({"mode": "loop"}))
        .unwrap()
        .with_limits(tessera_runtime::Limits::default().deadline(Duration::from_secs(30)));
    let allowing = Binding::new(faulty, json!({"mode": "allow"})).unwrap();
    for _ in 0..3 {
        let cut =
            tokio::time::timeout(Duration::from_millis(200), looping.validate(&review())).await;
        assert!(cut.is_err(), "the loop is still running: {cut:?}");
        let next = tokio::time::timeout(Duration::from_secs(5), allowing.validate(&review()))
            .await
            .expect("the next evaluation got the guest thread")
            .expect("allowed");
        assert!(next.allowed);
    }
}

fn review() -> tessera_runtime::Review {
    tessera_runtime::Review {
        operation: tessera_runtime::Operation::Create,
        object: Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "t"}})),
        old_object: None,
        user_info: tessera_runtime::UserInfo::default(),
    }
}
