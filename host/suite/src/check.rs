//! Checking what a case produced against what it expects: children (by
//! name, partially, or against a golden file), findings, verdicts, errors.
//! Each check adds one readable line (or a diff) per difference.

use std::path::Path;

use serde_json::Value;
use tessera_runtime::{CrashKind, Error, Verdict};
use tessera_types::text::Untrusted;

use super::diff::unified_diff;
use super::format::{ErrorExpect, Expect, FindingExpect, VerdictExpect};
use super::partial::partial_diff;

/// What golden files hold in place of `tessera.dev/plugin-digest`.
pub(crate) const GOLDEN_DIGEST: &str = "sha256:<digest of the plugin under test>";

/// The case's result: passed, or every difference found, one per line.
pub(super) fn finish(failures: Vec<String>) -> Result<(), String> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// `Kind/name` of a child, safe to print.
pub(super) fn child_id(child: &Value) -> String {
    format!(
        "{}/{}",
        Untrusted(child["kind"].as_str().unwrap_or("?")),
        Untrusted(child["metadata"]["name"].as_str().unwrap_or("?"))
    )
}

/// `: message; message` for failure lines (empty without findings).
pub(super) fn describe_findings(findings: &[tessera_runtime::Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let list: Vec<String> = findings
        .iter()
        .map(|f| Untrusted(&f.message).to_string())
        .collect();
    format!(": {}", list.join("; "))
}

/// Checks children against `childNames`, `children` (partially) and
/// `golden` (rewritten instead when `update`).
pub(super) fn check_children(
    children: &[Value],
    expect: &Expect,
    suite: &Path,
    update: bool,
    failures: &mut Vec<String>,
) {
    if let Some(names) = &expect.child_names {
        let actual: Vec<String> = children.iter().map(child_id).collect();
        if *names != actual {
            failures.push(format!("childNames: expected {names:?}, got {actual:?}"));
        }
    }
    for wanted in expect.children.iter().flatten() {
        let kind = wanted["kind"].as_str();
        let name = wanted["metadata"]["name"].as_str();
        let Some(actual) = children
            .iter()
            .find(|c| c["kind"].as_str() == kind && c["metadata"]["name"].as_str() == name)
        else {
            failures.push(format!(
                "no child {}/{} among {:?}",
                kind.unwrap_or("?"),
                name.unwrap_or("?"),
                children.iter().map(child_id).collect::<Vec<_>>()
            ));
            continue;
        };
        if let Some(diff) = partial_diff(wanted, actual) {
            failures.push(format!("child {} differs:\n{diff}", child_id(actual)));
        }
    }
    if let Some(golden) = &expect.golden {
        let path = suite.parent().unwrap_or(Path::new(".")).join(golden);
        // The plugin digest changes with every rebuild of the plugin (and
        // between toolchains); goldens pin everything else.
        let children: Vec<Value> = children
            .iter()
            .map(|child| {
                let mut child = child.clone();
                if let Some(digest) = child
                    .pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut)
                    .and_then(|a| a.get_mut(tessera_runtime::provenance::PLUGIN_DIGEST))
                {
                    *digest = Value::String(GOLDEN_DIGEST.into());
                }
                child
            })
            .collect();
        let actual = match tessera_documents::to_yaml_stream(&children) {
            Ok(text) => text,
            Err(e) => {
                failures.push(format!("cannot write children as YAML: {e}"));
                return;
            }
        };
        if update {
            let written = match path.parent() {
                Some(dir) => {
                    std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &actual))
                }
                None => std::fs::write(&path, &actual),
            };
            if let Err(e) = written {
                failures.push(format!(
                    "{}: cannot update golden file: {e}",
                    path.display()
                ));
            }
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "golden {} differs (run with --update to accept):\n{}",
                path.display(),
                unified_diff(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{}: {e} (run with --update to create it)",
                path.display()
            )),
        }
    }
}

/// Checks findings in order, each on the fields the case gives.
pub(super) fn check_findings(
    what: &str,
    wanted: &[FindingExpect],
    actual: &[tessera_runtime::Finding],
    failures: &mut Vec<String>,
) {
    if wanted.len() != actual.len() {
        failures.push(format!(
            "{what}: expected {} findings, got {}{}",
            wanted.len(),
            actual.len(),
            describe_findings(actual)
        ));
        return;
    }
    for (i, (w, a)) in wanted.iter().zip(actual).enumerate() {
        let mut problems = Vec::new();
        if let Some(s) = &w.severity
            && *s != a.severity.to_string()
        {
            problems.push(format!("severity {s:?} != {:?}", a.severity.to_string()));
        }
        if let Some(m) = &w.message
            && *m != a.message
        {
            problems.push(format!("message {m:?} != {:?}", a.message));
        }
        if let Some(m) = &w.message_contains
            && !a.message.contains(m.as_str())
        {
            problems.push(format!("message {:?} does not contain {m:?}", a.message));
        }
        if let Some(f) = &w.field
            && Some(f) != a.field.as_ref()
        {
            problems.push(format!("field {f:?} != {:?}", a.field));
        }
        if !problems.is_empty() {
            failures.push(format!("{what}[{i}]: {}", problems.join(", ")));
        }
    }
}

/// Checks an evaluation error against the one the case expects.
pub(super) fn check_error(error: &Error, wanted: &ErrorExpect) -> Result<(), String> {
    let (class, kind, field) = match error {
        Error::Refused { field, .. } => ("refused", None, field.clone()),
        Error::Crashed { kind, .. } => ("crashed", Some(*kind), None),
        Error::Settings { .. } => ("settings", None, None),
        Error::Input { .. } => ("input", None, None),
        Error::WrongWorld { .. } | Error::Incompatible { .. } => ("incompatible", None, None),
        Error::Host { .. } | Error::Io { .. } => ("host", None, None),
    };
    let text = error.to_string();
    let mut problems = Vec::new();
    if let Some(c) = &wanted.class
        && c != class
    {
        problems.push(format!("class {c:?} != {class:?}"));
    }
    if let Some(k) = &wanted.kind {
        let actual = kind.map(CrashKind::name);
        if actual != Some(k.as_str()) {
            problems.push(format!("kind {k:?} != {actual:?}"));
        }
    }
    if let Some(f) = &wanted.field
        && Some(f) != field.as_ref()
    {
        problems.push(format!("field {f:?} != {field:?}"));
    }
    if let Some(m) = &wanted.message_contains
        && !text.contains(m.as_str())
    {
        problems.push(format!("message does not contain {m:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "error differs: {} (got: {})",
            problems.join(", "),
            Untrusted(&text)
        ))
    }
}

/// Checks a pipeline's verdicts, `(child, policy name, verdict)`, against
/// those a case asks about.
pub(super) fn check_verdicts<'a>(
    wanted: impl IntoIterator<Item = &'a VerdictExpect>,
    verdicts: &[(String, String, Verdict)],
    failures: &mut Vec<String>,
) {
    for wanted in wanted {
        match verdicts
            .iter()
            .find(|(child, policy, _)| *child == wanted.child && *policy == wanted.policy)
        {
            None => failures.push(format!(
                "no verdict of policy {} on {}",
                wanted.policy, wanted.child
            )),
            Some((_, _, verdict)) => {
                if verdict.allowed != wanted.allowed {
                    failures.push(format!(
                        "{} by {}: expected allowed {}, got {}{}",
                        wanted.child,
                        wanted.policy,
                        wanted.allowed,
                        verdict.allowed,
                        describe_findings(&verdict.findings)
                    ));
                }
                if let Some(findings) = &wanted.findings {
                    check_findings(
                        &format!("findings of {} on {}", wanted.policy, wanted.child),
                        findings,
                        &verdict.findings,
                        failures,
                    );
                }
            }
        }
    }
}
