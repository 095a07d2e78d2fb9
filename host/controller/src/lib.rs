//! The Tessera host embedded in the cluster: the composition controller and
//! the admission webhook, in one process.
//!
//! - The **controller** (leader-elected) runs one kube-rs controller per
//!   `Composition`: it expands each composite with the composition's plugin,
//!   checks every child with the composition's policies, applies the children
//!   with server-side apply and ownerReferences, prunes the ones no longer
//!   desired and reports `Ready`/`Synced` conditions.
//! - The **webhook** (every replica) answers `AdmissionReview` requests with
//!   the `Policy` objects whose rules match.
//!
//! Both use the same runtime (`tessera-runtime`) as the CLI, so a plugin
//! gives the same answer offline and in the cluster.

#![deny(missing_docs)]

mod compose;
mod conditions;
pub mod crd;
mod diff;
mod kinds;
pub mod leader;
mod manager;
pub mod metrics;
mod plugins;
mod policies;
mod reads;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use tessera_runtime::{Runtime, SecretKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use compose::Metrics;
pub use diff::is_subset;
pub use plugins::OciOptions;

/// Everything the process needs that is not the API client.
#[derive(Debug, Clone)]
pub struct Options {
    /// The runtime plugins are compiled and run with.
    pub runtime: Runtime,
    /// The key credentials are derived from.
    pub secret_key: Arc<SecretKey>,
    /// This replica's name, for events and the lease.
    pub identity: String,
    /// Field manager of server-side apply (default `tessera-controller`).
    pub field_manager: String,
    /// Requeue of every composite after a success.
    pub resync: Duration,
    /// How often plugin files are re-read and `oci` tags resolved, to notice
    /// replaced plugins.
    pub plugin_resync: Duration,
    /// How `oci` plugins are pulled and verified.
    pub oci: OciOptions,
    /// Composites reconciled at once, per composite kind.
    pub concurrency: u16,
    /// Run the controller (else only the webhook).
    pub controller: bool,
    /// Leader election; none: this replica always leads.
    pub lease: Option<leader::LeaseConfig>,
    /// The webhook; none: no webhook.
    pub webhook: Option<WebhookOptions>,
    /// Only Compositions and Policies with these labels (a label selector
    /// such as `tessera.dev/shard=a`); none: all of them.
    pub selector: Option<String>,
    /// On shutdown, how long running reconciles may take to finish (the
    /// lease is renewed meanwhile); past it they are cut short, the lease is
    /// released and the next leader retries them.
    pub shutdown_grace: Duration,
}

/// Where and how the webhook listens.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
    /// Time for all policies of one request together.
    pub budget: Duration,
    /// Cap on each policy's own deadline.
    pub policy_deadline: Duration,
}

impl Options {
    /// Defaults: controller on, no leader election, no webhook, resync 5
    /// minutes, plugin files re-read every 30 seconds, 16 concurrent
    /// reconciles per kind, 10 seconds of shutdown grace.
    pub fn new(runtime: Runtime, secret_key: Arc<SecretKey>) -> Self {
        Options {
            runtime,
            secret_key,
            identity: "tessera-controller".into(),
            field_manager: "tessera-controller".into(),
            resync: Duration::from_secs(300),
            plugin_resync: Duration::from_secs(30),
            oci: OciOptions::default(),
            concurrency: 16,
            controller: true,
            lease: None,
            webhook: None,
            selector: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A running controller and/or webhook.
#[derive(Debug)]
pub struct Running {
    /// What the controller did.
    pub metrics: Arc<Metrics>,
    /// The webhook's address, when it runs.
    pub webhook_addr: Option<SocketAddr>,
    leading: Arc<AtomicBool>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Whether this replica currently runs the controller.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Graceful shutdown: stop taking work, let running reconciles and
    /// requests finish, release the lease. Returns the first error the
    /// process hit, if any.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.task.await?
    }

    /// Waits until the process ends by itself (an error), or forever.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await?
    }
}

/// Starts the webhook (when configured) and the controller (when
/// configured; under leader election when a lease is set).
pub async fn start(client: Client, options: Options) -> anyhow::Result<Running> {
    install_crypto_provider();
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let deadline_cap = options
        .webhook
        .as_ref()
        .map_or(Duration::from_secs(2), |w| w.policy_deadline);
    let policies = Arc::new(policies::PolicyStore::new(deadline_cap));
    let loader = Arc::new(plugins::PluginLoader::with_registry(
        options.runtime.clone(),
        options.oci.clone(),
        Some(client.clone()),
    ));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: options.field_manager.clone(),
            instance: Some(options.identity.clone()),
        },
    );
    let shared = Arc::new(compose::Shared {
        client: client.clone(),
        kinds: kinds::Kinds::default(),
        policies: policies.clone(),
        field_manager: options.field_manager.clone(),
        recorder,
        resync: options.resync,
        metrics: metrics.clone(),
        reads: Arc::new(reads::Reads::new(client.clone(), cancel.clone())),
    });
    let leading = Arc::new(AtomicBool::new(
        options.lease.is_none() && options.controller,
    ));
    let mut tasks = tokio::task::JoinSet::new();

    // Policies: every replica keeps them loaded (the webhook needs them);
    // only the leader writes their status.
    {
        let shared = shared.clone();
        let loader = loader.clone();
        let cancel = cancel.clone();
        let leading = leading.clone();
        let resync = options.plugin_resync;
        let selector = options.selector.clone();
        tasks.spawn(async move {
            let write_status = move || leading.load(Ordering::SeqCst);
            manager::run_policies(
                shared,
                loader,
                resync,
                selector.as_deref(),
                write_status,
                cancel,
            )
            .await
        });
    }

    let mut webhook_addr = None;
    if let Some(webhook) = &options.webhook {
        let tls = webhook::tls_config(&webhook.cert_pem, &webhook.key_pem)?;
        let listener = TcpListener::bind(webhook.listen)
            .await
            .map_err(|e| anyhow::anyhow!("webhook: listening on {}: {e}", webhook.listen))?;
        webhook_addr = Some(listener.local_addr()?);
        let writer = reflector::store::Writer::default();
        let namespaces = writer.as_reader();
        let watch = watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
        let cancel_watch = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = watch => anyhow::bail!("the Namespace watch ended"),
                _ = cancel_watch.cancelled() => Ok(()),
            }
        });
        let state = Arc::new(webhook::Webhook {
            policies: policies.clone(),
            namespaces,
            budget: webhook.budget,
            // The same read caches as the controller's (also when only the
            // webhook runs: then they serve only policies).
            reads: Some(shared.clone()),
        });
        tasks.spawn(webhook::serve(listener, tls, state, cancel.clone()));
    }

    if options.controller {
        let shared = shared.clone();
        let cancel = cancel.clone();
        let leading = leading.clone();
        let options = options.clone();
        tasks.spawn(async move { run_controller(shared, loader, options, leading, cancel).await });
    }

    let cancel_all = cancel.clone();
    let task = tokio::spawn(async move {
        let mut first_error = None;
        while let Some(result) = tasks.join_next().await {
            let result = result.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(error) = result {
                tracing::error!(%error, "stopping");
                first_error.get_or_insert(error);
                cancel_all.cancel();
            }
        }
        first_error.map_or(Ok(()), Err)
    });
    Ok(Running {
        metrics,
        webhook_addr,
        leading,
        cancel,
        task,
    })
}

/// Makes ring the process's rustls crypto provider (used by the kube client
/// and plugin downloads) unless one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long a shutdown waits for aborted controller tasks to end (a guest
/// stops at its next epoch tick) before giving up on releasing the lease.
const ABORT_WAIT: Duration = Duration::from_secs(10);

/// Waits until every composition controller's task has ended: all of them
/// were cancelled, and those still running aborted (by dropping the
/// [`manager::run_compositions`] future). False when some did not end
/// within [`ABORT_WAIT`]: then the lease must not be released.
async fn all_stopped(tasks: &tokio_util::task::TaskTracker) -> bool {
    tasks.close();
    match tokio::time::timeout(ABORT_WAIT, tasks.wait()).await {
        Ok(()) => {
            tracing::info!("every composition controller stopped");
            true
        }
        Err(_) => {
            tracing::warn!(
                running = tasks.len(),
                "composition controllers still running after being aborted"
            );
            false
        }
    }
}

async fn run_controller(
    shared: Arc<compose::Shared>,
    loader: Arc<plugins::PluginLoader>,
    options: Options,
    leading: Arc<AtomicBool>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let tasks = tokio_util::task::TaskTracker::new();
    let run = |cancel: CancellationToken| {
        manager::run_compositions(
            shared.clone(),
            loader.clone(),
            options.secret_key.clone(),
            options.plugin_resync,
            options.concurrency,
            options.selector.as_deref(),
            tasks.clone(),
            cancel,
        )
    };
    let grace = options.shutdown_grace;
    let Some(lease) = &options.lease else {
        let mut controllers = Box::pin(run(cancel.clone()));
        tokio::select! {
            result = &mut controllers => return result,
            _ = cancel.cancelled() => {}
        }
        let result = match tokio::time::timeout(grace, &mut controllers).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    "reconciles still running after the shutdown grace: cut short"
                );
                Ok(())
            }
        };
        // Dropping the controllers aborts what still runs.
        drop(controllers);
        all_stopped(&tasks).await;
        return result;
    };
    let elector = leader::Elector::new(shared.client.clone(), lease.clone());
    tokio::select! {
        _ = elector.acquire() => {}
        _ = cancel.cancelled() => return Ok(()),
    }
    tracing::info!(identity = lease.identity, "leading");
    leading.store(true, Ordering::SeqCst);
    let stop = cancel.child_token();
    let mut controllers = Box::pin(run(stop.clone()));
    let outcome = tokio::select! {
        result = &mut controllers => result,
        _ = elector.hold() => {
            // Lost the lease: stop at once (another replica may lead
            // already), cutting running reconciles short, and say so; the
            // process exits and comes back as a follower.
            leading.store(false, Ordering::SeqCst);
            stop.cancel();
            drop(controllers);
            all_stopped(&tasks).await;
            return Err(anyhow::anyhow!("lost the lease {}/{}", lease.namespace, lease.name));
        }
        _ = cancel.cancelled() => {
            // The controllers take no new work; the running reconciles
            // finish within the grace, the lease renewed meanwhile so that
            // no other replica starts while they run. What still runs then
            // is aborted, and only once every controller's task has ended
            // is the lease released: another replica takes over at once and
            // retries whatever was cut short, never alongside this one.
            let result = tokio::select! {
                result = &mut controllers => result,
                _ = elector.hold() => {
                    leading.store(false, Ordering::SeqCst);
                    drop(controllers);
                    all_stopped(&tasks).await;
                    return Err(anyhow::anyhow!(
                        "lost the lease {}/{} while shutting down",
                        lease.namespace,
                        lease.name
                    ));
                }
                _ = tokio::time::sleep(grace) => {
                    tracing::warn!(
                        ?grace,
                        "reconciles still running after the shutdown grace: cut short, \
                         the next leader retries them"
                    );
                    Ok(())
                }
            };
            // Dropping the controllers aborts every controller's task.
            drop(controllers);
            leading.store(false, Ordering::SeqCst);
            if all_stopped(&tasks).await {
                elector.release().await;
            } else {
                tracing::warn!("not releasing the lease: it expires");
            }
            result
        }
    };
    // The controllers ended on their own (an error): each was stopped.
    leading.store(false, Ordering::SeqCst);
    outcome
}
