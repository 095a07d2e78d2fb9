//! `tessera-controller`: the composition controller and admission webhook.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tessera_controller::leader::LeaseConfig;
use tessera_controller::{OciOptions, Options, WebhookOptions};
use tessera_oci::{RegistryOptions, Store, TrustPolicy};
use tessera_runtime::{DEFAULT_INSTANCE_SLOTS, Runtime, SecretKey, parse_duration};

#[derive(Parser, Debug)]
#[command(
    name = "tessera-controller",
    version,
    about = "Tessera composition controller and admission webhook"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller and/or the webhook against the cluster of the
    /// in-cluster service account or KUBECONFIG.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions (deploy/crds.yaml).
    Crds,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Key credentials are derived from (at least 32 bytes; keep it in a Secret).
    #[arg(long, env = "TESSERA_SECRET_KEY_FILE")]
    secret_key_file: PathBuf,
    /// This replica's name (events, lease).
    #[arg(long, env = "POD_NAME", default_value = "tessera-controller")]
    identity: String,
    /// Do not run the controller (webhook only).
    #[arg(long)]
    no_controller: bool,
    /// Elect one leader among the replicas with a Lease.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tessera-system")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "tessera-controller")]
    lease_name: String,
    /// How long the Lease lasts without renewal: how long the other replicas
    /// wait before taking over from a leader that died without releasing it.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// How often the leader renews the Lease (and a follower tries to take
    /// it); less than --lease-duration.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lease_renew: Duration,
    /// On SIGTERM or Ctrl-C, how long running reconciles may take to finish
    /// (the Lease renewed meanwhile) before they are cut short and the Lease
    /// is released; keep it under the pod's terminationGracePeriodSeconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Webhook listen address.
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_listen: SocketAddr,
    /// Webhook serving certificate (PEM); without it no webhook runs.
    #[arg(long, requires = "webhook_key")]
    webhook_cert: Option<PathBuf>,
    /// Webhook private key (PEM).
    #[arg(long, requires = "webhook_cert")]
    webhook_key: Option<PathBuf>,
    /// Time for all policies of one admission request together.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    webhook_budget: Duration,
    /// Cap on each policy's deadline.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    policy_deadline: Duration,
    /// Requeue every composite this often.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    resync: Duration,
    /// Re-read plugin files and resolve `oci` tags this often.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    plugin_resync: Duration,
    /// The controller's own namespace: `plugin.pullSecrets` are read from it.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tessera-system")]
    namespace: String,
    /// A trust policy (YAML: `allOf` / `anyOf` with `minimumMatches` over
    /// PEM public keys) every `oci` plugin must satisfy, besides its own
    /// `plugin.verify`.
    #[arg(long, value_name = "FILE")]
    trust_policy: Option<PathBuf>,
    /// Trust these CA certificates (PEM bundle) for registries, besides the
    /// system's.
    #[arg(long, value_name = "FILE")]
    registry_ca_bundle: Option<PathBuf>,
    /// Speak plain HTTP to this registry (`HOST[:PORT]`), e.g. one inside
    /// the cluster; repeatable. Every other registry needs TLS.
    #[arg(long, value_name = "HOST")]
    registry_plain_http: Vec<String>,
    /// Deadline of each registry operation (resolve, pull, signatures).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    registry_timeout: Duration,
    /// Composites reconciled at once per composite kind.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Plugin instances alive at once, pre-allocated by wasmtime's pooling
    /// allocator (about twice as fast per evaluation, and it scales across
    /// cores). Each slot reserves about 16 GiB of address space, not of
    /// memory; an evaluation past the slots waits for one. 0: allocate per
    /// instance instead.
    #[arg(long, default_value_t = DEFAULT_INSTANCE_SLOTS)]
    instance_slots: u32,
    /// Only Compositions and Policies matching this label selector.
    #[arg(long)]
    selector: Option<String>,
    /// Directory for compiled plugin artifacts (default: the user cache).
    #[arg(long, env = "TESSERA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Where `/metrics` is served (plain HTTP, Prometheus text format):
    /// `host:port`, `:port` for every interface, or `0` / `off` for none.
    #[arg(
        long,
        env = "TESSERA_METRICS_BIND_ADDRESS",
        default_value = ":8080",
        value_parser = parse_bind_address
    )]
    metrics_bind_address: BindAddress,
    /// Count fuel (deterministic CPU accounting) in every evaluation, so that
    /// `spec.limits.fuel` budgets apply and `/metrics` reports fuel per
    /// evaluation. Costs speed.
    #[arg(long)]
    fuel: bool,
    /// Logs on stderr: `text` for people, `json` for log pipelines (one JSON
    /// object a line). The level is set by RUST_LOG (default `info,kube=warn`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Crds => {
            print!("{}", tessera_controller::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let log_format = args.log_format;
            init_logs(log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: starting the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let outcome = runtime.block_on(run(args));
            // Work cut short after the grace may still hold a thread for an
            // instant (a plugin call stops at its next epoch tick): do not
            // wait for it.
            runtime.shutdown_timeout(Duration::from_secs(1));
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(Failure::Usage(message)) => {
                    report(log_format, &message);
                    ExitCode::from(2)
                }
                Err(Failure::Runtime(error)) => {
                    report(log_format, &format!("{error:#}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(anyhow::Error),
}

async fn run(args: Box<RunArgs>) -> Result<(), Failure> {
    tessera_controller::install_crypto_provider();
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).map_err(|e| Failure::Usage(format!("--{what} {}: {e}", path.display())))
    };
    let key = read(&args.secret_key_file, "secret-key-file")?;
    let key = SecretKey::new(key).map_err(|e| {
        Failure::Usage(format!(
            "--secret-key-file {}: {e}",
            args.secret_key_file.display()
        ))
    })?;
    // The same configuration as the CLI and `tessera bench`
    // (`Runtime::standard_builder`), with the slots asked for.
    let mut builder = if args.instance_slots > 0 {
        Runtime::standard_builder().pooling(args.instance_slots)
    } else {
        Runtime::builder()
    };
    if args.fuel {
        builder = builder.fuel(true);
    }
    if let Some(dir) = &args.cache_dir {
        builder = builder.cache_dir(dir);
    }
    let runtime = builder.build().map_err(|e| Failure::Runtime(e.into()))?;
    let oci = oci_options(&args, &runtime).map_err(Failure::Usage)?;
    let mut options = Options::new(runtime, Arc::new(key));
    options.oci = oci;
    options.identity = args.identity.clone();
    options.resync = args.resync;
    options.plugin_resync = args.plugin_resync;
    options.concurrency = args.concurrency;
    options.controller = !args.no_controller;
    options.selector = args.selector.clone();
    options.shutdown_grace = args.shutdown_grace;
    options.lease = lease(&args).map_err(Failure::Usage)?;
    if let (Some(cert), Some(key)) = (&args.webhook_cert, &args.webhook_key) {
        options.webhook = Some(WebhookOptions {
            listen: args.webhook_listen,
            cert_pem: read(cert, "webhook-cert")?,
            key_pem: read(key, "webhook-key")?,
            budget: args.webhook_budget,
            policy_deadline: args.policy_deadline,
        });
    }
    serve_metrics(&args.metrics_bind_address).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        identity = %args.identity,
        "starting"
    );
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("connecting to the cluster: {e}")))?;
    let mut running = tessera_controller::start(client, options)
        .await
        .map_err(Failure::Runtime)?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Runtime(e.into()))?;
    tokio::select! {
        result = running.wait() => return result.map_err(Failure::Runtime),
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    running.shutdown().await.map_err(Failure::Runtime)
}

/// How `oci` plugins are pulled and verified: the registry flags, the
/// cluster-wide trust policy, and the store of pulled artifacts next to the
/// compiled ones (`<cache>/oci`).
fn oci_options(args: &RunArgs, runtime: &Runtime) -> Result<OciOptions, String> {
    let mut registry = RegistryOptions::default().timeout(args.registry_timeout);
    if let Some(bundle) = &args.registry_ca_bundle {
        registry = registry.ca_bundle(bundle);
    }
    for host in &args.registry_plain_http {
        registry = registry.plain_http_host(host);
    }
    let trust_policy = match &args.trust_policy {
        Some(file) => {
            Some(TrustPolicy::from_file(file).map_err(|e| format!("--trust-policy {e}"))?)
        }
        None => None,
    };
    Ok(OciOptions {
        registry,
        trust_policy,
        store: runtime.cache_dir().map(|dir| Store::new(dir.join("oci"))),
        namespace: args.namespace.clone(),
    })
}

/// The leader election `args` ask for (none without `--leader-elect`); an
/// error if the lease would be renewed no sooner than it expires.
fn lease(args: &RunArgs) -> Result<Option<LeaseConfig>, String> {
    if !args.leader_elect {
        return Ok(None);
    }
    if args.lease_renew >= args.lease_duration {
        return Err(format!(
            "--lease-renew ({:?}) must be less than --lease-duration ({:?})",
            args.lease_renew, args.lease_duration
        ));
    }
    Ok(Some(LeaseConfig {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity: args.identity.clone(),
        duration: args.lease_duration,
        renew: args.lease_renew,
    }))
}

/// How logs are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields.
    Json,
}

/// Installs the process's log subscriber: stderr, in `format`, at the level
/// RUST_LOG sets (default `info,kube=warn`).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// Says why the process stops: `error: <message>` on stderr, or in JSON an
/// error event like every other line.
fn report(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => tracing::error!(error = message, "stopping"),
    }
}

/// `--metrics-bind-address`: an address, or none (`0`, `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BindAddress(Option<SocketAddr>);

/// `host:port`, `:port` (every interface), or `0` / `off` (no server).
fn parse_bind_address(text: &str) -> Result<BindAddress, String> {
    if text == "0" || text.eq_ignore_ascii_case("off") {
        return Ok(BindAddress(None));
    }
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse()
        .map(|a| BindAddress(Some(a)))
        .map_err(|_| format!("expected host:port, :port, 0 or off, got {text:?}"))
}

/// Starts the metrics server on `address` (none: no server); it serves
/// until the process ends.
async fn serve_metrics(address: &BindAddress) -> Result<(), Failure> {
    let Some(address) = address.0 else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Failure::Usage(format!("--metrics-bind-address {address}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.into()))?;
    tracing::info!(address = %local, "serving /metrics");
    tokio::spawn(tessera_controller::metrics::serve(
        listener,
        std::future::pending::<()>(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_bind_addresses() {
        let some = |text: &str| parse_bind_address(text).map(|a| a.0.map(|a| a.to_string()));
        assert_eq!(some(":8080"), Ok(Some("0.0.0.0:8080".into())));
        assert_eq!(some("127.0.0.1:9090"), Ok(Some("127.0.0.1:9090".into())));
        assert_eq!(some("[::1]:9090"), Ok(Some("[::1]:9090".into())));
        assert_eq!(some("0"), Ok(None));
        assert_eq!(some("off"), Ok(None));
        assert_eq!(some("OFF"), Ok(None));
        assert_eq!(
            some("8080"),
            Err("expected host:port, :port, 0 or off, got \"8080\"".into())
        );
        assert!(some(":http").is_err());
    }

    fn run_args(extra: &[&str]) -> Box<RunArgs> {
        let mut argv = vec!["tessera-controller", "run", "--secret-key-file", "k"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(args) => args,
            Command::Crds => panic!("not run"),
        }
    }

    #[test]
    fn lease_timings_come_from_the_flags() {
        assert!(lease(&run_args(&[])).expect("no election").is_none());
        let defaults = lease(&run_args(&["--leader-elect"]))
            .expect("valid")
            .expect("an election");
        assert_eq!(defaults.duration, Duration::from_secs(15));
        assert_eq!(defaults.renew, Duration::from_secs(5));
        assert_eq!(run_args(&[]).shutdown_grace, Duration::from_secs(10));
        let short = lease(&run_args(&[
            "--leader-elect",
            "--lease-duration=4s",
            "--lease-renew=500ms",
        ]))
        .expect("valid")
        .expect("an election");
        assert_eq!(short.duration, Duration::from_secs(4));
        assert_eq!(short.renew, Duration::from_millis(500));
        assert_eq!(
            lease(&run_args(&[
                "--leader-elect",
                "--lease-duration=5s",
                "--lease-renew=5s"
            ]))
            .unwrap_err(),
            "--lease-renew (5s) must be less than --lease-duration (5s)"
        );
    }

    #[test]
    fn the_defaults_serve_metrics_and_log_text() {
        let cli = Cli::try_parse_from(["tessera-controller", "run", "--secret-key-file", "k"])
            .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(
            args.metrics_bind_address,
            BindAddress(Some("0.0.0.0:8080".parse().expect("an address")))
        );
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(!args.fuel);
    }
}
