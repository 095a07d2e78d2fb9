//! The `tessera` binary as a process: exit codes, one-line errors, no
//! panics or backtraces, and byte-identical output across processes.

use std::process::{Command, Output, Stdio};

use tessera_tests::{
    example,
    plugins::{DATABASE, FAULTY, REQUIRE_LABELS},
};

fn tessera(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TESSERA_SECRET_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("running tessera")
}

#[test]
fn renders_identically_in_separate_processes() {
    let cache = tempfile::tempdir().unwrap();
    let db = example("database.yaml");
    let args = ["render", db.to_str().unwrap(), "--plugin", DATABASE];
    let cold = tessera(&args, cache.path());
    let warm = tessera(&args, cache.path());
    assert_eq!(
        cold.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    assert!(!cold.stdout.is_empty());
    assert_eq!(
        cold.stdout, warm.stdout,
        "the cached artifact renders the same bytes"
    );
}

#[test]
fn exit_codes_are_0_1_2_and_errors_are_one_line() {
    let cache = tempfile::tempdir().unwrap();
    let resources = example("user-resources.yaml");
    let settings = example("require-labels.settings.yaml");
    let validate = |extra: &[&str]| {
        let mut args = vec![
            "validate",
            resources.to_str().unwrap(),
            "--policy",
            REQUIRE_LABELS,
        ];
        args.extend_from_slice(extra);
        tessera(&args, cache.path())
    };
    assert_eq!(
        validate(&[]).status.code(),
        Some(0),
        "no settings: nothing is required"
    );
    assert_eq!(
        validate(&["--settings", settings.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );

    for args in [
        vec!["render", "/no/such/file.yaml", "--plugin", DATABASE],
        vec!["render", resources.to_str().unwrap(), "--plugin", DATABASE],
        vec![
            "validate",
            resources.to_str().unwrap(),
            "--policy",
            "/no/such.wasm",
        ],
        vec![
            "validate",
            resources.to_str().unwrap(),
            "--policy",
            DATABASE,
        ],
    ] {
        let out = tessera(&args, cache.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing half-written on stdout");
    }
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(tessera(&["render"], cache.path()).status.code(), Some(2));
    assert_eq!(
        tessera(&["frobnicate"], cache.path()).status.code(),
        Some(2)
    );
    let help = tessera(&["render", "--help"], cache.path());
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--policy <WASM[=SETTINGS_FILE]>"));
}

#[test]
fn plugins_reading_clock_and_random_render_identically_across_processes() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let composite = dir.path().join("faulty.yaml");
    std::fs::write(
        &composite,
        "apiVersion: test.tessera.dev/v1\nkind: Faulty\nmetadata: {name: f, namespace: t}\n",
    )
    .unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(&settings, "mode: clock-random\n").unwrap();
    let args = [
        "render",
        composite.to_str().unwrap(),
        "--plugin",
        FAULTY,
        "--settings",
        settings.to_str().unwrap(),
    ];
    let first = tessera(&args, cache.path());
    let second = tessera(&args, tempfile::tempdir().unwrap().path());
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("now: '1704067200'"));
    assert_eq!(first.stdout, second.stdout);
}
