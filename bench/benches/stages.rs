//! One figure per stage of an evaluation and per example plugin, with divan:
//! `cargo bench -p tessera-bench --bench stages`. The side-by-side ratios
//! live in `ratios.rs`; method and results in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::LazyLock;

use divan::Bencher;
use serde_json::{Value, json};
use tessera_bench::{
    bind, database_inputs, label_settings, labelled_object, native_expand, native_validate,
    plugins, review, runtime, tokio_runtime, yaml_example,
};
use tessera_runtime::{Binding, Context, Operation, Reuse, Review, Runtime, UserInfo};

fn main() {
    divan::main();
}

/// Runtimes and bindings, loaded once per process.
struct Fixtures {
    default_rt: Runtime,
    database: Binding,
    database_pooled: Binding,
    database_warm: Binding,
    labels_pooled: Binding,
    labels_warm: Binding,
    /// Each example plugin (pooled) with its example input.
    examples: Vec<(&'static str, Binding, Value)>,
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let rt = tokio_runtime();
    let default_rt = runtime(None);
    let pooled = runtime(Some(16));
    let user = yaml_example("user-resources.yaml");
    let examples = [
        ("database", plugins::DATABASE, json!({}), "database.yaml"),
        ("web-app", plugins::WEB_APP, json!({}), "web-app.yaml"),
        (
            "service-binding",
            plugins::SERVICE_BINDING,
            json!({}),
            "service-instance.yaml",
        ),
    ]
    .into_iter()
    .map(|(name, path, settings, input)| {
        (
            name,
            bind(&rt, &pooled, path, settings),
            yaml_example(input),
        )
    })
    .chain([
        (
            "require-labels",
            bind(
                &rt,
                &pooled,
                plugins::REQUIRE_LABELS,
                yaml_example("require-labels.settings.yaml"),
            ),
            user.clone(),
        ),
        (
            "provenance",
            bind(
                &rt,
                &pooled,
                plugins::PROVENANCE,
                json!({"requireOrigin": true}),
            ),
            user,
        ),
    ])
    .collect();
    let database_pooled = bind(&rt, &pooled, plugins::DATABASE, json!({}));
    let labels_pooled = bind(&rt, &pooled, plugins::REQUIRE_LABELS, label_settings());
    Fixtures {
        database: bind(&rt, &default_rt, plugins::DATABASE, json!({})),
        database_warm: database_pooled.clone().reuse_instances(Reuse::default()),
        database_pooled,
        labels_warm: labels_pooled.clone().reuse_instances(Reuse::default()),
        labels_pooled,
        examples,
        default_rt,
    }
});

thread_local! {
    static TOKIO: tokio::runtime::Runtime = tokio_runtime();
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    TOKIO.with(|rt| rt.block_on(future))
}

fn expand(binding: &Binding) {
    let (composite, observed) = &*INPUTS;
    black_box(block_on(binding.expand(composite, observed, &Context::default())).expect("expand"));
}

static INPUTS: LazyLock<(Value, Vec<Value>)> = LazyLock::new(database_inputs);

mod load {
    use super::*;

    /// JIT-compiling the database plugin (no cache), including the
    /// `metadata` call a load makes.
    #[divan::bench(sample_count = 10, sample_size = 1)]
    fn compile(bencher: Bencher) {
        let f = &*FIXTURES;
        let file = tessera_bench::plugin_file(plugins::DATABASE);
        bencher.bench(|| black_box(block_on(f.default_rt.load_file(&file)).unwrap()));
    }

    /// Loading it from a warm on-disk cache (mmap of the precompiled
    /// artifact), same `metadata` call.
    #[divan::bench(sample_count = 50)]
    fn cache_load(bencher: Bencher) {
        let dir = tempfile::tempdir().unwrap();
        let cached = Runtime::builder().cache_dir(dir.path()).build().unwrap();
        let file = tessera_bench::plugin_file(plugins::DATABASE);
        block_on(cached.load_file(&file)).unwrap();
        bencher.bench(|| black_box(block_on(cached.load_file(&file)).unwrap()));
    }
}

mod instantiate {
    use super::*;

    /// A store and instance created and dropped, no call: default allocator.
    #[divan::bench]
    fn default_allocator(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| block_on(f.database.instantiate()).unwrap());
    }

    /// The same with the pooling allocator.
    #[divan::bench]
    fn pooling_allocator(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| block_on(f.database_pooled.instantiate()).unwrap());
    }
}

mod expand {
    use super::*;

    /// The plugin's function linked natively (the baseline).
    #[divan::bench]
    fn native(bencher: Bencher) {
        let (composite, observed) = &*INPUTS;
        let text = composite.to_string();
        let observed: Vec<String> = observed.iter().map(Value::to_string).collect();
        bencher.bench(|| black_box(native_expand(&text, &observed)));
    }

    /// A fresh instance per call, default allocator.
    #[divan::bench]
    fn fresh_default(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| expand(&f.database));
    }

    /// A fresh instance per call, pooling allocator.
    #[divan::bench]
    fn fresh_pooled(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| expand(&f.database_pooled));
    }

    /// A warm, reused instance (`Binding::reuse_instances`).
    #[divan::bench]
    fn warm(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| expand(&f.database_warm));
    }
}

mod validate {
    use super::*;

    /// `require-labels`' function linked natively.
    #[divan::bench]
    fn native(bencher: Bencher) {
        let text = labelled_object().to_string();
        let settings = label_settings();
        bencher.bench(|| black_box(native_validate(&text, &settings)));
    }

    /// A fresh instance per call, pooling allocator.
    #[divan::bench]
    fn fresh_pooled(bencher: Bencher) {
        let f = &*FIXTURES;
        let review = review();
        bencher.bench(|| black_box(block_on(f.labels_pooled.validate(&review)).unwrap()));
    }

    /// A warm, reused instance.
    #[divan::bench]
    fn warm(bencher: Bencher) {
        let f = &*FIXTURES;
        let review = review();
        bencher.bench(|| black_box(block_on(f.labels_warm.validate(&review)).unwrap()));
    }
}

/// Each example plugin on its example input, fresh pooled instance.
#[divan::bench(args = ["database", "web-app", "service-binding", "require-labels", "provenance"])]
fn example_plugin(bencher: Bencher, name: &str) {
    let f = &*FIXTURES;
    let (_, binding, input) = f.examples.iter().find(|(n, _, _)| *n == name).unwrap();
    if binding.plugin().world() == tessera_runtime::World::Policy {
        let review = Review {
            operation: Operation::Create,
            object: Some(input.clone()),
            old_object: None,
            user_info: UserInfo::default(),
        };
        bencher.bench(|| black_box(block_on(binding.validate(&review)).unwrap()));
    } else {
        bencher.bench(|| {
            black_box(block_on(binding.expand(input, &[], &Context::default())).unwrap())
        });
    }
}

/// Throughput: the same expand from 1 and 2 threads at once (divan reports
/// the time per call seen by each thread; flat means linear scaling).
mod throughput {
    use super::*;

    #[divan::bench(threads = [1, 2])]
    fn fresh_default(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| expand(&f.database));
    }

    #[divan::bench(threads = [1, 2])]
    fn fresh_pooled(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| expand(&f.database_pooled));
    }

    #[divan::bench(threads = [1, 2])]
    fn warm(bencher: Bencher) {
        let f = &*FIXTURES;
        bencher.bench(|| expand(&f.database_warm));
    }
}
