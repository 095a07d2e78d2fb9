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

#[test]
fn compiling_shows_a_spinner_on_a_terminal_only() {
    let cache = tempfile::tempdir().unwrap();
    let args = ["--no-cache", "inspect", DATABASE];
    // Not a terminal: nothing on stderr.
    let piped = tessera(&args, cache.path());
    assert_eq!(piped.status.code(), Some(0));
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    // A terminal (util-linux `script` gives the command a pty), with the
    // spinner's delay at zero so even a quick compile shows it.
    let command = format!(
        "{} --no-cache inspect {DATABASE} >/dev/null",
        env!("CARGO_BIN_EXE_tessera")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TESSERA_PROGRESS_DELAY_MS", "0")
        .stdin(Stdio::null())
        .output()
        .expect("running script(1)");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("loading ") && screen.contains("database.wasm"),
        "{screen:?}"
    );
    assert!(
        screen.contains("\x1b[2K"),
        "the line is cleared: {screen:?}"
    );
}

#[test]
fn new_plugins_build_and_pass_their_suites_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    // The generated crates' build output is kept between runs.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-plugins");
    for kind in ["composition", "policy"] {
        let crate_dir = dir.path().join(format!("my-{kind}"));
        let created = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["new", kind, &format!("my-{kind}"), "--dir"])
            .arg(&crate_dir)
            .output()
            .unwrap();
        assert_eq!(
            created.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let tested = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["test", "--color", "never"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&tested.stdout);
        assert_eq!(
            tested.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&tested.stderr)
        );
        assert!(
            stdout.ends_with("2 passed, 0 failed, 0 skipped\n"),
            "{stdout}"
        );
    }
    // An existing directory is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["new", "policy", "my-policy", "--dir"])
        .arg(dir.path().join("my-policy"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// `tessera new --lang python|js`: the project builds with its pinned
/// toolchain and passes its sample suite as generated (one kind each; the
/// Rust test above covers both kinds on the shared templates' suites).
/// Then a syntax error: `tessera build` shows the toolchain's report with
/// the file and line, and a one-line error naming the first error and its
/// place; the last good build stays.
#[test]
fn new_python_and_js_plugins_pass_as_generated_and_name_their_build_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "python",
            "policy",
            "my_py.py",
            "def validate(review)\n",
            "SyntaxError: ",
            "(my_py.py:",
        ),
        (
            "js",
            "composition",
            "index.js",
            "function (\n",
            "[PARSE_ERROR]",
            "(index.js:",
        ),
    ];
    for (lang, kind, source, broken, error, place) in cases {
        let name = if lang == "python" { "my-py" } else { "my-js" };
        let project = dir.path().join(name);
        let created = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["new", kind, name, "--lang", lang, "--dir"])
            .arg(&project)
            .output()
            .unwrap();
        assert_eq!(
            created.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .arg("--cache-dir")
                .arg(dir.path().join("cache"))
                .args(args)
                .current_dir(&project)
                .output()
                .unwrap()
        };
        let tested = run(&["test", "--color", "never"]);
        let stdout = String::from_utf8_lossy(&tested.stdout);
        assert_eq!(
            tested.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&tested.stderr)
        );
        assert!(
            stdout.ends_with("2 passed, 0 failed, 0 skipped\n"),
            "{stdout}"
        );
        let wasm = project.join(format!(
            "target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ));
        let good = std::fs::read(&wasm).unwrap();

        // Broken: the first line of the source file replaced.
        let file = project.join(source);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{broken}{text}")).unwrap();
        let built = run(&["build"]);
        assert_eq!(built.status.code(), Some(2), "{lang}");
        let stderr = String::from_utf8_lossy(&built.stderr);
        let last = stderr.lines().last().unwrap();
        assert!(
            last.starts_with(&format!(
                "error: plugin {name}: building it with componentize-"
            )),
            "{stderr}"
        );
        assert!(
            last.contains(error) && last.contains(place),
            "{lang}: {last}"
        );
        // The toolchain's own report comes first, with the line itself.
        assert!(stderr.lines().count() > 2, "{stderr}");
        assert!(stderr.contains(broken.trim_end()), "{lang}: {stderr}");
        assert!(
            !stderr.contains("Stack backtrace") && !stderr.contains("    at "),
            "{lang}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&wasm).unwrap(),
            good,
            "the last good build stays"
        );
    }
}

/// A Rust plugin with a type error: `tessera build` shows rustc's rendered
/// error (file, line, code frame) and a one-line error with the code, the
/// message and the place; `tessera test` names the same first error in the
/// case and prints rustc's report on stderr.
#[test]
fn a_rust_build_error_shows_rustcs_first_errors() {
    let dir = tempfile::tempdir().unwrap();
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-plugins");
    let crate_dir = dir.path().join("broken");
    let created = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["new", "policy", "broken", "--dir"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert_eq!(created.status.code(), Some(0));
    let lib = crate_dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        format!("{text}\npub fn broken() -> u32 {{ \"three\" }}\n"),
    )
    .unwrap();
    let line = text.lines().count() + 2;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap()
    };
    let built = run(&["build"]);
    assert_eq!(built.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&built.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: plugin broken: building it with cargo in ")
            && last.ends_with(&format!(
                "failed: error[E0308]: mismatched types (src/lib.rs:{line}:26)"
            )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--> src/lib.rs:{line}:26")),
        "{stderr}"
    );
    assert!(stderr.contains("expected `u32`, found `&str`"), "{stderr}");

    let tested = run(&["test", "--color", "never"]);
    assert_eq!(tested.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        stdout.contains("error[E0308]: mismatched types (src/lib.rs:"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&tested.stderr);
    assert_eq!(
        stderr.matches("--> src/lib.rs:").count(),
        1,
        "once, not per case: {stderr}"
    );
}

#[test]
fn bench_reports_and_gates_on_fuel() {
    let cache = tempfile::tempdir().unwrap();
    let saved = cache.path().join("bench.json");
    let db = example("database.yaml");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            DATABASE,
            "--input",
            db.to_str().unwrap(),
            "--iterations",
            "20",
        ];
        args.extend_from_slice(extra);
        tessera(&args, cache.path())
    };
    let first = run(&["--save", saved.to_str().unwrap(), "-o", "json"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let measured: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let fuel = measured["fuelPerEvaluation"].as_u64().unwrap();
    assert!(fuel > 10_000, "{measured}");
    assert!(
        measured["peakMemoryBytes"].as_u64().unwrap() >= 64 << 10,
        "{measured}"
    );
    for key in ["compileMs", "cacheLoadMs", "throughputPerSec"] {
        assert!(measured[key].as_f64().unwrap() > 0.0, "{key}: {measured}");
    }

    // Fuel is deterministic: the same plugin and input match the baseline.
    let same = run(&["--baseline", saved.to_str().unwrap()]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(
        String::from_utf8_lossy(&same.stderr).contains(&format!("fuel {fuel} -> {fuel} (+0.00%)"))
    );

    // A baseline that used 10% less fuel makes this run a regression.
    let mut cheaper = measured.clone();
    cheaper["fuelPerEvaluation"] = serde_json::json!(fuel * 9 / 10);
    std::fs::write(&saved, cheaper.to_string()).unwrap();
    let regressed = run(&["--baseline", saved.to_str().unwrap()]);
    assert_eq!(regressed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&regressed.stderr).starts_with("regression: fuel "));
}
