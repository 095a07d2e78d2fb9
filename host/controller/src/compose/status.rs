//! Step 7, status: the composite's status (`Synced` and `Ready` conditions,
//! the plugin's own conditions and status fields, `observedGeneration`,
//! `pluginDigest`, `resourceRefs`), written only when it changed, and the
//! events of a reconcile.

use std::sync::atomic::Ordering;
use tessera_types::text::shorten;

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
            let message = if outcome.warnings.is_empty() {
                format!("{} children in sync", outcome.refs.len())
            } else {
                format!(
                    "{} children in sync; {}",
                    outcome.refs.len(),
                    outcome.warnings.join("; ")
                )
            };
            conditions.push(Condition::new(
                "Synced",
                Status::True,
                "ReconcileSuccess",
                message,
            ));
            for c in &outcome.plugin_conditions {
                if c.type_ == "Ready" || c.type_ == "Synced" {
                    continue;
                }
                let s = match c.status {
                    ConditionStatus::True => Status::True,
                    ConditionStatus::False => Status::False,
                    ConditionStatus::Unknown => Status::Unknown,
                };
                conditions.push(Condition::new(
                    c.type_.clone(),
                    s,
                    c.reason.clone(),
                    c.message.clone(),
                ));
            }
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
            conditions.push(Condition::new(
                "Synced",
                Status::False,
                error.reason(),
                shorten(&error.to_string(), 1024),
            ));
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
        note: Some(shorten(&note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.shared.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "publishing an event");
    }
}
