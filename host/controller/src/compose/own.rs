//! Step 3, own: resolve each child's kind, refuse a cluster-scoped child of a
//! namespaced composite, drop the namespace of cluster-scoped children, and
//! make the composite each child's controlling owner.
//!
//! The runtime already refused the children the API server would (names,
//! labels, well-known cluster-scoped kinds: `provenance.rs`); discovery
//! knows the scope of every kind, custom ones too, and a cluster-scoped
//! child is refused here with the runtime's message.

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};
use tessera_runtime::provenance::cluster_scoped_child;

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
    for (index, child) in children.iter().enumerate() {
        let mut child = child.clone();
        let key = ChildKey::of(&child);
        let child_kind = shared
            .kinds
            .resolve(&shared.client, &key.api_version, &key.kind)
            .await?;
        if ctx.kind.namespaced && !child_kind.namespaced {
            return Err(ReconcileError::InvalidChild(cluster_scoped_child(
                index, &key.kind, &key.name,
            )));
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
