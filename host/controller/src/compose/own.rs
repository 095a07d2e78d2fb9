//! Step 3, own: resolve each child's kind, refuse a cluster-scoped child of a
//! namespaced composite, drop the namespace of cluster-scoped children, and
//! make the composite each child's controlling owner.

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use super::KindController;
use super::child::{ChildKey, Desired};
use super::error::ReconcileError;

/// The children as they are to be judged and applied, in the plugin's
/// order.
pub(super) async fn own(
    ctx: &KindController,
    composite: &DynamicObject,
    children: &[Value],
) -> Result<Vec<Desired>, ReconcileError> {
    let shared = &ctx.shared;
    let owner = owner_reference(composite, &ctx.kind.resource);
    let mut desired = Vec::with_capacity(children.len());
    for child in children {
        let mut child = child.clone();
        let key = ChildKey::of(&child);
        let child_kind = shared
            .kinds
            .resolve(&shared.client, &key.api_version, &key.kind)
            .await?;
        if ctx.kind.namespaced && !child_kind.namespaced {
            return Err(ReconcileError::InvalidChild(key));
        }
        if !child_kind.namespaced
            && let Some(metadata) = child["metadata"].as_object_mut()
        {
            metadata.remove("namespace");
        }
        child["metadata"]["ownerReferences"] = json!([owner.clone()]);
        desired.push(Desired {
            key: ChildKey::of(&child),
            kind: child_kind,
            object: child,
        });
    }
    Ok(desired)
}

/// The composite as its children's controlling owner.
fn owner_reference(composite: &DynamicObject, resource: &ApiResource) -> Value {
    json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": composite.name_any(),
        "uid": composite.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}
