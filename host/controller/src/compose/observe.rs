//! Step 1, observe: watch every kind the composite had children of last time
//! (its status's `resourceRefs`), so the plugin sees them (e.g. a Secret
//! whose value must not change), and read the children it controls.

use serde_json::Value;

use super::KindController;
use super::error::ReconcileError;

/// The children the composite with `uid` controls, as JSON without
/// `managedFields`, ordered by key, once the kinds its status names are
/// watched.
pub(super) async fn observe(
    ctx: &KindController,
    composite: &Value,
    uid: &str,
) -> Result<Vec<Value>, ReconcileError> {
    let previous_refs = composite
        .pointer("/status/resourceRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for reference in &previous_refs {
        let api_version = reference["apiVersion"].as_str().unwrap_or("");
        let kind = reference["kind"].as_str().unwrap_or("");
        if !api_version.is_empty() && !kind.is_empty() {
            ctx.children
                .ensure(&ctx.shared.kinds, api_version, kind)
                .await?;
        }
    }
    Ok(ctx.children.owned_by(uid))
}
