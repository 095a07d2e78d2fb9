//! Status conditions, set the way Kubernetes sets them: one helper for the
//! conditions of composites, `Composition`s and `Policy`s, so all of them
//! keep `lastTransitionTime` the same way.

use serde_json::{Value, json};

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// The controller cannot tell.
    Unknown,
}

impl Status {
    /// How the status is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// One condition the controller sets, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The condition's type, e.g. `Ready`.
    pub type_: String,
    /// True, False or Unknown.
    pub status: Status,
    /// A CamelCase reason.
    pub reason: String,
    /// A human-readable message.
    pub message: String,
}

impl Condition {
    /// A condition of `type_`.
    pub fn new(
        type_: impl Into<String>,
        status: Status,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// `conditions` as the JSON list a status holds, in the same order. Each one
/// keeps the `lastTransitionTime` of the first condition of its type in `old`
/// when that one has the same status; otherwise (a new type, or a changed
/// status) the transition is now. Every condition carries
/// `observedGeneration: generation` (null when unknown).
pub fn merge(conditions: Vec<Condition>, old: &[Value], generation: Option<i64>) -> Vec<Value> {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    conditions
        .into_iter()
        .map(|condition| {
            let status = condition.status.as_str();
            let old = old.iter().find(|c| c["type"] == condition.type_.as_str());
            let same_status = old.is_some_and(|c| c["status"] == status);
            let transition = old
                .filter(|_| same_status)
                .and_then(|c| c["lastTransitionTime"].as_str())
                .unwrap_or(&now)
                .to_string();
            json!({
                "type": condition.type_,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: Status) -> Condition {
        Condition::new("Ready", status, "Because", "so")
    }

    #[test]
    fn a_kept_status_keeps_its_transition_time() {
        let old = [json!({"type": "Ready", "status": "True",
            "lastTransitionTime": "2020-01-01T00:00:00Z"})];
        let merged = merge(vec![ready(Status::True)], &old, Some(3));
        assert_eq!(
            merged,
            [json!({
                "type": "Ready", "status": "True", "reason": "Because", "message": "so",
                "lastTransitionTime": "2020-01-01T00:00:00Z", "observedGeneration": 3,
            })]
        );
    }

    #[test]
    fn a_changed_status_or_a_new_type_is_a_transition_now() {
        let old = [json!({"type": "Ready", "status": "True",
            "lastTransitionTime": "2020-01-01T00:00:00Z"})];
        let merged = merge(
            vec![
                ready(Status::False),
                Condition::new("Synced", Status::True, "Ok", ""),
            ],
            &old,
            None,
        );
        for condition in &merged {
            assert_ne!(condition["lastTransitionTime"], "2020-01-01T00:00:00Z");
            assert_eq!(condition["observedGeneration"], Value::Null);
        }
        assert_eq!(merged[0]["status"], "False");
        assert_eq!(merged[1]["type"], "Synced");
    }
}
