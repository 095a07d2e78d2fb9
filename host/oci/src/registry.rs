//! The registry client: push and pull plugin artifacts and their
//! signatures over the OCI distribution API (through `oci-client`), with
//! credentials from Docker's config file, a custom CA bundle, plain HTTP
//! only where allowed, and a deadline on every operation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};

use crate::artifact::{self, Artifact, Blob, Descriptor, MANIFEST_MEDIA_TYPE, Manifest};
use crate::signature::{self, Candidate, PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION};
use crate::{Digest, Error, Reference};

/// The deadline of one registry operation unless configured: long enough
/// for a plugin of a few MiB on a slow link, short enough that a stalled
/// registry fails a command instead of hanging it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The connect deadline: a registry that does not accept a connection in
/// this long is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most signature manifests (the `.sig` tag's and the referrers API's
/// together) and the most signature payloads one lookup reads: a registry
/// listing more is refused rather than followed without end.
pub const MAX_SIGNATURE_CANDIDATES: usize = 64;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Docker configs given as text (e.g. pull secrets), searched in order
    /// before the file: (name for errors, JSON).
    docker_configs: Vec<(String, String)>,
    docker_config: Option<PathBuf>,
    ca_bundle: Option<PathBuf>,
    plain_http: bool,
    plain_http_hosts: Vec<String>,
    timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            docker_configs: Vec::new(),
            docker_config: None,
            ca_bundle: None,
            plain_http: false,
            plain_http_hosts: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RegistryOptions {
    /// Reads credentials from this Docker config file instead of
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    #[must_use]
    pub fn docker_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.docker_config = Some(path.into());
        self
    }

    /// Also uses the credentials of this Docker config JSON (the
    /// `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret),
    /// named `name` in errors. Configs given this way are searched in the
    /// order given, before the config file; the first with an entry for the
    /// registry wins.
    #[must_use]
    pub fn docker_config_json(mut self, name: impl Into<String>, json: impl Into<String>) -> Self {
        self.docker_configs.push((name.into(), json.into()));
        self
    }

    /// Trusts the CA certificates in this PEM bundle, besides the system's.
    #[must_use]
    pub fn ca_bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_bundle = Some(path.into());
        self
    }

    /// Speaks plain HTTP to loopback registries (`localhost`, `127.0.0.1`,
    /// `[::1]`); any other registry still needs TLS unless named with
    /// [`RegistryOptions::plain_http_host`].
    #[must_use]
    pub fn plain_http(mut self, enable: bool) -> Self {
        self.plain_http = enable;
        self
    }

    /// Speaks plain HTTP to this registry (`HOST[:PORT]`), named explicitly.
    #[must_use]
    pub fn plain_http_host(mut self, host: impl Into<String>) -> Self {
        self.plain_http_hosts.push(host.into());
        self
    }

    /// The deadline of each operation (resolve, pull, push, signatures).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn config_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.docker_config {
            return Some(path.clone());
        }
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// The credentials for `registry`: from the first Docker config given as
    /// text ([`RegistryOptions::docker_config_json`]) with an entry for it,
    /// else from the Docker config file: the `auths` entry's `auth` (base64
    /// `user:password`) or `username` and `password`, or `identitytoken` as
    /// a bearer token. A missing file means anonymous; a malformed config is
    /// an error naming it. Credential helpers (`credsStore`, `credHelpers`)
    /// are not run.
    fn credentials(&self, registry: &str) -> Result<RegistryAuth, Error> {
        for (name, text) in &self.docker_configs {
            if let Some(auth) = auth_entry(name, text, registry)? {
                return Ok(auth);
            }
        }
        let Some(path) = self.config_path() else {
            return Ok(RegistryAuth::Anonymous);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.docker_config.is_none() => {
                return Ok(RegistryAuth::Anonymous);
            }
            Err(e) => return Err(config_error(&path, format!("cannot read: {e}"))),
        };
        let name = path.display().to_string();
        Ok(auth_entry(&name, &text, registry)?.unwrap_or(RegistryAuth::Anonymous))
    }
}

/// The credentials the Docker config `text` (named `name` in errors) holds
/// for `registry`; `None` when it has no entry for it.
fn auth_entry(name: &str, text: &str, registry: &str) -> Result<Option<RegistryAuth>, Error> {
    let bad = |message: String| Error::RegistryConfig {
        file: name.to_string(),
        message,
    };
    let config: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let auths = config.get("auths").and_then(Value::as_object);
    let entry = auths.and_then(|auths| {
        auths.iter().find_map(|(key, value)| {
            let host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or("");
            (host == registry).then_some(value)
        })
    });
    let Some(entry) = entry else {
        return Ok(None);
    };
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(RegistryAuth::Bearer(token.to_string())));
    }
    if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad(format!("auths.{registry}.auth is not base64 user:password")))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad(format!("auths.{registry}.auth is not user:password")))?;
        return Ok(Some(RegistryAuth::Basic(
            user.to_string(),
            password.to_string(),
        )));
    }
    match (field("username"), field("password")) {
        (Some(user), Some(password)) => Ok(Some(RegistryAuth::Basic(
            user.to_string(),
            password.to_string(),
        ))),
        _ => Ok(None),
    }
}

fn config_error(path: &Path, message: String) -> Error {
    Error::RegistryConfig {
        file: path.display().to_string(),
        message,
    }
}

/// A client for one registry host.
pub struct Registry {
    client: oci_client::Client,
    /// The HTTP client manifests and the referrers index are fetched with
    /// (same CA bundle and timeouts as `client`), so that their bodies are
    /// read in chunks and refused past the size limit instead of read whole.
    http: reqwest::Client,
    /// `http://` or `https://`, as `client` speaks to this registry.
    scheme: &'static str,
    auth: RegistryAuth,
    timeout: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// An artifact pulled and checked: every blob matched its digest and the
/// manifest matched the reference's digest.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference, pinned to the manifest's digest.
    pub reference: Reference,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The artifact.
    pub artifact: Artifact,
    /// The metadata layer's bytes as pulled (what its digest in the
    /// manifest is of), kept so that the store writes exactly them.
    pub metadata_bytes: Option<Vec<u8>>,
}

impl Registry {
    /// A client for the registry `reference` names. Plain HTTP only if the
    /// options allow it for that host.
    pub fn new(options: &RegistryOptions, reference: &Reference) -> Result<Registry, Error> {
        // reqwest is built without a bundled crypto provider; ring is the
        // one the rest of Tessera uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = reference.registry().to_string();
        let plain = options.plain_http_hosts.contains(&host)
            || (options.plain_http && reference.is_loopback());
        let scheme = if plain { "http" } else { "https" };
        let mut http = reqwest::Client::builder()
            .read_timeout(options.timeout)
            .connect_timeout(CONNECT_TIMEOUT);
        let mut config = ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![host])
            } else {
                ClientProtocol::Https
            },
            read_timeout: Some(options.timeout),
            connect_timeout: Some(CONNECT_TIMEOUT),
            platform_resolver: None,
            ..ClientConfig::default()
        };
        if let Some(bundle) = &options.ca_bundle {
            let pem = std::fs::read(bundle).map_err(|e| Error::Io {
                path: bundle.clone(),
                source: e,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                config_error(
                    bundle,
                    format!("not a PEM CA bundle: {}", crate::one_line(&e.to_string())),
                )
            })?;
            http = http.tls_certs_merge(certs);
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem,
            });
        }
        let client = oci_client::Client::try_from(config).map_err(|e| Error::Registry {
            reference: reference.to_string(),
            message: format!(
                "cannot configure the client: {}",
                crate::one_line(&e.to_string())
            ),
        })?;
        let http = http.build().map_err(|e| Error::Registry {
            reference: reference.to_string(),
            message: format!(
                "cannot configure the client: {}",
                crate::one_line(&e.to_string())
            ),
        })?;
        Ok(Registry {
            client,
            http,
            scheme,
            auth: options.credentials(reference.registry())?,
            timeout: options.timeout,
        })
    }

    async fn deadline<T>(
        &self,
        reference: &Reference,
        what: &str,
        future: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.timeout, future)
            .await
            .map_err(|_| Error::Timeout {
                reference: reference.to_string(),
                what: what.to_string(),
                after: self.timeout,
            })?
    }

    /// The manifest bytes `reference` names and their digest (computed
    /// here, never taken from the registry's headers). A digest reference
    /// whose bytes do not hash to it is refused.
    async fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, Digest), Error> {
        let target = reference.to_client();
        let name = target
            .digest()
            .or(target.tag())
            .unwrap_or("latest")
            .to_string();
        let bytes = self
            .get_small(
                reference,
                "manifests",
                &name,
                MANIFEST_ACCEPT,
                "the manifest",
            )
            .await?
            .ok_or_else(|| Error::NotFound {
                reference: reference.to_string(),
            })?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest()
            && *expected != digest
        {
            return Err(Error::Artifact {
                reference: reference.to_string(),
                message: format!("the registry served a manifest whose digest is {digest}"),
            });
        }
        Ok((bytes, digest))
    }

    /// GETs `/v2/<repository>/<kind>/<name>` (a manifest, or the referrers
    /// of a digest) and reads at most [`artifact::MAX_SMALL_BYTES`] of the
    /// answer: a `Content-Length` over it is refused before the body is
    /// read, and a body that runs past it is refused as soon as it does.
    /// `None` when the registry answers 404.
    async fn get_small(
        &self,
        reference: &Reference,
        kind: &str,
        name: &str,
        accept: &[&str],
        what: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let max = artifact::MAX_SMALL_BYTES;
        let target = reference.to_client();
        let registry = target.resolve_registry();
        let url = format!(
            "{}://{registry}/v2/{}/{kind}/{name}",
            self.scheme,
            target.repository()
        );
        let failed = |message: String| Error::Registry {
            reference: reference.to_string(),
            message: format!("pulling {what}: {}", crate::one_line(&message)),
        };
        let too_big = || Error::Artifact {
            reference: reference.to_string(),
            message: format!("{what} is over the {max}-byte limit"),
        };
        let mut request = self
            .http
            .get(&url)
            .header(http::header::ACCEPT, accept.join(", "));
        // oci-client's token exchange (it answers a bearer token, or none
        // where the registry takes Basic or nothing); failing that, the
        // credentials as they are.
        let token = self
            .client
            .auth(&target, &self.auth, oci_client::RegistryOperation::Pull)
            .await
            .ok()
            .flatten();
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, RegistryAuth::Bearer(token)) => request.bearer_auth(token),
            (None, _) => request,
        };
        let mut response = request.send().await.map_err(|e| failed(error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            // The distribution API's error envelope, read only as far as
            // 64 KiB: MANIFEST_UNKNOWN and the like mean absent whatever the
            // status; any other code is shown.
            let mut body = Vec::new();
            while body.len() < 64 << 10
                && let Ok(Some(chunk)) = response.chunk().await
            {
                body.extend_from_slice(&chunk);
            }
            let codes: Vec<String> = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e.get("code").and_then(Value::as_str).map(str::to_string))
                .collect();
            if codes.iter().any(|c| {
                matches!(
                    c.as_str(),
                    "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "NOT_FOUND"
                )
            }) {
                return Ok(None);
            }
            let codes = if codes.is_empty() {
                String::new()
            } else {
                format!(" ({})", codes.join(", "))
            };
            return Err(failed(format!("the registry answered {status}{codes}")));
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(error_chain(&e)))?
        {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// The referrers index of `pinned` (a digest reference) listing
    /// `artifact_type`: the referrers API, or where the registry has none
    /// (404) the referrers tag schema (`sha256-<hex>`, filtered here). An
    /// index that is absent either way is empty.
    async fn referrers(
        &self,
        pinned: &Reference,
        digest: &Digest,
        artifact_type: &str,
    ) -> Result<Vec<oci_client::manifest::ImageIndexEntry>, Error> {
        let parse = |bytes: &[u8]| {
            serde_json::from_slice::<oci_client::manifest::OciImageIndex>(bytes).map_err(|e| {
                Error::Registry {
                    reference: pinned.to_string(),
                    message: format!(
                        "the referrers index is not an image index: {}",
                        crate::one_line(&e.to_string())
                    ),
                }
            })
        };
        let encoded: String = artifact_type
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let query = format!("{}?artifactType={encoded}", digest.as_str());
        if let Some(bytes) = self
            .get_small(
                pinned,
                "referrers",
                &query,
                &[INDEX_MEDIA_TYPE],
                "the referrers index",
            )
            .await?
        {
            return Ok(parse(&bytes)?.manifests);
        }
        let tag = pinned.with_tag(&digest.as_str().replace(':', "-"));
        let target = tag.to_client();
        let name = target
            .digest()
            .or(target.tag())
            .unwrap_or("latest")
            .to_string();
        let Some(bytes) = self
            .get_small(
                &tag,
                "manifests",
                &name,
                &[INDEX_MEDIA_TYPE],
                "the referrers index",
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        let Ok(index) = parse(&bytes) else {
            return Ok(Vec::new());
        };
        Ok(index
            .manifests
            .into_iter()
            .filter(|m| m.artifact_type.as_deref() == Some(artifact_type))
            .collect())
    }

    /// Resolves `reference` to its digest (a digest reference is checked to
    /// exist). A tag is resolved once; use the returned reference afterwards.
    pub async fn resolve(&self, reference: &Reference) -> Result<Reference, Error> {
        self.deadline(reference, "resolving", async {
            let (_, digest) = self.manifest(reference).await?;
            Ok(reference.with_digest(digest))
        })
        .await
    }

    async fn blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        max: u64,
    ) -> Result<Vec<u8>, Error> {
        let too_big = || Error::Artifact {
            reference: reference.to_string(),
            message: format!(
                "layer {} ({}) is over the {max}-byte limit",
                descriptor.digest, descriptor.media_type
            ),
        };
        if descriptor.size > max {
            return Err(too_big());
        }
        let mut stream = self
            .client
            .pull_blob_stream(&reference.to_client(), descriptor.digest.as_str())
            .await
            .map_err(|e| registry_error(reference, "pulling a layer", e))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.stream.next().await {
            let chunk = chunk.map_err(|e| Error::Registry {
                reference: reference.to_string(),
                message: format!(
                    "pulling layer {}: {}",
                    descriptor.digest,
                    crate::one_line(&e.to_string())
                ),
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(too_big());
            }
        }
        let actual = Digest::of(&bytes);
        if actual.as_str() != descriptor.digest {
            return Err(Error::Artifact {
                reference: reference.to_string(),
                message: format!(
                    "layer {} ({}) does not match its digest (got {actual})",
                    descriptor.digest, descriptor.media_type
                ),
            });
        }
        Ok(bytes)
    }

    /// Pulls the plugin artifact `reference` names, checking every digest.
    pub async fn pull(&self, reference: &Reference) -> Result<Pulled, Error> {
        self.deadline(reference, "pulling", async {
            let (manifest, digest) = self.manifest(reference).await?;
            let pinned = reference.with_digest(digest);
            let shown = pinned.to_string();
            let (component, metadata, suite) = artifact::plugin_layers(&shown, &manifest)?;
            let component = self
                .blob(&pinned, &component, artifact::MAX_COMPONENT_BYTES)
                .await?;
            let metadata_bytes = match metadata {
                Some(d) => Some(self.blob(&pinned, &d, artifact::MAX_SMALL_BYTES).await?),
                None => None,
            };
            let metadata = match &metadata_bytes {
                Some(bytes) => {
                    Some(serde_json::from_slice(bytes).map_err(|e| Error::Artifact {
                        reference: shown.clone(),
                        message: format!("the metadata layer is not JSON: {e}"),
                    })?)
                }
                None => None,
            };
            let suite = match suite {
                Some(d) => Some(self.blob(&pinned, &d, artifact::MAX_SUITE_BYTES).await?),
                None => None,
            };
            Ok(Pulled {
                reference: pinned,
                manifest,
                artifact: Artifact {
                    component,
                    metadata,
                    suite,
                },
                metadata_bytes,
            })
        })
        .await
    }

    async fn push_blobs(&self, reference: &Reference, blobs: &[&Blob]) -> Result<(), Error> {
        let target = reference.to_client();
        for blob in blobs {
            let digest = Digest::of(&blob.bytes).to_string();
            let exists = self
                .client
                .blob_exists(&target, &digest)
                .await
                .unwrap_or(false);
            if !exists {
                self.client
                    .push_blob(&target, blob.bytes.clone(), &digest)
                    .await
                    .map_err(|e| registry_error(reference, "pushing a layer", e))?;
            }
        }
        Ok(())
    }

    async fn push_manifest(&self, reference: &Reference, bytes: Vec<u8>) -> Result<(), Error> {
        // Authenticate for push first (oci-client does so lazily on blob
        // operations but not on a bare manifest put).
        let _ = self
            .client
            .auth(
                &reference.to_client(),
                &self.auth,
                oci_client::RegistryOperation::Push,
            )
            .await;
        self.client
            .push_manifest_raw(
                &reference.to_client(),
                bytes,
                http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(|e| registry_error(reference, "pushing the manifest", e))?;
        Ok(())
    }

    /// Pushes `artifact` under `reference` (a tag; a digest reference must
    /// match the artifact's digest) and returns the reference pinned to the
    /// digest it got.
    pub async fn push(
        &self,
        reference: &Reference,
        artifact: &Artifact,
    ) -> Result<Reference, Error> {
        self.deadline(reference, "pushing", async {
            let (config, layers) = artifact.blobs();
            let manifest = Artifact::manifest(&config, &layers);
            let digest = Digest::of(&manifest);
            if let Some(expected) = reference.digest()
                && *expected != digest
            {
                return Err(Error::Artifact {
                    reference: reference.to_string(),
                    message: format!("the artifact's digest is {digest}"),
                });
            }
            self.client
                .store_auth_if_needed(reference.registry(), &self.auth)
                .await;
            let mut all: Vec<&Blob> = layers.iter().collect();
            all.push(&config);
            self.push_blobs(reference, &all).await?;
            self.push_manifest(reference, manifest).await?;
            Ok(reference.with_digest(digest))
        })
        .await
    }

    /// The signatures stored for the artifact `pinned` (a reference with a
    /// digest): the layers of cosign's `sha256-<hex>.sig` manifest and of
    /// every cosign signature the referrers API lists. Each payload is
    /// digest-checked here; whether it is a valid signature is the trust
    /// policy's call.
    pub async fn signatures(&self, pinned: &Reference) -> Result<Vec<Candidate>, Error> {
        let digest = pinned.digest().cloned().ok_or_else(|| Error::Reference {
            reference: pinned.to_string(),
            message: "signatures are looked up by digest".into(),
        })?;
        self.deadline(pinned, "looking up signatures", async {
            let mut manifests = Vec::new();
            let tag = pinned.with_tag(&signature::signature_tag(&digest));
            match self.manifest(&tag).await {
                Ok((bytes, _)) => manifests.push(bytes),
                Err(Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::Registry {
                        reference: pinned.to_string(),
                        message: format!("looking up signatures: {e}"),
                    });
                }
            }
            // The referrers API (with the fallback to the referrers tag
            // schema). A registry without either answers an empty index;
            // an error here only means fewer signatures, never a pass.
            let index = match self
                .referrers(pinned, &digest, signature::SIGNATURE_ARTIFACT_TYPE)
                .await
            {
                Ok(index) => Some(index),
                // An index too large to read is refused, like one listing
                // too many signatures.
                Err(Error::Artifact { message, .. }) => {
                    return Err(Error::Registry {
                        reference: pinned.to_string(),
                        message: format!("looking up signatures: {message}"),
                    });
                }
                Err(_) => None,
            };
            if let Some(index) = index {
                let listed = manifests.len() + index.len();
                if listed > MAX_SIGNATURE_CANDIDATES {
                    return Err(Error::Registry {
                        reference: pinned.to_string(),
                        message: format!(
                            "looking up signatures: the registry lists {listed} signature \
                             manifests, over the limit of {MAX_SIGNATURE_CANDIDATES}"
                        ),
                    });
                }
                for entry in index {
                    if let Some(d) = Digest::parse(&entry.digest)
                        && let Ok((bytes, _)) = self.manifest(&pinned.with_digest(d)).await
                    {
                        manifests.push(bytes);
                    }
                }
            }
            let mut candidates: Vec<Candidate> = Vec::new();
            let mut payloads = 0usize;
            for bytes in manifests {
                let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
                    continue;
                };
                for layer in manifest.layers {
                    if layer.media_type != PAYLOAD_MEDIA_TYPE {
                        continue;
                    }
                    let Some(sig) = layer
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
                        .cloned()
                    else {
                        continue;
                    };
                    payloads += 1;
                    if payloads > MAX_SIGNATURE_CANDIDATES {
                        return Err(Error::Registry {
                            reference: pinned.to_string(),
                            message: format!(
                                "looking up signatures: more than {MAX_SIGNATURE_CANDIDATES} \
                                 signature payloads"
                            ),
                        });
                    }
                    // A payload that cannot be read (missing, too large, not
                    // its digest) only drops this candidate: fewer
                    // signatures, never a pass.
                    let Ok(payload) = self.blob(pinned, &layer, artifact::MAX_SMALL_BYTES).await
                    else {
                        continue;
                    };
                    let candidate = Candidate {
                        payload,
                        signature: sig,
                    };
                    if !candidates.contains(&candidate) {
                        candidates.push(candidate);
                    }
                }
            }
            Ok(candidates)
        })
        .await
    }

    /// Adds a signature of the artifact `pinned` to cosign's
    /// `sha256-<hex>.sig` manifest (keeping the signatures already there),
    /// with the artifact as its `subject` so that registries with the
    /// referrers API list it too.
    pub async fn push_signature(
        &self,
        pinned: &Reference,
        payload: &[u8],
        signature: &str,
    ) -> Result<Reference, Error> {
        let digest = pinned.digest().cloned().ok_or_else(|| Error::Reference {
            reference: pinned.to_string(),
            message: "sign a reference resolved to its digest".into(),
        })?;
        self.deadline(pinned, "pushing the signature", async {
            let (subject_bytes, _) = self.manifest(pinned).await?;
            let tag = pinned.with_tag(&signature::signature_tag(&digest));
            let mut layers: Vec<Descriptor> = match self.manifest(&tag).await {
                Ok((bytes, _)) => serde_json::from_slice::<Manifest>(&bytes)
                    .map(|m| m.layers)
                    .unwrap_or_default(),
                Err(Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            let payload_blob = Blob {
                media_type: PAYLOAD_MEDIA_TYPE,
                bytes: payload.to_vec(),
                title: None,
            };
            let mut layer = payload_blob.descriptor();
            layer.annotations = Some(BTreeMap::from([(
                SIGNATURE_ANNOTATION.to_string(),
                signature.to_string(),
            )]));
            layers.retain(|l| l != &layer);
            layers.push(layer);
            // cosign's signature config: an image config whose rootfs lists
            // the payload layers.
            let config = json!({
                "architecture": "",
                "config": {},
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {
                    "type": "layers",
                    "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
                },
            });
            let config = Blob {
                media_type: "application/vnd.oci.image.config.v1+json",
                bytes: serde_json::to_vec(&config).unwrap_or_default(),
                title: None,
            };
            self.client
                .store_auth_if_needed(pinned.registry(), &self.auth)
                .await;
            self.push_blobs(pinned, &[&payload_blob, &config]).await?;
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MANIFEST_MEDIA_TYPE.into()),
                artifact_type: Some(signature::SIGNATURE_ARTIFACT_TYPE.into()),
                config: config.descriptor(),
                layers,
                subject: Some(Descriptor {
                    media_type: MANIFEST_MEDIA_TYPE.into(),
                    digest: digest.to_string(),
                    size: subject_bytes.len() as u64,
                    annotations: None,
                }),
                annotations: None,
            };
            self.push_manifest(&tag, serde_json::to_vec(&manifest).unwrap_or_default())
                .await?;
            Ok(tag)
        })
        .await
    }
}

/// The manifest media types a manifest GET accepts.
const MANIFEST_ACCEPT: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The media type of the referrers index.
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// An error and its causes, as one string.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn registry_error(
    reference: &Reference,
    what: &str,
    error: oci_client::errors::OciDistributionError,
) -> Error {
    use std::error::Error as _;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    Error::Registry {
        reference: reference.to_string(),
        message: format!("{what}: {}", crate::one_line(&message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker configs given as text (pull secrets) come first, in order;
    /// one without an entry for the registry is passed over; the file is
    /// the last resort; a malformed text is an error naming it.
    #[test]
    fn pull_secrets_are_searched_in_order_before_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            r#"{"auths": {"a.example": {"username": "file", "password": "f"},
                          "b.example": {"username": "file", "password": "f"}}}"#,
        )
        .unwrap();
        let options = RegistryOptions::default()
            .docker_config(&file)
            .docker_config_json("first", r#"{"auths": {"other.example": {"auth": "eDp5"}}}"#)
            .docker_config_json(
                "second",
                r#"{"auths": {"https://a.example/v1/": {"auth": "c2Vjb25kOnM="}}}"#,
            );
        let basic = |auth: RegistryAuth| match auth {
            RegistryAuth::Basic(user, password) => format!("{user}:{password}"),
            other => format!("{other:?}"),
        };
        assert_eq!(basic(options.credentials("a.example").unwrap()), "second:s");
        assert_eq!(basic(options.credentials("b.example").unwrap()), "file:f");
        assert_eq!(basic(options.credentials("other.example").unwrap()), "x:y");
        let broken = RegistryOptions::default()
            .docker_config(&file)
            .docker_config_json("plugin.pullSecrets[0]", "{not json");
        let error = broken.credentials("a.example").unwrap_err().to_string();
        assert!(
            error.starts_with("plugin.pullSecrets[0]: not JSON"),
            "{error}"
        );
    }
}
