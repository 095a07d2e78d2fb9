//! The self-test of a pulled plugin, with the real example plugins (built
//! from source by `tests/build.rs`) and their real suites, laid out in a
//! directory the way an artifact's suite layer unpacks: every file the
//! suite names inside it, plugins by name.

use std::path::{Path, PathBuf};

use tessera_runtime::{LimitsSpec, Plugin, Runtime, World};
use tessera_suite::{OnePlugin, Plugins, SelfTestError, self_test};
use tessera_tests::{example, plugins, workspace};

/// Loads a plugin on a fresh runtime, counting fuel or not.
async fn load(path: &str, fuel: bool) -> Plugin {
    let runtime = Runtime::builder()
        .no_cache()
        .fuel(fuel)
        .build()
        .expect("runtime");
    runtime.load_file(path).await.expect("the plugin loads")
}

/// `plugins/<plugin>/tests/<plugin>.tessera.yaml` written under
/// `dir/tests/` as an artifact unpacks it: the examples it names beside it
/// (`../../../examples/x` becomes `examples/x`), its goldens copied, and
/// `edit` applied to the text.
fn unpack(dir: &Path, plugin: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let source = workspace().join("plugins").join(plugin).join("tests");
    let target = dir.join("tests");
    std::fs::create_dir_all(target.join("examples")).unwrap();
    let file = format!("{plugin}.tessera.yaml");
    let text = std::fs::read_to_string(source.join(&file)).unwrap();
    assert!(text.contains("../../../examples/"), "the suite moved");
    let text = edit(text.replace("../../../examples/", "examples/"));
    for name in [
        "database.yaml",
        "require-labels.settings.yaml",
        "provenance.settings.yaml",
    ] {
        std::fs::copy(example(name), target.join("examples").join(name)).unwrap();
    }
    let golden = source.join("golden");
    if golden.is_dir() {
        std::fs::create_dir_all(target.join("golden")).unwrap();
        for entry in std::fs::read_dir(&golden).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join("golden").join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(target.join(&file), text).unwrap();
    target.join(file)
}

/// The database suite without its last case (a pipeline that also runs
/// other plugins).
fn without_pipeline(text: String) -> String {
    let at = text
        .find("  - name: the example passes the example policies")
        .expect("the pipeline case");
    text[..at].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundled_suite_passes_against_its_own_plugin() {
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path(), "require-labels", |t| t);
    let plugin = load(plugins::REQUIRE_LABELS, false).await;
    // The suite says `require-labels`; `-` and `_` are the same.
    let report = self_test(plugin, "require_labels", dir.path(), &LimitsSpec::default())
        .await
        .unwrap();
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (4, 0, 0)
    );
    assert!(report.passed_all() && report.first_failure().is_none());
    assert_eq!(report.summary(), "4 cases passed");

    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path(), "database", without_pipeline);
    let plugin = load(plugins::DATABASE, false).await;
    let report = self_test(plugin, "database", dir.path(), &LimitsSpec::default())
        .await
        .unwrap();
    // The first case compares a golden file too.
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (4, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_case_is_reported_with_its_file_name_and_difference() {
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path(), "database", |t| {
        let t = without_pipeline(t);
        assert!(t.contains("{ports: [{port: 3306}]}"));
        t.replace("{ports: [{port: 3306}]}", "{ports: [{port: 3307}]}")
    });
    let plugin = load(plugins::DATABASE, false).await;
    let report = self_test(plugin, "database", dir.path(), &LimitsSpec::default())
        .await
        .unwrap();
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (3, 1, 0)
    );
    assert!(!report.passed_all());
    let first = report.first_failure().unwrap();
    assert_eq!(first.suite, Path::new("tests/database.tessera.yaml"));
    assert_eq!(
        first.case,
        "mysql with one replica has no disruption budget"
    );
    assert!(
        first
            .failure
            .starts_with("child Service/invoices differs:\n--- expected"),
        "{}",
        first.failure
    );
    let lines: Vec<&str> = first.failure.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('-') && l.ends_with("port: 3307"))
            && lines
                .iter()
                .any(|l| l.starts_with('+') && l.ends_with("port: 3306")),
        "{}",
        first.failure
    );
    let summary = report.summary();
    assert!(
        summary.starts_with(
            "case \"mysql with one replica has no disruption budget\" in tests/database.tessera.yaml failed: child Service/invoices differs: | --- expected"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("3307") && !summary.contains('\n'),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_naming_another_plugin_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The real database suite: its pipeline also runs require-labels and
    // provenance, which the database artifact does not hold.
    unpack(dir.path(), "database", |t| t);
    let plugin = load(plugins::DATABASE, false).await;
    let report = self_test(plugin, "database", dir.path(), &LimitsSpec::default())
        .await
        .unwrap();
    assert_eq!((report.passed(), report.failed()), (4, 1));
    let first = report.first_failure().unwrap();
    assert_eq!(first.case, "the example passes the example policies");
    assert_eq!(
        first.failure,
        "plugin \"require-labels\": not in this artifact (a bundled suite runs only its own plugin, \"database\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plugin_answers_only_its_own_name_and_world() {
    let plugin = load(plugins::REQUIRE_LABELS, false).await;
    let one = OnePlugin::new("require-labels", plugin.clone());
    let suite = Path::new("/suite/s.tessera.yaml");
    for name in ["require-labels", "require_labels"] {
        let loaded = one.load(suite, name, World::Policy).await.unwrap();
        assert_eq!(loaded.digest(), plugin.digest());
    }
    let other = one
        .load(suite, "database", World::Policy)
        .await
        .unwrap_err();
    assert_eq!(
        other,
        "plugin \"database\": not in this artifact (a bundled suite runs only its own plugin, \"require-labels\")"
    );
    for path in [
        "require-labels.wasm",
        "./require-labels",
        "/opt/require-labels.wasm",
        "../plugins/require-labels.wasm",
        "",
    ] {
        let error = one.load(suite, path, World::Policy).await.unwrap_err();
        assert!(
            error.starts_with(&format!("plugin {path:?}: is a path;")),
            "{error}"
        );
    }
    let world = one
        .load(suite, "require-labels", World::Composition)
        .await
        .unwrap_err();
    assert_eq!(
        world,
        "plugin require-labels: is a policy plugin; this case needs a composition plugin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_that_cannot_be_used_is_an_error_naming_its_file() {
    let plugin = load(plugins::REQUIRE_LABELS, false).await;
    let limits = LimitsSpec::default();

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/bad.tessera.yaml"), "cases: [\n").unwrap();
    let error = self_test(plugin.clone(), "require-labels", dir.path(), &limits)
        .await
        .unwrap_err();
    let SelfTestError::Suite { file, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(file, Path::new("sub/bad.tessera.yaml"));
    let line = error.to_string();
    assert!(
        line.starts_with("bundled suite sub/bad.tessera.yaml: "),
        "{line}"
    );
    assert!(
        !line.contains('\n') && !line.contains(&dir.path().display().to_string()),
        "{line}"
    );

    // A path as the plugin: refused before anything runs.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("path.tessera.yaml"),
        "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n  - name: c\n    policy: {plugin: ./require-labels.wasm, object: {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}}\n",
    )
    .unwrap();
    let error = self_test(plugin.clone(), "require-labels", dir.path(), &limits)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("bundled suite path.tessera.yaml: case 0 (\"c\"): policy.plugin: \"./require-labels.wasm\" is a path"),
        "{error}"
    );

    // No suite at all: nothing counted, for the caller to judge.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "no suite here").unwrap();
    let report = self_test(plugin, "require-labels", dir.path(), &limits)
        .await
        .unwrap();
    assert_eq!(report.cases(), 0);
    assert_eq!(report.summary(), "0 cases passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuel_case_is_skipped_where_fuel_is_not_counted() {
    // A budget far too small: only counted fuel runs out.
    let fuelled = |t: String| {
        let case = "  - name: deletes are allowed\n";
        assert!(t.contains(case));
        t.replace(
            case,
            &("  - name: a tiny fuel budget runs out\n    limits: {fuel: 1000}\n    policy:\n      plugin: require-labels\n      settings: {requiredLabels: [team]}\n      object: {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n    expect:\n      error: {class: crashed, kind: out-of-fuel}\n\n".to_string() + case),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    unpack(dir.path(), "require-labels", fuelled);
    let limits = LimitsSpec::default();

    let plugin = load(plugins::REQUIRE_LABELS, false).await;
    assert!(!plugin.fuel_enabled());
    let report = self_test(plugin, "require-labels", dir.path(), &limits)
        .await
        .unwrap();
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (4, 0, 1)
    );
    assert_eq!(
        report.summary(),
        "4 cases passed (1 skipped: fuel budgets need fuel counting)"
    );

    // Where fuel is counted, the case runs (and its budget holds).
    let plugin = load(plugins::REQUIRE_LABELS, true).await;
    assert!(plugin.fuel_enabled());
    let report = self_test(plugin, "require-labels", dir.path(), &limits)
        .await
        .unwrap();
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (5, 0, 0),
        "{}",
        report.summary()
    );
}
