//! Error paths of the runtime, driven by the `faulty` test plugin: refusals,
//! crashes of each kind, contract-breaking output, bounded logs, captured
//! output, allowed and refused reads, and determinism of clock and random.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_runtime::{Binding, Composed, CrashKind, Error, Fixtures, Limits, Phase, ReadAccess};
use tessera_tests::plugins::FAULTY;

use crate::common::{bind, ctx};

fn composite() -> Value {
    json!({"apiVersion": "test.tessera.dev/v1", "kind": "Faulty", "metadata": {"name": "f", "namespace": "t"}, "spec": {}})
}

async fn faulty(mode: &str) -> Binding {
    bind(FAULTY, json!({"mode": mode})).await
}

async fn run(mode: &str) -> Result<Composed, Error> {
    faulty(mode).await.expand(&composite(), &[], &ctx()).await
}

fn crash(err: Error) -> (CrashKind, Phase, String) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "errors are one line: {text}");
    assert!(
        text.contains("plugin faulty (sha256:"),
        "names the plugin: {text}"
    );
    match err {
        Error::Crashed { kind, phase, .. } => (kind, phase, text),
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refusal_is_an_answer_not_a_crash() {
    let err = run("refuse").await.unwrap_err();
    assert!(err.is_refusal());
    assert_eq!(err.crash_kind(), None);
    let text = err.to_string();
    assert!(
        text.ends_with(") refused the input in expand: spec.size is too large for this test"),
        "the field is not repeated when the message names it: {text}"
    );
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_its_message() {
    let (kind, phase, text) = crash(run("panic").await.unwrap_err());
    assert_eq!((kind, phase), (CrashKind::Trap, Phase::Expand));
    assert!(text.contains("faulty plugin panicked on purpose"), "{text}");
}

#[tokio::test]
async fn an_infinite_loop_ends_at_its_deadline() {
    let binding = faulty("loop")
        .await
        .with_limits(Limits::default().deadline(Duration::from_millis(100)));
    let started = Instant::now();
    let (kind, _, text) = crash(binding.expand(&composite(), &[], &ctx()).await.unwrap_err());
    assert_eq!(kind, CrashKind::Deadline, "{text}");
    // Generous bound: proves the loop was stopped, not a timing target.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_memory_bomb_hits_the_cap() {
    let binding = faulty("oom")
        .await
        .with_limits(Limits::default().memory_bytes(32 << 20));
    let (kind, _, text) = crash(binding.expand(&composite(), &[], &ctx()).await.unwrap_err());
    assert_eq!(kind, CrashKind::OutOfMemory, "{text}");
    assert!(text.contains("32 MiB cap"), "{text}");
}

#[tokio::test]
async fn exit_is_a_crash() {
    let (kind, _, text) = crash(run("exit").await.unwrap_err());
    assert_eq!(kind, CrashKind::Trap);
    // WASI 0.2 `exit` carries only success or failure: exit(3) arrives as 1.
    assert!(
        text.contains("called exit(1) instead of returning"),
        "{text}"
    );
}

#[tokio::test]
async fn children_that_break_the_contract_are_refused_by_index() {
    for (mode, message) in [
        ("no-name", "child 1 (ConfigMap) has no metadata.name"),
        ("no-kind", "child 1 (v1) has no kind"),
        ("no-api-version", "child 1 has no apiVersion"),
        (
            "duplicate",
            "child 1 (v1 ConfigMap t/ok) duplicates an earlier child",
        ),
        (
            "other-namespace",
            "child 1 (ConfigMap elsewhere) is in namespace \"kube-system\", not the composite's \"t\"",
        ),
        ("status-not-object", "the status patch is not a JSON object"),
    ] {
        let (kind, phase, text) = crash(run(mode).await.unwrap_err());
        assert_eq!(
            (kind, phase),
            (CrashKind::InvalidOutput, Phase::Output),
            "{mode}"
        );
        assert!(text.contains(message), "{mode}: {text}");
    }
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let (kind, _, text) = crash(run("big-output").await.unwrap_err());
    assert_eq!(kind, CrashKind::OutputTooLarge);
    assert!(text.contains("limit of 4194304 bytes"), "{text}");
    // With a larger cap (and memory for it) the same plugin succeeds.
    let roomy = faulty("big-output").await.with_limits(
        Limits::default()
            .max_output_bytes(16 << 20)
            .memory_bytes(128 << 20),
    );
    let composed = roomy.expand(&composite(), &[], &ctx()).await.unwrap();
    assert_eq!(composed.children.len(), 8);
}

#[tokio::test]
async fn reads_outside_the_binding_get_a_clean_error() {
    let composed = run("read-disallowed").await.unwrap();
    let messages: Vec<_> = composed
        .findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        messages, ["plugin faulty may not read v1/Secret: its binding does not allow it"; 2],
        "get-resource and list-resources alike"
    );
}

#[tokio::test]
async fn reads_inside_the_binding_are_answered_from_fixtures() {
    let fixtures = Fixtures::new(vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "input", "namespace": "t", "labels": {"role": "input"}}, "data": {"value": "42"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "t"}}),
    ]);
    let allowed = fixtures.kinds();
    let binding = faulty("read-allowed")
        .await
        .with_reads(ReadAccess::new(Arc::new(fixtures), allowed));
    let composed = binding.expand(&composite(), &[], &ctx()).await.unwrap();
    assert_eq!(
        composed.children[0]["data"],
        json!({"value": "42", "listed": "1"})
    );
}

#[tokio::test]
async fn log_floods_are_bounded() {
    let composed = run("log-flood").await.unwrap();
    assert_eq!(composed.report.logs.len(), 1000);
    assert_eq!(composed.report.logs_dropped, 99_000);
    assert_eq!(composed.report.logs[999].message, "line 999");
}

#[tokio::test]
async fn stdout_and_stderr_are_captured() {
    let composed = run("stderr").await.unwrap();
    assert_eq!(composed.report.stderr, "a note on stderr\n");
    assert_eq!(composed.report.stdout, "a note on stdout\n");
}

#[tokio::test]
async fn clock_and_random_are_deterministic() {
    let a = run("clock-random").await.unwrap();
    let b = run("clock-random").await.unwrap();
    assert_eq!(a.children, b.children);
    // The fixed clock: 2024-01-01T00:00:00Z.
    assert_eq!(a.children[0]["data"]["now"], "1704067200");
}

#[tokio::test]
async fn the_host_keeps_serving_after_a_crash() {
    let binding = faulty("panic").await;
    assert!(binding.expand(&composite(), &[], &ctx()).await.is_err());
    let ok = faulty("ok").await;
    for _ in 0..3 {
        assert_eq!(
            ok.expand(&composite(), &[], &ctx())
                .await
                .unwrap()
                .children
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn the_bound_on_children_is_checked_before_any_child_and_can_be_raised() {
    let (kind, phase, text) = crash(run("many-children").await.unwrap_err());
    assert_eq!((kind, phase), (CrashKind::OutputTooLarge, Phase::Output));
    assert!(
        text.contains("returned 600 children, over the limit of 500"),
        "{text}"
    );
    // As a Composition, a suite or `--max-children` writes it.
    let spec: tessera_runtime::LimitsSpec =
        serde_json::from_value(json!({"maxChildren": 600})).unwrap();
    let composed = faulty("many-children")
        .await
        .with_limits(spec.to_limits().unwrap())
        .expand(&composite(), &[], &ctx())
        .await
        .unwrap();
    assert_eq!(composed.children.len(), 600);
}

#[tokio::test]
async fn host_calls_share_one_copy_budget_per_evaluation() {
    for mode in ["many-large-logs", "many-large-reads"] {
        let (kind, phase, text) = crash(run(mode).await.unwrap_err());
        assert_eq!(
            (kind, phase),
            (CrashKind::OutputTooLarge, Phase::Expand),
            "{mode}"
        );
        assert!(
            text.contains("in one evaluation (host-call arguments and the answer)"),
            "{mode}: {text}"
        );
    }
    // A reused instance starts each evaluation with the whole budget.
    let binding = faulty("long-lines")
        .await
        .reuse_instances(tessera_runtime::Reuse::default());
    for _ in 0..3 {
        let composed = binding.expand(&composite(), &[], &ctx()).await.unwrap();
        assert_eq!(composed.report.logs.len(), 16);
    }
}
