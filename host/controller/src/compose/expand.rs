//! Step 2, expand: run the composition plugin on the composite and the
//! children it controls. When the children name a kind not watched yet, the
//! kind is watched, and when that shows children the plugin did not see, the
//! plugin runs again with them.

use std::sync::Arc;

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use tessera_runtime::{Binding, Composed, Context, ReadAccess, ReadRule};

use super::KindController;
use super::child::ChildKey;
use super::error::ReconcileError;
use crate::metrics;

/// What the plugin composed, and the observed children it saw. The plugin
/// reads what `reads` allows, from the shared read caches
/// ([`crate::reads`]); what it read is recorded for `key`, so a change of
/// it expands the composite again (also when the expansion failed).
pub(super) async fn expand(
    ctx: &KindController,
    binding: &Binding,
    reads: &[ReadRule],
    key: &ObjectRef<DynamicObject>,
    composite: &Value,
    uid: &str,
    observed: Vec<Value>,
) -> Result<(Composed, Vec<Value>), ReconcileError> {
    if reads.is_empty() {
        ctx.shared
            .reads
            .depend(key.clone(), ctx.trigger.clone(), None);
        return expand_with(ctx, binding, composite, uid, observed).await;
    }
    let home = composite
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let view = Arc::new(
        ctx.shared
            .reads
            .view(&ctx.shared.kinds, reads, home)
            .await
            .map_err(ReconcileError::ReadsUnavailable)?,
    );
    let access = ReadAccess::scoped(view.clone(), reads.to_vec(), home.map(String::from))
        .map_err(ReconcileError::ReadsRefused)?;
    let bound = binding.clone().with_reads(access);
    let result = expand_with(ctx, &bound, composite, uid, observed).await;
    ctx.shared
        .reads
        .depend(key.clone(), ctx.trigger.clone(), Some(&view));
    result
}

async fn expand_with(
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
    let mut composed = metrics::evaluation(binding, binding.expand(composite, &observed, &context))
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
            composed = metrics::evaluation(binding, binding.expand(composite, &observed, &context))
                .await
                .map_err(ReconcileError::PluginFailed)?;
        }
    }
    Ok((composed, observed))
}
