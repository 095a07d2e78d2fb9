//! Load, measured (issue 13 §6): benchmarks, not tests. Each is
//! `#[ignore]`d, asserts nothing about time, and prints a table;
//! `scripts/bench-load` builds what they need and runs them. The method is
//! written down in BENCHMARKS.md ("Load").
//!
//! Both run the release `tessera-controller` binary as a process of its own
//! (`$TESSERA_CONTROLLER_BIN`) against the shared control plane, so that its
//! CPU time and resident memory are its own:
//!
//! - [`webhook_reviews_per_second`]: the webhook only (`--no-controller`),
//!   with the `require-labels` policy (and, in the last run, a looping
//!   policy as well), driven over HTTPS on loopback with keep-alive by
//!   vegeta (`$TESSERA_VEGETA`, built by `scripts/build-loadgen`).
//! - [`composites_converge`]: the controller only, `$TESSERA_LOAD_COMPOSITES`
//!   `Database` composites (default 1,000) of five children each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use tessera_tests::plugins;

use crate::fixture::{World, condition};
use crate::harness::eventually;

/// Clock ticks per second of `/proc/*/stat` times (`CLK_TCK`, 100 on every
/// Linux this runs on).
const TICKS: f64 = 100.0;

/// A path from the environment variable `name`, which `scripts/bench-load`
/// sets; panics with a one-line message without it.
fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(path) if Path::new(&path).exists() => PathBuf::from(path),
        _ => panic!("{name} must name an existing file: run scripts/bench-load"),
    }
}

/// A number from the environment variable `name`, else `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free loopback port (bound, then released for the process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// CPU seconds (user + system) of process `pid`, and of the children it has
/// waited for.
fn cpu_seconds(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0) / TICKS;
    // After the command: state, ppid, ..., utime (11), stime (12), cutime
    // (13), cstime (14).
    (field(11) + field(12), field(13) + field(14))
}

/// Busy CPU seconds of the whole machine (every CPU, `/proc/stat`).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / TICKS
}

/// CPU seconds of every process whose command line names `dir` (the
/// control plane's directory: etcd, kube-apiserver, kube-controller-manager),
/// by program name.
fn control_plane_cpu(dir: &Path) -> BTreeMap<String, f64> {
    let dir = dir.display().to_string();
    let mut cpu = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains(&dir) {
            continue;
        }
        let program = cmdline.split('\0').next().unwrap_or_default();
        let program = program.rsplit('/').next().unwrap_or(program).to_string();
        *cpu.entry(program).or_insert(0.0) += cpu_seconds(&pid).0;
    }
    cpu
}

/// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A `tessera-controller run` process, killed when dropped.
struct Controller {
    child: Child,
    metrics: String,
    log: PathBuf,
}

impl Controller {
    /// Starts `tessera-controller run` with `args` against the control
    /// plane of `world` (its admin kubeconfig), serving `/metrics` on a
    /// loopback port; waits until `/metrics` answers.
    async fn start(world: &World, dir: &Path, args: &[String]) -> Controller {
        let key = dir.join("secret-key");
        std::fs::write(&key, [7u8; 32]).expect("writing the secret key");
        let metrics_port = free_port();
        let log = dir.join("tessera-controller.log");
        let mut command = Command::new(env_path("TESSERA_CONTROLLER_BIN"));
        command
            .arg("run")
            .arg("--secret-key-file")
            .arg(&key)
            .arg("--identity")
            .arg(format!("{}-controller", world.id))
            .arg("--selector")
            .arg(format!("{}={}", crate::fixture::TEST_LABEL, world.id))
            .arg("--metrics-bind-address")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--cache-dir")
            .arg(crate::cache_dir())
            .args(args)
            .env("KUBECONFIG", world.control_plane.kubeconfig())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("controller log"));
        let child = command.spawn().expect("starting tessera-controller");
        let controller = Controller {
            child,
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            log,
        };
        eventually(
            "tessera-controller to serve /metrics",
            Duration::from_secs(60),
            || async { controller.metrics_text().await },
        )
        .await;
        controller
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's `/metrics` text.
    async fn metrics_text(&self) -> Option<String> {
        let response = reqwest::get(&self.metrics).await.ok()?;
        response.status().is_success().then_some(())?;
        response.text().await.ok()
    }

    /// The sum of the samples of `metric` (every label set) whose labels
    /// contain `with`.
    async fn metric_sum(&self, metric: &str, with: &str) -> f64 {
        let text = self.metrics_text().await.unwrap_or_default();
        sum_samples(&text, metric, |labels| labels.contains(with))
            .values()
            .sum()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- tessera-controller log tail:");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The samples of `metric` (Prometheus text) whose labels pass `keep`, by
/// their label text.
fn sum_samples(text: &str, metric: &str, keep: impl Fn(&str) -> bool) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.rsplit_once("} ") {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        if keep(labels) {
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            *samples.entry(labels.to_string()).or_insert(0.0) += value;
        }
    }
    samples
}

// ---------------------------------------------------------------------------
// The webhook

/// An AdmissionReview (CREATE) of a core-group or other object.
fn review(
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
    resource: &str,
    name: &str,
) -> Value {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "namespace": namespace,
            "name": name,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:shop:deployer",
                "uid": "0a5bcf0e-1b2c-4d3e-8f9a-0b1c2d3e4f5a",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"]
            },
            "object": {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"team": "payments", "env": "prod", "app.kubernetes.io/name": "orders"},
                    "annotations": {"tessera.dev/origin": "git@example.com:shop/platform.git//orders.yaml"}
                },
                "data": {
                    "engine": "postgres",
                    "postgresql.conf": "listen_addresses = '*'\nmax_connections = 100\nshared_buffers = 128MB\n"
                }
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// What one class of requests of one vegeta run got.
#[derive(Default)]
struct Class {
    latencies: Vec<u64>,
    failed: u64,
    first_ns: u64,
    last_end_ns: u64,
}

impl Class {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1e6
    }
}

/// One vegeta attack: its classes (by the `?class=` of the URL) and the CPU
/// seconds spent during it.
struct Attack {
    classes: BTreeMap<String, Class>,
    wall_s: f64,
    server_cpu: f64,
    vegeta_cpu: f64,
    other_cpu: f64,
}

/// Where and how vegeta attacks: the webhook's address, the CA its
/// certificate is signed by, its process, vegeta's connections.
struct Webhook<'a> {
    dir: &'a Path,
    address: &'a str,
    ca: &'a Path,
    server_pid: u32,
    workers: u64,
    /// The most connections a fixed-rate run may open (the API server, too,
    /// calls a webhook over a bounded number of connections).
    max_workers: u64,
}

/// Runs vegeta against `targets` (class, body file), cycled in order, at
/// `rate` per second (`None`: as fast as `workers` connections go) for
/// `seconds`, and reads every result back.
fn attack(
    webhook: &Webhook<'_>,
    targets: &[(&str, &Path)],
    rate: Option<u64>,
    seconds: u64,
) -> Attack {
    let Webhook {
        dir,
        address,
        ca,
        server_pid,
        workers,
        max_workers,
    } = *webhook;
    let vegeta = env_path("TESSERA_VEGETA");
    let targets_file = dir.join("targets.http");
    let mut text = String::new();
    for (class, body) in targets {
        text.push_str(&format!(
            "POST https://{address}/validate?class={class}\nContent-Type: application/json\n@{}\n\n",
            body.display()
        ));
    }
    std::fs::write(&targets_file, text).expect("writing the targets");
    let results = dir.join("results.bin");
    let mut command = Command::new(&vegeta);
    command
        .arg("attack")
        .arg(format!("-targets={}", targets_file.display()))
        .arg("-format=http")
        .arg(format!("-duration={seconds}s"))
        .arg(format!("-root-certs={}", ca.display()))
        .arg("-http2=false")
        .arg("-keepalive=true")
        .arg("-timeout=10s")
        .arg(format!("-output={}", results.display()));
    match rate {
        Some(rate) => command
            .arg(format!("-rate={rate}/1s"))
            .arg(format!("-workers={workers}"))
            .arg(format!("-max-workers={max_workers}")),
        None => command
            .arg("-rate=0")
            .arg(format!("-workers={workers}"))
            .arg(format!("-max-workers={workers}")),
    };
    let server = server_pid.to_string();
    let (server_before, _) = cpu_seconds(&server);
    let (self_before, children_before) = cpu_seconds("self");
    let busy_before = machine_busy_seconds();
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .status()
        .expect("running vegeta");
    let wall_s = started.elapsed().as_secs_f64();
    assert!(status.success(), "vegeta attack: {status}");
    let (server_after, _) = cpu_seconds(&server);
    let (self_after, children_after) = cpu_seconds("self");
    let busy = machine_busy_seconds() - busy_before;
    let server_cpu = server_after - server_before;
    let vegeta_cpu = children_after - children_before;
    let other_cpu = busy - server_cpu - vegeta_cpu - (self_after - self_before);

    let encoded = Command::new(&vegeta)
        .arg("encode")
        .arg("--to=json")
        .arg(&results)
        .output()
        .expect("vegeta encode");
    assert!(
        encoded.status.success(),
        "vegeta encode: {}",
        encoded.status
    );
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    for line in String::from_utf8_lossy(&encoded.stdout).lines() {
        let Ok(result) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let url = result["url"].as_str().unwrap_or_default();
        let class = url.rsplit_once("class=").map_or("?", |(_, c)| c);
        let entry = classes.entry(class.to_string()).or_default();
        let latency = result["latency"].as_u64().unwrap_or(0);
        let timestamp = chrono_ns(&result["timestamp"]);
        if entry.first_ns == 0 || timestamp < entry.first_ns {
            entry.first_ns = timestamp;
        }
        entry.last_end_ns = entry.last_end_ns.max(timestamp + latency);
        let ok = result["code"] == 200 && result["error"].as_str().unwrap_or_default().is_empty();
        if ok {
            entry.latencies.push(latency);
        } else {
            entry.failed += 1;
        }
    }
    for class in classes.values_mut() {
        class.latencies.sort_unstable();
    }
    let _ = std::fs::remove_file(&results);
    Attack {
        classes,
        wall_s,
        server_cpu,
        vegeta_cpu,
        other_cpu,
    }
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp as vegeta writes it
/// (`2026-12-02T06:00:00.123456789Z`, or with an offset): only differences
/// are used, within one run.
fn chrono_ns(timestamp: &Value) -> u64 {
    let text = timestamp.as_str().unwrap_or_default();
    // HH:MM:SS.fraction of the day is enough for runs shorter than a day
    // that do not cross midnight; the date is folded in as a day count.
    let Some((date, time)) = text.split_once('T') else {
        return 0;
    };
    let day: u64 = date
        .split('-')
        .nth(2)
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let time = time.trim_end_matches('Z');
    let time = time.find(['+', '-']).map_or(time, |offset| &time[..offset]);
    let mut parts = time.split(':');
    let hours: u64 = parts.next().and_then(|h| h.parse().ok()).unwrap_or(0);
    let minutes: u64 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let seconds = parts.next().unwrap_or("0");
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: u64 = whole.parse().unwrap_or(0);
    let fraction: u64 = format!("{fraction:0<9}")[..9].parse().unwrap_or(0);
    (((day * 24 + hours) * 60 + minutes) * 60 + whole) * 1_000_000_000 + fraction
}

/// Prints one table row per class of `attack`; the CPU columns are of the
/// whole run (all classes): CPUs busy on average, and CPU time per request.
fn report(run: &str, rate: Option<u64>, workers: u64, attack: &Attack) {
    let requests: usize = attack
        .classes
        .values()
        .map(|c| c.latencies.len() + c.failed as usize)
        .sum();
    let per_request_us = |cpu: f64| cpu / (requests.max(1) as f64) * 1e6;
    for (class, c) in &attack.classes {
        let span_s = (c.last_end_ns.saturating_sub(c.first_ns)) as f64 / 1e9;
        let done = c.latencies.len() as f64;
        println!(
            "| {run} | {class} | {} | {workers} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} ({:.0} µs/req) | {:.2} ({:.0} µs/req) | {:.2} | {:.1} |",
            rate.map_or("max".to_string(), |r| r.to_string()),
            c.latencies.len(),
            c.failed,
            done / span_s.max(1e-9),
            c.percentile_ms(50.0),
            c.percentile_ms(99.0),
            c.latencies.last().map_or(f64::NAN, |l| *l as f64 / 1e6),
            attack.server_cpu / attack.wall_s,
            per_request_us(attack.server_cpu),
            attack.vegeta_cpu / attack.wall_s,
            per_request_us(attack.vegeta_cpu),
            attack.other_cpu / attack.wall_s,
            attack.wall_s,
        );
    }
}

/// AdmissionReviews per second over HTTPS on loopback with keep-alive: the
/// `require-labels` policy on every ConfigMap (a fresh instance per review,
/// as always), no policy on Leases (the HTTPS, decoding and answering floor),
/// and a looping policy (faulty-policy `loop`, to its deadline) on Secrets,
/// 1 request in 100 of the last runs (one run per deadline in
/// `$TESSERA_LOAD_LOOP_DEADLINES`, default `1s,10ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-load"]
async fn webhook_reviews_per_second() {
    let seconds = env_number("TESSERA_LOAD_SECONDS", 10);
    let rates = std::env::var("TESSERA_LOAD_RATES").unwrap_or_else(|_| "10000,5000".to_string());
    let rates: Vec<u64> = rates
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let workers = env_number("TESSERA_LOAD_WORKERS", 8);
    let max_workers = env_number("TESSERA_LOAD_MAX_WORKERS", 64);
    let loop_deadlines =
        std::env::var("TESSERA_LOAD_LOOP_DEADLINES").unwrap_or_else(|_| "1s,10ms".to_string());
    let world = World::new("load-webhook").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = world.control_plane.serving_cert();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, world.control_plane.ca_pem()).expect("CA");
    std::fs::write(dir.path().join("cert.pem"), cert).expect("cert");
    std::fs::write(dir.path().join("key.pem"), key).expect("key");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let controller = Controller::start(
        &world,
        dir.path(),
        &[
            "--no-controller".into(),
            "--webhook-listen".into(),
            address.clone(),
            "--webhook-cert".into(),
            dir.path().join("cert.pem").display().to_string(),
            "--webhook-key".into(),
            dir.path().join("key.pem").display().to_string(),
        ],
    )
    .await;

    let ns = &world.namespace;
    let bodies = [
        (
            "good",
            review(ns, "", "v1", "ConfigMap", "configmaps", "orders-config"),
        ),
        (
            "nopolicy",
            review(ns, "coordination.k8s.io", "v1", "Lease", "leases", "orders"),
        ),
        (
            "loop",
            review(ns, "", "v1", "Secret", "secrets", "orders-credentials"),
        ),
    ];
    let mut files = BTreeMap::new();
    for (class, body) in &bodies {
        let path = dir.path().join(format!("{class}.json"));
        std::fs::write(&path, body.to_string()).expect("writing a review");
        files.insert(*class, path);
    }
    let good = files["good"].as_path();
    let nopolicy = files["nopolicy"].as_path();
    let looping = files["loop"].as_path();

    world
        .apply_policy(
            "load-require-labels",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["team", "env"]},
                "match": {"rules": [{"apiGroups": [""], "kinds": ["ConfigMap"]}]},
                "mode": "Enforce",
            }),
        )
        .await;
    let client = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(world.control_plane.ca_pem().as_bytes()).expect("CA"),
        ])
        .build()
        .expect("HTTPS client");
    let post = |body: &Path| {
        let body = std::fs::read(body).expect("review");
        let client = client.clone();
        let url = format!("https://{address}/validate");
        async move {
            let response = client.post(url).body(body).send().await.ok()?;
            let answer: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
            Some(answer)
        }
    };
    // A ConfigMap without `env` is denied once the policy is loaded.
    let mut unlabelled = bodies[0].1.clone();
    unlabelled["request"]["object"]["metadata"]["labels"] = json!({"team": "payments"});
    let unlabelled_file = dir.path().join("unlabelled.json");
    std::fs::write(&unlabelled_file, unlabelled.to_string()).expect("review");
    eventually(
        "require-labels to be loaded",
        Duration::from_secs(60),
        || async {
            let answer = post(&unlabelled_file).await?;
            (answer["response"]["allowed"] == false).then_some(())
        },
    )
    .await;
    let answer = post(good).await.expect("an answer");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    println!(
        "\nBENCH webhook: {} CPUs, tessera-controller {}, vegeta {}, {seconds} s a run\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env_path("TESSERA_CONTROLLER_BIN").display(),
        env_path("TESSERA_VEGETA").display(),
    );
    println!(
        "| run | class | rate/s | workers | ok | failed | ok/s | p50 ms | p99 ms | max ms | server CPUs | vegeta CPUs | other CPUs | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let server = controller.pid();
    // Warm-up: connections, the allocator, the instance pool.
    let webhook = Webhook {
        dir: dir.path(),
        address: &address,
        ca: &ca,
        server_pid: server,
        workers,
        max_workers,
    };
    tokio::task::block_in_place(|| attack(&webhook, &[("good", good)], None, 2));
    let run = |name: &str, targets: &[(&str, &Path)], rate: Option<u64>| {
        let attack = tokio::task::block_in_place(|| attack(&webhook, targets, rate, seconds));
        report(name, rate, workers, &attack);
    };
    run("no policy, closed loop", &[("nopolicy", nopolicy)], None);
    // `$TESSERA_LOAD_PERF`: a `perf record` profile of the server during the
    // closed-loop require-labels run, written to that path.
    let perf = std::env::var_os("TESSERA_LOAD_PERF").map(|path| {
        Command::new("perf")
            .args(["record", "-F", "499", "-g", "-p", &server.to_string(), "-o"])
            .arg(path)
            .args(["--", "sleep", &seconds.saturating_sub(2).max(1).to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting perf")
    });
    run("require-labels, closed loop", &[("good", good)], None);
    if let Some(mut perf) = perf {
        let _ = perf.wait();
    }
    for &rate in &rates {
        run("require-labels, fixed rate", &[("good", good)], Some(rate));
    }

    // The looping policy, once per deadline asked for: each a Policy of its
    // own name, the previous one deleted first.
    let policies: kube::Api<tessera_controller::crd::Policy> = kube::Api::all(world.client.clone());
    let mut previous: Option<String> = None;
    for (index, deadline) in loop_deadlines.split(',').map(str::trim).enumerate() {
        let name = format!("load-loop-{index}");
        if let Some(previous) = previous.take() {
            policies
                .delete(&previous, &Default::default())
                .await
                .expect("deleting the looping policy");
        }
        world
            .apply_policy(
                &name,
                json!({
                    "plugin": {"path": plugins::FAULTY_POLICY},
                    "settings": {"mode": "loop"},
                    "limits": {"deadline": deadline},
                    "match": {"rules": [{"apiGroups": [""], "kinds": ["Secret"]}]},
                    "failurePolicy": "Ignore",
                }),
            )
            .await;
        eventually(
            "the looping policy to be loaded",
            Duration::from_secs(60),
            || async {
                let answer = post(looping).await?;
                let warnings: Vec<String> = answer["response"]["warnings"]
                    .as_array()?
                    .iter()
                    .filter_map(|w| w.as_str().map(String::from))
                    .collect();
                // Only this one: the previous one is gone.
                (warnings.len() == 1 && warnings[0].contains(&name)).then_some(())
            },
        )
        .await;
        previous = Some(name);
        let mut mix: Vec<(&str, &Path)> = vec![("good", good); 99];
        mix.push(("loop", looping));
        for &rate in &rates {
            run(
                &format!("99 require-labels : 1 loop (deadline {deadline}), fixed rate"),
                &mix,
                Some(rate),
            );
        }
    }
    println!(
        "\nBENCH webhook server: VmHWM {} KiB, VmRSS {} KiB\n",
        status_kib(server, "VmHWM"),
        status_kib(server, "VmRSS")
    );
    let requests = controller
        .metric_sum("tessera_webhook_requests_total", "")
        .await;
    println!("BENCH webhook server: tessera_webhook_requests_total {requests}");
}

// ---------------------------------------------------------------------------
// The controller

/// Write requests the API server counted (`apiserver_request_total`), by
/// `verb resource/subresource`.
async fn apiserver_writes(client: &kube::Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a request");
    let text = client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let mut writes = BTreeMap::new();
    for (labels, value) in sum_samples(&text, "apiserver_request_total", |_| true) {
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if ![
            "POST",
            "PUT",
            "PATCH",
            "APPLY",
            "DELETE",
            "DELETECOLLECTION",
        ]
        .contains(&verb.as_str())
        {
            continue;
        }
        let mut resource = label("resource");
        let subresource = label("subresource");
        if !subresource.is_empty() {
            resource = format!("{resource}/{subresource}");
        }
        // The controller applies every child twice: a dry run first.
        let dry_run = if label("dry_run").is_empty() {
            ""
        } else {
            " (dry run)"
        };
        *writes
            .entry(format!("{verb} {resource}{dry_run}"))
            .or_insert(0.0) += value;
    }
    writes
}

/// What changed between two [`apiserver_writes`].
fn write_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Whether a write to `key` (`VERB resource[/sub]`) is one the Tessera
/// controller makes: composites and their status, the children of the
/// database plugin, events, Compositions and Policies. (The API server's
/// own lease renewals and kube-controller-manager's writes are the rest.)
fn is_tessera_write(key: &str) -> bool {
    let resource = key.split_once(' ').map_or(key, |(_, r)| r);
    let resource = resource.split(['/', ' ']).next().unwrap_or(resource);
    [
        "databases",
        "secrets",
        "configmaps",
        "services",
        "statefulsets",
        "poddisruptionbudgets",
        "events",
        "compositions",
        "policies",
    ]
    .contains(&resource)
}

/// How many composites report `Synced=True`, and how many of the others
/// report each `Synced` reason (`none` without the condition).
async fn synced(world: &World) -> Option<(usize, BTreeMap<String, usize>)> {
    let list = world
        .composites()
        .list(&kube::api::ListParams::default())
        .await
        .ok()?;
    let mut done = 0;
    let mut others = BTreeMap::new();
    for object in &list.items {
        let value = serde_json::to_value(object).unwrap_or_default();
        match condition(&value, "Synced") {
            Some(c) if c["status"] == "True" => done += 1,
            Some(c) => {
                let reason = format!("{}: {}", c["reason"], c["message"]);
                *others.entry(reason).or_insert(0) += 1;
            }
            None => *others.entry("none".to_string()).or_insert(0) += 1,
        }
    }
    Some((done, others))
}

/// `$TESSERA_LOAD_COMPOSITES` (default 1,000) `Database` composites with
/// two replicas, five children each, created at once through the API
/// server against a `tessera-controller` process: the time until every
/// composite is `Synced=True`, then the writes over three resyncs at steady
/// state, and the controller's peak resident memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-load"]
async fn composites_converge() {
    let count = env_number("TESSERA_LOAD_COMPOSITES", 1000) as usize;
    let resync_s = env_number("TESSERA_LOAD_RESYNC_SECONDS", 30);
    let world = World::new(&format!("load-{count}")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    world
        .apply_composition(plugins::DATABASE, json!({}), json!({}))
        .await;
    let controller = Controller::start(
        &world,
        dir.path(),
        &["--resync".into(), format!("{resync_s}s")],
    )
    .await;
    let pid = controller.pid();
    let (cpu_before, _) = cpu_seconds(&pid.to_string());
    let control_plane_before = control_plane_cpu(world.control_plane.dir());
    let (test_before, _) = cpu_seconds("self");
    let busy_before = machine_busy_seconds();
    let writes_before = apiserver_writes(&world.client).await;

    let started = Instant::now();
    let creates = futures::stream::iter(0..count)
        .map(|i| {
            let world = &world;
            async move {
                world
                    .apply_database(
                        &format!("db-{i:05}"),
                        json!({"engine": "postgres", "version": "16.4", "replicas": 2, "storage": "20Gi"}),
                        json!({"team": "payments", "env": "prod"}),
                    )
                    .await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>();
    creates.await;
    let created = started.elapsed();
    let poll = Duration::from_secs(count.div_ceil(1000).max(1) as u64);
    let mut last_report = Instant::now();
    let (mut progress, mut progress_at) = (0, Instant::now());
    loop {
        let (done, others) = synced(&world).await.unwrap_or_default();
        if done == count {
            break;
        }
        if done > progress {
            (progress, progress_at) = (done, Instant::now());
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "{:.0} s: {done}/{count} Synced; the others: {others:?}",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        // Bounded: gives up after 30 minutes, or 2 minutes without progress.
        assert!(
            started.elapsed() < Duration::from_secs(1800)
                && progress_at.elapsed() < Duration::from_secs(120),
            "{done}/{count} composites Synced after {:.0} s; the others: {others:?}",
            started.elapsed().as_secs_f64()
        );
        // Listing every composite costs the API server too: every second
        // per thousand composites.
        tokio::time::sleep(poll).await;
    }
    let converged = started.elapsed();
    let (cpu_converged, _) = cpu_seconds(&pid.to_string());
    let busy_converged = machine_busy_seconds() - busy_before;
    let (test_converged, _) = cpu_seconds("self");
    let control_plane_converged: BTreeMap<String, f64> =
        control_plane_cpu(world.control_plane.dir())
            .into_iter()
            .map(|(k, v)| {
                let before = control_plane_before.get(&k).copied().unwrap_or(0.0);
                (k, v - before)
            })
            .collect();
    let hwm_converged = status_kib(pid, "VmHWM");
    let writes_converged = write_delta(&writes_before, &apiserver_writes(&world.client).await);
    let reconciles_converged = controller.metric_sum("tessera_reconciles_total", "").await;

    // Steady state: let the last events of the creation settle for one
    // resync, then count every write over three resyncs.
    tokio::time::sleep(Duration::from_secs(resync_s)).await;
    let steady_before = apiserver_writes(&world.client).await;
    let reconciles_before = controller.metric_sum("tessera_reconciles_total", "").await;
    let (cpu_steady_before, _) = cpu_seconds(&pid.to_string());
    let window = Duration::from_secs(3 * resync_s + 1);
    tokio::time::sleep(window).await;
    let steady = write_delta(&steady_before, &apiserver_writes(&world.client).await);
    let reconciles_steady =
        controller.metric_sum("tessera_reconciles_total", "").await - reconciles_before;
    let (cpu_steady_after, _) = cpu_seconds(&pid.to_string());
    let tessera_steady: f64 = steady
        .iter()
        .filter(|(k, _)| is_tessera_write(k))
        .map(|(_, v)| v)
        .fold(0.0, |a, b| a + b);
    let children_applied: f64 = writes_converged
        .iter()
        .filter(|(k, _)| {
            k.starts_with("APPLY ")
                && !k.contains("/status")
                && !k.contains("databases")
                && !k.contains("dry run")
        })
        .map(|(_, v)| v)
        .fold(0.0, |a, b| a + b);

    println!(
        "\nBENCH controller: {} CPUs, tessera-controller {}, resync {resync_s} s\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env_path("TESSERA_CONTROLLER_BIN").display(),
    );
    println!(
        "| composites | children | created in s | all Synced after s | reconciles | child applies | controller CPU s (to Synced) | VmHWM MiB | steady: reconciles in 3 resyncs | steady: Tessera writes | steady: controller CPUs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {count} | {} | {:.1} | {:.1} | {reconciles_converged} | {children_applied} | {:.1} | {:.1} | {reconciles_steady} | {tessera_steady} | {:.2} |",
        count * 5,
        created.as_secs_f64(),
        converged.as_secs_f64(),
        cpu_converged - cpu_before,
        hwm_converged as f64 / 1024.0,
        (cpu_steady_after - cpu_steady_before) / window.as_secs_f64(),
    );
    let control_plane_total: f64 = control_plane_converged.values().fold(0.0, |a, b| a + b);
    let controller_cpu = cpu_converged - cpu_before;
    let test_cpu = test_converged - test_before;
    println!(
        "\nBENCH controller: CPU seconds from the first create until all Synced ({:.1} s, {:.1} CPU s available): tessera-controller {controller_cpu:.1}, control plane {control_plane_total:.1} {control_plane_converged:.1?}, the benchmark's own client {test_cpu:.1}, everything else on the machine {:.1}",
        converged.as_secs_f64(),
        converged.as_secs_f64()
            * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        busy_converged - controller_cpu - control_plane_total - test_cpu,
    );
    println!("BENCH controller: writes until all Synced: {writes_converged:?}");
    println!("BENCH controller: writes over 3 resyncs at steady state: {steady:?}");
    println!(
        "BENCH controller: VmHWM at the end {} KiB, VmRSS {} KiB",
        status_kib(pid, "VmHWM"),
        status_kib(pid, "VmRSS")
    );
    drop(controller);
}
