//! Step 5, apply: server-side apply of the children that differ from what
//! the server holds (a steady state writes nothing). Every change is
//! dry-run first, so one rejected child leaves all of them as they were.

use std::sync::atomic::Ordering;

use kube::api::{Patch, PatchParams};

use super::KindController;
use super::child::{Desired, Observed};
use super::error::ReconcileError;
use crate::diff::is_subset;

/// Applies the changed children; returns how many.
pub(super) async fn apply(
    ctx: &KindController,
    desired: &[Desired],
    observed: &Observed,
) -> Result<usize, ReconcileError> {
    let shared = &ctx.shared;
    let changed: Vec<&Desired> = desired
        .iter()
        .filter(|child| {
            !observed
                .get(&child.key)
                .is_some_and(|o| is_subset(&child.object, o))
        })
        .collect();
    for dry_run in [true, false] {
        for child in &changed {
            let api = child.key.api(&shared.client, &child.kind);
            let mut params = PatchParams::apply(&shared.field_manager).force();
            params.dry_run = dry_run;
            api.patch(&child.key.name, &params, &Patch::Apply(&child.object))
                .await
                .map_err(|source| ReconcileError::ApplyFailed {
                    child: child.key.clone(),
                    source,
                })?;
            if !dry_run {
                shared.metrics.applies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(changed.len())
}
