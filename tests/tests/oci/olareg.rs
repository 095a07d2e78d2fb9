//! The real OCI parts tests run against, shared by the `oci` and `cluster`
//! test binaries: olareg started on loopback, the tools the set-up scripts
//! build, and openssl keys.

use std::io::{Read as _, Write as _};
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

/// A fake registry on loopback: `stall` accepts and never answers;
/// otherwise it answers every request with `body` (garbage).
pub fn fake_registry(stall: bool, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if stall {
                held.push(stream);
                continue;
            }
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    host
}
