//! `/metrics` end to end: the controller and the webhook started as
//! `tessera-controller run` starts them (fuel on), `/metrics` served over
//! HTTP by `tessera_controller::metrics::serve`, a composite reconciled, a
//! refused composite, admission requests, and the counters scraped before
//! and after each step moved by what the step did.
//!
//! The registry is the process's, shared with the other tests running at
//! once, so each exact assertion is on series only this test can move: the
//! plugins are copies of the example plugins with a custom section naming
//! this test appended (a valid component with a digest of its own), and the
//! composition and policy names are this test's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tessera_controller::WebhookOptions;
use tessera_runtime::Runtime;
use tessera_tests::plugins;

use crate::fixture::{World, file_digest};
use crate::harness::eventually;

/// The policy this test's webhook runs.
const POLICY: &str = "metrics-require-team";

/// A copy of the plugin at `path` in `dir` with a custom section naming this
/// test appended: the same plugin, with a sha256 no other test's plugin has.
fn unique_copy(path: &str, dir: &std::path::Path) -> String {
    let mut bytes = std::fs::read(path).expect("reading the plugin");
    let name = b"tessera-test";
    let mut section = vec![u8::try_from(name.len()).expect("a short name")];
    section.extend_from_slice(name);
    section.extend_from_slice(b"cluster::metrics");
    bytes.push(0); // a custom section
    bytes.push(u8::try_from(section.len()).expect("a short section")); // its size (LEB128, < 128)
    bytes.extend_from_slice(&section);
    let copy = dir.join(std::path::Path::new(path).file_name().expect("a file name"));
    std::fs::write(&copy, bytes).expect("writing the copy");
    copy.to_str().expect("a UTF-8 path").to_string()
}

/// One scrape: each sample line `name{labels}` → value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// The value of `series` (exactly as exposed), 0 when absent.
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// Whether `series` is exposed.
    fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

/// `GET /metrics` over plain HTTP.
async fn scrape(address: SocketAddr) -> Scrape {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("scraping /metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.expect("the metrics text");
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("{line}: value: {e}"));
        samples.insert(series.to_string(), value);
    }
    Scrape(samples)
}

fn evaluations(plugin: &str, digest: &str, world: &str, outcome: &str, crash: &str) -> String {
    format!(
        "tessera_evaluations_total{{plugin=\"{plugin}\",digest=\"{digest}\",world=\"{world}\",outcome=\"{outcome}\",crash=\"{crash}\"}}"
    )
}

fn by_plugin(metric: &str, plugin: &str, digest: &str, world: &str) -> String {
    format!("{metric}{{plugin=\"{plugin}\",digest=\"{digest}\",world=\"{world}\"}}")
}

fn loads(plugin: &str, digest: &str, source: &str) -> String {
    format!(
        "tessera_plugin_loads_total{{plugin=\"{plugin}\",digest=\"{digest}\",source=\"{source}\"}}"
    )
}

/// Sends a ConfigMap AdmissionReview straight to the webhook (the API
/// server sends the same) and returns whether it was allowed.
async fn review(
    client: &reqwest::Client,
    address: SocketAddr,
    namespace: &str,
    team: bool,
) -> bool {
    let labels = if team {
        json!({"team": "payments"})
    } else {
        json!({})
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "metrics-review",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "namespace": namespace,
            "name": "probe",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "probe", "namespace": namespace, "labels": labels}},
        },
    });
    let answer: serde_json::Value = client
        .post(format!("https://{address}/validate"))
        .header("content-type", "application/json")
        .body(review.to_string())
        .send()
        .await
        .expect("posting the review")
        .json()
        .await
        .expect("a JSON answer");
    answer["response"]["allowed"]
        .as_bool()
        .expect("response.allowed")
}

#[tokio::test]
async fn metrics_count_what_the_controller_and_webhook_did() {
    let world = World::new("metrics").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = unique_copy(plugins::DATABASE, dir.path());
    let require_labels = unique_copy(plugins::REQUIRE_LABELS, dir.path());
    let (db, rl) = (file_digest(&database), file_digest(&require_labels));
    assert_ne!(db, file_digest(plugins::DATABASE));
    let composition = format!("{}-databases", world.id);

    // The metrics server, as `tessera-controller run` starts it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the metrics address");
    let address = listener.local_addr().expect("the metrics address");
    let (stop_metrics, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera_controller::metrics::serve(listener, async {
        let _ = stopped.await;
    }));
    let before = scrape(address).await;

    let (cert, key) = world.control_plane.serving_cert();
    let mut options = world.options();
    options.runtime = Runtime::builder()
        .cache_dir(crate::cache_dir())
        .pooling(16)
        .fuel(true)
        .build()
        .expect("runtime");
    options.webhook = Some(WebhookOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        budget: Duration::from_secs(3),
        policy_deadline: Duration::from_secs(1),
    });
    let running = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the controller and the webhook");
    let webhook = running.webhook_addr.expect("webhook address");

    // A composite reconciled: expanded, with fuel counted; its plugin
    // compiled once, then found loaded on every re-read.
    world
        .apply_composition(&database, json!({}), json!({}))
        .await;
    world
        .apply_database(
            "orders",
            json!({"engine": "postgres", "version": "16", "storage": "1Gi"}),
            json!({"team": "payments"}),
        )
        .await;
    world.wait_condition("orders", "Synced", "True").await;
    let ok = evaluations("database", &db, "composition", "ok", "");
    let reconciled =
        format!("tessera_reconciles_total{{composition=\"{composition}\",outcome=\"ok\"}}");
    let after = eventually(
        "the reconcile, its evaluations and a re-read of the plugin in /metrics",
        Duration::from_secs(30),
        || async {
            let now = scrape(address).await;
            let evaluated = now.get(&ok);
            let timed = now.get(&by_plugin(
                "tessera_evaluation_duration_seconds_count",
                "database",
                &db,
                "composition",
            ));
            let fuelled = now.get(&by_plugin(
                "tessera_evaluation_fuel_count",
                "database",
                &db,
                "composition",
            ));
            // Every evaluation is timed and, answered with fuel on, has its
            // fuel (both recorded with the count; a scrape may fall between).
            let consistent = now.get(&reconciled) >= 1.0
                && evaluated >= now.get(&reconciled)
                && timed == evaluated
                && fuelled == evaluated
                && now.get(&loads("database", &db, "memory")) >= 1.0;
            consistent.then_some(now)
        },
    )
    .await;
    assert_eq!(before.get(&ok), 0.0, "a digest of this test's own");
    assert_eq!(after.get(&loads("database", &db, "compiled")), 1.0);
    assert_eq!(after.get(&loads("database", &db, "artifact-cache")), 0.0);
    assert!(
        after.get(&by_plugin(
            "tessera_evaluation_fuel_sum",
            "database",
            &db,
            "composition"
        )) > 0.0
    );
    let in_flight = format!("tessera_reconciles_in_flight{{composition=\"{composition}\"}}");
    assert!(after.has(&in_flight));
    assert!((0.0..=16.0).contains(&after.get(&in_flight)));

    // A composite the plugin refuses: a refused evaluation, a failed
    // reconcile with the Synced reason.
    world
        .apply_database(
            "broken",
            json!({"engine": "oracle", "version": "16", "storage": "1Gi"}),
            json!({}),
        )
        .await;
    world.wait_condition("broken", "Synced", "False").await;
    let refused = evaluations("database", &db, "composition", "refused", "");
    let failed = format!(
        "tessera_reconciles_total{{composition=\"{composition}\",outcome=\"PluginFailed\"}}"
    );
    let now = eventually(
        "the refusal in /metrics",
        Duration::from_secs(30),
        || async {
            let now = scrape(address).await;
            (now.get(&failed) >= 1.0 && now.get(&refused) >= now.get(&failed)).then_some(now)
        },
    )
    .await;
    assert_eq!(after.get(&refused), 0.0);
    assert!(now.get(&refused) >= 1.0);

    // The webhook: once the policy is loaded, exactly one evaluation of its
    // plugin per admission request.
    world
        .apply_policy(
            POLICY,
            json!({
                "plugin": {"path": require_labels},
                "settings": {"requiredLabels": ["team"]},
                "match": {"rules": [{"apiGroups": [""], "kinds": ["ConfigMap"]}]},
                "mode": "Enforce",
            }),
        )
        .await;
    let ca = reqwest::Certificate::from_pem(world.control_plane.ca_pem().as_bytes()).expect("CA");
    let https = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("HTTPS client");
    eventually(
        "the policy to be loaded",
        Duration::from_secs(30),
        || async { (!review(&https, webhook, &world.namespace, false).await).then_some(()) },
    )
    .await;
    let start = scrape(address).await;
    assert!(review(&https, webhook, &world.namespace, true).await);
    assert!(!review(&https, webhook, &world.namespace, false).await);
    assert!(!review(&https, webhook, &world.namespace, false).await);
    let bad = https
        .post(format!("https://{webhook}/validate"))
        .body("not an AdmissionReview")
        .send()
        .await
        .expect("posting garbage");
    assert_eq!(bad.status(), 400);
    let end = scrape(address).await;
    let moved = |series: &str| end.get(series) - start.get(series);

    let policy_ok = evaluations("require-labels", &rl, "policy", "ok", "");
    assert_eq!(moved(&policy_ok), 3.0, "a denial is an answered evaluation");
    assert_eq!(
        moved(&by_plugin(
            "tessera_evaluation_duration_seconds_count",
            "require-labels",
            &rl,
            "policy"
        )),
        3.0
    );
    assert_eq!(
        moved(&by_plugin(
            "tessera_evaluation_fuel_count",
            "require-labels",
            &rl,
            "policy"
        )),
        3.0
    );
    let verdicts = |verdict: &str| {
        format!(
            "tessera_webhook_policy_verdicts_total{{policy=\"{POLICY}\",verdict=\"{verdict}\"}}"
        )
    };
    assert_eq!(moved(&verdicts("allow")), 1.0);
    assert_eq!(moved(&verdicts("deny")), 2.0);
    assert_eq!(moved(&verdicts("failed")), 0.0);
    assert_eq!(moved(&verdicts("timeout")), 0.0);
    assert_eq!(
        moved(&format!(
            "tessera_webhook_policy_duration_seconds_count{{policy=\"{POLICY}\"}}"
        )),
        3.0
    );
    assert_eq!(end.get(&loads("require-labels", &rl, "compiled")), 1.0);
    // Requests as a whole: other tests' webhooks count there too.
    assert!(moved("tessera_webhook_requests_total{verdict=\"allow\"}") >= 1.0);
    assert!(moved("tessera_webhook_requests_total{verdict=\"deny\"}") >= 2.0);
    assert!(moved("tessera_webhook_requests_total{verdict=\"bad-request\"}") >= 1.0);
    assert!(moved("tessera_webhook_request_duration_seconds_count") >= 3.0);

    // A policy whose plugin cannot be read: a load error.
    let errors = "tessera_plugin_load_errors_total";
    world
        .apply_policy(
            "metrics-missing-plugin",
            json!({
                "plugin": {"path": dir.path().join("missing.wasm")},
                "match": {"rules": [{"apiGroups": ["example.com"], "kinds": ["Nothing"]}]},
            }),
        )
        .await;
    eventually(
        "a load error in /metrics",
        Duration::from_secs(30),
        || async { (scrape(address).await.get(errors) > end.get(errors)).then_some(()) },
    )
    .await;

    running.shutdown().await.expect("clean shutdown");
    stop_metrics.send(()).expect("the metrics server runs");
    server
        .await
        .expect("the metrics server task")
        .expect("the metrics server");
}
