//! Signatures, cross-checked with independent signers: openssl (`dgst
//! -sha256 -sign` / `-verify`) and cosign (`sign --key` / `verify --key`),
//! in both directions; tampering, untrusted keys, `minimumMatches`; the
//! `.sig` tag fallback (olareg without the referrers API) and the referrers
//! API alone (the `.sig` tag deleted).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use tessera_oci::{Reference, Registry, RegistryOptions, signature};

use crate::{Olareg, openssl_key, read, require_labels, run_tool, tessera_err, tessera_ok, tool};

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

fn options() -> RegistryOptions {
    RegistryOptions::default().plain_http(true)
}

/// Pushes require-labels and returns the pinned reference.
fn pushed(registry: &Olareg, cache: &Path, repo_tag: &str) -> String {
    tessera_ok(
        cache,
        &["push", require_labels(), &registry.reference(repo_tag)],
    )
}

/// Signs `payload` with openssl and attaches it as a cosign signature.
fn attach_openssl_signature(pinned: &str, private: &Path, payload: &[u8], work: &Path) {
    let payload_file = work.join("payload.json");
    std::fs::write(&payload_file, payload).unwrap();
    let sig_file = work.join("payload.sig");
    run_tool(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(private)
            .arg("-out")
            .arg(&sig_file)
            .arg(&payload_file),
    );
    let signature = base64::engine::general_purpose::STANDARD.encode(read(&sig_file));
    let reference = Reference::parse(pinned).unwrap();
    let registry = Registry::new(&options(), &reference).unwrap();
    block_on(registry.push_signature(&reference, payload, &signature)).unwrap();
}

fn payload_for(pinned: &str) -> Vec<u8> {
    let reference = Reference::parse(pinned).unwrap();
    signature::payload(&reference, reference.digest().unwrap())
}

#[test]
fn an_openssl_signature_verifies_and_a_tessera_signature_verifies_with_openssl() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (release, release_pub) = openssl_key(work.path(), "release");
    let pinned = pushed(&registry, cache.path(), "sig/require-labels:1");

    // Signed by openssl: Tessera verifies it.
    attach_openssl_signature(&pinned, &release, &payload_for(&pinned), work.path());
    let out = tessera_ok(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    assert_eq!(out, pinned);

    // Signed by Tessera: openssl verifies the signature over the payload.
    let (team, team_pub) = openssl_key(work.path(), "team");
    tessera_ok(
        cache.path(),
        &["sign", &pinned, "--key", team.to_str().unwrap()],
    );
    let reference = Reference::parse(&pinned).unwrap();
    let registry_client = Registry::new(&options(), &reference).unwrap();
    let candidates = block_on(registry_client.signatures(&reference)).unwrap();
    assert_eq!(
        candidates.len(),
        2,
        "both signatures are kept on the .sig tag"
    );
    let verified_by_openssl = candidates
        .iter()
        .filter(|c| {
            let payload = work.path().join("p.json");
            let sig = work.path().join("p.sig");
            std::fs::write(&payload, &c.payload).unwrap();
            std::fs::write(
                &sig,
                base64::engine::general_purpose::STANDARD
                    .decode(&c.signature)
                    .unwrap(),
            )
            .unwrap();
            Command::new("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(&team_pub)
                .arg("-signature")
                .arg(&sig)
                .arg(&payload)
                .output()
                .unwrap()
                .status
                .success()
        })
        .count();
    assert_eq!(
        verified_by_openssl, 1,
        "exactly Tessera's signature is by the team key"
    );
    let payload: serde_json::Value = serde_json::from_slice(&candidates[1].payload).unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        pinned.rsplit('@').next().unwrap()
    );
    assert_eq!(
        payload["critical"]["type"],
        "cosign container image signature"
    );

    // Both keys, as allOf: accepted; and a plugin verified on load.
    tessera_ok(
        cache.path(),
        &[
            "verify",
            &pinned,
            "--key",
            release_pub.to_str().unwrap(),
            "--key",
            team_pub.to_str().unwrap(),
        ],
    );
    tessera_ok(
        cache.path(),
        &[
            "--verify-key",
            team_pub.to_str().unwrap(),
            "inspect",
            &pinned,
        ],
    );
}

#[test]
fn tampered_unsigned_and_untrusted_are_refused_naming_the_key() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (release, release_pub) = openssl_key(work.path(), "release");
    let (_, stranger_pub) = openssl_key(work.path(), "stranger");
    let pinned = pushed(&registry, cache.path(), "tamper/require-labels:1");

    // Unsigned.
    let error = tessera_err(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    assert!(
        error.contains(&pinned) && error.contains("unsigned"),
        "{error}"
    );
    // And not loaded: verification happens before compiling.
    let error = tessera_err(
        cache.path(),
        &[
            "--verify-key",
            release_pub.to_str().unwrap(),
            "inspect",
            &pinned,
        ],
    );
    assert!(
        error.contains(&pinned) && error.contains("unsigned"),
        "{error}"
    );

    // The payload with one byte changed (still valid JSON), signed bytes
    // kept: refused.
    let payload = payload_for(&pinned);
    let payload_file = work.path().join("orig.json");
    std::fs::write(&payload_file, &payload).unwrap();
    let sig_file = work.path().join("orig.sig");
    run_tool(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&release)
            .arg("-out")
            .arg(&sig_file)
            .arg(&payload_file),
    );
    let good_sig = read(&sig_file);
    let mut tampered = payload.clone();
    let at = tampered.iter().position(|&b| b == b'c').unwrap();
    tampered[at] = b'C';
    let reference = Reference::parse(&pinned).unwrap();
    let client = Registry::new(&options(), &reference).unwrap();
    block_on(client.push_signature(
        &reference,
        &tampered,
        &base64::engine::general_purpose::STANDARD.encode(&good_sig),
    ))
    .unwrap();
    let error = tessera_err(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    assert!(error.contains(&pinned), "{error}");
    assert!(
        error.contains(&format!("key {} (allOf)", release_pub.display()))
            && error.contains("does not match"),
        "{error}"
    );

    // The signature with one byte changed: refused.
    let mut bad_sig = good_sig.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    block_on(client.push_signature(
        &reference,
        &payload,
        &base64::engine::general_purpose::STANDARD.encode(&bad_sig),
    ))
    .unwrap();
    let error = tessera_err(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    assert!(
        error.contains(&release_pub.display().to_string()),
        "{error}"
    );

    // A valid signature of another artifact's digest, attached here: refused.
    let other = tessera_ok(
        cache.path(),
        &[
            "push",
            tessera_tests::plugins::DATABASE,
            &registry.reference("tamper/other:1"),
        ],
    );
    assert_ne!(other.rsplit('@').next(), pinned.rsplit('@').next());
    attach_openssl_signature(&pinned, &release, &payload_for(&other), work.path());
    let error = tessera_err(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    assert!(error.contains("not this artifact"), "{error}");

    // The genuine signature: accepted; a key nobody signed with: refused.
    attach_openssl_signature(&pinned, &release, &payload, work.path());
    tessera_ok(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    let error = tessera_err(
        cache.path(),
        &["verify", &pinned, "--key", stranger_pub.to_str().unwrap()],
    );
    assert!(
        error.contains(&format!("key {} (allOf)", stranger_pub.display())),
        "{error}"
    );
}

#[test]
fn minimum_matches_is_counted_and_all_of_names_the_missing_key() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let keys: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| openssl_key(work.path(), n))
        .collect();
    let pinned = pushed(&registry, cache.path(), "quorum/require-labels:1");
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: v1\nanyOf:\n  minimumMatches: 2\n  signatures:\n    - {kind: pubKey, path: a.pub}\n    - {kind: pubKey, path: b.pub}\n    - {kind: pubKey, path: c.pub}\n",
    )
    .unwrap();
    tessera_ok(
        cache.path(),
        &["sign", &pinned, "--key", keys[0].0.to_str().unwrap()],
    );
    let error = tessera_err(
        cache.path(),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "verify",
            &pinned,
        ],
    );
    assert!(
        error.contains("anyOf: 1 of the keys matched, 2 needed"),
        "{error}"
    );
    tessera_ok(
        cache.path(),
        &["sign", &pinned, "--key", keys[2].0.to_str().unwrap()],
    );
    let out = crate::tessera(
        cache.path(),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "verify",
            &pinned,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("a.pub") && out.stderr.contains("c.pub"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("b.pub"), "{}", out.stderr);

    // allOf with a key that did not sign: refused, naming it.
    let all_of = work.path().join("all-of.yaml");
    std::fs::write(
        &all_of,
        "allOf:\n  - {kind: pubKey, path: a.pub}\n  - {kind: pubKey, path: b.pub}\n",
    )
    .unwrap();
    let error = tessera_err(
        cache.path(),
        &[
            "--trust-policy",
            all_of.to_str().unwrap(),
            "verify",
            &pinned,
        ],
    );
    assert!(error.contains("b.pub (allOf)"), "{error}");

    // A policy asking for more matches than it has keys is refused.
    std::fs::write(
        &policy,
        "anyOf:\n  minimumMatches: 4\n  signatures:\n    - {kind: pubKey, path: a.pub}\n",
    )
    .unwrap();
    let error = tessera_err(
        cache.path(),
        &[
            "--trust-policy",
            policy.to_str().unwrap(),
            "verify",
            &pinned,
        ],
    );
    assert!(
        error.contains(&policy.display().to_string()) && error.contains("minimumMatches"),
        "{error}"
    );
}

#[test]
fn signatures_are_found_by_sig_tag_without_referrers_and_by_referrers_alone() {
    // olareg without the referrers API: the classic .sig tag.
    let registry = Olareg::start_with(&["--api-referrer=false"]);
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(work.path(), "k");
    let pinned = pushed(&registry, cache.path(), "tags/require-labels:1");
    tessera_ok(
        cache.path(),
        &["sign", &pinned, "--key", key.to_str().unwrap()],
    );
    tessera_ok(
        cache.path(),
        &["verify", &pinned, "--key", public.to_str().unwrap()],
    );

    // olareg with the referrers API, the .sig tag deleted: the signature
    // manifest is still listed as a referrer of the artifact.
    let registry = Olareg::start();
    let pinned = pushed(&registry, cache.path(), "refs/require-labels:1");
    tessera_ok(
        cache.path(),
        &["sign", &pinned, "--key", key.to_str().unwrap()],
    );
    let digest = pinned.rsplit('@').next().unwrap();
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    // olareg deletes the manifest with its tag; put the same manifest back
    // by digest only, untagged: only the referrers API can find it now.
    let base = format!("http://{}/v2/refs/require-labels/manifests", registry.host);
    let manifest = run_tool(Command::new("curl").args([
        "-sSf",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("{base}/{tag}"),
    ]));
    let manifest_digest = tessera_oci::Digest::of(manifest.as_bytes());
    let deleted = run_tool(Command::new("curl").args([
        "-sSf",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "DELETE",
        &format!("{base}/{tag}"),
    ]));
    assert!(
        deleted.starts_with('2'),
        "deleting the .sig tag answered {deleted}"
    );
    let body = work.path().join("sig-manifest.json");
    std::fs::write(&body, &manifest).unwrap();
    run_tool(
        Command::new("curl")
            .args([
                "-sSf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .arg(format!("{base}/{manifest_digest}")),
    );
    let tag_ref = Reference::parse(&format!(
        "oci://{}/refs/require-labels:{tag}",
        registry.host
    ))
    .unwrap();
    let client = Registry::new(&options(), &tag_ref).unwrap();
    assert!(
        block_on(client.resolve(&tag_ref)).is_err(),
        "the .sig tag is gone"
    );
    tessera_ok(
        cache.path(),
        &["verify", &pinned, "--key", public.to_str().unwrap()],
    );
}

#[test]
fn offline_use_of_a_cached_signed_digest_reverifies_without_network() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = openssl_key(work.path(), "k");
    let (_, stranger) = openssl_key(work.path(), "stranger");
    let pinned = pushed(&registry, cache.path(), "air/require-labels:1");
    tessera_ok(
        cache.path(),
        &["sign", &pinned, "--key", key.to_str().unwrap()],
    );
    let digest_ref = format!(
        "oci://{}/air/require-labels@{}",
        registry.host,
        pinned.rsplit('@').next().unwrap()
    );
    tessera_ok(
        cache.path(),
        &[
            "--verify-key",
            public.to_str().unwrap(),
            "pull",
            &digest_ref,
            "-o",
            "/dev/null",
        ],
    );
    drop(registry);
    // Offline: cached artifact and cached signatures, checked again.
    tessera_ok(
        cache.path(),
        &[
            "--verify-key",
            public.to_str().unwrap(),
            "inspect",
            &digest_ref,
        ],
    );
    // Another key is not satisfied by the cache; the registry is gone, so
    // this fails, naming the reference.
    let error = tessera_err(
        cache.path(),
        &[
            "--verify-key",
            stranger.to_str().unwrap(),
            "inspect",
            &digest_ref,
        ],
    );
    assert!(error.contains(&digest_ref), "{error}");
}

#[test]
fn cosign_and_tessera_verify_each_others_signatures() {
    let cosign = tool("TESSERA_COSIGN");
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let pinned = pushed(&registry, cache.path(), "cosign/require-labels:1");
    let plain = {
        let r = Reference::parse(&pinned).unwrap();
        format!("{}@{}", r.repository_name(), r.digest().unwrap())
    };
    let env = |c: &mut Command| {
        c.current_dir(work.path())
            .env("COSIGN_PASSWORD", "")
            .env("HOME", work.path())
            .env("COSIGN_YES", "true");
    };

    // cosign signs with its own key: Tessera verifies with cosign.pub.
    let mut generate = Command::new(&cosign);
    generate.arg("generate-key-pair");
    env(&mut generate);
    run_tool(&mut generate);
    let mut sign = Command::new(&cosign);
    sign.args([
        "sign",
        "--key",
        "cosign.key",
        "--tlog-upload=false",
        "--allow-http-registry",
        &plain,
    ]);
    env(&mut sign);
    run_tool(&mut sign);
    let cosign_pub = work.path().join("cosign.pub");
    tessera_ok(
        cache.path(),
        &["verify", &pinned, "--key", cosign_pub.to_str().unwrap()],
    );

    // Tessera signs with an openssl key: cosign verifies with its public key.
    let (key, public) = openssl_key(work.path(), "tessera");
    let other = pushed(&registry, cache.path(), "cosign/other:1");
    tessera_ok(
        cache.path(),
        &["sign", &other, "--key", key.to_str().unwrap()],
    );
    let other_plain = {
        let r = Reference::parse(&other).unwrap();
        format!("{}@{}", r.repository_name(), r.digest().unwrap())
    };
    let mut verify = Command::new(&cosign);
    verify.args(["verify", "--key"]).arg(&public).args([
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        &other_plain,
    ]);
    env(&mut verify);
    let out = run_tool(&mut verify);
    assert!(out.contains("docker-manifest-digest"), "{out}");
    // And cosign refuses it with a key that did not sign.
    let mut wrong = Command::new(&cosign);
    wrong.args([
        "verify",
        "--key",
        "cosign.pub",
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        &other_plain,
    ]);
    env(&mut wrong);
    assert!(
        !wrong.output().unwrap().status.success(),
        "cosign accepted the wrong key"
    );
}

/// A signature whose payload blob cannot be read (here: it no longer
/// matches its digest) is one candidate fewer, not a failed lookup: the
/// genuine signature beside it still verifies, and alone it never passes.
#[test]
fn an_unreadable_signature_payload_is_skipped_not_fatal() {
    let registry = Olareg::start();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (release, release_pub) = openssl_key(work.path(), "release");
    let (stranger, _) = openssl_key(work.path(), "stranger");
    let pinned = pushed(&registry, cache.path(), "skip/require-labels:1");
    // A stranger's signature over a payload of its own, whose blob is then
    // corrupted in the registry.
    let junk = br#"{"critical":{"identity":{"docker-reference":"junk"}}}"#;
    attach_openssl_signature(&pinned, &stranger, junk, work.path());
    let blob = registry.blob_path(
        "skip/require-labels",
        tessera_oci::Digest::of(junk).as_str(),
    );
    assert!(blob.is_file(), "{}", blob.display());
    std::fs::write(&blob, b"corrupted payload").unwrap();
    // Only that candidate: refused as unsigned, never passed.
    let error = tessera_err(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
    assert!(error.contains(&pinned), "{error}");
    // With the genuine signature beside it: verified.
    attach_openssl_signature(&pinned, &release, &payload_for(&pinned), work.path());
    tessera_ok(
        cache.path(),
        &["verify", &pinned, "--key", release_pub.to_str().unwrap()],
    );
}

/// A registry whose referrers API lists more signature manifests than a
/// lookup follows is refused with one line naming the artifact and the
/// limit, before any of them is fetched.
#[test]
fn a_referrers_index_past_the_candidate_limit_is_refused() {
    use std::io::{Read as _, Write as _};
    let entry = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":1,"artifactType":"{}"}}"#,
        "0".repeat(64),
        signature::SIGNATURE_ARTIFACT_TYPE
    );
    let entries = vec![entry; tessera_oci::MAX_SIGNATURE_CANDIDATES + 1];
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let request = String::from_utf8_lossy(&buf);
            let content_type = if request.contains("/referrers/") {
                "application/vnd.oci.image.index.v1+json"
            } else {
                "application/vnd.oci.image.manifest.v1+json"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let pinned = format!("oci://{host}/a/b@sha256:{}", "1".repeat(64));
    let reference = Reference::parse(&pinned).unwrap();
    let client = Registry::new(&options(), &reference).unwrap();
    let error = block_on(client.signatures(&reference))
        .unwrap_err()
        .to_string();
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains(&pinned), "{error}");
    assert!(
        error.contains(&format!(
            "over the limit of {}",
            tessera_oci::MAX_SIGNATURE_CANDIDATES
        )),
        "{error}"
    );
}

/// How a fake registry answers the GETs it must not be trusted with.
#[derive(Clone, Copy)]
enum Oversized {
    /// A `Content-Length` of 10 GB (and a few bytes of body).
    Declared,
    /// A chunked body of 5 MiB, past the 4 MiB limit, with no length.
    Chunked,
}

/// A loopback registry that answers `/v2/` with 200, the manifest and
/// referrers GETs the `oversized` way when `hit` matches the path, and
/// everything else with 404.
fn oversized_registry(oversized: Oversized, hit: &'static str) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let request = String::from_utf8_lossy(&buf);
                let path = request.split(' ').nth(1).unwrap_or("").to_string();
                if path == "/v2/" {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                    );
                    return;
                }
                if !path.contains(hit) {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                match oversized {
                    Oversized::Declared => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n{{\"schemaVersion\":2"
                        );
                        // Never finish: only the header can have refused it.
                        std::thread::sleep(std::time::Duration::from_secs(30));
                    }
                    Oversized::Chunked => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        );
                        let chunk = vec![b' '; 64 << 10];
                        for _ in 0..80 {
                            if write!(stream, "{:x}\r\n", chunk.len()).is_err()
                                || stream.write_all(&chunk).is_err()
                                || stream.write_all(b"\r\n").is_err()
                            {
                                return;
                            }
                        }
                        let _ = stream.write_all(b"0\r\n\r\n");
                    }
                }
            });
        }
    });
    host
}

/// A registry answering a manifest GET with a 10 GB `Content-Length` or a
/// 5 MiB chunked body is refused with one line naming the reference and
/// the 4 MiB limit, without the body being read whole.
#[test]
fn an_oversized_manifest_or_referrers_index_is_refused_while_streaming() {
    let limit = format!("{}-byte limit", tessera_oci::artifact::MAX_SMALL_BYTES);
    for oversized in [Oversized::Declared, Oversized::Chunked] {
        let host = oversized_registry(oversized, "/manifests/");
        let tagged = format!("oci://{host}/a/b:v1");
        let reference = Reference::parse(&tagged).unwrap();
        let client = Registry::new(&options(), &reference).unwrap();
        let started = std::time::Instant::now();
        let error = block_on(client.resolve(&reference))
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains(&tagged), "{error}");
        assert!(error.contains("the manifest"), "{error}");
        assert!(error.contains(&limit), "{error}");
        let error = block_on(client.pull(&reference)).unwrap_err().to_string();
        assert!(error.contains(&limit), "{error}");
    }
    // The referrers index: the .sig tag is absent (404), the referrers API
    // answers too much.
    for oversized in [Oversized::Declared, Oversized::Chunked] {
        let host = oversized_registry(oversized, "/referrers/");
        let pinned = format!("oci://{host}/a/b@sha256:{}", "1".repeat(64));
        let reference = Reference::parse(&pinned).unwrap();
        let client = Registry::new(&options(), &reference).unwrap();
        let error = block_on(client.signatures(&reference))
            .unwrap_err()
            .to_string();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains(&pinned), "{error}");
        assert!(error.contains("the referrers index"), "{error}");
        assert!(error.contains(&limit), "{error}");
    }
}
