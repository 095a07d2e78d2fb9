//! Hostile plugins: every row of the table in `SECURITY.md` is run here, so
//! the table cannot drift from what the host does. Then many evaluations at
//! once, well-behaved and hostile mixed. The leak check over 10,000
//! evaluations is `tests/tests/leak.rs`, a binary of its own so that no other
//! test's memory shows in its measurement.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_runtime::{Binding, Error, Limits, Operation, Review, Runtime, UserInfo};
use tessera_tests::plugins::{DATABASE, FAULTY, FAULTY_POLICY, REQUIRE_LABELS, WASI_COMMAND};

use crate::common::{bind, ctx, runtime};

/// One row of the hostile-case table.
#[derive(Debug)]
struct Case {
    name: String,
    plugin: String,
    settings: Value,
    limits: Limits,
    outcome: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(tessera_tests::workspace().join("SECURITY.md")).unwrap();
    let start = text
        .find("<!-- hostile-cases:start -->")
        .expect("start marker");
    let end = text.find("<!-- hostile-cases:end -->").expect("end marker");
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| case ") && !l.starts_with("|---"))
        .map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            assert_eq!(cells.len(), 6, "six cells: {line}");
            let settings = cells[2].trim_matches('`');
            Case {
                name: cells[0].to_string(),
                plugin: cells[1].to_string(),
                settings: if settings.is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(settings).unwrap()
                },
                limits: parse_limits(cells[3]),
                outcome: cells[4].to_string(),
                message: cells[5].to_string(),
            }
        })
        .collect()
}

fn parse_limits(cell: &str) -> Limits {
    let mut limits = Limits::default();
    for item in cell.split_whitespace() {
        let (key, value) = item
            .split_once('=')
            .unwrap_or_else(|| panic!("limit {item}"));
        limits = match key {
            "deadline" => limits.deadline(Duration::from_millis(
                value.trim_end_matches("ms").parse().unwrap(),
            )),
            "memory" => {
                limits.memory_bytes(value.trim_end_matches("MiB").parse::<usize>().unwrap() << 20)
            }
            "output" => limits
                .max_output_bytes(value.trim_end_matches("MiB").parse::<usize>().unwrap() << 20),
            "children" => limits.max_children(value.parse().unwrap()),
            other => panic!("unknown limit {other}"),
        };
    }
    limits
}

fn composite() -> Value {
    json!({"apiVersion": "test.tessera.dev/v1", "kind": "Faulty", "metadata": {"name": "f", "namespace": "t"}})
}

fn review() -> Review {
    Review {
        operation: Operation::Create,
        object: Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
        old_object: None,
        user_info: UserInfo::default(),
    }
}

/// Loads the bytes a load-time case names, and returns the error.
async fn load_case(what: &str) -> Error {
    let bytes = match what {
        "truncated database.wasm" => {
            let whole = std::fs::read(DATABASE).unwrap();
            whole[..whole.len() / 3].to_vec()
        }
        "core module" => b"\0asm\x01\0\0\0".to_vec(),
        "wasi-command" => std::fs::read(WASI_COMMAND).unwrap(),
        "unknown import" => wat::parse_str(crate::common::UNKNOWN_IMPORT_WAT).unwrap(),
        other => match crate::wat_plugins::named(other) {
            Some(spec) => crate::wat_plugins::component(&spec),
            None => panic!("unknown load case {other}"),
        },
    };
    let runtime = Runtime::builder().no_cache().build().unwrap();
    runtime
        .load(&bytes, std::path::Path::new(&format!("{what}.wasm")))
        .await
        .expect_err(what)
}

#[tokio::test]
async fn every_hostile_case_in_security_md_behaves_as_documented() {
    let cases = cases();
    assert!(cases.len() >= 20, "the table lost rows: {}", cases.len());
    for case in cases {
        let (outcome, message, elapsed) = run_case(&case).await;
        println!(
            "{:<45} {:>8.1} ms  {outcome}",
            case.name,
            elapsed.as_secs_f64() * 1e3
        );
        assert!(
            outcome == case.outcome || case.outcome.starts_with(&format!("{outcome} (")),
            "{}: expected {:?}, got {outcome:?}: {message}",
            case.name,
            case.outcome
        );
        assert!(
            message.contains(&case.message),
            "{}: {message:?} lacks {:?}",
            case.name,
            case.message
        );
        assert!(
            !message.contains('\n'),
            "{}: one line: {message}",
            case.name
        );
        if case.limits.get_deadline() < Duration::from_secs(1) {
            // Not a speed target: proves the call was stopped at all. The
            // printed figure is the overshoot documented in SECURITY.md.
            assert!(
                elapsed < case.limits.get_deadline() + Duration::from_secs(5),
                "{}",
                case.name
            );
        }
    }
}

/// Runs one case; returns the outcome in the table's words, the message
/// (error text, or the findings joined) and how long the evaluation itself
/// took (loading excluded).
async fn run_case(case: &Case) -> (String, String, Duration) {
    if let Some(what) = case.plugin.strip_prefix("load: ") {
        let started = Instant::now();
        let err = load_case(what).await;
        // Bytes the host cannot use are a load error; a plugin that
        // instantiates but breaks a bound while answering `metadata` (its
        // tables, its settings schema) crashed.
        let outcome = match &err {
            Error::Incompatible { .. } => "load error".to_string(),
            Error::Crashed { kind, .. } => format!("crash: {kind}"),
            other => panic!("{}: {other:?}", case.name),
        };
        return (outcome, err.to_string(), started.elapsed());
    }
    let binding = match case.plugin.strip_prefix("wat: ") {
        // A plugin `wat_plugins.rs` writes in the text format.
        Some(what) => {
            let spec = crate::wat_plugins::named(what)
                .unwrap_or_else(|| panic!("unknown plugin {}", case.plugin));
            let plugin = runtime()
                .load(
                    &crate::wat_plugins::component(&spec),
                    std::path::Path::new(&format!("{what}.wasm")),
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            Binding::new(plugin, case.settings.clone()).expect("settings")
        }
        None => {
            let path = match case.plugin.as_str() {
                "faulty" => FAULTY.to_string(),
                "faulty-policy" => FAULTY_POLICY.to_string(),
                // The Python and JavaScript rows: the same cases through
                // componentize-py's and componentize-js's engines.
                // (`tessera build` runs an async runtime of its own: off
                // this one's thread.)
                "faulty-python" | "faulty-js" => {
                    let project = format!("tests/plugins/{}", case.plugin);
                    tokio::task::spawn_blocking(move || crate::common::guest(&project))
                        .await
                        .unwrap()
                }
                other => panic!("unknown plugin {other}"),
            };
            bind(&path, case.settings.clone()).await
        }
    }
    .with_limits(case.limits.clone());
    let started = Instant::now();
    let result = if case.plugin == "faulty-policy" {
        binding.validate(&review()).await.map(|v| {
            let findings: Vec<_> = v.findings.iter().map(|f| f.message.clone()).collect();
            (
                if v.allowed { "allowed" } else { "denied" }.to_string(),
                findings.join("; "),
            )
        })
    } else {
        binding.expand(&composite(), &[], &ctx()).await.map(|c| {
            check_success(&case.settings["mode"], &c);
            let findings: Vec<_> = c.findings.iter().map(|f| f.message.clone()).collect();
            ("ok".to_string(), findings.join("; "))
        })
    };
    let elapsed = started.elapsed();
    let (outcome, message) = match result {
        Ok(answer) => answer,
        Err(err @ Error::Refused { .. }) => ("refused".into(), err.to_string()),
        Err(err @ Error::Crashed { kind, .. }) => (format!("crash: {kind}"), err.to_string()),
        Err(other) => ("other error".into(), other.to_string()),
    };
    (outcome, message, elapsed)
}

/// What "ok" means for the modes that succeed.
fn check_success(mode: &Value, composed: &tessera_runtime::Composed) {
    match mode.as_str().unwrap_or_default() {
        "wasi-escape" => {
            let attempts = composed.children[0]["data"].as_object().unwrap();
            assert!(attempts.len() >= 11, "{attempts:?}");
            for (attempt, result) in attempts {
                assert!(
                    result.as_str().unwrap().starts_with("denied"),
                    "{attempt}: {result}"
                );
            }
        }
        // The Python and JavaScript plugins' attempts at files and the
        // network: each recorded as "denied: <error>" or "allowed: ...".
        "read-file" | "socket" => {
            let attempts = composed.children[0]["data"].as_object().unwrap();
            assert!(attempts.len() >= 2, "{attempts:?}");
            for (attempt, result) in attempts {
                assert!(
                    result.as_str().unwrap().starts_with("denied"),
                    "{attempt}: {result}"
                );
            }
        }
        "clock-random" => assert_eq!(composed.children[0]["data"]["now"], "1704067200"),
        "log-flood" => {
            assert_eq!(composed.report.logs.len(), 1000);
            assert_eq!(composed.report.logs_dropped, 99_000);
        }
        "long-lines" => {
            // Each 4 KiB line spends 4 KiB of the 64 KiB budget; 1 KiB kept.
            assert_eq!(composed.report.logs.len(), 16);
            assert_eq!(composed.report.logs_dropped, 184);
            for line in &composed.report.logs {
                assert_eq!(line.message.len(), 1024);
            }
        }
        "huge-log" => {
            assert_eq!(composed.report.logs.len(), 1);
            assert_eq!(composed.report.logs[0].message.len(), 1024);
            assert_eq!(composed.report.logs_dropped, 199);
        }
        "many-children" => assert_eq!(composed.children.len(), 600),
        _ => {}
    }
}

/// What one evaluation in the mixed load must produce.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Children(usize),
    Allowed(bool),
    Crash(tessera_runtime::CrashKind),
}

async fn mixed_bindings() -> Vec<(Binding, Expect, bool)> {
    use tessera_runtime::CrashKind::*;
    // Small memory caps so the hostile ones end quickly. Only the loops get
    // a short deadline; the others a long one, so that a starved machine (CI
    // shares its two cores) cannot turn their own crash into a deadline.
    let small = Limits::default()
        .memory_bytes(16 << 20)
        .deadline(Duration::from_secs(60));
    let quick = small.clone().deadline(Duration::from_millis(50));
    let faulty = |mode: &str| {
        let limits = if mode == "loop" {
            quick.clone()
        } else {
            small.clone()
        };
        let mode = mode.to_string();
        async move {
            bind(FAULTY, json!({"mode": mode}))
                .await
                .with_limits(limits)
        }
    };
    vec![
        (bind(DATABASE, json!({})).await, Expect::Children(5), true),
        (
            bind(REQUIRE_LABELS, json!({"requiredLabels": ["team"]})).await,
            Expect::Allowed(false),
            false,
        ),
        (
            bind(FAULTY_POLICY, json!({"mode": "allow"})).await,
            Expect::Allowed(true),
            false,
        ),
        (faulty("ok").await, Expect::Children(1), true),
        (faulty("panic").await, Expect::Crash(Trap), true),
        (faulty("loop").await, Expect::Crash(Deadline), true),
        (faulty("oom").await, Expect::Crash(OutOfMemory), true),
        (faulty("recurse").await, Expect::Crash(StackOverflow), true),
        (faulty("big-output").await, Expect::Crash(OutOfMemory), true),
        (faulty("exit").await, Expect::Crash(Trap), true),
        (
            bind(FAULTY_POLICY, json!({"mode": "loop"}))
                .await
                .with_limits(quick.clone()),
            Expect::Crash(Deadline),
            false,
        ),
    ]
}

async fn evaluate(binding: &Binding, composition: bool) -> Expect {
    let database = crate::common::yaml_file(&tessera_tests::example("database.yaml"));
    if composition {
        let input = if binding.plugin().metadata().name == "database" {
            database
        } else {
            composite()
        };
        match binding.expand(&input, &[], &ctx()).await {
            Ok(c) => Expect::Children(c.children.len()),
            Err(Error::Crashed { kind, .. }) => Expect::Crash(kind),
            Err(other) => panic!("{other}"),
        }
    } else {
        match binding.validate(&review()).await {
            Ok(v) => Expect::Allowed(v.allowed),
            Err(Error::Crashed { kind, .. }) => Expect::Crash(kind),
            Err(other) => panic!("{other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hostile_and_good_evaluations_each_get_their_own_answer() {
    let _ = runtime();
    let bindings = mixed_bindings().await;
    let mut tasks = tokio::task::JoinSet::new();
    // 66 at once: six rounds of every binding, all in flight together.
    for round in 0..6 {
        for (i, (binding, expect, composition)) in bindings.iter().cloned().enumerate() {
            tasks.spawn(async move { (round, i, expect, evaluate(&binding, composition).await) });
        }
    }
    let mut seen = 0;
    while let Some(joined) = tasks.join_next().await {
        let (round, i, expect, got) = joined.unwrap();
        assert_eq!(got, expect, "round {round}, binding {i}");
        seen += 1;
    }
    assert_eq!(seen, 66);
}
