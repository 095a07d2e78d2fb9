//! `tessera test`: every example plugin's suite passes, and failures,
//! filters, goldens, JUnit reports and bad suite files behave.

use std::path::Path;

use tessera_tests::plugins::DATABASE;
use tessera_tests::workspace;

use crate::common::cache_dir;

fn plugin_dir() -> String {
    Path::new(DATABASE).parent().unwrap().display().to_string()
}

fn tessera_test(args: &[&str]) -> (i32, String, String) {
    let mut argv: Vec<String> = vec![
        "tessera".into(),
        "--cache-dir".into(),
        cache_dir().display().to_string(),
        "test".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend([
        "--plugin-dir".into(),
        plugin_dir(),
        "--color".into(),
        "never".into(),
    ]);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = tessera_cli::run(
        argv,
        &mut tessera_cli::Stdio {
            stdin: &mut std::io::empty(),
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
    );
    (
        code,
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn every_example_plugin_suite_passes() {
    let plugins = workspace().join("plugins");
    let (code, stdout, stderr) = tessera_test(&[plugins.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary = stdout.lines().last().unwrap();
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 19, "{summary}");
    assert!(
        summary.ends_with("passed, 0 failed, 0 skipped"),
        "{summary}"
    );
    for plugin in [
        "database",
        "web-app",
        "service-binding",
        "require-labels",
        "provenance",
    ] {
        assert!(
            stdout.contains(&format!("plugins/{plugin}/tests/{plugin}.tessera.yaml :: ")),
            "{plugin} has a suite"
        );
    }
}

const SUITE: &str = r#"
apiVersion: tessera.dev/v1alpha1
kind: TestSuite
cases:
  - name: expects the wrong replica count
    composition:
      plugin: database
      compositeFile: EXAMPLES/database.yaml
    expect:
      children:
        - kind: StatefulSet
          metadata: {name: orders}
          spec: {replicas: 4}
  - name: golden of the example
    composition:
      plugin: database
      compositeFile: EXAMPLES/database.yaml
    expect:
      golden: golden/db.yaml
  - name: labels are required
    policy:
      plugin: require-labels
      settings: {requiredLabels: [team]}
      object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
    expect:
      allowed: true
"#;

fn write_suite(dir: &Path) -> String {
    let text = SUITE.replace("EXAMPLES", workspace().join("examples").to_str().unwrap());
    let path = dir.join("mine.tessera.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn failures_show_a_diff_and_a_junit_report() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path());
    let junit = dir.path().join("report.xml");

    // Without a golden file the golden case fails and says how to create it.
    let (code, stdout, _) = tessera_test(&[&suite, "--output", "junit", junit.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAIL   ") && stdout.contains(":: expects the wrong replica count"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-  replicas: 4") && stdout.contains("+  replicas: 3"),
        "a diff of only the asserted fields:\n{stdout}"
    );
    assert!(
        stdout.contains("run with --update to create it"),
        "{stdout}"
    );
    assert!(
        stdout.contains("allowed: expected true, got false: missing required label \"team\""),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("0 passed, 3 failed, 0 skipped\n"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"3\" failures=\"3\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 3);

    // --update writes the golden; then that case passes.
    let (_, stdout, _) = tessera_test(&[&suite, "--update", "--filter", "golden"]);
    assert!(
        stdout.ends_with("1 passed, 0 failed, 2 skipped\n"),
        "{stdout}"
    );
    let golden = std::fs::read_to_string(dir.path().join("golden/db.yaml")).unwrap();
    assert!(golden.contains("tessera.dev/plugin-digest: sha256:<digest of the plugin under test>"));
    let (code, stdout, _) = tessera_test(&[&suite, "--filter", "golden"]);
    assert_eq!(code, 0, "{stdout}");

    // A changed golden shows a unified diff.
    std::fs::write(
        dir.path().join("golden/db.yaml"),
        golden.replace("replicas: 3", "replicas: 2"),
    )
    .unwrap();
    let (code, stdout, _) = tessera_test(&[&suite, "--filter", "golden"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("--- expected")
            && stdout.contains("-  replicas: 2")
            && stdout.contains("+  replicas: 3"),
        "{stdout}"
    );
}

#[test]
fn bad_suites_are_errors_naming_file_and_case() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "version.tessera.yaml",
            "apiVersion: v9\nkind: TestSuite\ncases: []\n",
            "expected apiVersion tessera.dev/v1alpha1 and kind TestSuite",
        ),
        (
            "unknown.tessera.yaml",
            "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n- name: a\n  polcy: {}\n",
            "unknown field `polcy`",
        ),
        (
            "both.tessera.yaml",
            "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n- name: a\n  policy: {plugin: p}\n  composition: {plugin: q}\n",
            "case 0 (\"a\"): needs exactly one of composition, policy, pipeline",
        ),
        (
            "misplaced.tessera.yaml",
            "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n- name: a\n  policy: {plugin: p}\n  expect: {allowed: true, ready: true, childNames: []}\n",
            "case 0 (\"a\"): expect.childNames, expect.ready does not apply to a policy case",
        ),
        (
            "twice.tessera.yaml",
            "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n- name: a\n  policy: {plugin: p}\n- name: a\n  policy: {plugin: p}\n",
            "case 1 (\"a\"): another case has this name",
        ),
    ];
    for (name, text, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, _, stderr) = tessera_test(&[path.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(path.to_str().unwrap()) && stderr.contains(message),
            "{name}: {stderr}"
        );
    }
    let (code, _, stderr) = tessera_test(&[
        dir.path().to_str().unwrap(),
        "--output",
        "junit",
        "a.xml",
        "--output",
        "junit",
        "b.xml",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--output takes one format and one file, once"),
        "{stderr}"
    );
    let (code, _, stderr) = tessera_test(&[tempfile::tempdir().unwrap().path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no test suites (*.tessera.yaml) under"),
        "{stderr}"
    );
}
