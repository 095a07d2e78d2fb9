//! No leak across 10,000 evaluations: the process's resident memory after
//! them is back at its baseline. A test binary of its own (one test), so the
//! measurement sees no other test's allocations.

use serde_json::{Value, json};
use tessera_runtime::{Binding, Context, CrashKind, Error, Operation, Review, Runtime, UserInfo};
use tessera_tests::plugins::{FAULTY, FAULTY_POLICY, REQUIRE_LABELS};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Children(usize),
    Allowed(bool),
    Crash(CrashKind),
}

async fn evaluate(binding: &Binding) -> Outcome {
    let crash = |e: Error| match e {
        Error::Crashed { kind, .. } => Outcome::Crash(kind),
        other => panic!("{other}"),
    };
    if binding.plugin().world() == tessera_runtime::World::Composition {
        let composite = json!({"apiVersion": "test.tessera.dev/v1", "kind": "Faulty", "metadata": {"name": "f", "namespace": "t"}});
        match binding.expand(&composite, &[], &Context::default()).await {
            Ok(c) => Outcome::Children(c.children.len()),
            Err(e) => crash(e),
        }
    } else {
        let review = Review {
            operation: Operation::Create,
            object: Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            ),
            old_object: None,
            user_info: UserInfo::default(),
        };
        match binding.validate(&review).await {
            Ok(v) => Outcome::Allowed(v.allowed),
            Err(e) => crash(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_to_baseline_after_ten_thousand_evaluations() {
    let runtime = Runtime::builder().no_cache().build().unwrap();
    let bind = |path: &'static str, settings: Value| {
        let runtime = runtime.clone();
        async move { Binding::new(runtime.load_file(path).await.unwrap(), settings).unwrap() }
    };
    // Cheap evaluations, so 10,000 take seconds: good, panicking, exiting,
    // denied and allowed.
    let cases = vec![
        (
            bind(FAULTY, json!({"mode": "ok"})).await,
            Outcome::Children(1),
        ),
        (
            bind(FAULTY, json!({"mode": "panic"})).await,
            Outcome::Crash(CrashKind::Trap),
        ),
        (
            bind(FAULTY, json!({"mode": "exit"})).await,
            Outcome::Crash(CrashKind::Trap),
        ),
        (
            bind(REQUIRE_LABELS, json!({"requiredLabels": ["team"]})).await,
            Outcome::Allowed(false),
        ),
        (
            bind(FAULTY_POLICY, json!({"mode": "allow"})).await,
            Outcome::Allowed(true),
        ),
    ];
    let run = |n: usize| {
        let cases = &cases;
        async move {
            for i in 0..n {
                let (binding, expect) = &cases[i % cases.len()];
                assert_eq!(evaluate(binding).await, *expect);
            }
        }
    };
    run(500).await; // warm up: code pages, allocator arenas, caches
    let baseline = rss_kib();
    run(10_000).await;
    let after = rss_kib();
    println!("RSS: baseline {baseline} KiB, after 10,000 evaluations {after} KiB");
    // A leak of even 1 KiB per evaluation would show as 10 MiB.
    assert!(
        after < baseline + 8 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB"
    );
}
