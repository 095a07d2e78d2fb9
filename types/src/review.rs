//! What a policy is told about the operation under review.

use std::fmt;

/// The operation under review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The object is being created.
    Create,
    /// The object is being updated.
    Update,
    /// The object is being deleted.
    Delete,
}

impl Operation {
    /// The name the Kubernetes API uses (`CREATE`, `UPDATE`, `DELETE`), as
    /// in an AdmissionReview and a webhook's rules.
    pub fn as_api_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    /// Reads the Kubernetes API's name of an operation; `None` for any
    /// other text (`CONNECT` included: Tessera never reviews it).
    pub fn from_api_str(text: &str) -> Option<Self> {
        match text {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Operation {
    /// Lowercase, as the CLI's `--operation` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        })
    }
}

/// Who asked for the operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub username: String,
    /// The user's uid.
    pub uid: String,
    /// The user's groups.
    pub groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_round_trip() {
        for op in [Operation::Create, Operation::Update, Operation::Delete] {
            assert_eq!(Operation::from_api_str(op.as_api_str()), Some(op));
        }
        assert_eq!(Operation::from_api_str("CONNECT"), None);
        assert_eq!(Operation::from_api_str("create"), None);
    }
}
