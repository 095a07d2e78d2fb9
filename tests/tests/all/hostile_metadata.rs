//! The `hostile-metadata` test plugin: a description and kinds carrying
//! terminal escapes and a forged `digest:` line. `tessera inspect` prints
//! them on their own line with every control character replaced, so the
//! one `digest:` line is the host's.

use serde_json::Value;
use tessera_tests::plugins::HOSTILE_METADATA;

use crate::terminal::{assert_inert, tessera};

#[test]
fn inspect_prints_one_digest_line_and_no_escape() {
    let out = tessera(&["inspect", HOSTILE_METADATA], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_inert("inspect stdout", &out.stdout);
    assert_inert("inspect stderr", &out.stderr);
    let digests: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("digest:"))
        .collect();
    let digest =
        tessera_runtime::provenance::sha256_digest(&std::fs::read(HOSTILE_METADATA).unwrap());
    assert_eq!(
        digests,
        [format!("digest:      {digest}")],
        "{}",
        out.stdout
    );
    let description = out
        .stdout
        .lines()
        .find(|l| l.starts_with("description:"))
        .unwrap();
    assert!(
        description.contains("looks harmless\u{fffd}]0;pwned\u{fffd}")
            && description.contains(" | digest:      sha256:forged"),
        "{description}"
    );
    // Every line is one of inspect's own: a key, or an indented entry.
    for line in out.stdout.lines() {
        assert!(
            line.starts_with("  ")
                || line
                    .split_once(':')
                    .is_some_and(|(key, _)| !key.contains(' ') || key == "settings schema"),
            "a line inspect did not write: {line:?}\n{}",
            out.stdout
        );
    }

    // JSON keeps the text as the plugin gave it, escaped by JSON.
    let json = tessera(&["inspect", HOSTILE_METADATA, "-o", "json"], "");
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert_inert("inspect -o json", &json.stdout);
    let described: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        described["description"]
            .as_str()
            .unwrap()
            .starts_with("looks harmless\x1b]0;pwned\x07"),
        "{described}"
    );
}
