//! Step 6, prune: delete the children the composite controls that it no
//! longer desires, each only if it is still the object that was observed
//! (uid precondition).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use kube::api::{DeleteParams, Preconditions};
use serde_json::Value;

use super::KindController;
use super::child::{ChildKey, Desired, Observed};
use super::error::ReconcileError;

/// Deletes the observed children controlled by the composite with `uid` and
/// not in `desired`; returns how many were deleted (one already gone does
/// not count).
pub(super) async fn prune(
    ctx: &KindController,
    desired: &[Desired],
    observed: &Observed,
    uid: &str,
) -> Result<usize, ReconcileError> {
    let shared = &ctx.shared;
    let desired_keys: HashSet<&ChildKey> = desired.iter().map(|child| &child.key).collect();
    let mut pruned = 0;
    for object in observed.iter() {
        let key = ChildKey::of(object);
        if desired_keys.contains(&key) || !is_controlled_by(object, uid) {
            continue;
        }
        let kind = shared
            .kinds
            .resolve(&shared.client, &key.api_version, &key.kind)
            .await?;
        let api = key.api(&shared.client, &kind);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(String::from),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => {
                pruned += 1;
                shared.metrics.prunes.fetch_add(1, Ordering::Relaxed);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(ReconcileError::PruneFailed { child: key, source });
            }
        }
    }
    Ok(pruned)
}

/// Whether `object` names the composite with `uid` as its controller.
fn is_controlled_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"].as_str() == Some(uid) && r["controller"].as_bool() == Some(true))
        })
}
