//! A real Kubernetes control plane on loopback for integration tests: etcd,
//! kube-apiserver and kube-controller-manager, started once per test process
//! and shared by every test in it (each test works in its own namespace).
//!
//! - etcd comes from the `etcd-bin-vendored` crate; kube-apiserver and
//!   kube-controller-manager from `scripts/build-kube` (found through
//!   `TESSERA_KUBE_BIN`, else the cache directory that script fills).
//! - Everything listens on 127.0.0.1 only, on ports picked free at start.
//! - Certificates (a CA, the apiserver's serving certificate, the service
//!   account signing key) are generated here with rcgen; the admin
//!   authenticates with a bearer token in `system:masters`; authorization is
//!   RBAC.
//! - Each service runs under a small `/bin/sh` wrapper whose stdin is a pipe
//!   from this process. When the test process exits, however it exits (even
//!   SIGKILL), the pipe closes, the wrapper's `read` returns and it kills the
//!   service; etcd's wrapper then removes the temporary directory. Rust never
//!   drops statics, so nothing here relies on `Drop` for the shared control
//!   plane (an owned [`ControlPlane`] from [`ControlPlane::start`] is also
//!   stopped on drop).
//! - Logs go to files in the temporary directory; when a service dies or does
//!   not become ready, the panic message carries the tail of its log. Set
//!   `TESSERA_KEEP_CLUSTER_DIR=1` to keep the directory (its path is printed).
//! - Fault tests start a control plane of their own and may stop
//!   kube-apiserver ([`ControlPlane::stop_apiserver`]) and start it again on
//!   the same port, with the same certificates and etcd data
//!   ([`ControlPlane::start_apiserver`]).
//!
//! A `kube::Client` belongs to the tokio runtime it was made in, and every
//! `#[tokio::test]` has its own runtime: get a fresh client per test with
//! [`ControlPlane::client`] rather than sharing one.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::Deserialize as _;

/// The Kubernetes version `scripts/build-kube` builds by default.
const KUBE_VERSION: &str = "1.37.2";
/// The service account token issuer, also the API audience.
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Controllers kube-controller-manager runs: enough for cascade deletion,
/// namespace deletion, aggregated cluster roles and service accounts.
/// (The 1.37 names; the old short ones, `garbagecollector` and so on, are
/// aliases.)
const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,\
                           clusterrole-aggregation-controller,serviceaccount-controller,\
                           serviceaccount-token-controller";
/// How long kube-apiserver may take to report `/readyz` ok.
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long kube-controller-manager may take to create the `default`
/// service account in namespace `default` (its readiness signal here).
const CONTROLLER_MANAGER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of a service's log shown when it fails.
const LOG_TAIL_LINES: usize = 40;

/// Runs a service and kills it when our end of its stdin closes.
///
/// `$1` is a directory to remove once the service has exited ("" for none);
/// the rest is the command. The service gets /dev/null as stdin; a background
/// watcher holds the pipe (fd 3) and, at end of file, sends SIGKILL: a test
/// control plane has nothing to save, and a graceful stop takes kube-apiserver
/// and etcd over 10 s. The wrapper's exit status is the service's.
const WRAPPER: &str = r#"
cleanup=$1
shift
exec 3<&0 0</dev/null
"$@" 3<&- &
pid=$!
(read -r _ <&3; kill -KILL "$pid" 2>/dev/null) &
watcher=$!
exec 3<&-
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
if [ -n "$cleanup" ]; then rm -rf "$cleanup"; fi
echo "tessera harness: $1 exited with status $status" >&2
exit "$status"
"#;

/// The control plane shared by every test of this process.
static SHARED: tokio::sync::OnceCell<Result<ControlPlane, String>> =
    tokio::sync::OnceCell::const_new();

/// A running control plane: etcd, kube-apiserver and kube-controller-manager
/// on loopback, with its CA and admin credentials.
pub struct ControlPlane {
    url: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    admin_token: String,
    kubeconfig: PathBuf,
    bin_dir: PathBuf,
    /// kube-apiserver's arguments, to start it again after
    /// [`ControlPlane::stop_apiserver`].
    apiserver_args: Vec<String>,
    /// Declared last: dropped (services stopped, directory removed) last.
    cleanup: Cleanup,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("url", &self.url)
            .field("dir", &self.cleanup.dir)
            .field("bin_dir", &self.bin_dir)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// The control plane shared by all tests of this process, started by the
    /// first caller (the others wait for it). Panics, in every caller, if it
    /// could not start.
    pub async fn shared() -> &'static ControlPlane {
        let started = SHARED
            .get_or_init(|| async { Self::start().await.map_err(|e| format!("{e:#}")) })
            .await;
        match started {
            Ok(control_plane) => control_plane,
            Err(e) => panic!("the test control plane did not start: {e}"),
        }
    }

    /// Starts a control plane of its own, stopped when the value is dropped.
    /// Most tests want [`ControlPlane::shared`].
    pub async fn start() -> anyhow::Result<ControlPlane> {
        let started = Instant::now();
        let bin_dir = find_kube_bin_dir().map_err(|e| anyhow!(e))?;
        let etcd = etcd_bin_vendored::etcd_bin_path()
            .map_err(|e| anyhow!("no etcd binary: {e}"))?
            .to_path_buf();

        let keep = std::env::var_os("TESSERA_KEEP_CLUSTER_DIR").is_some_and(|v| !v.is_empty());
        let dir = tempfile::Builder::new()
            .prefix("tessera-cluster-")
            .tempdir()
            .context("creating the control plane's temporary directory")?
            .keep();
        if keep {
            eprintln!("tessera harness: control plane directory {}", dir.display());
        }
        let cleanup = Cleanup {
            dir: dir.clone(),
            keep,
            processes: Mutex::new(Vec::new()),
        };

        // Certificates and keys.
        let ca = new_ca()?;
        let ca_pem = ca.pem();
        let ca_file = write(&dir, "ca.crt", &ca_pem)?;
        let (serving_cert, serving_key) = mint_serving_cert(&ca)?;
        let serving_cert_file = write(&dir, "apiserver.crt", &serving_cert)?;
        let serving_key_file = write(&dir, "apiserver.key", &serving_key)?;
        let sa_key = KeyPair::generate().context("generating the service account key")?;
        let sa_key_file = write(&dir, "service-account.key", &sa_key.serialize_pem())?;
        // kube-apiserver reads an ECDSA *private* key for verification only in
        // SEC1 form ("EC PRIVATE KEY"), and rcgen writes PKCS#8: give it the
        // public key (SPKI) instead.
        let sa_pub_file = write(&dir, "service-account.pub", &sa_key.public_key_pem())?;

        // Credentials.
        let admin_token = random_hex(32);
        let tokens_file = write(
            &dir,
            "tokens.csv",
            &format!("{admin_token},tessera-admin,tessera-admin,system:masters\n"),
        )?;

        // Ports.
        let [etcd_client_port, etcd_peer_port, apiserver_port] = free_ports()?;
        let url = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig = write(
            &dir,
            "admin.kubeconfig",
            &kubeconfig_yaml(&url, &ca_file, &admin_token),
        )?;

        // etcd. Its wrapper removes the directory after etcd exits.
        let etcd_client_url = format!("http://127.0.0.1:{etcd_client_port}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd_args = [
            "--name=default".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_client_url}"),
            format!("--advertise-client-urls={etcd_client_url}"),
            format!("--listen-peer-urls={etcd_peer_url}"),
            format!("--initial-advertise-peer-urls={etcd_peer_url}"),
            format!("--initial-cluster=default={etcd_peer_url}"),
            "--initial-cluster-state=new".to_string(),
            "--unsafe-no-fsync=true".to_string(),
            "--log-level=warn".to_string(),
            "--log-outputs=stderr".to_string(),
        ];
        let remove_after = (!keep).then_some(dir.as_path());
        cleanup.push(Process::spawn(
            "etcd",
            &etcd,
            &etcd_args,
            &dir.join("etcd.log"),
            remove_after,
        )?);

        // kube-apiserver, started at once: it waits for etcd itself.
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_client_url}"),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", serving_cert_file.display()),
            format!("--tls-private-key-file={}", serving_key_file.display()),
            format!("--client-ca-file={}", ca_file.display()),
            format!("--secure-port={apiserver_port}"),
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            // 1.37 refuses a loopback advertise address with the endpoint
            // reconciler (the `kubernetes` Service's endpoints): nothing here
            // reaches the apiserver through that Service anyway.
            "--endpoint-reconciler-type=none".to_string(),
            // A /16: room for the Services of the load benchmark's 5,000
            // composites (tests/tests/cluster/load.rs); a /24 holds 254.
            "--service-cluster-ip-range=10.0.0.0/16".to_string(),
            "--allow-privileged=true".to_string(),
            // As envtest: no pod gets a service account token mounted.
            "--disable-admission-plugins=ServiceAccount".to_string(),
            "--authorization-mode=RBAC".to_string(),
            format!("--token-auth-file={}", tokens_file.display()),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            format!("--service-account-key-file={}", sa_pub_file.display()),
            format!(
                "--service-account-signing-key-file={}",
                sa_key_file.display()
            ),
            format!("--api-audiences={SERVICE_ACCOUNT_ISSUER}"),
            "--enable-priority-and-fairness=false".to_string(),
            "--profiling=false".to_string(),
        ];
        let control_plane = ControlPlane {
            url,
            ca,
            admin_token,
            kubeconfig,
            bin_dir,
            apiserver_args,
            cleanup,
        };
        control_plane.start_apiserver().await?;
        let apiserver_ready = started.elapsed();

        let controller_manager_args = [
            format!("--kubeconfig={}", control_plane.kubeconfig.display()),
            format!("--controllers={CONTROLLERS}"),
            "--leader-elect=false".to_string(),
            "--secure-port=0".to_string(),
            "--use-service-account-credentials=false".to_string(),
            format!(
                "--service-account-private-key-file={}",
                sa_key_file.display()
            ),
            format!("--root-ca-file={}", ca_file.display()),
            "--profiling=false".to_string(),
        ];
        control_plane.cleanup.push(Process::spawn(
            "kube-controller-manager",
            &control_plane.bin_dir.join("kube-controller-manager"),
            &controller_manager_args,
            &dir.join("kube-controller-manager.log"),
            None,
        )?);
        control_plane
            .wait_until(
                "kube-controller-manager to create service account default/default",
                CONTROLLER_MANAGER_READY_TIMEOUT,
                async || {
                    let api: Api<ServiceAccount> =
                        Api::namespaced(control_plane.client(), "default");
                    api.get_opt("default").await.ok()?.map(|_| ())
                },
            )
            .await?;
        eprintln!(
            "tessera harness: control plane ready in {:.1} s (kube-apiserver ready after {:.1} s)",
            started.elapsed().as_secs_f64(),
            apiserver_ready.as_secs_f64(),
        );
        Ok(control_plane)
    }

    /// Stops every service and removes the directory, as dropping an owned
    /// control plane does: for one a test had to make `'static` (leaked)
    /// to share it. Clients fail afterwards. Idempotent.
    pub fn stop(&self) {
        self.cleanup.stop_all();
    }

    /// Stops kube-apiserver (SIGKILL, as a crash or a node loss would) and
    /// waits until it has exited; etcd and kube-controller-manager keep
    /// running. Clients fail to connect until
    /// [`ControlPlane::start_apiserver`]. Does nothing if it is not running.
    pub fn stop_apiserver(&self) {
        let stopped = {
            let mut processes = self.cleanup.processes();
            let index = processes.iter().position(|p| p.name == "kube-apiserver");
            index.map(|index| processes.remove(index))
        };
        if let Some(mut process) = stopped {
            process.stop();
        }
    }

    /// Starts kube-apiserver, on the same port with the same certificates,
    /// credentials and etcd data as before (its log is appended to), and
    /// waits until `/readyz` says ok. An error if it is running already or
    /// does not become ready in 90 s.
    pub async fn start_apiserver(&self) -> anyhow::Result<()> {
        if self
            .cleanup
            .processes()
            .iter()
            .any(|p| p.name == "kube-apiserver")
        {
            bail!("kube-apiserver is running already");
        }
        self.cleanup.push(Process::spawn(
            "kube-apiserver",
            &self.bin_dir.join("kube-apiserver"),
            &self.apiserver_args,
            &self.cleanup.dir.join("kube-apiserver.log"),
            None,
        )?);
        self.wait_until(
            "kube-apiserver /readyz",
            APISERVER_READY_TIMEOUT,
            async || {
                let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
                let body = self.client().request_text(request).await.ok()?;
                (body.trim() == "ok").then_some(())
            },
        )
        .await
    }

    /// A fresh admin client (group `system:masters`), for the calling tokio
    /// runtime; call it inside one. Panics if a control plane process died.
    pub fn client(&self) -> kube::Client {
        self.new_client(&self.admin_token, "default")
    }

    /// A fresh admin client whose default namespace is `namespace`: what
    /// [`apply_yaml`] uses for namespaced objects that name no namespace.
    pub fn client_in(&self, namespace: &str) -> kube::Client {
        self.new_client(&self.admin_token, namespace)
    }

    /// A fresh client authenticating with bearer `token` (a service account
    /// token, say), for the calling tokio runtime. Panics if a control plane
    /// process died.
    pub fn client_for_token(&self, token: &str) -> kube::Client {
        self.new_client(token, "default")
    }

    fn new_client(&self, token: &str, namespace: &str) -> kube::Client {
        if let Err(e) = self.cleanup.check() {
            panic!("{e}");
        }
        install_crypto_provider();
        let mut config = kube::Config::new(self.url.parse().expect("the apiserver URL is a URI"));
        config.default_namespace = namespace.to_string();
        config.root_cert = Some(vec![self.ca.der().to_vec()]);
        config.auth_info.token = Some(token.to_string().into());
        kube::Client::try_from(config).expect("a kube client from the control plane's config")
    }

    /// Creates a namespace named `PREFIX-XXXXX` (the apiserver picks the
    /// suffix, so the name is unique) and returns its name. `prefix` must be
    /// a DNS label of at most 57 characters.
    pub async fn namespace(&self, prefix: &str) -> String {
        let api: Api<Namespace> = Api::all(self.client());
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = api
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating a namespace {prefix}-*: {e}"));
        created
            .metadata
            .name
            .expect("a created namespace has a name")
    }

    /// The apiserver's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA (PEM) that signed the apiserver's serving certificate and the
    /// ones [`ControlPlane::serving_cert`] mints; also the apiserver's client
    /// CA.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A new serving certificate and its private key (both PEM, the key
    /// PKCS#8 ECDSA P-256) for a server on loopback (SANs `127.0.0.1`,
    /// `localhost`), signed by the control plane's CA: a webhook server the
    /// apiserver calls with `caBundle` = [`ControlPlane::ca_pem`].
    pub fn serving_cert(&self) -> (String, String) {
        mint_serving_cert(&self.ca).expect("minting a serving certificate")
    }

    /// A kubeconfig file for the admin (token auth, CA file), for processes
    /// started by tests. It lives in the control plane's temporary directory.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The control plane's temporary directory: certificates, logs
    /// (`etcd.log`, `kube-apiserver.log`, `kube-controller-manager.log`) and
    /// etcd's data.
    pub fn dir(&self) -> &Path {
        &self.cleanup.dir
    }

    /// The directory holding kube-apiserver and kube-controller-manager:
    /// `$TESSERA_KUBE_BIN`, else `scripts/build-kube`'s output directory.
    /// Panics, with a one-line message, if the binaries are not there.
    pub fn kube_bin_dir() -> PathBuf {
        find_kube_bin_dir().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls `probe` until it returns `Some`, failing with the log tail of a
    /// process that died or, on timeout, of every process.
    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut() -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            self.cleanup.check().map_err(|e| anyhow!(e))?;
            if let Some(value) = probe().await {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                let logs = self.cleanup.log_tails();
                bail!("timed out after {timeout:?} waiting for {what}\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Applies every document of a YAML stream with server-side apply (forced,
/// as `field_manager`), in order, and returns the objects as the apiserver
/// returned them. Documents without a namespace go to the client's default
/// namespace when their kind is namespaced (see [`ControlPlane::client_in`]).
/// After a CustomResourceDefinition it waits (30 s at most) until the CRD is
/// established, so later documents may use it.
pub async fn apply_yaml(
    client: &kube::Client,
    yaml: &str,
    field_manager: &str,
) -> anyhow::Result<Vec<DynamicObject>> {
    let mut applied = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let number = index + 1;
        let value = serde_json::Value::deserialize(document)
            .with_context(|| format!("YAML document {number}"))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value)
            .with_context(|| format!("YAML document {number} is not a Kubernetes object"))?;
        let types = object
            .types
            .as_ref()
            .with_context(|| format!("YAML document {number} has no apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(types)
            .with_context(|| format!("YAML document {number}: apiVersion"))?;
        let name = object
            .metadata
            .name
            .clone()
            .with_context(|| format!("YAML document {number} ({}) has no name", gvk.kind))?;
        let (resource, capabilities) = discover(client, &gvk).await?;
        let api: Api<DynamicObject> = match (capabilities.scope, &object.metadata.namespace) {
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
            (Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
        };
        let result = api
            .patch(
                &name,
                &PatchParams::apply(field_manager).force(),
                &Patch::Apply(&object),
            )
            .await
            .with_context(|| format!("applying {} {name} (document {number})", gvk.kind))?;
        if gvk.group == "apiextensions.k8s.io" && gvk.kind == "CustomResourceDefinition" {
            poll(Duration::from_secs(30), async || {
                let crd = api.get(&name).await.ok()?;
                let conditions = crd.data.pointer("/status/conditions")?.as_array()?;
                conditions
                    .iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
                    .then_some(())
            })
            .await
            .with_context(|| format!("CustomResourceDefinition {name} not established in 30 s"))?;
        }
        applied.push(result);
    }
    Ok(applied)
}

/// Polls `f` every 150 ms until it returns `Some`, and returns that value;
/// panics naming `what` after `timeout`.
pub async fn eventually<F, Fut, T>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(timeout, f).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `f` every 150 ms until it returns `Some` (that value) or `timeout`
/// has passed (`None`).
async fn poll<F, Fut, T>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Resolves a kind to its resource. Retries for a while: the kind of a CRD
/// applied just before may take a moment to appear in discovery.
async fn discover(
    client: &kube::Client,
    gvk: &GroupVersionKind,
) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match kube::discovery::pinned_kind(client, gvk).await {
            Ok(found) => return Ok(found),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| {
                    format!("discovering {}/{} {}", gvk.group, gvk.version, gvk.kind)
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// kube's rustls uses the process-wide crypto provider: ring, as built.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only if another provider was installed first; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `$TESSERA_KUBE_BIN`, else `$TESSERA_TOOLS_DIR` (default
/// `${XDG_CACHE_HOME:-~/.cache}/tessera-tools`)`/kubernetes-vVERSION/bin`,
/// as `scripts/build-kube` computes it; an error if the binaries are missing.
fn find_kube_bin_dir() -> Result<PathBuf, String> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = match non_empty("TESSERA_KUBE_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let tools = non_empty("TESSERA_TOOLS_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    non_empty("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .or_else(|| non_empty("HOME").map(|home| Path::new(&home).join(".cache")))
                        .map(|cache| cache.join("tessera-tools"))
                });
            let Some(tools) = tools else {
                return Err(
                    "no TESSERA_KUBE_BIN, TESSERA_TOOLS_DIR or HOME: run scripts/build-kube"
                        .to_string(),
                );
            };
            tools
                .join(format!("kubernetes-v{KUBE_VERSION}"))
                .join("bin")
        }
    };
    for binary in ["kube-apiserver", "kube-controller-manager"] {
        if !dir.join(binary).is_file() {
            return Err(format!(
                "{binary} not found in {}: run scripts/build-kube (or set TESSERA_KUBE_BIN)",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

/// A self-signed CA (ECDSA P-256).
fn new_ca() -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "tessera test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().context("generating the CA key")?;
    CertifiedIssuer::self_signed(params, key).context("self-signing the CA")
}

/// A serving certificate for 127.0.0.1 and localhost signed by `ca`:
/// (certificate PEM, PKCS#8 key PEM).
fn mint_serving_cert(ca: &CertifiedIssuer<'static, KeyPair>) -> anyhow::Result<(String, String)> {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .context("serving certificate names")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().context("generating a serving key")?;
    let cert = params
        .signed_by(&key, ca)
        .context("signing a serving certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A kubeconfig with one cluster and one token user.
fn kubeconfig_yaml(url: &str, ca_file: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: tessera
  cluster:
    server: {url}
    certificate-authority: {ca}
users:
- name: tessera-admin
  user:
    token: {token}
contexts:
- name: tessera
  context:
    cluster: tessera
    user: tessera-admin
current-context: tessera
",
        ca = ca_file.display(),
    )
}

/// Writes `contents` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `N` distinct loopback ports nobody listens on now (all bound at once, read,
/// released).
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("binding a free loopback port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// `bytes` random bytes in hex, from the standard library's randomly keyed
/// SipHash: good enough for a token on a loopback test cluster.
fn random_hex(bytes: usize) -> String {
    let mut hex = String::with_capacity(bytes * 2 + 16);
    let mut counter = 0u64;
    while hex.len() < bytes * 2 {
        let word = RandomState::new().hash_one((counter, std::process::id(), Instant::now()));
        write!(hex, "{word:016x}").expect("writing to a String");
        counter += 1;
    }
    hex.truncate(bytes * 2);
    hex
}

/// The last `lines` lines of a file (a note if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The control plane's processes and directory; stops and removes them on
/// drop. Never dropped for the shared control plane: the wrappers do it.
struct Cleanup {
    dir: PathBuf,
    keep: bool,
    processes: Mutex<Vec<Process>>,
}

impl Cleanup {
    fn processes(&self) -> MutexGuard<'_, Vec<Process>> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, process: Process) {
        self.processes().push(process);
    }

    /// An error naming the first process that exited, with its log's tail.
    fn check(&self) -> Result<(), String> {
        self.processes().iter_mut().try_for_each(Process::check)
    }

    /// The tail of every process's log.
    fn log_tails(&self) -> String {
        self.processes()
            .iter()
            .map(|p| {
                format!(
                    "--- last lines of {} ({}):\n{}\n",
                    p.name,
                    p.log.display(),
                    tail(&p.log, LOG_TAIL_LINES)
                )
            })
            .collect()
    }
}

impl Cleanup {
    /// Stops every process, the last started first (kube-controller-manager,
    /// then kube-apiserver, then etcd), and removes the directory unless it
    /// is kept. Idempotent.
    fn stop_all(&self) {
        loop {
            let Some(mut process) = self.processes().pop() else {
                break;
            };
            process.stop();
        }
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A service running under [`WRAPPER`].
struct Process {
    name: &'static str,
    wrapper: Child,
    /// Our end of the wrapper's stdin: closing it stops the service.
    stdin: Option<ChildStdin>,
    log: PathBuf,
    exited: Option<String>,
}

impl Process {
    /// Starts `program args` under the wrapper, stdout and stderr appended
    /// to `log`; the wrapper removes `remove_after` once the service has
    /// exited.
    fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: &Path,
        remove_after: Option<&Path>,
    ) -> anyhow::Result<Process> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let mut wrapper = Command::new("/bin/sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg(format!("tessera-{name}"))
            .arg(remove_after.unwrap_or(Path::new("")))
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let stdin = wrapper.stdin.take();
        Ok(Process {
            name,
            wrapper,
            stdin,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    /// An error if the service has exited.
    fn check(&mut self) -> Result<(), String> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.wrapper.try_wait()
        {
            self.exited = Some(format!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, LOG_TAIL_LINES)
            ));
        }
        match &self.exited {
            Some(message) => Err(message.clone()),
            None => Ok(()),
        }
    }

    /// Closes the wrapper's stdin (it stops the service) and waits for it.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

/// A token for service account `name` in `namespace` (an hour, the API
/// server's own audience), to act as that account with
/// [`ControlPlane::client_for_token`].
pub async fn service_account_token(client: &kube::Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["https://kubernetes.default.svc.cluster.local".into()]),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(name, &kube::api::PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {namespace}/{name}: {e}"))
        .status
        .and_then(|s| s.token)
        .unwrap_or_else(|| panic!("a token for {namespace}/{name}"))
}
