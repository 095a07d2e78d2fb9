//! Step 4, judge: every policy the composition names on every child, before
//! anything is written. An enforcing deny (or a failing policy that fails
//! closed) stops the reconcile; the rest come back as warnings.

use tessera_runtime::{Operation, Review, UserInfo};

use super::child::{Desired, Observed};
use super::error::ReconcileError;
use super::{Compiled, KindController};
use crate::policies::{self, Judgement};

/// The warnings of every policy on every child, or the first denial.
pub(super) async fn judge(
    ctx: &KindController,
    compiled: &Compiled,
    desired: &[Desired],
    observed: &Observed,
) -> Result<Vec<String>, ReconcileError> {
    let shared = &ctx.shared;
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
            match policies::judge(&policy, &review, &child.key.to_string()).await {
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
