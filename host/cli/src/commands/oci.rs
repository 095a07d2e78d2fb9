//! The distribution verbs — `tessera push`, `pull`, `sign`, `verify` — and
//! the registry options every verb takes, so that `--plugin` / `--policy`
//! accept an `oci://` reference (pulled into the cache by digest, verified
//! before it is compiled).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use tessera_oci::{Reference, RegistryOptions, Store, TrustPolicy, signature};

use crate::failure::{Failure, Outcome};
use crate::{EXIT_OK, GlobalArgs, Stdio, Untrusted, build_runtime, progress};

/// How to reach registries and which signatures to require; global, so
/// every verb that loads a plugin takes them.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RegistryArgs {
    /// Registry credentials (Docker config format) [default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json].
    #[arg(long, global = true, value_name = "FILE")]
    registry_config: Option<PathBuf>,
    /// Also trust the CA certificates in this PEM bundle.
    #[arg(long, global = true, value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// Speak plain HTTP to loopback registries (localhost, 127.0.0.1, ::1).
    #[arg(long, global = true)]
    plain_http: bool,
    /// Speak plain HTTP to this registry, HOST or HOST:PORT (repeatable).
    #[arg(long, global = true, value_name = "HOST")]
    plain_http_host: Vec<String>,
    /// Deadline of each registry operation, in seconds [default: 60].
    #[arg(long, global = true, value_name = "SECONDS")]
    registry_timeout: Option<u64>,
    /// Require a signature by this PEM public key on every `oci://` plugin
    /// (repeatable: all of them).
    #[arg(long, global = true, value_name = "PEM")]
    verify_key: Vec<PathBuf>,
    /// Require what this trust policy says (allOf / anyOf with
    /// minimumMatches) of every `oci://` plugin.
    #[arg(long, global = true, value_name = "FILE")]
    trust_policy: Option<PathBuf>,
}

impl RegistryArgs {
    fn options(&self) -> RegistryOptions {
        let mut options = RegistryOptions::default().plain_http(self.plain_http);
        if let Some(path) = &self.registry_config {
            options = options.docker_config(path);
        }
        if let Some(path) = &self.ca_bundle {
            options = options.ca_bundle(path);
        }
        for host in &self.plain_http_host {
            options = options.plain_http_host(host);
        }
        if let Some(seconds) = self.registry_timeout {
            options = options.timeout(Duration::from_secs(seconds.max(1)));
        }
        options
    }

    /// The trust policy of `--verify-key` and `--trust-policy` (plus
    /// `extra_keys`); `None` when neither is given.
    fn policy(&self, extra_keys: &[PathBuf]) -> Result<Option<TrustPolicy>, Failure> {
        let mut keys = Vec::new();
        for path in self.verify_key.iter().chain(extra_keys) {
            keys.push(signature::PublicKey::from_file(path)?);
        }
        let mut policy = TrustPolicy::all_of(keys);
        if let Some(path) = &self.trust_policy {
            policy = policy.and(TrustPolicy::from_file(path)?);
        }
        Ok((!policy.is_empty()).then_some(policy))
    }
}

/// Where pulled artifacts are kept: `<cache dir>/oci`, none with
/// `--no-cache`.
fn store(global: &GlobalArgs) -> Result<Option<Store>, Failure> {
    let runtime = build_runtime(global, false)?;
    Ok(runtime.cache_dir().map(|dir| Store::new(dir.join("oci"))))
}

fn parse(text: &str) -> Result<Reference, Failure> {
    Ok(Reference::parse(text)?)
}

/// The bytes of the plugin `reference` names, fetched as `--plugin` /
/// `--policy` need them: from the cache by digest (no network) or the
/// registry, verified against the trust policy first. Returns the bytes and
/// the reference pinned to its digest.
pub(crate) async fn plugin_bytes(
    global: &GlobalArgs,
    reference: &str,
) -> Result<(Vec<u8>, Reference), Failure> {
    let reference = parse(reference)?;
    let policy = global.registry.policy(&[])?;
    let store = store(global)?;
    let spinner = progress::Spinner::start(format!("pulling {reference}"));
    let fetched = tessera_oci::fetch(
        &global.registry.options(),
        store.as_ref(),
        &reference,
        policy.as_ref(),
    )
    .await;
    drop(spinner);
    let fetched = fetched?;
    Ok((fetched.pulled.artifact.component, fetched.pulled.reference))
}

/// `tessera push PLUGIN.wasm REF`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The plugin (`.wasm` component).
    #[arg(value_name = "WASM")]
    wasm: PathBuf,
    /// Where to push it: oci://REGISTRY/REPO:TAG.
    #[arg(value_name = "REF")]
    reference: String,
    /// Bundle this directory of test suites (`*.tessera.yaml` with goldens
    /// and fixtures) as the artifact's suite layer.
    #[arg(long, value_name = "DIR")]
    suite: Option<PathBuf>,
    /// Sign the pushed digest with this PEM P-256 private key.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

/// Runs `tessera push`: checks that the file is a plugin, pushes it with its
/// metadata (and suite), prints the reference pinned to its digest.
pub(crate) async fn push(global: &GlobalArgs, args: PushArgs, io: &mut Stdio<'_>) -> Outcome {
    let reference = parse(&args.reference)?;
    let key = args
        .sign
        .as_deref()
        .map(signature::PrivateKey::from_file)
        .transpose()?;
    let component = std::fs::read(&args.wasm)
        .map_err(|e| Failure(format!("{}: cannot read plugin: {e}", args.wasm.display())))?;
    let metadata = plugin_metadata(global, &component, &args.wasm).await?;
    let suite = match &args.suite {
        Some(dir) => {
            let suites = tessera_suite::discover(std::slice::from_ref(dir))?;
            if suites.is_empty() {
                return Err(Failure(format!(
                    "{}: no test suites (*.tessera.yaml) to bundle",
                    dir.display()
                )));
            }
            Some(tessera_oci::pack_suite(dir)?)
        }
        None => None,
    };
    let artifact = tessera_oci::Artifact {
        component,
        metadata: Some(metadata),
        suite,
    };
    let registry = tessera_oci::Registry::new(&global.registry.options(), &reference)?;
    let spinner = progress::Spinner::start(format!("pushing {reference}"));
    let pushed = registry.push(&reference, &artifact).await;
    drop(spinner);
    let pinned = pushed?;
    if let Some(key) = key {
        sign_pinned(&registry, &pinned, &key).await?;
        writeln!(io.stderr, "signed {pinned}")?;
    }
    writeln!(io.stdout, "{pinned}")?;
    Ok(EXIT_OK)
}

/// The metadata layer: what the plugin says about itself, plus its world
/// and WIT package. Loading it also refuses a file that is not a plugin.
async fn plugin_metadata(global: &GlobalArgs, bytes: &[u8], path: &Path) -> Result<Value, Failure> {
    let runtime = build_runtime(global, false)?;
    let plugin = runtime.load(bytes, path).await?;
    let meta = plugin.metadata();
    Ok(json!({
        "name": meta.name,
        "version": meta.version,
        "description": meta.description,
        "world": plugin.world().to_string(),
        "witPackage": plugin.wit_version().map(|v| format!("tessera:plugin@{v}")),
        "kinds": meta.kinds.iter().map(|k| json!({"apiVersion": k.api_version, "kind": k.kind})).collect::<Vec<_>>(),
        "settingsSchema": meta.settings_schema,
        "componentDigest": plugin.digest(),
    }))
}

async fn sign_pinned(
    registry: &tessera_oci::Registry,
    pinned: &Reference,
    key: &signature::PrivateKey,
) -> Result<(), Failure> {
    let digest = pinned
        .digest()
        .ok_or_else(|| Failure(format!("{pinned}: not resolved to a digest")))?;
    let payload = signature::payload(pinned, digest);
    registry
        .push_signature(pinned, &payload, &key.sign(&payload))
        .await?;
    Ok(())
}

/// `tessera pull REF`.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The plugin: oci://REGISTRY/REPO:TAG or @sha256:...
    #[arg(value_name = "REF")]
    reference: String,
    /// Write the component here [default: the repository's last segment
    /// + .wasm].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `tessera pull`: fetches (cache by digest, else registry), verifies
/// with `--verify-key` / `--trust-policy` when given, writes the component.
pub(crate) async fn pull(global: &GlobalArgs, args: PullArgs, io: &mut Stdio<'_>) -> Outcome {
    let (bytes, pinned) = plugin_bytes(global, &args.reference).await?;
    let output = args.output.unwrap_or_else(|| {
        let name = pinned
            .repository()
            .rsplit('/')
            .next()
            .unwrap_or("plugin")
            .to_string();
        PathBuf::from(format!("{name}.wasm"))
    });
    std::fs::write(&output, &bytes)
        .map_err(|e| Failure(format!("{}: cannot write: {e}", output.display())))?;
    writeln!(
        io.stderr,
        "wrote {}",
        Untrusted(&output.display().to_string())
    )?;
    writeln!(io.stdout, "{pinned}")?;
    Ok(EXIT_OK)
}

/// `tessera sign REF --key KEY`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The plugin: oci://REGISTRY/REPO:TAG or @sha256:... (a tag is resolved
    /// once; the digest is what gets signed).
    #[arg(value_name = "REF")]
    reference: String,
    /// The PEM P-256 private key (PKCS#8 or SEC1, unencrypted).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
}

/// Runs `tessera sign`: a cosign-compatible signature on the `.sig` tag.
pub(crate) async fn sign(global: &GlobalArgs, args: SignArgs, io: &mut Stdio<'_>) -> Outcome {
    let reference = parse(&args.reference)?;
    let key = signature::PrivateKey::from_file(&args.key)?;
    let registry = tessera_oci::Registry::new(&global.registry.options(), &reference)?;
    let pinned = registry.resolve(&reference).await?;
    sign_pinned(&registry, &pinned, &key).await?;
    writeln!(io.stdout, "{pinned}")?;
    Ok(EXIT_OK)
}

/// `tessera verify REF --key PUB...`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The plugin: oci://REGISTRY/REPO:TAG or @sha256:...
    #[arg(value_name = "REF")]
    reference: String,
    /// PEM public keys that must each have signed it (repeatable; with
    /// --trust-policy, both must hold).
    #[arg(long, value_name = "PUB")]
    key: Vec<PathBuf>,
}

/// Runs `tessera verify`: checks the registry's signatures of the digest
/// against the keys / policy; prints which keys matched.
pub(crate) async fn verify(global: &GlobalArgs, args: VerifyArgs, io: &mut Stdio<'_>) -> Outcome {
    let reference = parse(&args.reference)?;
    let policy = global.registry.policy(&args.key)?.ok_or_else(|| {
        Failure(format!(
            "{reference}: nothing to verify against: give --key PUB or --trust-policy FILE"
        ))
    })?;
    let registry = tessera_oci::Registry::new(&global.registry.options(), &reference)?;
    let pinned = registry.resolve(&reference).await?;
    let candidates = registry.signatures(&pinned).await?;
    let digest = pinned
        .digest()
        .ok_or_else(|| Failure(format!("{pinned}: not resolved to a digest")))?;
    let keys =
        policy
            .verify(digest, &candidates)
            .map_err(|message| tessera_oci::Error::Untrusted {
                reference: pinned.to_string(),
                message,
            })?;
    writeln!(
        io.stderr,
        "verified {pinned}: signed by {}",
        keys.join(", ")
    )?;
    writeln!(io.stdout, "{pinned}")?;
    Ok(EXIT_OK)
}

/// `tessera test oci://...`: unpacks the artifact's bundled suite under
/// `root/<index>/suite/` and writes its component to
/// `root/<index>/plugins/<name with _>.wasm`, a directory of this reference
/// alone, so the suite runs against exactly the pulled (and verified) bytes.
/// Returns where both are.
pub(crate) async fn bundled_suite(
    global: &GlobalArgs,
    reference: &str,
    root: &Path,
    index: usize,
) -> Result<crate::suite_plugins::Bundle, Failure> {
    let parsed = parse(reference)?;
    let policy = global.registry.policy(&[])?;
    let store = store(global)?;
    let spinner = progress::Spinner::start(format!("pulling {parsed}"));
    let fetched = tessera_oci::fetch(
        &global.registry.options(),
        store.as_ref(),
        &parsed,
        policy.as_ref(),
    )
    .await;
    drop(spinner);
    let pulled = fetched?.pulled;
    let pinned = pulled.reference.to_string();
    let suite = pulled
        .artifact
        .suite
        .as_deref()
        .ok_or_else(|| Failure(format!("{pinned}: the artifact bundles no test suite")))?;
    let name = pulled
        .artifact
        .metadata
        .as_ref()
        .and_then(|m| m["name"].as_str())
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| {
            Failure(format!(
                "{pinned}: the metadata layer names no plugin (letters, digits, - and _)"
            ))
        })?;
    let dir = root.join(index.to_string()).join("suite");
    let plugins = root.join(index.to_string()).join("plugins");
    for d in [&dir, &plugins] {
        std::fs::create_dir_all(d).map_err(|e| Failure(format!("{}: {e}", d.display())))?;
    }
    tessera_oci::unpack_suite(&pinned, suite, &dir)?;
    let file = plugins.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::write(&file, &pulled.artifact.component)
        .map_err(|e| Failure(format!("{}: {e}", file.display())))?;
    Ok(crate::suite_plugins::Bundle {
        suites: dir,
        plugins,
    })
}
