//! Helpers shared by the test modules.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;
use tessera_runtime::{Binding, Context, Plugin, Runtime};

/// A component (text format) that would be a policy plugin but imports an
/// interface the host does not provide.
pub const UNKNOWN_IMPORT_WAT: &str = r#"(component
    (import "tessera:plugin/unknown@0.1.0" (instance (export "f" (func))))
    (core module $m (func (export "f")))
    (core instance $i (instantiate $m))
    (func (export "metadata") (canon lift (core func $i "f")))
    (func (export "validate") (canon lift (core func $i "f"))))"#;

/// A cache directory shared by the tests of this process, so most loads hit
/// the cache after the first.
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// A runtime with the shared test cache.
pub fn runtime() -> Runtime {
    Runtime::builder()
        .cache_dir(cache_dir())
        .build()
        .expect("runtime")
}

/// Loads a plugin, panicking with the error on failure.
pub async fn load(path: &str) -> Plugin {
    runtime()
        .load_file(path)
        .await
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Binds a plugin with settings.
pub async fn bind(path: &str, settings: Value) -> Binding {
    Binding::new(load(path).await, settings).expect("settings")
}

/// Reads a one-document YAML file as JSON.
pub fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The default context.
pub fn ctx() -> Context {
    Context::default()
}

/// `kind/name` of each child, for compact assertions.
pub fn kinds_and_names(children: &[Value]) -> Vec<String> {
    children
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["kind"].as_str().unwrap_or("?"),
                c["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Finds a child by kind.
pub fn child<'a>(children: &'a [Value], kind: &str) -> &'a Value {
    children
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among {:?}", kinds_and_names(children)))
}

/// Decodes standard base64 (for Secret data), independently of the SDK.
pub fn base64_decode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// Runs `kubernetes-validate --strict` (an independent implementation of the
/// Kubernetes OpenAPI schemas, from PyPI) over objects. `scripts/test`
/// installs it and sets `TESSERA_KUBERNETES_VALIDATE`; without it the check
/// fails with instructions instead of passing silently.
pub fn assert_valid_kubernetes(objects: &[Value]) {
    let tool = std::env::var("TESSERA_KUBERNETES_VALIDATE").unwrap_or_else(|_| {
        panic!(
            "TESSERA_KUBERNETES_VALIDATE is not set: run the suite with scripts/test, \
             which installs kubernetes-validate, or point the variable at its binary"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    let text = objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    std::fs::write(&file, text).unwrap();
    let output = std::process::Command::new(&tool)
        .args(["--strict", "--no-warn"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Kubernetes schema validation failed:\n{report}"
    );
    assert_eq!(
        report.matches("passed").count(),
        objects.len(),
        "expected one pass per object:\n{report}"
    );
}

/// What one run of the CLI printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI (through its library) with the shared test cache.
pub fn tessera(args: &[&str], stdin: &str) -> Output {
    let mut argv = vec![
        "tessera".to_string(),
        "--cache-dir".into(),
        cache_dir().display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut input = stdin.as_bytes();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = tessera_cli::run(
        argv,
        &mut tessera_cli::Stdio {
            stdin: &mut input,
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

/// Builds a Python or JavaScript plugin project (a directory of the
/// workspace, e.g. `plugins/python/database`) with `tessera build`, once per
/// process, and returns the component's path. The build itself is skipped
/// by `tessera build` while the project's inputs are unchanged.
pub fn guest(project: &str) -> String {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    // Held while building: builds run one at a time (each uses both cores).
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(project) {
        return path.clone();
    }
    let dir = tessera_tests::workspace().join(project);
    let out = tessera(&["build", dir.to_str().unwrap()], "");
    assert_eq!(out.code, 0, "tessera build {project}: {}", out.stderr);
    let path = out.stdout.trim().to_string();
    assert!(Path::new(&path).is_file(), "{path}");
    built.insert(project.to_string(), path.clone());
    path
}
