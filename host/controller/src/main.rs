//! `tessera-controller`: the composition controller and admission webhook.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tessera_controller::leader::LeaseConfig;
use tessera_controller::{Options, WebhookOptions};
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
    /// Re-read plugin files this often.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    plugin_resync: Duration,
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
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,kube=warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: starting the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(Failure::Usage(message)) => {
                    eprintln!("error: {message}");
                    ExitCode::from(2)
                }
                Err(Failure::Runtime(error)) => {
                    eprintln!("error: {error:#}");
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
    if let Some(dir) = &args.cache_dir {
        builder = builder.cache_dir(dir);
    }
    let runtime = builder.build().map_err(|e| Failure::Runtime(e.into()))?;
    let mut options = Options::new(runtime, Arc::new(key));
    options.identity = args.identity.clone();
    options.resync = args.resync;
    options.plugin_resync = args.plugin_resync;
    options.concurrency = args.concurrency;
    options.controller = !args.no_controller;
    options.selector = args.selector.clone();
    if args.leader_elect {
        options.lease = Some(LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity: args.identity.clone(),
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        });
    }
    if let (Some(cert), Some(key)) = (&args.webhook_cert, &args.webhook_key) {
        options.webhook = Some(WebhookOptions {
            listen: args.webhook_listen,
            cert_pem: read(cert, "webhook-cert")?,
            key_pem: read(key, "webhook-key")?,
            budget: args.webhook_budget,
            policy_deadline: args.policy_deadline,
        });
    }
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
