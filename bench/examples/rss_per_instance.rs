//! Memory per live instance: `rss_per_instance [default|pooled] [N]` keeps N
//! instances of the database plugin alive, each after one evaluation (N
//! bindings with warm reuse, one kept instance each), and prints the growth
//! of the process's resident set divided by N. Method: BENCHMARKS.md.

use serde_json::json;
use tessera_bench::{bind, database_inputs, plugins, runtime, tokio_runtime};
use tessera_runtime::{Context, Reuse};

/// Resident set size of this process in KiB (`/proc/self/statm`).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("statm has a resident field");
    pages * page_size() / 1024
}

/// The kernel's page size in bytes (`/proc/self/statm` counts pages), read
/// once: reading `smaps` between two RSS samples would disturb them.
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // The `KernelPageSize` of the first mapping in `/proc/self/smaps`.
        std::fs::read_to_string("/proc/self/smaps")
            .ok()
            .and_then(|smaps| {
                smaps
                    .lines()
                    .find_map(|line| line.strip_prefix("KernelPageSize:"))
                    .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(4096, |kib| kib * 1024)
    })
}

/// Virtual size of this process in GiB.
fn virtual_gib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("statm has a size field");
    (pages * page_size()) as f64 / f64::from(1u32 << 30)
}

fn main() {
    page_size();
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "pooled".into());
    let n: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let rt = tokio_runtime();
    let runtime = runtime((mode == "pooled").then_some(n + 1));
    let (composite, observed) = database_inputs();
    let first = bind(&rt, &runtime, plugins::DATABASE, json!({}));
    let bindings: Vec<_> = (0..n)
        .map(|_| {
            tessera_runtime::Binding::new(first.plugin().clone(), json!({}))
                .unwrap()
                .reuse_instances(Reuse::default().max_idle(1))
        })
        .collect();
    // One evaluation first so that lazily initialised host state is in the
    // baseline, not in the per-instance figure.
    rt.block_on(first.expand(&composite, &observed, &Context::default()))
        .unwrap();
    let before = rss_kib();
    let virtual_before = virtual_gib();
    for binding in &bindings {
        rt.block_on(binding.expand(&composite, &observed, &Context::default()))
            .unwrap();
    }
    let after = rss_kib();
    let live: u64 = bindings
        .iter()
        .map(|b| b.reuse_stats().unwrap().instantiated)
        .sum();
    assert_eq!(live, u64::from(n), "one kept instance per binding");
    println!(
        "{mode}: {n} live instances: RSS {before} KiB -> {after} KiB, {:.1} KiB per instance; virtual {virtual_before:.1} GiB -> {:.1} GiB",
        (after - before) as f64 / f64::from(n),
        virtual_gib()
    );
}
