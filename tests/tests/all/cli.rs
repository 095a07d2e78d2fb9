//! `tessera render` and `tessera validate`, through the CLI library (the
//! binary's `main` only forwards to it; process-level checks live in
//! `host/cli/tests`).

use serde_json::Value;
use tessera_tests::example;
use tessera_tests::plugins::{DATABASE, PROVENANCE, REQUIRE_LABELS};

use crate::common::{Output, tessera};

fn ex(name: &str) -> String {
    example(name).display().to_string()
}

fn policy(wasm: &str, settings: &str) -> String {
    format!("{wasm}={}", ex(settings))
}

fn yaml_stream(text: &str) -> Vec<Value> {
    tessera_cli::documents::parse_stream(text)
        .into_iter()
        .map(|d| d.value.unwrap())
        .collect()
}

/// The one error line of a failed run.
fn error_line(out: &Output) -> &str {
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", out.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    lines[0]
}

#[test]
fn the_main_job_renders_the_example_through_both_policies() {
    let out = tessera(
        &[
            "render",
            &ex("database.yaml"),
            "--plugin",
            DATABASE,
            "--policy",
            &policy(REQUIRE_LABELS, "require-labels.settings.yaml"),
            "--policy",
            &policy(PROVENANCE, "provenance.settings.yaml"),
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let children = yaml_stream(&out.stdout);
    let kinds: Vec<_> = children
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Secret",
            "ConfigMap",
            "Service",
            "StatefulSet",
            "PodDisruptionBudget"
        ]
    );
    assert!(out.stderr.contains("DEVELOPMENT key"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Database shop/orders: 5 children, ready: false"),
        "{}",
        out.stderr
    );
}

#[test]
fn json_output_is_one_list_equal_to_the_yaml_stream() {
    let args = ["render", &ex("database.yaml"), "--plugin", DATABASE];
    let yaml = tessera(&args, "");
    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let json = tessera(&json_args, "");
    assert_eq!(json.code, 0);
    let list: Vec<Value> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(list, yaml_stream(&yaml.stdout));
}

#[test]
fn a_denied_child_exits_1_and_says_which_child_policy_and_why() {
    let composite = std::fs::read_to_string(example("database.yaml"))
        .unwrap()
        .replace("    env: prod\n", "");
    let out = tessera(
        &[
            "render",
            "-",
            "--plugin",
            DATABASE,
            "--policy",
            &policy(REQUIRE_LABELS, "require-labels.settings.yaml"),
        ],
        &composite,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for a denied render"
    );
    assert!(
        out.stderr.contains("error: require-labels: child 0 (Secret shop/orders-credentials): missing required label \"env\" (metadata.labels.env)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("denied: child 3 (StatefulSet shop/orders) denied by policy require-labels"),
        "{}",
        out.stderr
    );
}

#[test]
fn rendering_is_byte_identical_every_time() {
    let args = ["render", &ex("database.yaml"), "--plugin", DATABASE];
    let first = tessera(&args, "");
    let second = tessera(&args, "");
    assert_eq!(first.code, 0);
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn a_secret_key_file_changes_derived_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let args = ["render", &ex("database.yaml"), "--plugin", DATABASE];
    let dev = tessera(&args, "");
    let mut keyed_args = args.to_vec();
    let key_arg = key.display().to_string();
    keyed_args.extend(["--secret-key", &key_arg]);
    let keyed = tessera(&keyed_args, "");
    assert_eq!(keyed.code, 0, "{}", keyed.stderr);
    assert!(!keyed.stderr.contains("DEVELOPMENT"));
    let password = |out: &Output| yaml_stream(&out.stdout)[0]["data"]["password"].clone();
    assert_ne!(password(&dev), password(&keyed));

    std::fs::write(&key, b"short").unwrap();
    let short = tessera(&keyed_args, "");
    assert_eq!(
        error_line(&short),
        format!("error: {key_arg}: secret key is 5 bytes; at least 32 are needed")
    );
}

#[test]
fn render_errors_are_one_line_naming_the_file_document_field_or_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let broken = write("broken.yaml", "apiVersion: v1\nkind: [unclosed\n");
    let two = write(
        "two.yaml",
        "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n",
    );
    let nameless = write("nameless.yaml", "apiVersion: v1\nkind: A\nmetadata: {}\n");
    let not_wasm = write("plugin.wasm", "hello");
    let bad_spec = write(
        "bad.yaml",
        "apiVersion: platform.tessera.dev/v1alpha1\nkind: Database\nmetadata: {name: x}\nspec: {engine: postgres, version: '1', replicas: three, storage: 1Gi}\n",
    );
    let bad_settings = write("settings.yaml", "maxReplicas: 500\n");
    let db = ex("database.yaml");

    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["render", "/no/such.yaml", "--plugin", DATABASE],
            "error: /no/such.yaml: no such file".into(),
        ),
        (
            vec!["render", &broken, "--plugin", DATABASE],
            format!("error: {broken}: document 0: line 3: did not find expected"),
        ),
        (
            vec!["render", &two, "--plugin", DATABASE],
            format!("error: {two}: expected one composite, found 2 documents"),
        ),
        (
            vec!["render", &nameless, "--plugin", DATABASE],
            format!("error: {nameless}: metadata.name is missing"),
        ),
        (
            vec!["render", &db, "--plugin", "/no/plugin.wasm"],
            "error: /no/plugin.wasm: cannot read plugin: no such file".into(),
        ),
        (
            vec!["render", &db, "--plugin", &not_wasm],
            format!("error: {not_wasm}: not a Tessera plugin:"),
        ),
        (
            vec![
                "render",
                &db,
                "--plugin",
                DATABASE,
                "--settings",
                &bad_settings,
            ],
            "error: plugin database (sha256:".into(),
        ),
        (
            vec!["render", &bad_spec, "--plugin", DATABASE],
            format!("error: {bad_spec}: plugin database (sha256:"),
        ),
        (
            vec!["render", &db, "--plugin", DATABASE, "--observed", &broken],
            format!("error: {broken}: document 0: line 3: did not find expected"),
        ),
        (
            vec!["render", "-", "--plugin", DATABASE, "--settings", "-"],
            "error: only one input can be read from stdin (-)".into(),
        ),
    ];
    for (args, expected) in cases {
        let out = tessera(&args, "");
        let line = error_line(&out);
        assert!(
            line.starts_with(&expected),
            "{args:?}\n  got: {line}\n want: {expected}"
        );
    }
    let out = tessera(&["render", &bad_spec, "--plugin", DATABASE], "");
    assert!(
        error_line(&out).ends_with(
            r#"refused the input in expand: spec.replicas must be an integer, got "three""#
        ),
        "{}",
        out.stderr
    );
    let out = tessera(
        &[
            "render",
            &db,
            "--plugin",
            DATABASE,
            "--settings",
            &bad_settings,
        ],
        "",
    );
    assert!(
        error_line(&out).contains("invalid settings: /maxReplicas"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_judges_each_document() {
    let out = tessera(
        &[
            "validate",
            &ex("user-resources.yaml"),
            "--policy",
            REQUIRE_LABELS,
            "--settings",
            &ex("require-labels.settings.yaml"),
        ],
        "",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let verdicts = yaml_stream(&out.stdout);
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0]["allowed"], true);
    assert_eq!(verdicts[0]["name"], "storefront-flags");
    assert_eq!(verdicts[1]["allowed"], false);
    let messages: Vec<_> = verdicts[1]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            r#"missing required label "team""#,
            r#"label "env" has value "qa"; allowed: dev, staging, prod"#
        ]
    );
    assert!(
        out.stderr.contains("document 1 (ConfigMap shop/scratch)"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_keeps_answering_after_a_bad_document() {
    let stream = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {team: x, env: dev}}\n---\nkind: [broken\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let out = tessera(
        &[
            "validate",
            "-",
            "--policy",
            REQUIRE_LABELS,
            "--settings",
            &ex("require-labels.settings.yaml"),
            "-o",
            "json",
        ],
        stream,
    );
    assert_eq!(out.code, 2, "an unreadable document makes the run an error");
    let verdicts: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let documents: Vec<_> = verdicts
        .iter()
        .map(|v| {
            (
                v["document"].as_u64().unwrap(),
                v["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(documents, [(0, true), (2, false)]);
    assert!(
        out.stderr.contains(
            "error: <stdin>: document 1 (line 4): line 6: did not find expected ',' or ']'"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_operations() {
    let resources = ex("user-resources.yaml");
    let base = [
        "validate",
        resources.as_str(),
        "--policy",
        REQUIRE_LABELS,
        "--settings",
    ];
    let settings = ex("require-labels.settings.yaml");
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.push(&settings);
        args.extend_from_slice(extra);
        tessera(&args, "")
    };
    assert_eq!(
        error_line(&with(&["--operation", "update"])),
        "error: --operation update needs --old FILE"
    );
    let delete = with(&["--operation", "delete"]);
    assert_eq!(delete.code, 0, "deletes are allowed: {}", delete.stderr);
    let update = with(&["--operation", "update", "--old", &resources]);
    assert_eq!(update.code, 1);
}

#[test]
fn hostile_input_gets_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let huge = dir.path().join("huge.yaml");
    {
        // 100 MB of comments: refused by size before parsing.
        let file = std::fs::File::create(&huge).unwrap();
        file.set_len(100 << 20).unwrap();
    }
    let huge = huge.display().to_string();
    let cases = [
        (
            write("binary.yaml", &[0xff, 0xfe, 0x00, 0x01]),
            "not UTF-8 text (invalid byte at offset 0)".to_string(),
        ),
        (
            write("prose.yaml", b"just some words"),
            "not a Kubernetes object (expected a mapping)".into(),
        ),
        (
            write("bomb.yaml", bomb.as_bytes()),
            "document 0: repetition limit exceeded".into(),
        ),
        (
            write("deep.json", "[".repeat(100_000).as_bytes()),
            "recursion limit exceeded".into(),
        ),
        (
            write("deep.yaml", format!("x: {}", "[".repeat(10_000)).as_bytes()),
            "document 0: line 1: recursion limit exceeded".into(),
        ),
        (
            write(
                "name.yaml",
                b"apiVersion: v1\nkind: X\nmetadata: {name: 5}\n",
            ),
            "metadata.name must be a string, got 5".into(),
        ),
        (
            write(
                "kind.yaml",
                b"apiVersion: v1\nkind: [1]\nmetadata: {name: x}\n",
            ),
            "kind must be a string, got [1]".into(),
        ),
        (
            huge.clone(),
            "larger than 64 MiB; refusing to read it".into(),
        ),
    ];
    for (path, expected) in cases {
        let out = tessera(&["render", &path, "--plugin", DATABASE], "");
        let line = error_line(&out);
        assert!(line.starts_with(&format!("error: {path}: ")), "{line}");
        assert!(
            line.contains(&expected),
            "{path}: {line} lacks {expected:?}"
        );
        assert!(line.len() < 400, "short: {line}");
    }
}

#[test]
fn inspect_describes_a_plugin() {
    let out = tessera(&["inspect", DATABASE, "-o", "json"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let described: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(described["name"], "database");
    assert_eq!(described["world"], "composition");
    assert_eq!(described["witPackage"], "tessera:plugin@0.1.0");
    assert_eq!(described["kinds"][0]["kind"], "Database");
    assert_eq!(
        described["settingsSchema"]["properties"]["maxReplicas"]["maximum"],
        16
    );
    let digest = tessera_runtime::provenance::sha256_digest(&std::fs::read(DATABASE).unwrap());
    assert_eq!(described["digest"], digest.as_str());
    assert_eq!(
        described["size"],
        std::fs::metadata(DATABASE).unwrap().len()
    );
    assert!(
        described["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "tessera:plugin/credentials@0.1.0")
    );
    // The shared test cache has seen this plugin by now, or will after this.
    let again = tessera(&["inspect", DATABASE, "-o", "json"], "");
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["cached"], true);
    let text = tessera(&["inspect", REQUIRE_LABELS], "");
    assert!(
        text.stdout
            .contains("world:       policy (tessera:plugin@0.1.0)"),
        "{}",
        text.stdout
    );
}

/// `--deadline`, `--memory`, `--output-limit` and `--fuel` set the limits of
/// every evaluation, as `spec.limits` does in the cluster.
#[test]
fn limit_flags_bound_each_evaluation() {
    use tessera_tests::plugins::FAULTY;
    let dir = tempfile::tempdir().unwrap();
    let settings = |mode: &str| {
        let path = dir.path().join(format!("{mode}.json"));
        std::fs::write(&path, format!(r#"{{"mode": "{mode}"}}"#)).unwrap();
        path.display().to_string()
    };
    let composite = ex("database.yaml");
    let render = |mode: &str, flags: &[&str]| {
        let settings = settings(mode);
        let mut args = vec![
            "render",
            &composite,
            "--plugin",
            FAULTY,
            "--settings",
            &settings,
        ];
        args.extend_from_slice(flags);
        tessera(&args, "")
    };

    let line = error_line(&render("loop", &["--deadline", "50ms"])).to_string();
    assert!(line.contains("deadline exceeded"), "{line}");
    let line = error_line(&render("loop", &["--fuel", "100000"])).to_string();
    assert!(line.contains("fuel exhausted"), "{line}");
    let line = error_line(&render("oom", &["--memory", "8Mi"])).to_string();
    assert!(line.contains("memory cap reached"), "{line}");
    let line = error_line(&render("big-output", &["--output-limit", "1Ki"])).to_string();
    assert!(line.contains("output too large"), "{line}");

    // A bad value names the flag's field and never loads the plugin.
    let line = error_line(&render("loop", &["--memory", "lots"])).to_string();
    assert!(
        line.contains("limits.memory") && line.contains("\"lots\""),
        "{line}"
    );
    let line = error_line(&render("loop", &["--deadline", "0s"])).to_string();
    assert!(line.contains("limits.deadline"), "{line}");
}

/// A suite's `limits` apply to its cases, a case's override them, and the
/// CLI's flags fill in what neither sets.
#[test]
fn suites_and_cases_set_limits() {
    use tessera_tests::plugins::FAULTY;
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("limits.tessera.yaml");
    let case = |name: &str, limits: &str, settings: &str, expect: &str| {
        format!(
            "  - name: {name}\n{limits}    composition:\n      plugin: {FAULTY}\n      settings: {settings}\n      compositeFile: {}\n    expect: {expect}\n",
            ex("database.yaml")
        )
    };
    let sixteen_mib = "{mode: allocate, bytes: 16777216}";
    let text = [
        "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\nlimits: {memory: 8Mi}\ncases:\n"
            .to_string(),
        case(
            "the suite's memory cap applies",
            "",
            sixteen_mib,
            "{error: {class: crashed, kind: out-of-memory}}",
        ),
        case(
            "the case's memory cap wins",
            "    limits: {memory: 64Mi}\n",
            sixteen_mib,
            "{findings: [{severity: info, messageContains: touched}]}",
        ),
        case(
            "the CLI's fuel applies where nothing else sets it",
            "",
            "{mode: loop}",
            "{error: {class: crashed, kind: out-of-fuel}}",
        ),
    ]
    .concat();
    std::fs::write(&suite, text).unwrap();
    let out = tessera(
        &["test", &suite.display().to_string(), "--fuel", "200000000"],
        "",
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("3 passed, 0 failed"), "{}", out.stdout);

    std::fs::write(
        &suite,
        "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n  - name: bad\n    limits: {memory: lots}\n    policy: {plugin: x.wasm}\n",
    )
    .unwrap();
    let line = error_line(&tessera(&["test", &suite.display().to_string()], "")).to_string();
    assert!(
        line.contains("case 0") && line.contains("limits.memory"),
        "{line}"
    );
}
