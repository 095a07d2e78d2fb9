//! Plugins as OCI artifacts, against real parts: olareg (a real OCI
//! registry, with and without the referrers API) started on loopback per
//! test, oras (an independent OCI client) and cosign / openssl (independent
//! signers). `scripts/build-registry` builds the Go tools (cold, on 2 cores:
//! olareg ~10 s, oras ~40 s, cosign ~4.5 min) and `scripts/test` exports
//! `TESSERA_OLAREG`, `TESSERA_ORAS`, `TESSERA_COSIGN`; without them these
//! tests fail with instructions instead of passing silently.

mod registry;
mod signatures;

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tool the set-up scripts build, by its environment variable.
pub fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{var} is not set: run the suite with scripts/test (scripts/build-registry builds \
             olareg, oras and cosign), or point {var} at the binary"
        ),
    }
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A real olareg serving on loopback until dropped.
#[derive(Debug)]
pub struct Olareg {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its storage directory (an OCI layout per repository).
    pub dir: tempfile::TempDir,
}

impl Olareg {
    /// Starts olareg with the referrers API.
    pub fn start() -> Olareg {
        Olareg::start_with(&[])
    }

    /// Starts olareg with extra flags (e.g. `--api-referrer=false`).
    pub fn start_with(flags: &[&str]) -> Olareg {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(tool("TESSERA_OLAREG"))
            .args(["serve", "--addr", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--api-delete"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting olareg");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "olareg did not listen on {host}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Olareg { child, host, dir }
    }

    /// `oci://HOST/REPO:TAG`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.host)
    }

    /// The blob file olareg keeps for `digest` in `repo`.
    pub fn blob_path(&self, repo: &str, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(repo).join("blobs/sha256").join(hex)
    }
}

impl Drop for Olareg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Runs an external tool, expecting success; returns stdout.
pub fn run_tool(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The require-labels policy plugin, built from source by `tests/build.rs`.
pub fn require_labels() -> &'static str {
    tessera_tests::plugins::REQUIRE_LABELS
}

/// A P-256 key pair made by openssl: (private PEM, public PEM).
pub fn openssl_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    run_tool(
        Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&private),
    );
    run_tool(
        Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    );
    (private, public)
}

/// Reads a file fully.
pub fn read(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
}
