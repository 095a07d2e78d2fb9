//! What the commands print about an evaluation: a plugin's logs and output
//! (stderr), its findings (stderr), and `validate`'s verdicts (stdout).
//! Log messages and finding messages pass through `one_line` before they
//! are printed.

use std::io::Write;

use serde_json::{Value, json};
use tessera_runtime::{Finding, LogLevel, Report, Verdict};

use crate::one_line;

/// `Kind namespace/name` (or `Kind name`) for messages.
pub(crate) fn describe(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    }
}

/// Writes a plugin's log lines (info and above), dropped-log count, and
/// captured stdout/stderr, each line prefixed with `[plugin]`.
pub(crate) fn write_report(
    stderr: &mut dyn Write,
    plugin: &str,
    report: &Report,
) -> std::io::Result<()> {
    for line in &report.logs {
        if line.level >= LogLevel::Info {
            writeln!(
                stderr,
                "[{plugin}] {}: {}",
                line.level,
                one_line(&line.message)
            )?;
        }
    }
    if report.logs_dropped > 0 {
        writeln!(
            stderr,
            "[{plugin}] warn: {} log lines dropped (log limit reached)",
            report.logs_dropped
        )?;
    }
    for (stream, text) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(stderr, "[{plugin}] {stream}: {line}")?;
        }
    }
    Ok(())
}

/// Writes one finding: `severity: plugin: subject: message (field)`.
pub(crate) fn write_finding(
    stderr: &mut dyn Write,
    plugin: &str,
    subject: &str,
    finding: &Finding,
) -> std::io::Result<()> {
    let field = finding
        .field
        .as_ref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    writeln!(
        stderr,
        "{}: {plugin}: {subject}: {}{field}",
        finding.severity,
        one_line(&finding.message)
    )
}

/// `validate`'s verdict on document `index`, as printed on stdout.
pub(crate) fn verdict_value(index: usize, object: &Value, verdict: &Verdict) -> Value {
    let findings: Vec<Value> = verdict
        .findings
        .iter()
        .map(|f| {
            let mut finding = json!({"severity": f.severity.to_string(), "message": f.message});
            if let Some(field) = &f.field {
                finding["field"] = json!(field);
            }
            finding
        })
        .collect();
    let mut value = json!({
        "document": index,
        "apiVersion": object.get("apiVersion"),
        "kind": object.get("kind"),
        "name": object.pointer("/metadata/name"),
    });
    if let Some(ns) = object.pointer("/metadata/namespace") {
        value["namespace"] = ns.clone();
    }
    value["allowed"] = json!(verdict.allowed);
    value["findings"] = Value::Array(findings);
    value
}
