//! Warm-instance reuse (`Binding::reuse_instances`): off by default, the same
//! answers as fresh instances, and an instance is dropped after a trap, after
//! its call bound and past its memory bound.

use serde_json::{Value, json};
use tessera_runtime::{Binding, Error, Reuse, ReuseStats};
use tessera_tests::plugins::{DATABASE, FAULTY, REQUIRE_LABELS};

use crate::common::{bind, ctx, yaml_file};

fn faulty_composite(panic: bool) -> Value {
    json!({"apiVersion": "test.tessera.dev/v1", "kind": "Faulty",
        "metadata": {"name": "f", "namespace": "t"}, "spec": {"panic": panic}})
}

/// The call number the `count` mode read from the instance's own memory.
async fn calls(binding: &Binding, panic: bool) -> Result<u32, Error> {
    let composed = binding
        .expand(&faulty_composite(panic), &[], &ctx())
        .await?;
    Ok(composed.children[0]["data"]["calls"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap())
}

async fn counter(reuse: Option<Reuse>) -> Binding {
    let binding = bind(FAULTY, json!({"mode": "count"})).await;
    match reuse {
        Some(reuse) => binding.reuse_instances(reuse),
        None => binding,
    }
}

#[tokio::test]
async fn without_reuse_every_evaluation_gets_a_fresh_instance() {
    let binding = counter(None).await;
    for _ in 0..3 {
        assert_eq!(calls(&binding, false).await.unwrap(), 1);
    }
    assert_eq!(binding.reuse_stats(), None);
}

#[tokio::test]
async fn a_reused_instance_keeps_its_memory_and_starts_with_empty_output() {
    let binding = counter(Some(Reuse::default())).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let composed = binding
            .expand(&faulty_composite(false), &[], &ctx())
            .await
            .unwrap();
        seen.push(composed.children[0]["data"]["calls"].clone());
        // Each report holds this evaluation's output only.
        assert_eq!(composed.report.logs.len(), 1, "{:?}", composed.report.logs);
        assert_eq!(composed.report.stdout.lines().count(), 1);
    }
    assert_eq!(seen, [json!("1"), json!("2"), json!("3")]);
    assert_eq!(
        binding.reuse_stats(),
        Some(ReuseStats {
            instantiated: 1,
            reused: 2,
            discarded: 0,
            evicted: 0,
        })
    );
}

#[tokio::test]
async fn an_instance_that_trapped_is_never_reused() {
    let binding = counter(Some(Reuse::default())).await;
    assert_eq!(calls(&binding, false).await.unwrap(), 1);
    assert_eq!(calls(&binding, false).await.unwrap(), 2);
    let err = calls(&binding, true).await.unwrap_err();
    assert!(matches!(err, Error::Crashed { .. }), "{err}");
    // The next evaluation starts over in a new instance.
    assert_eq!(calls(&binding, false).await.unwrap(), 1);
    let stats = binding.reuse_stats().unwrap();
    assert_eq!((stats.instantiated, stats.discarded), (2, 1), "{stats:?}");
}

#[tokio::test]
async fn instances_are_dropped_after_max_calls_and_past_the_memory_bound() {
    let binding = counter(Some(Reuse::default().max_calls(2))).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(calls(&binding, false).await.unwrap());
    }
    assert_eq!(seen, [1, 2, 1, 2, 1]);

    // Every Rust plugin's memory is larger than one byte: never kept.
    let binding = counter(Some(Reuse::default().max_memory_bytes(1))).await;
    for _ in 0..3 {
        assert_eq!(calls(&binding, false).await.unwrap(), 1);
    }
    assert_eq!(binding.reuse_stats().unwrap().discarded, 3);
}

#[tokio::test]
async fn reuse_gives_the_same_answers_as_fresh_instances() {
    let composite = yaml_file(&tessera_tests::example("database.yaml"));
    let fresh = bind(DATABASE, json!({})).await;
    let warm = bind(DATABASE, json!({}))
        .await
        .reuse_instances(Reuse::default());
    let expected = fresh.expand(&composite, &[], &ctx()).await.unwrap();
    for _ in 0..3 {
        let got = warm.expand(&composite, &[], &ctx()).await.unwrap();
        assert_eq!(got.children, expected.children);
    }

    let settings = json!({"requiredLabels": ["team"]});
    let labels = bind(REQUIRE_LABELS, settings.clone()).await;
    let warm = bind(REQUIRE_LABELS, settings)
        .await
        .reuse_instances(Reuse::default());
    for object in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"team": "x"}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}),
    ] {
        let review = tessera_runtime::Review {
            operation: tessera_runtime::Operation::Create,
            object: Some(object),
            old_object: None,
            user_info: Default::default(),
        };
        let a = labels.validate(&review).await.unwrap();
        let b = warm.validate(&review).await.unwrap();
        assert_eq!((a.allowed, a.findings), (b.allowed, b.findings));
    }
    assert_eq!(warm.reuse_stats().unwrap().reused, 1);
}

/// A pooled runtime with `slots` slots and the database plugin bound on it,
/// keeping up to `slots` instances.
async fn pooled_database(slots: u32) -> (tessera_runtime::Runtime, Binding) {
    let runtime = tessera_runtime::Runtime::builder()
        .no_cache()
        .pooling(slots)
        .build()
        .unwrap();
    let plugin = runtime.load_file(DATABASE).await.unwrap();
    let binding = Binding::new(plugin, json!({}))
        .unwrap()
        .reuse_instances(Reuse::default().max_idle(slots as usize));
    (runtime, binding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_instances_never_starve_a_full_pool() {
    let composite = yaml_file(&tessera_tests::example("database.yaml"));
    // A burst on one reusing binding: kept instances hold the pool's slots,
    // the evaluations that find it full make the runtime drop them.
    let (runtime, warm) = pooled_database(2).await;
    for _ in 0..2 {
        warm.expand(&composite, &[], &ctx()).await.unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (warm, composite) = (warm.clone(), composite.clone());
            tokio::spawn(async move { warm.expand(&composite, &[], &ctx()).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await
                .unwrap()
                .expect("every evaluation gets a slot")
                .children
                .len(),
            5
        );
    }
    // Another binding on the same runtime while the first one's kept
    // instances hold both slots: it must not wait forever.
    let plugin = runtime.load_file(DATABASE).await.unwrap();
    let fresh = Binding::new(plugin, json!({})).unwrap();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        fresh.expand(&composite, &[], &ctx()),
    )
    .await
    .expect("not starved by another binding's idle instances");
    assert_eq!(answer.unwrap().children.len(), 5);
}

#[tokio::test]
async fn instances_dropped_to_free_a_slot_are_counted_as_evicted() {
    let composite = yaml_file(&tessera_tests::example("database.yaml"));
    // One slot: the kept instance holds it until another binding needs it.
    let (runtime, warm) = pooled_database(1).await;
    warm.expand(&composite, &[], &ctx()).await.unwrap();
    let plugin = runtime.load_file(DATABASE).await.unwrap();
    let fresh = Binding::new(plugin, json!({})).unwrap();
    fresh.expand(&composite, &[], &ctx()).await.unwrap();
    let stats = warm.reuse_stats().unwrap();
    assert_eq!(
        (stats.instantiated, stats.discarded, stats.evicted),
        (1, 0, 1),
        "{stats:?}"
    );
    // The next evaluation of the reusing binding starts a new instance.
    warm.expand(&composite, &[], &ctx()).await.unwrap();
    assert_eq!(warm.reuse_stats().unwrap().instantiated, 2);
}

#[tokio::test]
async fn an_arena_plugin_reused_for_many_calls_does_not_grow() {
    // The SDK's arena rewinds once every block is freed, at the end of each
    // call, so a kept instance serves every call from the same memory. Were
    // it to keep bumping, 200 calls would grow the database plugin's memory
    // (its first 768 KiB come from a static buffer, then 1 MiB at a time)
    // far past a 4 MiB bound, and the instance would be discarded.
    let composite = yaml_file(&tessera_tests::example("database.yaml"));
    let warm = bind(DATABASE, json!({}))
        .await
        .reuse_instances(Reuse::default().max_memory_bytes(4 << 20).max_calls(1000));
    let first = warm.expand(&composite, &[], &ctx()).await.unwrap();
    for _ in 0..200 {
        let again = warm.expand(&composite, &[], &ctx()).await.unwrap();
        assert_eq!(again.children, first.children);
    }
    let stats = warm.reuse_stats().unwrap();
    assert_eq!(
        (stats.instantiated, stats.reused, stats.discarded),
        (1, 200, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn the_arena_rewinds_and_reuses_grown_memory_across_reused_calls() {
    // Each call grows a vector to 2 MiB, past the arena's 768 KiB static
    // buffer, while holding other blocks. A reused instance must give intact
    // answers from the same first address every time, and reuse the memory
    // it grew (within 16 MiB, 30 calls of 2 MiB and more each would not fit
    // otherwise).
    let composite = faulty_composite(false);
    let warm = bind(FAULTY, json!({"mode": "arena-churn"}))
        .await
        .reuse_instances(Reuse::default().max_memory_bytes(16 << 20));
    let mut firsts = Vec::new();
    for _ in 0..30 {
        let composed = warm.expand(&composite, &[], &ctx()).await.unwrap();
        let data = &composed.children[0]["data"];
        assert_eq!(data["intact"], "true", "{data}");
        firsts.push(data["first"].as_str().unwrap().to_string());
    }
    assert!(firsts.iter().all(|f| *f == firsts[0]), "{firsts:?}");
    let stats = warm.reuse_stats().unwrap();
    assert_eq!(
        (stats.instantiated, stats.reused, stats.discarded),
        (1, 29, 0),
        "{stats:?}"
    );
}
