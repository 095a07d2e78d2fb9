//! The `tessera-controller` binary as a process: usage errors are one line
//! with exit code 2; `crds` prints what `deploy/crds.yaml` holds.

use std::process::Command;

fn controller() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera-controller"))
}

#[test]
fn missing_secret_key_file_is_a_usage_error() {
    let output = controller()
        .args(["run", "--secret-key-file", "/nonexistent/key"])
        .env_remove("TESSERA_SECRET_KEY_FILE")
        .output()
        .expect("running tessera-controller");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--secret-key-file /nonexistent/key"),
        "{stderr}"
    );
}

#[test]
fn short_secret_key_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key");
    std::fs::write(&key, b"too short").expect("writing the key");
    let output = controller()
        .args(["run", "--secret-key-file"])
        .arg(&key)
        .output()
        .expect("running tessera-controller");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--secret-key-file"), "{stderr}");
}

#[test]
fn crds_prints_the_committed_file() {
    let output = controller()
        .arg("crds")
        .output()
        .expect("running tessera-controller");
    assert!(output.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds.yaml"
    ))
    .expect("deploy/crds.yaml");
    assert_eq!(String::from_utf8_lossy(&output.stdout), committed);
}
