//! Why a reconcile failed: [`ReconcileError`], whose [`reason`] is the
//! `Synced` condition's reason and the event's, and whose message (its
//! `Display`) is what both say.
//!
//! [`reason`]: ReconcileError::reason

use std::sync::Arc;

use super::child::ChildKey;
use super::watches::WatchError;
use crate::kinds::KindError;
use crate::plugins::BindError;
use crate::policies::one_line;

/// A failed reconcile. Each variant says which step failed; none of them
/// changed a child.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
    /// The composition's plugin is not available (not loaded, wrong world,
    /// settings or limits refused).
    #[error("composition {composition}: {source}")]
    PluginUnavailable {
        /// The composition's name.
        composition: String,
        /// Why its plugin is not available.
        #[source]
        source: Arc<BindError>,
    },
    /// The composite could not be turned into JSON.
    #[error("{0}")]
    Internal(#[source] serde_json::Error),
    /// The kind of a child is not served.
    #[error("{0}")]
    ChildKindUnknown(#[from] KindError),
    /// A child kind could not be watched.
    #[error("{0}")]
    ChildWatchFailed(#[from] WatchError),
    /// The plugin failed: a trap, a deadline, an answer the host refused.
    #[error("{}", one_line(&.0.to_string()))]
    PluginFailed(#[source] tessera_runtime::Error),
    /// A namespaced composite has a cluster-scoped child, which it cannot
    /// own: the runtime's message for it
    /// ([`tessera_runtime::provenance::cluster_scoped_child`]).
    #[error("{0}")]
    InvalidChild(String),
    /// The composition names a policy that does not exist.
    #[error("policy {policy} named by composition {composition} does not exist")]
    PolicyNotFound {
        /// The policy's name.
        policy: String,
        /// The composition's name.
        composition: String,
    },
    /// An enforcing policy denied a child.
    #[error("{0}")]
    PolicyDenied(String),
    /// A policy with `failurePolicy: Fail` failed on a child.
    #[error("{0}")]
    PolicyFailed(String),
    /// The API server refused a child (in the dry run or for real).
    #[error("{child}: {}", api_message(.source))]
    ApplyFailed {
        /// The child.
        child: ChildKey,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// Deleting a child no longer desired failed.
    #[error("{child}: {}", api_message(.source))]
    PruneFailed {
        /// The child.
        child: ChildKey,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// A kind the plugin may read cannot be served: not installed, not
    /// listable by the controller, or over the cache bound.
    #[error("{0}")]
    ReadsUnavailable(#[source] crate::reads::ReadsError),
    /// The composition's `reads` are not valid.
    #[error("{0}")]
    ReadsRefused(String),
    /// Writing the composite's status failed.
    #[error("writing the status: {}", api_message(.0))]
    StatusFailed(#[source] kube::Error),
}

impl ReconcileError {
    /// The reason the `Synced` condition and the event carry.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ReconcileError::PluginUnavailable { .. } => "PluginUnavailable",
            ReconcileError::Internal(_) => "Internal",
            ReconcileError::ChildKindUnknown(_) | ReconcileError::ChildWatchFailed(_) => {
                "ChildKindUnknown"
            }
            ReconcileError::PluginFailed(_) => "PluginFailed",
            ReconcileError::ReadsUnavailable(_) | ReconcileError::ReadsRefused(_) => {
                "ReadsUnavailable"
            }
            ReconcileError::InvalidChild(_) => "InvalidChild",
            ReconcileError::PolicyNotFound { .. } => "PolicyNotFound",
            ReconcileError::PolicyDenied(_) => "PolicyDenied",
            ReconcileError::PolicyFailed(_) => "PolicyFailed",
            ReconcileError::ApplyFailed { .. } => "ApplyFailed",
            ReconcileError::PruneFailed { .. } => "PruneFailed",
            ReconcileError::StatusFailed(_) => "StatusFailed",
        }
    }

    /// `Reason: message`, as logs show a failure.
    pub(crate) fn summary(&self) -> String {
        format!("{}: {self}", self.reason())
    }
}

/// What the API server said, on one line.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => one_line(&status.message),
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str) -> ChildKey {
        ChildKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: namespace.into(),
            name: "settings".into(),
        }
    }

    #[test]
    fn reasons_and_messages_are_what_status_and_events_say() {
        let invalid = ReconcileError::InvalidChild(
            tessera_runtime::provenance::cluster_scoped_child(2, "ClusterRole", "admin"),
        );
        assert_eq!(invalid.reason(), "InvalidChild");
        assert_eq!(
            invalid.to_string(),
            "child 2 (ClusterRole admin) is cluster-scoped and cannot be owned by a namespaced composite"
        );
        let missing = ReconcileError::PolicyNotFound {
            policy: "require-labels".into(),
            composition: "databases".into(),
        };
        assert_eq!(missing.reason(), "PolicyNotFound");
        assert_eq!(
            missing.summary(),
            "PolicyNotFound: policy require-labels named by composition databases does not exist"
        );
        let denied =
            ReconcileError::PolicyDenied("policy p denied ConfigMap a/settings: no".into());
        assert_eq!(denied.reason(), "PolicyDenied");
        assert_eq!(
            denied.to_string(),
            "policy p denied ConfigMap a/settings: no"
        );
        assert_eq!(
            ReconcileError::PolicyFailed(String::new()).reason(),
            "PolicyFailed"
        );
    }

    #[test]
    fn unavailable_reads_name_the_kind_and_place_in_one_line() {
        let error = ReconcileError::ReadsUnavailable(crate::reads::ReadsError {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            place: "in namespace shop".into(),
            reason: "configmaps is forbidden".into(),
        });
        assert_eq!(error.reason(), "ReadsUnavailable");
        assert_eq!(
            error.to_string(),
            "cannot read v1 ConfigMap in namespace shop: configmaps is forbidden"
        );
    }

    #[test]
    fn api_errors_are_one_line() {
        let status = kube::core::Status::failure("line one\nline two", "Invalid").with_code(422);
        let failed = ReconcileError::ApplyFailed {
            child: key("team-a"),
            source: kube::Error::Api(Box::new(status)),
        };
        assert_eq!(failed.reason(), "ApplyFailed");
        // Every line is kept, folded onto one (the one `one_line` of
        // `tessera-types`): a message that starts with a newline is not
        // lost.
        assert_eq!(
            failed.to_string(),
            "ConfigMap team-a/settings: line one | line two"
        );
    }
}
