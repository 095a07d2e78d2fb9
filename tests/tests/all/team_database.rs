//! The `team-database` plugin, which reads a ConfigMap through the host,
//! and what `tessera render --resources` / `--reads` let a plugin read
//! offline: by default the kinds of the `--resources` files except Secrets,
//! in the composite's own namespace only — as in the cluster
//! (`tests/cluster/reads.rs` compares the two).

use std::path::Path;

use serde_json::{Value, json};
use tessera_tests::example;
use tessera_tests::plugins::{FAULTY, FAULTY_POLICY, TEAM_DATABASE};

use crate::common::{Output, tessera};

fn ex(name: &str) -> String {
    example(name).display().to_string()
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

fn children(out: &Output) -> Vec<Value> {
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    serde_json::from_str(&out.stdout).unwrap()
}

/// The defaults ConfigMap in namespace `platform` instead of the
/// composite's (`shop`).
fn elsewhere(dir: &Path) -> String {
    write(
        dir,
        "platform-defaults.json",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "database-defaults", "namespace": "platform"},
            "data": {"team": "platform"}}),
    )
}

#[test]
fn the_example_reads_its_defaults_in_its_own_namespace() {
    let out = tessera(
        &[
            "render",
            &ex("team-database.yaml"),
            "--plugin",
            TEAM_DATABASE,
            "--resources",
            &ex("team-database.defaults.yaml"),
            "-o",
            "json",
        ],
        "",
    );
    let children = children(&out);
    assert_eq!(children.len(), 1);
    assert_eq!(
        children[0]["data"],
        json!({"engine": "postgres", "version": "17", "storage": "10Gi", "team": "payments"})
    );
    assert_eq!(children[0]["metadata"]["labels"]["team"], "payments");
    // The example's reads file says the same as the default.
    let with_reads = tessera(
        &[
            "render",
            &ex("team-database.yaml"),
            "--plugin",
            TEAM_DATABASE,
            "--resources",
            &ex("team-database.defaults.yaml"),
            "--reads",
            &ex("team-database.reads.yaml"),
            "-o",
            "json",
        ],
        "",
    );
    assert_eq!(with_reads.stdout, out.stdout);
}

#[test]
fn another_namespace_is_read_only_when_reads_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let resources = elsewhere(dir.path());
    let settings = write(
        dir.path(),
        "settings.json",
        &json!({"defaultsNamespace": "platform"}),
    );
    let composite = ex("team-database.yaml");
    let args = |extra: &[&str]| {
        let mut args = vec![
            "render",
            composite.as_str(),
            "--plugin",
            TEAM_DATABASE,
            "--settings",
            settings.as_str(),
            "--resources",
            resources.as_str(),
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let refused = tessera(
        &args(&[]).iter().map(String::as_str).collect::<Vec<_>>(),
        "",
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.trim_end().ends_with(
            "plugin team-database may not read v1/ConfigMap in namespace platform: its binding allows only namespace shop"
        ),
        "{}",
        refused.stderr
    );

    let reads = write(
        dir.path(),
        "reads.json",
        &json!([{"apiVersion": "v1", "kind": "ConfigMap", "namespaces": ["platform"]}]),
    );
    let allowed = tessera(
        &args(&["--reads", &reads])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "",
    );
    assert_eq!(children(&allowed)[0]["data"]["team"], "platform");

    // A Composition's spec.reads works as the file too.
    let composition = write(
        dir.path(),
        "composition.json",
        &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "Composition",
            "metadata": {"name": "c"},
            "spec": {"reads": [{"apiVersion": "v1", "kind": "ConfigMap", "namespaces": ["*"]}]}}),
    );
    let all = tessera(
        &args(&["--reads", &composition])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "",
    );
    assert_eq!(children(&all)[0]["data"]["team"], "platform");
}

#[test]
fn secrets_in_resources_are_not_readable_unless_reads_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let composite = write(
        dir.path(),
        "composite.json",
        &json!({"apiVersion": "platform.tessera.dev/v1alpha1", "kind": "Thing",
            "metadata": {"name": "t", "namespace": "default"}}),
    );
    let settings = write(
        dir.path(),
        "settings.json",
        &json!({"mode": "read-disallowed"}),
    );
    let secret = write(
        dir.path(),
        "secret.json",
        &json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "dg=="}}),
    );
    // The plugin expects both reads of the Secret to fail (and traps if
    // one succeeds), and reports the errors as findings.
    let out = tessera(
        &[
            "render",
            &composite,
            "--plugin",
            FAULTY,
            "--settings",
            &settings,
            "--resources",
            &secret,
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("may not read v1/Secret: its binding does not allow it"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_reads_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let reads = write(
        dir.path(),
        "reads.json",
        &json!([{"apiVersion": "v1", "kind": "ConfigMap", "labelSelector": "a b"}]),
    );
    let out = tessera(
        &[
            "render",
            &ex("team-database.yaml"),
            "--plugin",
            TEAM_DATABASE,
            "--reads",
            &reads,
        ],
        "",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        format!("error: {reads}: reads v1/ConfigMap: invalid label selector term \"a b\"")
    );
    let missing = write(dir.path(), "kindless.json", &json!([{"apiVersion": "v1"}]));
    let out = tessera(
        &[
            "render",
            &ex("team-database.yaml"),
            "--plugin",
            TEAM_DATABASE,
            "--reads",
            &missing,
        ],
        "",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with(&format!("error: {missing}: read 0: ")),
        "{}",
        out.stderr
    );
}

/// `render --policy` checks the children with policies that read the same
/// objects, in the composite's namespace, as a Composition's `policies` do
/// in the cluster: a policy that needs a ConfigMap finds the one the
/// `--resources` files hold and is refused one they do not.
#[test]
fn render_policies_read_what_the_plugin_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let policy = |config_map: &str| {
        let settings = write(
            dir.path(),
            &format!("{config_map}.settings.json"),
            &json!({"mode": "require-configmap", "configMap": config_map}),
        );
        tessera(
            &[
                "render",
                &ex("team-database.yaml"),
                "--plugin",
                TEAM_DATABASE,
                "--resources",
                &ex("team-database.defaults.yaml"),
                "--policy",
                &format!("{FAULTY_POLICY}={settings}"),
                "-o",
                "json",
            ],
            "",
        )
    };
    let found = policy("database-defaults");
    assert!(!children(&found).is_empty(), "{}", found.stderr);
    let missing = policy("no-such-config");
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("denied by policy faulty-policy"),
        "{}",
        missing.stderr
    );
}
