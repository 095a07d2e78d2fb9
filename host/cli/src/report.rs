//! What the commands print about an evaluation: a plugin's logs and output
//! (stderr), its findings (stderr), and `validate`'s verdicts (stdout).
//! Every string a plugin controls (its name, log messages, captured output
//! line by line, finding messages and fields, the kind and name of a child)
//! passes through `tessera_types::text` ([`Untrusted`], `lines`) before it
//! is printed: one line each, no control character.

use std::io::Write;

use serde_json::{Value, json};
use tessera_runtime::{Finding, LogLevel, Report, Verdict};

use tessera_types::text;

use crate::Untrusted;

/// `Kind namespace/name` (or `Kind name`) for messages, safe to print (a
/// child's kind and name are the plugin's).
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
        Some(ns) if !ns.is_empty() => {
            format!("{} {}/{}", Untrusted(kind), Untrusted(ns), Untrusted(name))
        }
        _ => format!("{} {}", Untrusted(kind), Untrusted(name)),
    }
}

/// Writes a plugin's log lines (info and above), dropped-log count, and
/// captured stdout/stderr, each line prefixed with `[plugin]`.
pub(crate) fn write_report(
    stderr: &mut dyn Write,
    plugin: &str,
    report: &Report,
) -> std::io::Result<()> {
    let plugin = Untrusted(plugin);
    for line in &report.logs {
        if line.level >= LogLevel::Info {
            writeln!(
                stderr,
                "[{plugin}] {}: {}",
                line.level,
                Untrusted(&line.message)
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
    for (stream, output) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        // Blank lines (white space only, as written) are skipped.
        let lines = text::lines(output).zip(output.lines());
        for (line, _) in lines.filter(|(_, raw)| !raw.trim().is_empty()) {
            writeln!(stderr, "[{plugin}] {stream}: {line}")?;
        }
    }
    Ok(())
}

/// Writes one finding: `severity: plugin: subject: message (field)`;
/// `subject` is the host's (from [`describe`]).
pub(crate) fn write_finding(
    stderr: &mut dyn Write,
    plugin: &str,
    subject: &str,
    finding: &Finding,
) -> std::io::Result<()> {
    let field = finding
        .field
        .as_ref()
        .map(|f| format!(" ({})", Untrusted(f)))
        .unwrap_or_default();
    writeln!(
        stderr,
        "{}: {}: {subject}: {}{field}",
        finding.severity,
        Untrusted(plugin),
        Untrusted(&finding.message)
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
