//! Step 4, judge: every policy the composition names on every child, before
//! anything is written. An enforcing deny (or a failing policy that fails
//! closed) stops the reconcile; the rest come back as warnings.

use tessera_runtime::{Operation, Review, UserInfo};

use super::child::{Desired, Observed};
use super::error::ReconcileError;
use super::{Compiled, KindController};
use crate::policies::{self, Judgement, PolicyReads};

/// The warnings of every policy on every child, or the first denial. A
/// policy with `reads` reads with the composite's namespace (`home`) as
/// its home, waiting for a new cache as long as a composition's reads do.
pub(super) async fn judge(
    ctx: &KindController,
    compiled: &Compiled,
    home: Option<&str>,
    desired: &[Desired],
    observed: &Observed,
) -> Result<Vec<String>, ReconcileError> {
    let shared = &ctx.shared;
    let reads = PolicyReads {
        shared,
        home,
        deadline: tokio::time::Instant::now()
            + crate::reads::READY_TIMEOUT
            + std::time::Duration::from_secs(1),
    };
    let mut warnings = Vec::new();
    for name in &compiled.policies {
        let policy = shared
            .policies
            .get(name)
            .ok_or_else(|| ReconcileError::PolicyNotFound {
                policy: name.clone(),
                composition: compiled.composition.clone(),
            })?;
        for child in desired {
            let old = observed.get(&child.key).cloned();
            let review = Review {
                operation: if old.is_some() {
                    Operation::Update
                } else {
                    Operation::Create
                },
                object: Some(child.object.clone()),
                old_object: old,
                user_info: UserInfo {
                    username: format!("system:tessera:{}", shared.field_manager),
                    ..UserInfo::default()
                },
            };
            match policies::judge(&policy, &review, &child.key.to_string(), Some(&reads)).await {
                Judgement::Allow { warnings: w } => warnings.extend(w),
                Judgement::Deny { message, failed } => {
                    return Err(if failed {
                        ReconcileError::PolicyFailed(message)
                    } else {
                        ReconcileError::PolicyDenied(message)
                    });
                }
            }
        }
    }
    Ok(warnings)
}
