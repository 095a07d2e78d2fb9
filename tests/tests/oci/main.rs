//! Plugins as OCI artifacts, against real parts: olareg (a real OCI
//! registry, with and without the referrers API) started on loopback per
//! test, oras (an independent OCI client) and cosign / openssl (independent
//! signers). `scripts/build-registry` builds the Go tools (cold, on 2 cores:
//! olareg ~10 s, oras ~40 s, cosign ~4.5 min) and `scripts/test` exports
//! `TESSERA_OLAREG`, `TESSERA_ORAS`, `TESSERA_COSIGN`; without them these
//! tests fail with instructions instead of passing silently.

mod olareg;
mod registry;
mod signatures;

pub use olareg::{Olareg, fake_registry, openssl_key, run_tool, tool};

use std::io::Read as _;
use std::path::Path;

/// What one run of the CLI printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI (through its library) with `cache` as its cache directory
/// and plain HTTP for loopback registries.
pub fn tessera(cache: &Path, args: &[&str]) -> Output {
    let mut with_plain_http = vec!["--plain-http"];
    with_plain_http.extend_from_slice(args);
    tessera_tls(cache, &with_plain_http)
}

/// Runs the CLI with `cache` as its cache directory (TLS unless `args` say
/// otherwise).
pub fn tessera_tls(cache: &Path, args: &[&str]) -> Output {
    let mut argv = vec![
        "tessera".to_string(),
        "--cache-dir".into(),
        cache.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = tessera_cli::run(
        argv,
        &mut tessera_cli::Stdio {
            stdin: &mut std::io::empty(),
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
    );
    Output {
        code,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs the CLI and expects success; returns stdout's first line.
pub fn tessera_ok(cache: &Path, args: &[&str]) -> String {
    let out = tessera(cache, args);
    assert_eq!(out.code, 0, "tessera {args:?} failed:\n{}", out.stderr);
    out.stdout.lines().next().unwrap_or("").to_string()
}

/// Runs the CLI and expects exit code 2 with one error line; returns it.
pub fn tessera_err(cache: &Path, args: &[&str]) -> String {
    let out = tessera(cache, args);
    assert_eq!(
        out.code, 2,
        "tessera {args:?}: expected failure:\n{}{}",
        out.stdout, out.stderr
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{}", out.stderr);
    lines[0].to_string()
}

/// The require-labels policy plugin, built from source by `tests/build.rs`.
pub fn require_labels() -> &'static str {
    tessera_tests::plugins::REQUIRE_LABELS
}

/// Reads a file fully.
pub fn read(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
}
