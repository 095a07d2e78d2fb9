//! Step 2, expand: run the composition plugin on the composite and the
//! children it controls. When the children name a kind not watched yet, the
//! kind is watched, and when that shows children the plugin did not see, the
//! plugin runs again with them.

use serde_json::Value;
use tessera_runtime::{Binding, Composed, Context};

use super::KindController;
use super::child::ChildKey;
use super::error::ReconcileError;

/// What the plugin composed, and the observed children it saw.
pub(super) async fn expand(
    ctx: &KindController,
    binding: &Binding,
    composite: &Value,
    uid: &str,
    observed: Vec<Value>,
) -> Result<(Composed, Vec<Value>), ReconcileError> {
    let context = Context {
        caller: "controller".into(),
        dry_run: false,
    };
    let mut observed = observed;
    let mut composed = binding
        .expand(composite, &observed, &context)
        .await
        .map_err(ReconcileError::PluginFailed)?;

    let mut kinds: Vec<(String, String)> = Vec::new();
    let mut new_kind = false;
    for child in &composed.children {
        let key = ChildKey::of(child);
        let kind = (key.api_version, key.kind);
        if !kinds.contains(&kind) {
            new_kind |= ctx
                .children
                .ensure(&ctx.shared.kinds, &kind.0, &kind.1)
                .await?;
            kinds.push(kind);
        }
    }
    if new_kind {
        let now_observed = ctx.children.owned_by(uid);
        if now_observed.len() != observed.len() {
            observed = now_observed;
            composed = binding
                .expand(composite, &observed, &context)
                .await
                .map_err(ReconcileError::PluginFailed)?;
        }
    }
    Ok((composed, observed))
}
