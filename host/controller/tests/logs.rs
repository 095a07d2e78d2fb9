//! `tessera-controller run --log-format json`: every line on stderr is one
//! JSON object, the failure included; `text` (the default) is for people.
//! The process starts with no cluster to reach, so it logs its start and
//! stops with an error.

use std::process::{Command, Output};

use serde_json::Value;

/// Runs `tessera-controller run` with a good key, no cluster and `extra`.
fn run_without_a_cluster(extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key");
    std::fs::write(&key, [7u8; 32]).expect("writing the key");
    Command::new(env!("CARGO_BIN_EXE_tessera-controller"))
        .args(["run", "--instance-slots", "0", "--secret-key-file"])
        .arg(&key)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(extra)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("RUST_LOG")
        .env_remove("TESSERA_METRICS_BIND_ADDRESS")
        .output()
        .expect("running tessera-controller")
}

#[test]
fn json_logs_are_one_object_a_line() {
    let output = run_without_a_cluster(&["--log-format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    let message = |level: &str, message: &str| {
        lines
            .iter()
            .find(|l| l["level"] == level && l["message"] == message)
            .unwrap_or_else(|| panic!("no {level} {message:?} in\n{stderr}"))
    };
    let serving = message("INFO", "serving /metrics");
    assert!(
        serving["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{serving}"
    );
    let starting = message("INFO", "starting");
    assert_eq!(starting["version"], env!("CARGO_PKG_VERSION"));
    let stopping = message("ERROR", "stopping");
    assert!(
        stopping["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("connecting to the cluster: ")),
        "{stopping}"
    );
}

#[test]
fn text_logs_are_for_people() {
    let output = run_without_a_cluster(&[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .all(|line| serde_json::from_str::<Value>(line).is_err()),
        "{stderr}"
    );
    assert!(
        stderr.contains("INFO") && stderr.contains("starting"),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: connecting to the cluster: "),
        "{stderr}"
    );
}

#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-controller"))
        .args([
            "run",
            "--secret-key-file",
            "/nonexistent/key",
            "--metrics-bind-address",
            "8080",
        ])
        .output()
        .expect("running tessera-controller");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--metrics-bind-address")
            && stderr.contains("expected host:port, :port, 0 or off, got \"8080\""),
        "{stderr}"
    );
}
