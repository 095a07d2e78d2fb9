//! The process's Prometheus metrics: what the controller and the webhook
//! did, in the Prometheus text exposition format (version 0.0.4) on
//! `GET /metrics`, served as plain HTTP on an address of its own
//! (`tessera-controller run --metrics-bind-address`), as controllers built
//! with kube-rs or controller-runtime do.
//!
//! There is one registry per process ([`global`]), like controller-runtime's
//! `metrics.Registry`: the recording points (evaluations, the webhook,
//! reconciles, plugin loads) live in modules that share no context struct,
//! and one process runs one controller and one webhook. Every metric, its
//! labels and what it counts are listed in README.md ("Metrics and logs").
//!
//! Label values are bounded: plugin name and digest, composition name,
//! policy name, and fixed sets of outcomes and verdicts; never the name of
//! a composite, a child or an admitted object.
//!
//! ```
//! use tessera_controller::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! metrics.record_webhook_bad_request();
//! let text = metrics.encode();
//! assert!(text.contains("tessera_webhook_requests_total{verdict=\"bad-request\"} 1\n"));
//! ```

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tessera_admission::Answer;
use tessera_runtime::{ArtifactSource, Binding, Composed, Error, Plugin, PluginId, Verdict, World};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::policies::Judgement;

/// The `Content-Type` of `GET /metrics`: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The longest plugin name kept as a label value, in bytes. Names come from
/// the plugin's own metadata: untrusted, so cut and made one line.
const MAX_PLUGIN_LABEL: usize = 64;

/// Bounds of the duration histograms, in seconds: 0.5 ms (a warm policy
/// evaluation) to 16 s (past every deadline the controller allows), each
/// twice the last.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Bounds of the fuel histogram: 10 thousand to 2.6 billion units, each
/// four times the last (the example plugins use 44 thousand to half a
/// million, `tests/fuel-budget.json`).
fn fuel_buckets() -> Histogram {
    Histogram::new(exponential_buckets(10_000.0, 4.0, 10))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Which plugin ran, in which world.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    digest: String,
    world: &'static str,
}

impl PluginLabels {
    fn new(id: &PluginId, world: World) -> Self {
        PluginLabels {
            plugin: plugin_label(&id.name),
            digest: id.digest.clone(),
            world: world_label(world),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvaluationLabels {
    plugin: String,
    digest: String,
    world: &'static str,
    outcome: &'static str,
    crash: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyVerdictLabels {
    policy: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompositionLabels {
    composition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    composition: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoadLabels {
    plugin: String,
    digest: String,
    source: &'static str,
}

/// A registry with every metric of the controller and the webhook, and the
/// typed functions that record them. The process uses one ([`global`]);
/// tests make their own.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    evaluations: Family<EvaluationLabels, Counter>,
    evaluation_seconds: Histograms<PluginLabels>,
    evaluation_fuel: Histograms<PluginLabels>,
    webhook_requests: Family<VerdictLabels, Counter>,
    webhook_request_seconds: Histogram,
    webhook_policy_verdicts: Family<PolicyVerdictLabels, Counter>,
    webhook_policy_seconds: Histograms<PolicyLabels>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Histograms<CompositionLabels>,
    reconciles_in_flight: Family<CompositionLabels, Gauge>,
    plugin_loads: Family<LoadLabels, Counter>,
    plugin_load_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered and nothing recorded.
    pub fn new() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("tessera"),
            evaluations: Family::default(),
            evaluation_seconds: Family::new_with_constructor(seconds_buckets),
            evaluation_fuel: Family::new_with_constructor(fuel_buckets),
            webhook_requests: Family::default(),
            webhook_request_seconds: seconds_buckets(),
            webhook_policy_verdicts: Family::default(),
            webhook_policy_seconds: Family::new_with_constructor(seconds_buckets),
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(seconds_buckets),
            reconciles_in_flight: Family::default(),
            plugin_loads: Family::default(),
            plugin_load_errors: Counter::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "evaluations",
            "Plugin evaluations (expand by the controller, validate by the controller and the webhook) by plugin, digest, world and outcome (ok, refused, crashed with its crash kind, invalid-input, host-error, cancelled)",
            metrics.evaluations.clone(),
        );
        registry.register_with_unit(
            "evaluation_duration",
            "Time of one plugin evaluation, by plugin, digest and world",
            Unit::Seconds,
            metrics.evaluation_seconds.clone(),
        );
        registry.register(
            "evaluation_fuel",
            "Fuel one answered evaluation used, by plugin, digest and world (only when the runtime counts fuel: tessera-controller run --fuel)",
            metrics.evaluation_fuel.clone(),
        );
        registry.register(
            "webhook_requests",
            "Admission requests the webhook answered on /validate, by verdict (allow, deny, bad-request)",
            metrics.webhook_requests.clone(),
        );
        registry.register_with_unit(
            "webhook_request_duration",
            "Time the webhook took to answer an AdmissionReview, all matching policies together",
            Unit::Seconds,
            metrics.webhook_request_seconds.clone(),
        );
        registry.register(
            "webhook_policy_verdicts",
            "What each matching policy said about an admission request, by policy and verdict (allow, deny, failed, timeout)",
            metrics.webhook_policy_verdicts.clone(),
        );
        registry.register_with_unit(
            "webhook_policy_duration",
            "Time one policy took on one admission request, by policy",
            Unit::Seconds,
            metrics.webhook_policy_seconds.clone(),
        );
        registry.register(
            "reconciles",
            "Composite reconciles by composition and outcome (ok, or the Synced condition's reason of the failure)",
            metrics.reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time of one composite reconcile, by composition",
            Unit::Seconds,
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Composite reconciles running now, by composition (at most --concurrency; at the limit, further composites wait in the controller's queue)",
            metrics.reconciles_in_flight.clone(),
        );
        registry.register(
            "plugin_loads",
            "Plugins loaded, by plugin, digest and source (compiled, artifact-cache: the precompiled artifact on disk, memory: already loaded with the same digest)",
            metrics.plugin_loads.clone(),
        );
        registry.register(
            "plugin_load_errors",
            "Plugin loads that failed (unreadable, wrong digest, not a Tessera plugin); the Composition's or Policy's Ready condition says why",
            metrics.plugin_load_errors.clone(),
        );
        metrics
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// Records one evaluation of the plugin `id` in `world` that took
    /// `elapsed`: `Ok` with the fuel it used (when fuel is counted), or the
    /// runtime's error.
    pub fn record_evaluation(
        &self,
        id: &PluginId,
        world: World,
        elapsed: Duration,
        result: Result<Option<u64>, &Error>,
    ) {
        let (outcome, crash) = match result {
            Ok(_) => ("ok", ""),
            Err(error) => classify(error),
        };
        self.count_evaluation(id, world, elapsed, outcome, crash);
        if let Ok(Some(fuel)) = result {
            self.evaluation_fuel
                .get_or_create(&PluginLabels::new(id, world))
                .observe(fuel as f64);
        }
    }

    /// Records an evaluation its caller stopped waiting for (the webhook's
    /// budget ran out, the process shut down).
    pub fn record_cancelled_evaluation(&self, id: &PluginId, world: World, elapsed: Duration) {
        self.count_evaluation(id, world, elapsed, "cancelled", "");
    }

    fn count_evaluation(
        &self,
        id: &PluginId,
        world: World,
        elapsed: Duration,
        outcome: &'static str,
        crash: &'static str,
    ) {
        let labels = PluginLabels::new(id, world);
        self.evaluation_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.evaluations
            .get_or_create(&EvaluationLabels {
                plugin: labels.plugin,
                digest: labels.digest,
                world: labels.world,
                outcome,
                crash,
            })
            .inc();
    }

    /// Records one AdmissionReview answered (allowed or not) in `elapsed`.
    pub fn record_webhook_request(&self, allowed: bool, elapsed: Duration) {
        let verdict = if allowed { "allow" } else { "deny" };
        self.webhook_requests
            .get_or_create(&VerdictLabels { verdict })
            .inc();
        self.webhook_request_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records a request to `/validate` answered 400 or 413 (a body that is
    /// no AdmissionReview, too large, or not read to its end).
    pub fn record_webhook_bad_request(&self) {
        self.webhook_requests
            .get_or_create(&VerdictLabels {
                verdict: "bad-request",
            })
            .inc();
    }

    /// Records what `policy` said about one admission request (`None`: it
    /// did not answer within the webhook's budget) and how long it took.
    pub(crate) fn record_policy_verdict(
        &self,
        policy: &str,
        judgement: Option<&Judgement>,
        elapsed: Duration,
    ) {
        let verdict = match judgement {
            Some(Judgement::Allow { .. }) => "allow",
            Some(Judgement::Deny { failed: false, .. }) => "deny",
            Some(Judgement::Deny { failed: true, .. }) => "failed",
            None => "timeout",
        };
        self.webhook_policy_verdicts
            .get_or_create(&PolicyVerdictLabels {
                policy: policy.to_string(),
                verdict,
            })
            .inc();
        self.webhook_policy_seconds
            .get_or_create(&PolicyLabels {
                policy: policy.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one reconcile of a composite of `composition`: `None` when it
    /// succeeded, else the failure's reason.
    pub fn record_reconcile(
        &self,
        composition: &str,
        failure: Option<&'static str>,
        elapsed: Duration,
    ) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                composition: composition.to_string(),
                outcome: failure.unwrap_or("ok"),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&CompositionLabels {
                composition: composition.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The gauge of reconciles of `composition` running now.
    fn in_flight(&self, composition: &str) -> Gauge {
        self.reconciles_in_flight
            .get_or_create_owned(&CompositionLabels {
                composition: composition.to_string(),
            })
    }

    /// Records a plugin loaded by the runtime (compiled, or from the
    /// artifact cache).
    pub fn record_plugin_loaded(&self, plugin: &Plugin) {
        let source = match plugin.artifact_source() {
            ArtifactSource::Compiled => "compiled",
            ArtifactSource::Cache => "artifact-cache",
        };
        self.count_load(plugin.id(), source);
    }

    /// Records a load answered by a plugin already loaded with the same
    /// digest (no compile, no artifact read).
    pub fn record_plugin_reused(&self, plugin: &Plugin) {
        self.count_load(plugin.id(), "memory");
    }

    fn count_load(&self, id: &PluginId, source: &'static str) {
        self.plugin_loads
            .get_or_create(&LoadLabels {
                plugin: plugin_label(&id.name),
                digest: id.digest.clone(),
                source,
            })
            .inc();
    }

    /// Records a plugin load that failed.
    pub fn record_plugin_load_failed(&self) {
        self.plugin_load_errors.inc();
    }
}

/// The outcome and crash kind labels of a failed evaluation.
fn classify(error: &Error) -> (&'static str, &'static str) {
    match error {
        Error::Refused { .. } => ("refused", ""),
        Error::Crashed { kind, .. } => ("crashed", kind.name()),
        Error::Input { .. } => ("invalid-input", ""),
        _ => ("host-error", ""),
    }
}

fn world_label(world: World) -> &'static str {
    match world {
        World::Composition => "composition",
        World::Policy => "policy",
    }
}

/// A plugin's name as a label value: one line, at most
/// [`MAX_PLUGIN_LABEL`] bytes.
fn plugin_label(name: &str) -> String {
    let line = tessera_types::text::one_line(name);
    tessera_types::text::truncate(&line, MAX_PLUGIN_LABEL).to_string()
}

/// The process's registry: what `GET /metrics` serves.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// What an evaluation answers: the fuel it used, when counted.
pub(crate) trait Evaluated {
    /// Fuel the evaluation used, when the runtime counts fuel.
    fn fuel(&self) -> Option<u64>;
}

impl Evaluated for Composed {
    fn fuel(&self) -> Option<u64> {
        self.report.fuel_consumed
    }
}

impl Evaluated for Verdict {
    fn fuel(&self) -> Option<u64> {
        self.report.fuel_consumed
    }
}

/// Runs one evaluation of `binding` (`binding.expand(..)` or
/// `binding.validate(..)`) and records it in the process's registry: its
/// outcome, its time and its fuel. A future dropped before it answers is
/// recorded as cancelled.
pub(crate) async fn evaluation<T: Evaluated>(
    binding: &Binding,
    run: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    struct Pending<'a> {
        plugin: Option<&'a Plugin>,
        started: Instant,
    }
    impl Drop for Pending<'_> {
        fn drop(&mut self) {
            if let Some(plugin) = self.plugin {
                global().record_cancelled_evaluation(
                    plugin.id(),
                    plugin.world(),
                    self.started.elapsed(),
                );
            }
        }
    }
    let mut pending = Pending {
        plugin: Some(binding.plugin()),
        started: Instant::now(),
    };
    let result = run.await;
    pending.plugin = None;
    let plugin = binding.plugin();
    global().record_evaluation(
        plugin.id(),
        plugin.world(),
        pending.started.elapsed(),
        result.as_ref().map(Evaluated::fuel),
    );
    result
}

/// Runs one policy's judgement of an admission request and records its
/// verdict and time; dropped before it answers (the webhook's budget ran
/// out), it is recorded as a timeout.
pub(crate) async fn policy_judged(policy: &str, run: impl Future<Output = Judgement>) -> Judgement {
    struct Pending<'a> {
        policy: Option<&'a str>,
        started: Instant,
    }
    impl Drop for Pending<'_> {
        fn drop(&mut self) {
            if let Some(policy) = self.policy {
                global().record_policy_verdict(policy, None, self.started.elapsed());
            }
        }
    }
    let mut pending = Pending {
        policy: Some(policy),
        started: Instant::now(),
    };
    let judgement = run.await;
    pending.policy = None;
    global().record_policy_verdict(policy, Some(&judgement), pending.started.elapsed());
    judgement
}

/// Runs the webhook's review of one AdmissionReview and records its verdict
/// and time.
pub(crate) async fn webhook_reviewed(run: impl Future<Output = Answer>) -> Answer {
    let started = Instant::now();
    let answer = run.await;
    global().record_webhook_request(answer.is_allowed(), started.elapsed());
    answer
}

/// Records a request to `/validate` answered 400 or 413.
pub(crate) fn webhook_bad_request() {
    global().record_webhook_bad_request();
}

/// Runs one reconcile of a composite of `composition`, counted in flight
/// while it runs, and records its outcome (`reason` names a failure) and
/// time.
pub(crate) async fn reconcile<T, E>(
    composition: String,
    reason: fn(&E) -> &'static str,
    run: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    struct InFlight(Gauge);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    let metrics = global();
    let gauge = metrics.in_flight(&composition);
    gauge.inc();
    let _in_flight = InFlight(gauge);
    let started = Instant::now();
    let result = run.await;
    metrics.record_reconcile(
        &composition,
        result.as_ref().err().map(reason),
        started.elapsed(),
    );
    result
}

/// Records a plugin the runtime loaded.
pub(crate) fn plugin_loaded(plugin: &Plugin) {
    global().record_plugin_loaded(plugin);
}

/// Records a load answered by a plugin already loaded.
pub(crate) fn plugin_reused(plugin: &Plugin) {
    global().record_plugin_reused(plugin);
}

/// Records a plugin load that failed.
pub(crate) fn plugin_load_failed<E>(_: &E) {
    global().record_plugin_load_failed();
}

/// Serves `GET /metrics` (the [`global`] registry) as plain HTTP on
/// `listener` until `shutdown` completes, then lets open requests end; any
/// other path is 404, any other method 405.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let connections = tokio_util::task::TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a metrics connection");
                    continue;
                }
            },
        };
        let cancel = cancel.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(|request| async move {
                Ok::<_, std::convert::Infallible>(answer(global(), &request))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "metrics connection");
            }
        });
    }
    cancel.cancel();
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    Ok(())
}

/// The answer to one request to the metrics server.
fn answer<B>(metrics: &Metrics, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are on /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_runtime::{CrashKind, Phase};

    fn id() -> PluginId {
        PluginId {
            name: "database".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
        }
    }

    /// The value of the sample `name{labels}` in `text`, if present.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.parse().ok()
        })
    }

    fn crash(kind: CrashKind) -> Error {
        Error::Crashed {
            plugin: id(),
            phase: Phase::Expand,
            kind,
            message: "boom".into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn every_metric_has_help_and_type_and_a_conventional_name() {
        // Nothing recorded yet: a family without a series is not shown,
        // the unlabelled metrics are, at zero.
        let empty = Metrics::new().encode();
        assert_eq!(
            empty.lines().filter(|l| l.starts_with("# TYPE ")).count(),
            2,
            "{empty}"
        );
        assert_eq!(
            sample(&empty, "tessera_plugin_load_errors_total"),
            Some(0.0)
        );
        assert_eq!(
            sample(&empty, "tessera_webhook_request_duration_seconds_count"),
            Some(0.0)
        );

        // One of each.
        let metrics = Metrics::new();
        let ms = Duration::from_millis(1);
        metrics.record_evaluation(&id(), World::Policy, ms, Ok(Some(1)));
        metrics.record_webhook_request(true, ms);
        metrics.record_policy_verdict("p", None, ms);
        metrics.record_reconcile("c", None, ms);
        metrics.in_flight("c");
        metrics.count_load(&id(), "compiled");
        let text = metrics.encode();
        let expected = [
            ("tessera_evaluations_total", "counter"),
            ("tessera_evaluation_duration_seconds", "histogram"),
            ("tessera_evaluation_fuel", "histogram"),
            ("tessera_webhook_requests_total", "counter"),
            ("tessera_webhook_request_duration_seconds", "histogram"),
            ("tessera_webhook_policy_verdicts_total", "counter"),
            ("tessera_webhook_policy_duration_seconds", "histogram"),
            ("tessera_reconciles_total", "counter"),
            ("tessera_reconcile_duration_seconds", "histogram"),
            ("tessera_reconciles_in_flight", "gauge"),
            ("tessera_plugin_loads_total", "counter"),
            ("tessera_plugin_load_errors_total", "counter"),
        ];
        for (name, kind) in expected {
            assert!(
                text.contains(&format!("\n# TYPE {name} {kind}\n"))
                    || text.starts_with(&format!("# TYPE {name} {kind}\n")),
                "no TYPE line for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}:\n{text}"
            );
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(types, expected.len(), "{text}");
        // A counter never registered twice: no `_total_total`.
        assert!(!text.contains("_total_total"), "{text}");
    }

    #[test]
    fn evaluations_count_by_outcome_and_crash_kind() {
        let metrics = Metrics::new();
        let second = Duration::from_secs(1);
        let refused = Error::Refused {
            plugin: id(),
            phase: Phase::Expand,
            message: "no".into(),
            field: None,
        };
        let host = Error::Host {
            plugin: Some(id()),
            phase: Phase::Instantiate,
            message: "no slot".into(),
            source: None,
        };
        let input = Error::Input {
            message: "metadata.name: missing".into(),
        };
        metrics.record_evaluation(&id(), World::Composition, second, Ok(Some(50_000)));
        metrics.record_evaluation(&id(), World::Composition, second, Ok(Some(70_000)));
        metrics.record_evaluation(&id(), World::Composition, second, Err(&refused));
        metrics.record_evaluation(
            &id(),
            World::Composition,
            second,
            Err(&crash(CrashKind::Deadline)),
        );
        metrics.record_evaluation(
            &id(),
            World::Composition,
            second,
            Err(&crash(CrashKind::OutOfFuel)),
        );
        metrics.record_evaluation(&id(), World::Composition, second, Err(&host));
        metrics.record_evaluation(&id(), World::Policy, second, Err(&input));
        metrics.record_evaluation(&id(), World::Policy, second, Ok(None));
        metrics.record_cancelled_evaluation(&id(), World::Policy, second);
        let text = metrics.encode();
        let digest = id().digest;
        let series = |world: &str, outcome: &str, crash: &str| {
            let series = format!(
                "tessera_evaluations_total{{plugin=\"database\",digest=\"{digest}\",world=\"{world}\",outcome=\"{outcome}\",crash=\"{crash}\"}}"
            );
            sample(&text, &series)
        };
        assert_eq!(series("composition", "ok", ""), Some(2.0), "{text}");
        assert_eq!(series("composition", "refused", ""), Some(1.0));
        assert_eq!(series("composition", "crashed", "deadline"), Some(1.0));
        assert_eq!(series("composition", "crashed", "out-of-fuel"), Some(1.0));
        assert_eq!(series("composition", "crashed", "trap"), None);
        assert_eq!(series("composition", "host-error", ""), Some(1.0));
        assert_eq!(series("policy", "invalid-input", ""), Some(1.0));
        assert_eq!(series("policy", "ok", ""), Some(1.0));
        assert_eq!(series("policy", "cancelled", ""), Some(1.0));

        let labels =
            |world: &str| format!("plugin=\"database\",digest=\"{digest}\",world=\"{world}\"");
        let composition = labels("composition");
        // Every evaluation is timed; only answered ones with fuel counted
        // have fuel.
        assert_eq!(
            sample(
                &text,
                &format!("tessera_evaluation_duration_seconds_count{{{composition}}}")
            ),
            Some(6.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("tessera_evaluation_duration_seconds_sum{{{composition}}}")
            ),
            Some(6.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("tessera_evaluation_fuel_count{{{composition}}}")
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("tessera_evaluation_fuel_sum{{{composition}}}")
            ),
            Some(120_000.0)
        );
        // 50 000 and 70 000 are both past 40 000 and within 160 000.
        assert_eq!(
            sample(
                &text,
                &format!("tessera_evaluation_fuel_bucket{{{composition},le=\"40000\"}}")
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("tessera_evaluation_fuel_bucket{{{composition},le=\"160000\"}}")
            ),
            Some(2.0)
        );
        let policy = labels("policy");
        assert_eq!(
            sample(&text, &format!("tessera_evaluation_fuel_count{{{policy}}}")),
            None,
            "no fuel counted: no fuel series"
        );
    }

    #[test]
    fn webhook_reconcile_and_load_counters_move() {
        let metrics = Metrics::new();
        let ms = Duration::from_millis(3);
        metrics.record_webhook_request(true, ms);
        metrics.record_webhook_request(false, ms);
        metrics.record_webhook_request(false, ms);
        metrics.record_webhook_bad_request();
        let allow = Judgement::Allow { warnings: vec![] };
        let deny = Judgement::Deny {
            message: "no".into(),
            failed: false,
        };
        let failed = Judgement::Deny {
            message: "broke".into(),
            failed: true,
        };
        metrics.record_policy_verdict("require-team", Some(&allow), ms);
        metrics.record_policy_verdict("require-team", Some(&deny), ms);
        metrics.record_policy_verdict("require-team", Some(&failed), ms);
        metrics.record_policy_verdict("require-team", None, ms);
        metrics.record_reconcile("databases", None, ms);
        metrics.record_reconcile("databases", None, ms);
        metrics.record_reconcile("databases", Some("PluginFailed"), ms);
        metrics.in_flight("databases").inc();
        metrics.record_plugin_load_failed();
        let text = metrics.encode();
        for (series, value) in [
            ("tessera_webhook_requests_total{verdict=\"allow\"}", 1.0),
            ("tessera_webhook_requests_total{verdict=\"deny\"}", 2.0),
            (
                "tessera_webhook_requests_total{verdict=\"bad-request\"}",
                1.0,
            ),
            ("tessera_webhook_request_duration_seconds_count", 3.0),
            (
                "tessera_webhook_policy_verdicts_total{policy=\"require-team\",verdict=\"allow\"}",
                1.0,
            ),
            (
                "tessera_webhook_policy_verdicts_total{policy=\"require-team\",verdict=\"deny\"}",
                1.0,
            ),
            (
                "tessera_webhook_policy_verdicts_total{policy=\"require-team\",verdict=\"failed\"}",
                1.0,
            ),
            (
                "tessera_webhook_policy_verdicts_total{policy=\"require-team\",verdict=\"timeout\"}",
                1.0,
            ),
            (
                "tessera_webhook_policy_duration_seconds_count{policy=\"require-team\"}",
                4.0,
            ),
            (
                "tessera_reconciles_total{composition=\"databases\",outcome=\"ok\"}",
                2.0,
            ),
            (
                "tessera_reconciles_total{composition=\"databases\",outcome=\"PluginFailed\"}",
                1.0,
            ),
            (
                "tessera_reconcile_duration_seconds_count{composition=\"databases\"}",
                3.0,
            ),
            (
                "tessera_reconciles_in_flight{composition=\"databases\"}",
                1.0,
            ),
            ("tessera_plugin_load_errors_total", 1.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
    }

    #[tokio::test]
    async fn reconciles_are_in_flight_while_they_run() {
        // The process's registry: a composition name no other test uses.
        let composition = "in-flight-test".to_string();
        let gauge = format!("tessera_reconciles_in_flight{{composition=\"{composition}\"}}");
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(reconcile(
            composition.clone(),
            |_: &&str| "PolicyDenied",
            async move {
                let _ = started_tx.send(());
                let _ = finish_rx.await;
                Err::<(), &str>("denied")
            },
        ));
        started_rx.await.expect("the reconcile started");
        assert_eq!(sample(&global().encode(), &gauge), Some(1.0));
        finish_tx.send(()).expect("the reconcile waits");
        assert!(run.await.expect("the reconcile ran").is_err());
        let text = global().encode();
        assert_eq!(sample(&text, &gauge), Some(0.0));
        assert_eq!(
            sample(
                &text,
                &format!(
                    "tessera_reconciles_total{{composition=\"{composition}\",outcome=\"PolicyDenied\"}}"
                )
            ),
            Some(1.0)
        );
    }

    #[test]
    fn plugin_names_are_one_bounded_line() {
        assert_eq!(plugin_label("database"), "database");
        let hostile = format!("evil\n{}", "x".repeat(200));
        let label = plugin_label(&hostile);
        assert!(!label.contains('\n'), "{label}");
        assert!(label.len() <= MAX_PLUGIN_LABEL, "{label}");
        assert!(label.starts_with("evil"), "{label}");
    }

    #[test]
    fn the_server_answers_get_metrics_only() {
        let metrics = Metrics::new();
        metrics.record_webhook_bad_request();
        let get = |method: Method, path: &str| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("a request");
            answer(&metrics, &request)
        };
        let response = get(Method::GET, "/metrics");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[hyper::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            get(Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(get(Method::GET, "/").status(), StatusCode::NOT_FOUND);
    }
}
