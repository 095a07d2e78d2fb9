//! What a hostile plugin says never reaches the operator's terminal raw:
//! the `faulty` and `faulty-policy` plugins' `escapes` modes put terminal
//! escapes (OSC, CSI, C1, DEL, `\r`) and forged lines in their stdout,
//! stderr, logs, findings (message and field), conditions and child names;
//! every command that prints them (`render`, `validate`, `test` and its
//! JUnit report, `bench`; `inspect` in `hostile_metadata.rs`) prints each
//! on its own line, with no control character.

use std::path::Path;

use tessera_tests::plugins::{FAULTY, FAULTY_POLICY, HOSTILE_METADATA};

pub use crate::common::tessera;

/// No byte a terminal acts on: no C0 control but the newlines between
/// lines, no DEL, no C1 control (ESC, CSI, OSC and `\r` included).
pub fn assert_inert(what: &str, text: &str) {
    for (at, c) in text.char_indices() {
        let control = (c < ' ' && c != '\n') || c == '\x7f' || ('\u{80}'..='\u{9f}').contains(&c);
        assert!(!control, "{what}: {c:?} at byte {at}:\n{text}");
    }
}

/// No line that a plugin could have drawn on its own: every forged text of
/// the `escapes` modes follows a prefix of the host's on the same line.
fn assert_no_forged_line(what: &str, text: &str) {
    for line in text.lines() {
        let line = line.trim_start();
        for forged in ["digest:", "forged", "denied: forged"] {
            assert!(
                !line.starts_with(forged),
                "{what}: forged line {line:?}:\n{text}"
            );
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const COMPOSITE: &str =
    "apiVersion: test.tessera.dev/v1\nkind: Faulty\nmetadata: {name: f, namespace: t}\nspec: {}\n";

#[test]
fn render_prints_plugin_text_on_its_own_lines_without_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let composite = write(dir.path(), "composite.yaml", COMPOSITE);
    let settings = write(dir.path(), "escapes.json", r#"{"mode": "escapes"}"#);
    let policy = format!("{FAULTY_POLICY}={settings}");
    let out = tessera(
        &[
            "render",
            &composite,
            "--plugin",
            FAULTY,
            "--settings",
            &settings,
            "--policy",
            &policy,
        ],
        "",
    );
    assert_eq!(out.code, 1, "the policy denies: {}", out.stderr);
    assert_inert("render stdout", &out.stdout);
    assert_inert("render stderr", &out.stderr);
    assert_no_forged_line("render stderr", &out.stderr);
    let stderr = &out.stderr;
    for expected in [
        "[faulty] stdout: out\u{fffd}]0;pwned\u{fffd}\u{fffd}[2J",
        "[faulty] stdout: forged: stdout line",
        "[faulty] stderr: err\u{fffd}",
        "[faulty] info: log\u{fffd}]0;pwned",
        " | digest: sha256:forged",
        "warning: faulty: Faulty t/f: message\u{fffd}",
        " | denied: forged (spec\u{fffd}]0;pwned",
        "[faulty-policy] stdout: out\u{fffd}",
        "[faulty-policy] warn: log\u{fffd}",
        "error: faulty-policy: child 0 (ConfigMap t/ok): message\u{fffd}",
        "(metadata\u{fffd}]0;pwned",
        "denied: child 0 (ConfigMap t/ok) denied by policy faulty-policy",
    ] {
        assert!(stderr.contains(expected), "lacks {expected:?}:\n{stderr}");
    }

    // A child named with escapes is refused, and the refusal quotes it
    // escaped.
    let settings = write(dir.path(), "child.json", r#"{"mode": "escapes-child"}"#);
    let out = tessera(
        &[
            "render",
            &composite,
            "--plugin",
            FAULTY,
            "--settings",
            &settings,
        ],
        "",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_inert("refused child", &out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("child 1 (ConfigMap): metadata.name \"name\\u{1b}]0;pwned\\u{7}"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("is not a valid name"), "{}", out.stderr);
}

/// `render` refuses what the controller refuses: a cluster-scoped child of
/// a namespaced composite, a name the API server would not take.
#[test]
fn render_refuses_children_the_cluster_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let composite = write(dir.path(), "composite.yaml", COMPOSITE);
    for (settings, expected) in [
        (
            r#"{"mode": "cluster-scoped-child"}"#,
            "child 1 (ClusterRoleBinding admin) is cluster-scoped and cannot be owned by a namespaced composite",
        ),
        (
            r#"{"mode": "bad-child-name", "name": "Bad_Name"}"#,
            "child 1 (Secret): metadata.name \"Bad_Name\" is not a valid name: a lowercase RFC 1123 subdomain",
        ),
        (
            r#"{"mode": "bad-child-name", "name": "a", "repeat": 254}"#,
            "is not a valid name: must be no more than 253 characters",
        ),
    ] {
        let settings = write(dir.path(), "settings.json", settings);
        let out = tessera(
            &[
                "render",
                &composite,
                "--plugin",
                FAULTY,
                "--settings",
                &settings,
            ],
            "",
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(
            out.stderr.contains(expected),
            "lacks {expected:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn validate_prints_plugin_text_without_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let settings = write(dir.path(), "escapes.json", r#"{"mode": "escapes"}"#);
    // The document's own name carries escapes too (it is quoted in every
    // message about it).
    let resource =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"c\\e[2J\\r\", namespace: t}\n";
    for format in ["yaml", "json"] {
        let out = tessera(
            &[
                "validate",
                "-",
                "--policy",
                FAULTY_POLICY,
                "--settings",
                &settings,
                "-o",
                format,
            ],
            resource,
        );
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert_inert("validate stdout", &out.stdout);
        assert_inert("validate stderr", &out.stderr);
        assert_no_forged_line("validate stderr", &out.stderr);
        assert!(
            out.stderr.contains(
                "error: faulty-policy: document 0 (ConfigMap t/c\u{fffd}[2J): message\u{fffd}"
            ),
            "{}",
            out.stderr
        );
        // The verdict on stdout keeps the text, escaped by YAML or JSON.
        let verdict: serde_json::Value = if format == "json" {
            serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
        } else {
            serde_yaml_ng::from_str(&out.stdout).unwrap()
        };
        assert!(
            verdict["findings"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("message\x1b]0;pwned\x07"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn test_output_and_junit_report_carry_no_escape() {
    let dir = tempfile::tempdir().unwrap();
    let suite = r#"
apiVersion: tessera.dev/v1alpha1
kind: TestSuite
cases:
  - name: composition findings
    composition:
      plugin: faulty
      settings: {mode: escapes}
      composite: {apiVersion: test.tessera.dev/v1, kind: Faulty, metadata: {name: f, namespace: t}, spec: {}}
    expect:
      findings: []
  - name: composition error
    composition:
      plugin: faulty
      settings: {mode: escapes-child}
      composite: {apiVersion: test.tessera.dev/v1, kind: Faulty, metadata: {name: f, namespace: t}, spec: {}}
    expect:
      ready: true
  - name: policy verdict
    policy:
      plugin: faulty-policy
      settings: {mode: escapes}
      object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
    expect:
      allowed: true
"#;
    let suite = write(dir.path(), "escapes.tessera.yaml", suite);
    let junit = dir.path().join("report.xml");
    let plugin_dir = Path::new(FAULTY).parent().unwrap().display().to_string();
    for color in ["never", "always"] {
        let out = tessera(
            &[
                "test",
                &suite,
                "--plugin-dir",
                &plugin_dir,
                "--color",
                color,
                "--output",
                "junit",
                junit.to_str().unwrap(),
            ],
            "",
        );
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.ends_with("0 passed, 3 failed, 0 skipped\n"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("message\u{fffd}]0;pwned"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("is not a valid name"), "{}", out.stdout);
        assert_no_forged_line("test stdout", &out.stdout);
        assert_inert("test stderr", &out.stderr);
        if color == "never" {
            assert_inert("test stdout", &out.stdout);
        } else {
            // Tessera's own colour of the FAIL tags, and nothing else.
            let without_tags = out.stdout.replace("\x1b[31mFAIL\x1b[0m", "FAIL");
            assert_inert("test --color always stdout", &without_tags);
        }
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert_inert("JUnit report", &xml);
        assert!(xml.contains("message\u{fffd}]0;pwned"), "{xml}");
    }
}

#[test]
fn bench_prints_no_escape() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "object.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    for plugin in [HOSTILE_METADATA, FAULTY_POLICY] {
        let settings = write(dir.path(), "settings.json", r#"{"mode": "escapes"}"#);
        let mut args = vec!["bench", plugin, "--input", &input, "--iterations", "2"];
        if plugin == FAULTY_POLICY {
            args.extend(["--settings", &settings]);
        }
        let out = tessera(&args, "");
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_inert("bench stdout", &out.stdout);
        assert_inert("bench stderr", &out.stderr);
        assert!(
            out.stdout.starts_with("plugin            "),
            "{}",
            out.stdout
        );
    }
}
