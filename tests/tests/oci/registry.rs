//! Push and pull against a real registry; cross-checked with oras; the
//! cache by digest; a registry that is down, stalls or answers garbage.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{
    Olareg, fake_registry, read, require_labels, run_tool, tessera, tessera_err, tessera_ok, tool,
};

/// A suite for require-labels, self-contained (settings inline), as
/// `tessera push --suite` bundles it.
fn suite_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("require-labels.tessera.yaml"),
        r#"apiVersion: tessera.dev/v1alpha1
kind: TestSuite
cases:
  - name: a labelled object is allowed
    policy:
      plugin: require-labels
      settings: {requiredLabels: [team]}
      object: {apiVersion: v1, kind: ConfigMap, metadata: {name: a, labels: {team: web}}}
    expect: {allowed: true}
  - name: an unlabelled object is denied
    policy:
      plugin: require-labels
      settings: {requiredLabels: [team]}
      object: {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
    expect: {allowed: false}
"#,
    )
    .unwrap();
    dir
}

fn config_map(dir: &std::path::Path, labelled: bool) -> std::path::PathBuf {
    let path = dir.join(if labelled { "ok.yaml" } else { "bad.yaml" });
    let labels = if labelled { "{team: web}" } else { "{}" };
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: flags, labels: {labels}}}\n"),
    )
    .unwrap();
    path
}

fn settings(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("settings.yaml");
    std::fs::write(&path, "requiredLabels: [team]\n").unwrap();
    path
}

#[test]
fn push_then_pull_is_byte_identical_reproducible_and_pinned() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let suite = suite_dir();
    let reference = registry.reference("team/require-labels:1.0");
    let pinned = tessera_ok(
        cache.path(),
        &[
            "push",
            require_labels(),
            &reference,
            "--suite",
            suite.path().to_str().unwrap(),
        ],
    );
    assert!(
        pinned.starts_with(&format!("{reference}@sha256:")),
        "{pinned}"
    );
    // Pushing the same plugin and suite again gives the same digest.
    let again = tessera_ok(
        cache.path(),
        &[
            "push",
            require_labels(),
            &reference,
            "--suite",
            suite.path().to_str().unwrap(),
        ],
    );
    assert_eq!(again, pinned);

    let by_tag = work.path().join("by-tag.wasm");
    let pulled = tessera_ok(
        cache.path(),
        &["pull", &reference, "-o", by_tag.to_str().unwrap()],
    );
    assert_eq!(pulled, pinned);
    assert_eq!(read(&by_tag), read(std::path::Path::new(require_labels())));

    let digest = pinned.rsplit('@').next().unwrap();
    let by_digest = work.path().join("by-digest.wasm");
    let digest_ref = format!("oci://{}/team/require-labels@{digest}", registry.host);
    tessera_ok(
        cache.path(),
        &["pull", &digest_ref, "-o", by_digest.to_str().unwrap()],
    );
    assert_eq!(
        read(&by_digest),
        read(std::path::Path::new(require_labels()))
    );

    // The bundled suite runs against the pulled component.
    let out = tessera(cache.path(), &["test", &digest_ref]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 passed, 0 failed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("an unlabelled object is denied"),
        "{}",
        out.stdout
    );

    // The plugin runs straight from the reference.
    let out = tessera(
        cache.path(),
        &[
            "validate",
            config_map(work.path(), false).to_str().unwrap(),
            "--policy",
            &digest_ref,
            "--settings",
            settings(work.path()).to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.code, 1,
        "an unlabelled ConfigMap is denied:\n{}",
        out.stderr
    );
}

#[test]
fn oras_pulls_what_tessera_pushed_with_the_wasm_media_types() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let reference = registry.reference("wasm/require-labels:v1");
    tessera_ok(cache.path(), &["push", require_labels(), &reference]);
    let plain = reference.trim_start_matches("oci://");

    let manifest = run_tool(Command::new(tool("TESSERA_ORAS")).args([
        "manifest",
        "fetch",
        "--plain-http",
        plain,
    ]));
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.wasm.component.v1+wasm"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.tessera.plugin.metadata.v1+json"
    );

    let out = tempfile::tempdir().unwrap();
    run_tool(
        Command::new(tool("TESSERA_ORAS"))
            .args(["pull", "--plain-http", plain, "-o"])
            .arg(out.path()),
    );
    assert_eq!(
        read(&out.path().join("plugin.wasm")),
        read(std::path::Path::new(require_labels()))
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&read(&out.path().join("tessera-metadata.json"))).unwrap();
    assert_eq!(metadata["name"], "require-labels");
    assert_eq!(metadata["world"], "policy");
}

#[test]
fn tessera_pulls_and_runs_what_oras_pushed() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(require_labels(), work.path().join("policy.wasm")).unwrap();
    std::fs::write(
        work.path().join("config.json"),
        r#"{"architecture":"wasm","os":"wasip2"}"#,
    )
    .unwrap();
    let plain = format!("{}/by-oras/require-labels:1", registry.host);
    run_tool(
        Command::new(tool("TESSERA_ORAS"))
            .current_dir(work.path())
            .args([
                "push",
                "--plain-http",
                &plain,
                "--artifact-type",
                "application/vnd.wasm.component.v1+wasm",
                "--config",
                "config.json:application/vnd.wasm.config.v0+json",
                "policy.wasm:application/wasm",
            ]),
    );
    let reference = format!("oci://{plain}");
    let file = work.path().join("pulled.wasm");
    tessera_ok(
        cache.path(),
        &["pull", &reference, "-o", file.to_str().unwrap()],
    );
    assert_eq!(read(&file), read(std::path::Path::new(require_labels())));
    let out = tessera(
        cache.path(),
        &[
            "validate",
            config_map(work.path(), true).to_str().unwrap(),
            "--policy",
            &reference,
            "--settings",
            settings(work.path()).to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.code, 0,
        "a labelled ConfigMap is allowed:\n{}",
        out.stderr
    );

    // Something oras pushed that is not a Wasm plugin is refused by name.
    std::fs::write(work.path().join("notes.txt"), "hello").unwrap();
    let other = format!("{}/by-oras/notes:1", registry.host);
    run_tool(
        Command::new(tool("TESSERA_ORAS"))
            .current_dir(work.path())
            .args(["push", "--plain-http", &other, "notes.txt:text/plain"]),
    );
    // No suite bundled: `tessera test` says so.
    let error = tessera_err(cache.path(), &["test", &reference]);
    assert!(error.contains("bundles no test suite"), "{error}");

    let error = tessera_err(cache.path(), &["pull", &format!("oci://{other}")]);
    assert!(error.contains(&format!("oci://{other}@sha256:")), "{error}");
    assert!(error.contains("no application/wasm layer"), "{error}");
}

#[test]
fn a_cached_digest_needs_no_network_and_a_tampered_cache_is_not_used() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let reference = registry.reference("offline/require-labels:1");
    let pinned = tessera_ok(cache.path(), &["push", require_labels(), &reference]);
    let digest = pinned.rsplit('@').next().unwrap().to_string();
    let digest_ref = format!("oci://{}/offline/require-labels@{digest}", registry.host);
    let file = work.path().join("a.wasm");
    tessera_ok(
        cache.path(),
        &["pull", &digest_ref, "-o", file.to_str().unwrap()],
    );
    let host = registry.host.clone();
    drop(registry);

    // Offline: the digest comes from the cache and runs.
    let out = tessera(
        cache.path(),
        &[
            "validate",
            config_map(work.path(), true).to_str().unwrap(),
            "--policy",
            &digest_ref,
            "--settings",
            settings(work.path()).to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.code, 0,
        "offline use of a cached digest:\n{}",
        out.stderr
    );
    // A tag needs the registry to resolve it: a clear error naming it.
    let error = tessera_err(cache.path(), &["pull", &reference]);
    assert!(error.contains(&reference), "{error}");

    // One byte of the cached component flipped: not served; the registry is
    // gone, so the pull fails instead of using it.
    let entry = cache
        .path()
        .join("oci")
        .join(digest.replace(':', "-"))
        .join("component.wasm");
    let mut bytes = read(&entry);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&entry, bytes).unwrap();
    let error = tessera_err(
        cache.path(),
        &["pull", &digest_ref, "-o", file.to_str().unwrap()],
    );
    assert!(
        error.contains(&digest_ref) && error.contains(&host),
        "{error}"
    );
}

#[test]
fn a_layer_tampered_in_the_registry_is_refused() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let reference = registry.reference("tamper/require-labels:1");
    tessera_ok(cache.path(), &["push", require_labels(), &reference]);
    let component = tessera_oci::Digest::of(&read(std::path::Path::new(require_labels())));
    let blob = registry.blob_path("tamper/require-labels", component.as_str());
    let mut bytes = read(&blob);
    bytes[100] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let error = tessera_err(cache.path(), &["pull", &reference, "-o", "/dev/null"]);
    assert!(error.contains(&reference), "{error}");
    // Refused by the digest check of the layer, before any byte is used.
    assert!(
        error.contains(&format!("layer {component}")) && error.contains("got sha256:"),
        "{error}"
    );
}

#[test]
fn a_registry_that_is_down_stalls_or_answers_garbage_fails_clearly() {
    let cache = tempfile::tempdir().unwrap();
    // Down: nothing listens on the port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = format!("oci://127.0.0.1:{port}/a/b:1");
    let error = tessera_err(cache.path(), &["pull", &down]);
    assert!(
        error.contains(&down) && error.contains("pulling the manifest"),
        "{error}"
    );

    // Stalled: the deadline fires.
    let stalled = format!("oci://{}/a/b:1", fake_registry(true, ""));
    let start = Instant::now();
    let error = tessera_err(cache.path(), &["--registry-timeout", "2", "pull", &stalled]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(error.contains(&stalled), "{error}");
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "{error}"
    );

    // Garbage: not a manifest, refused by name; one line even though the
    // body has several.
    let garbage = format!(
        "oci://{}/a/b:1",
        fake_registry(false, "<html>\nnot\na registry\n</html>")
    );
    let error = tessera_err(cache.path(), &["pull", &garbage]);
    assert!(error.contains(&garbage), "{error}");
    assert!(error.contains("not an OCI image manifest"), "{error}");
}

#[test]
fn bad_references_and_options_are_one_line_errors_naming_them() {
    let cache = tempfile::tempdir().unwrap();
    let error = tessera_err(cache.path(), &["pull", "oci://127.0.0.1:1/Upper/case:1"]);
    assert!(
        error.contains("oci://127.0.0.1:1/Upper/case:1: the repository must be"),
        "{error}"
    );
    let error = tessera_err(cache.path(), &["pull", "oci://127.0.0.1:1/a/b"]);
    assert!(error.contains("name a tag"), "{error}");

    let bad_config = cache.path().join("docker.json");
    std::fs::write(&bad_config, "{not json").unwrap();
    let error = tessera_err(
        cache.path(),
        &[
            "--registry-config",
            bad_config.to_str().unwrap(),
            "pull",
            "oci://127.0.0.1:1/a/b:1",
        ],
    );
    assert!(
        error.contains(&format!("{}: not JSON", bad_config.display())),
        "{error}"
    );

    // Plain HTTP is only for loopback (or hosts named with
    // --plain-http-host): a non-loopback registry is reached with TLS.
    let options = tessera_oci::RegistryOptions::default().plain_http(true);
    let remote = tessera_oci::Reference::parse("oci://registry.invalid/a/b:1").unwrap();
    assert!(!remote.is_loopback());
    let registry = tessera_oci::Registry::new(&options, &remote).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(registry.resolve(&remote))
        .unwrap_err()
        .to_string();
    assert!(error.contains("https://registry.invalid"), "{error}");
}

#[test]
fn docker_config_credentials_are_sent() {
    // olareg serves anonymously; a fake registry records what it is sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let authorized = request.to_ascii_lowercase().contains("authorization:");
            let _ = tx.send(request);
            // Challenge for Basic credentials, as a registry with auth does.
            let _ = if authorized {
                write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else {
                write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            };
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let config = cache.path().join("config.json");
    // base64("robot:s3cret")
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{host}":{{"auth":"cm9ib3Q6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    let _ = tessera(
        cache.path(),
        &[
            "--registry-config",
            config.to_str().unwrap(),
            "pull",
            &format!("oci://{host}/a/b:1"),
        ],
    );
    let requests: Vec<String> = rx.try_iter().collect();
    assert!(
        requests.iter().any(|r| r
            .to_ascii_lowercase()
            .contains("authorization: basic cm9ib3q6cznjcmv0")),
        "no request carried the credentials:\n{requests:#?}"
    );
}

#[test]
fn children_of_a_pulled_plugin_carry_the_resolved_reference() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let reference = registry.reference("compose/database:2");
    let pinned = tessera_ok(
        cache.path(),
        &["push", tessera_tests::plugins::DATABASE, &reference],
    );
    let composite = tessera_tests::example("database.yaml");
    let out = tessera(
        cache.path(),
        &[
            "render",
            composite.to_str().unwrap(),
            "--plugin",
            &reference,
            "-o",
            "json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let children: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert!(!children.is_empty());
    let component = tessera_oci::Digest::of(&read(std::path::Path::new(
        tessera_tests::plugins::DATABASE,
    )));
    for child in &children {
        let annotations = &child["metadata"]["annotations"];
        // The tag resolved once: the reference with its manifest digest,
        // beside the digest of the component itself.
        assert_eq!(annotations["tessera.dev/plugin-ref"], pinned.as_str());
        assert_eq!(annotations["tessera.dev/plugin-digest"], component.as_str());
    }
    // From a file, no reference is stamped.
    let out = tessera(
        cache.path(),
        &[
            "render",
            composite.to_str().unwrap(),
            "--plugin",
            tessera_tests::plugins::DATABASE,
            "-o",
            "json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let children: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert!(children.iter().all(|c| {
        c["metadata"]["annotations"]
            .get("tessera.dev/plugin-ref")
            .is_none()
    }));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with
/// openssl: (CA PEM, server cert PEM, server key PEM).
fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |name: &str| dir.join(name);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_tool(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem"))
            .args(["-subj", "/CN=tessera-test-ca", "-days", "1"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    run_tool(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr"))
            .args(["-subj", "/CN=127.0.0.1"]),
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run_tool(
        Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .args(["-CAcreateserial", "-days", "1", "-extfile"])
            .arg(p("ext.cnf"))
            .arg("-out")
            .arg(p("server.pem")),
    );
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

#[test]
fn tls_with_a_custom_ca_bundle() {
    let work = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(work.path());
    let registry = Olareg::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let reference = registry.reference("tls/require-labels:1");
    let ca = ca.to_str().unwrap();
    // Trusted through --ca-bundle: push and pull over HTTPS.
    let out = crate::tessera_tls(
        cache.path(),
        &["--ca-bundle", ca, "push", require_labels(), &reference],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let file = work.path().join("p.wasm");
    let out = crate::tessera_tls(
        cache.path(),
        &[
            "--ca-bundle",
            ca,
            "pull",
            &reference,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(read(&file), read(std::path::Path::new(require_labels())));
    // Without the CA the certificate is not trusted: one line, exit 2.
    let out = crate::tessera_tls(cache.path(), &["pull", &reference, "-o", "/dev/null"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&reference), "{}", out.stderr);
    assert!(
        out.stderr.to_ascii_lowercase().contains("certificate"),
        "{}",
        out.stderr
    );
}

/// A downloaded suite that names a file outside its directory, or a plugin
/// by path, is refused before any case runs (it could read `~/.kube/config`
/// as a fixture, overwrite a file as a golden with `--update`, or run an
/// unverified local plugin); `--plugin-dir` cannot replace the pulled
/// plugin.
#[test]
fn a_downloaded_suite_stays_in_its_directory_and_runs_the_pulled_plugin() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.yaml");
    std::fs::write(&victim, "precious: true\n").unwrap();
    let hostile = [
        (
            "objectFile",
            format!(
                "policy: {{plugin: require-labels, objectFile: {}}}",
                victim.display()
            ),
            "policy.objectFile",
        ),
        (
            "golden",
            format!(
                "composition: {{plugin: require-labels}}\n    expect: {{golden: {}}}",
                victim.display()
            ),
            "expect.golden",
        ),
        (
            "settings",
            "policy: {plugin: require-labels, settingsFile: ../../settings.yaml, object: {}}"
                .to_string(),
            "policy.settingsFile",
        ),
        (
            "plugin",
            format!("policy: {{plugin: {}, object: {{}}}}", require_labels()),
            "policy.plugin",
        ),
    ];
    for (tag, case, field) in hostile {
        let suite = tempfile::tempdir().unwrap();
        std::fs::write(
            suite.path().join("hostile.tessera.yaml"),
            format!(
                "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n  - name: steal\n    {case}\n"
            ),
        )
        .unwrap();
        let reference = registry.reference(&format!("hostile/require-labels:{tag}"));
        tessera_ok(
            cache.path(),
            &[
                "push",
                require_labels(),
                &reference,
                "--suite",
                suite.path().to_str().unwrap(),
            ],
        );
        let error = tessera_err(cache.path(), &["test", "--update", &reference]);
        assert!(
            error.contains("hostile.tessera.yaml: case 0 (\"steal\")"),
            "{error}"
        );
        assert!(error.contains(&format!("{field}: ")), "{error}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious: true\n"
        );
    }

    // --plugin-dir would run other bytes than the pulled ones.
    let suite = suite_dir();
    let reference = registry.reference("team/require-labels:plugin-dir");
    tessera_ok(
        cache.path(),
        &[
            "push",
            require_labels(),
            &reference,
            "--suite",
            suite.path().to_str().unwrap(),
        ],
    );
    let error = tessera_err(
        cache.path(),
        &[
            "test",
            "--plugin-dir",
            outside.path().to_str().unwrap(),
            &reference,
        ],
    );
    assert!(
        error.contains("--plugin-dir cannot be used with oci://"),
        "{error}"
    );
    // Two references of the same plugin each run their own pulled copy.
    let out = tessera(cache.path(), &["test", &reference, &reference]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("4 passed, 0 failed"), "{}", out.stdout);
}
