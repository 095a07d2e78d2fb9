//! Step 7, status: the composite's status (`Synced` and `Ready` conditions,
//! the plugin's own conditions and status fields, `observedGeneration`,
//! `pluginDigest`, `resourceRefs`), written only when it changed, and the
//! events of a reconcile.
//!
//! Conditions and events are read on terminals (`kubectl describe`, `kubectl
//! get events`): every text in them that a plugin controls (its conditions,
//! policy warnings and denials quoting findings, errors quoting refusals)
//! goes through `tessera_types::text::one_line`, in the functions below that
//! build them.

use std::sync::atomic::Ordering;
use tessera_types::text::{one_line, shorten};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tessera_runtime::ConditionStatus;

use super::KindController;
use super::error::ReconcileError;
use crate::conditions::{self, Condition, Status};

/// What a successful sync did and found.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Children applied for real.
    pub(super) applied: usize,
    /// Children deleted.
    pub(super) pruned: usize,
    /// Whether the plugin reports the composite ready.
    pub(super) ready: bool,
    /// The plugin's status patch.
    pub(super) status: Option<Value>,
    /// The plugin's conditions.
    pub(super) plugin_conditions: Vec<tessera_runtime::Condition>,
    /// `sha256:<hex>` of the plugin.
    pub(super) digest: String,
    /// `resourceRefs`: every desired child.
    pub(super) refs: Vec<Value>,
    /// Policy warnings.
    pub(super) warnings: Vec<String>,
}

/// Keys of the status the host owns; the plugin's status patch cannot set them.
const HOST_STATUS_KEYS: &[&str] = &[
    "conditions",
    "observedGeneration",
    "pluginDigest",
    "resourceRefs",
];

/// Writes what `result` says to the composite's status, unless the status
/// says it already. A failure keeps what the last success said about
/// readiness and the plugin's status fields.
pub(super) async fn write_status(
    ctx: &KindController,
    composite: &DynamicObject,
    result: Result<&Outcome, &ReconcileError>,
) -> Result<(), ReconcileError> {
    let shared = &ctx.shared;
    let current = composite.data.get("status").cloned().unwrap_or(json!({}));
    let mut status: Map<String, Value> = current.as_object().cloned().unwrap_or_default();
    let generation = composite.metadata.generation;
    let old_conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<Condition> = Vec::new();
    match result {
        Ok(outcome) => {
            if let Some(Value::Object(patch)) = &outcome.status {
                for (key, value) in patch {
                    if !HOST_STATUS_KEYS.contains(&key.as_str()) {
                        status.insert(key.clone(), value.clone());
                    }
                }
            }
            conditions.push(if outcome.ready {
                Condition::new(
                    "Ready",
                    Status::True,
                    "Available",
                    "the plugin reports the composite ready",
                )
            } else {
                Condition::new(
                    "Ready",
                    Status::False,
                    "Creating",
                    "waiting for the plugin to report the composite ready",
                )
            });
            conditions.push(synced(outcome.refs.len(), &outcome.warnings));
            conditions.extend(
                outcome
                    .plugin_conditions
                    .iter()
                    .filter(|c| c.type_ != "Ready" && c.type_ != "Synced")
                    .map(plugin_condition),
            );
            status.insert("pluginDigest".into(), json!(outcome.digest));
            status.insert("resourceRefs".into(), Value::Array(outcome.refs.clone()));
        }
        Err(error) => {
            // Keep what the last success said about readiness.
            let ready = old_conditions.iter().find(|c| c["type"] == "Ready");
            conditions.push(match ready {
                Some(ready) => Condition::new(
                    "Ready",
                    match ready["status"].as_str() {
                        Some("True") => Status::True,
                        Some("False") => Status::False,
                        _ => Status::Unknown,
                    },
                    ready["reason"].as_str().unwrap_or("Unknown"),
                    ready["message"].as_str().unwrap_or(""),
                ),
                None => Condition::new("Ready", Status::False, "Unknown", "not reconciled yet"),
            });
            conditions.push(not_synced(error));
        }
    }
    let conditions = conditions::merge(conditions, &old_conditions, generation);
    status.insert("conditions".into(), Value::Array(conditions));
    if let Some(generation) = generation {
        status.insert("observedGeneration".into(), json!(generation));
    }
    let status = Value::Object(status);
    if status == current {
        return Ok(());
    }
    let api: Api<DynamicObject> = match composite.namespace() {
        Some(ns) => Api::namespaced_with(shared.client.clone(), &ns, &ctx.kind.resource),
        None => Api::all_with(shared.client.clone(), &ctx.kind.resource),
    };
    api.patch_status(
        &composite.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .map_err(ReconcileError::StatusFailed)?;
    shared.metrics.status_writes.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Records an event on the composite (a failure to record is only logged).
pub(super) async fn publish(
    ctx: &KindController,
    composite: &DynamicObject,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = composite.object_ref(&ctx.kind.resource);
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(event_note(&note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.shared.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "publishing an event");
    }
}

/// The `Synced` condition of a success: how many children, and the policy
/// warnings (which quote findings) on one line.
fn synced(children: usize, warnings: &[String]) -> Condition {
    let message = if warnings.is_empty() {
        format!("{children} children in sync")
    } else {
        format!("{children} children in sync; {}", warnings.join("; "))
    };
    Condition::new(
        "Synced",
        Status::True,
        "ReconcileSuccess",
        one_line(&message),
    )
}

/// The `Synced` condition of a failure: its reason, and its message on one
/// line cut to 1 KiB.
fn not_synced(error: &ReconcileError) -> Condition {
    Condition::new(
        "Synced",
        Status::False,
        error.reason(),
        shorten(&one_line(&error.to_string()), 1024),
    )
}

/// A condition the plugin reported, each text on one line.
fn plugin_condition(c: &tessera_runtime::Condition) -> Condition {
    let status = match c.status {
        ConditionStatus::True => Status::True,
        ConditionStatus::False => Status::False,
        ConditionStatus::Unknown => Status::Unknown,
    };
    Condition::new(
        one_line(&c.type_),
        status,
        one_line(&c.reason),
        one_line(&c.message),
    )
}

/// An event's note: one line, cut to 1000 bytes.
fn event_note(note: &str) -> String {
    shorten(&one_line(note), 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESCAPES: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f\r\ndigest: forged";

    fn inert(text: &str) -> bool {
        !text.chars().any(char::is_control)
    }

    #[test]
    fn conditions_and_events_carry_no_control_character_of_a_plugin() {
        let warning = format!("policy p: spec{ESCAPES}: message{ESCAPES}");
        let synced = synced(2, &[warning]);
        assert!(inert(&synced.message), "{:?}", synced.message);
        assert!(
            synced
                .message
                .starts_with("2 children in sync; policy p: spec")
        );

        let condition = plugin_condition(&tessera_runtime::Condition {
            type_: format!("Type{ESCAPES}"),
            status: ConditionStatus::False,
            reason: format!("Reason{ESCAPES}"),
            message: format!("message{ESCAPES}"),
        });
        for text in [&condition.type_, &condition.reason, &condition.message] {
            assert!(inert(text), "{text:?}");
        }
        assert_eq!(condition.status, Status::False);

        let denied = ReconcileError::PolicyDenied(format!(
            "policy p denied ConfigMap t/c: metadata{ESCAPES}: message{ESCAPES}"
        ));
        let failed = not_synced(&denied);
        assert!(inert(&failed.message), "{:?}", failed.message);
        assert_eq!(failed.reason, "PolicyDenied");
        let note = event_note(&denied.to_string());
        assert!(inert(&note), "{note:?}");
        assert!(note.contains("| digest: forged"), "{note}");
    }

    #[test]
    fn well_formed_texts_are_unchanged() {
        assert_eq!(synced(3, &[]).message, "3 children in sync");
        assert_eq!(
            synced(1, &["policy p: careful".into()]).message,
            "1 children in sync; policy p: careful"
        );
        assert_eq!(
            event_note("applied 1 and pruned 0 children"),
            "applied 1 and pruned 0 children"
        );
    }
}
