//! The Python and JavaScript ports of the example plugins
//! (`plugins/python/*`, `plugins/js/*`), built from source with `tessera
//! build` (componentize-py, componentize-js): each passes the Rust plugin's
//! own suite unchanged, and answers byte for byte as the Rust plugin does
//! (only the `tessera.dev/plugin-digest` annotation differs).

use serde_json::{Value, json};
use tessera_tests::plugins::{DATABASE, PROVENANCE, REQUIRE_LABELS};

use crate::common::{guest, tessera};

/// The ports, as (project, the Rust plugin's crate name).
const PORTS: &[(&str, &str)] = &[
    ("plugins/python/require-labels", "require-labels"),
    ("plugins/python/database", "database"),
    ("plugins/js/require-labels", "require-labels"),
    ("plugins/js/database", "database"),
];

#[test]
fn every_port_passes_the_rust_plugins_own_suite() {
    for (project, rust) in PORTS {
        // The database suite's pipeline case also runs the Rust
        // provenance and require-labels policies; the port replaces its
        // own Rust original.
        let plugin_dir = |port: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(PROVENANCE, dir.path().join("provenance.wasm")).unwrap();
            std::fs::copy(REQUIRE_LABELS, dir.path().join("require_labels.wasm")).unwrap();
            std::fs::copy(
                port,
                dir.path().join(format!("{}.wasm", rust.replace('-', "_"))),
            )
            .unwrap();
            dir
        };
        let dir = plugin_dir(&guest(project));
        let suite = tessera_tests::workspace().join(format!("plugins/{rust}/tests"));
        let run = |plugin_dir: &std::path::Path| {
            tessera(
                &[
                    "test",
                    suite.to_str().unwrap(),
                    "--plugin-dir",
                    plugin_dir.to_str().unwrap(),
                    "--color",
                    "never",
                ],
                "",
            )
        };
        let out = run(dir.path());
        assert_eq!(out.code, 0, "{project}: {}{}", out.stdout, out.stderr);
        // As many cases as the Rust plugin passes, none skipped.
        let rust_wasm = if *rust == "database" {
            DATABASE
        } else {
            REQUIRE_LABELS
        };
        let rust_dir = plugin_dir(rust_wasm);
        let reference = run(rust_dir.path());
        assert_eq!(reference.code, 0, "{}", reference.stdout);
        let summary = |text: &str| text.lines().last().unwrap_or_default().to_string();
        assert_eq!(
            summary(&out.stdout),
            summary(&reference.stdout),
            "{project}"
        );
        assert!(
            summary(&out.stdout).ends_with(" 0 failed, 0 skipped"),
            "{}",
            out.stdout
        );
    }
}

/// Database composites covering each branch of the plugin: both engines,
/// one and several replicas (the disruption budget), with and without
/// labels and annotations, odd quantities; each with and without settings.
fn databases() -> Vec<Value> {
    let example = crate::common::yaml_file(&tessera_tests::example("database.yaml"));
    let mut all = vec![example.clone()];
    for (engine, version, replicas, storage) in [
        ("postgres", "16.4", 1, "1Gi"),
        ("mysql", "8.4", 1, "500M"),
        ("mysql", "8.0", 2, "20Gi"),
        ("postgres", "15", 9, "1.5Ti"),
    ] {
        let mut db = example.clone();
        db["spec"] =
            json!({"engine": engine, "version": version, "replicas": replicas, "storage": storage});
        all.push(db);
    }
    let mut bare = example.clone();
    bare["metadata"] = json!({"name": "plain"});
    bare["spec"] = json!({"engine": "mysql", "version": "8.4", "storage": "10Gi"});
    all.push(bare);
    all
}

/// Every key of every child, with the plugin digest blanked.
fn without_digest(text: &str) -> String {
    let mut value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    for child in value.as_array_mut().into_iter().flatten() {
        if let Some(digest) = child.pointer_mut("/metadata/annotations/tessera.dev~1plugin-digest")
        {
            *digest = json!("sha256:...");
        }
    }
    // Key order and number formatting as the CLI printed them.
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn database_ports_render_the_rust_plugins_children_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"storageClassName": "fast-ssd", "maxReplicas": 12}"#,
    )
    .unwrap();
    let ports = [
        guest("plugins/python/database"),
        guest("plugins/js/database"),
    ];
    let mut compared = 0;
    for (i, db) in databases().iter().enumerate() {
        let input = dir.path().join(format!("db-{i}.json"));
        std::fs::write(&input, db.to_string()).unwrap();
        for with_settings in [false, true] {
            let render = |plugin: &str| {
                let mut args = vec![
                    "render",
                    input.to_str().unwrap(),
                    "--plugin",
                    plugin,
                    "-o",
                    "json",
                ];
                if with_settings {
                    args.extend(["--settings", settings.to_str().unwrap()]);
                }
                let out = tessera(&args, "");
                assert_eq!(out.code, 0, "{plugin} on {db}: {}", out.stderr);
                out.stdout
            };
            let expected = render(DATABASE);
            assert!(expected.contains("plugin-digest"), "{expected}");
            for port in &ports {
                let got = render(port);
                assert_ne!(got, expected, "the digest differs");
                assert_eq!(
                    without_digest(&got),
                    without_digest(&expected),
                    "{port} on db-{i}"
                );
                // Byte for byte once the digest is the same: the same JSON
                // text, not only the same values.
                let digest = |text: &str| {
                    let start = text.find("sha256:").unwrap();
                    text[start..start + 71].to_string()
                };
                assert_eq!(
                    got.replace(&digest(&got), &digest(&expected)),
                    expected,
                    "{port} on db-{i}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, databases().len() * 2 * 2);
}

#[test]
fn require_labels_ports_judge_as_the_rust_plugin_byte_for_byte() {
    let ports = [
        guest("plugins/python/require-labels"),
        guest("plugins/js/require-labels"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let strict = dir.path().join("strict.json");
    std::fs::write(
        &strict,
        r#"{"requiredLabels": ["team", "env", "tier"], "allowedValues": {"env": ["dev"], "team": ["a \"quoted\" team"]}}"#,
    )
    .unwrap();
    let settings = [
        tessera_tests::example("require-labels.settings.yaml"),
        strict,
    ];
    let inputs = [
        "user-resources.yaml",
        "database.yaml",
        "web-app.yaml",
        "service-instance.yaml",
    ];
    let mut compared = 0;
    for settings in &settings {
        for input in inputs {
            let input = tessera_tests::example(input);
            let validate = |plugin: &str| {
                let out = tessera(
                    &[
                        "validate",
                        input.to_str().unwrap(),
                        "--policy",
                        plugin,
                        "--settings",
                        settings.to_str().unwrap(),
                        "-o",
                        "json",
                    ],
                    "",
                );
                assert!(out.code == 0 || out.code == 1, "{plugin}: {}", out.stderr);
                (out.code, out.stdout)
            };
            let expected = validate(REQUIRE_LABELS);
            for port in &ports {
                assert_eq!(validate(port), expected, "{port} on {}", input.display());
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 16);
}
