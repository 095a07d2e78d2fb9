//! `AdmissionReview` (`admission.k8s.io/v1`) for the Tessera admission
//! webhook: decoding a request, and encoding the answer. No WebAssembly
//! dependency, so that `fuzz/` can fuzz it cheaply; the webhook turns an
//! [`AdmissionRequest`] into a runtime review.
//!
//! Decoding is strict where the webhook relies on a field (the uid, the
//! operation, the object for the operation) and lenient elsewhere (unknown
//! fields are ignored, as the API server may add some). Every error names the
//! field. Input is untrusted and fuzzed (`fuzz/`).
//!
//! ```
//! let body = br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
//!   "request": {"uid": "705ab4f5", "operation": "CREATE",
//!     "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
//!     "namespace": "shop", "userInfo": {"username": "alice"},
//!     "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}}}"#;
//! let request = tessera_admission::decode(body).unwrap();
//! assert_eq!(request.uid, "705ab4f5");
//! let answer = tessera_admission::Answer::allow(&request.uid);
//! assert!(answer.to_json().contains(r#""allowed":true"#));
//! ```

#![deny(missing_docs)]

use serde::Deserialize;
use serde_json::{Value, json};

pub use tessera_types::{Operation, UserInfo};

/// The largest AdmissionReview accepted. The API server sends at most its
/// request size limit (3 MiB by default) plus the old object.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// An AdmissionReview that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("AdmissionReview is {0} bytes; the limit is {MAX_BODY_BYTES}")]
    TooLarge(usize),
    /// The body is not JSON of the right shape.
    #[error("AdmissionReview is not valid: {0}")]
    Invalid(String),
    /// A field the webhook needs is missing or wrong.
    #[error("AdmissionReview {field}: {message}")]
    Field {
        /// The dotted path of the field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The kind of the object under review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    /// API group (`""` for the core group).
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// A decoded admission request.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRequest {
    /// The request's uid, echoed in the answer.
    pub uid: String,
    /// The kind of the object.
    pub kind: GroupVersionKind,
    /// The namespace of the object (empty for cluster-scoped objects).
    pub namespace: String,
    /// The name of the object (may be empty on create with generateName).
    pub name: String,
    /// Whether the request is a dry run.
    pub dry_run: bool,
    /// The operation.
    pub operation: Operation,
    /// The object after the operation (none on delete).
    pub object: Option<Value>,
    /// The object before the operation (update and delete).
    pub old_object: Option<Value>,
    /// Who asked.
    pub user_info: UserInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReview {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RawRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    uid: Option<String>,
    #[serde(default)]
    kind: GroupVersionKind,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    operation: Option<String>,
    #[serde(default)]
    user_info: RawUserInfo,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old_object: Option<Value>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Default, Deserialize)]
struct RawUserInfo {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

fn field(field: &'static str, message: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        field,
        message: message.into(),
    }
}

/// Decodes an AdmissionReview body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, DecodeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(DecodeError::TooLarge(body.len()));
    }
    let raw: RawReview =
        serde_json::from_slice(body).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    match raw.api_version.as_deref() {
        Some("admission.k8s.io/v1") => {}
        other => {
            return Err(field(
                "apiVersion",
                format!("must be admission.k8s.io/v1, got {other:?}"),
            ));
        }
    }
    if raw.kind.as_deref() != Some("AdmissionReview") {
        return Err(field(
            "kind",
            format!("must be AdmissionReview, got {:?}", raw.kind),
        ));
    }
    let request = raw.request.ok_or_else(|| field("request", "is missing"))?;
    let uid = request
        .uid
        .filter(|u| !u.is_empty())
        .ok_or_else(|| field("request.uid", "is missing"))?;
    let operation = match request
        .operation
        .as_deref()
        .map(|op| (op, Operation::from_api_str(op)))
    {
        Some((_, Some(operation))) => operation,
        other => {
            let other = other.map(|(op, _)| op);
            return Err(field(
                "request.operation",
                format!("must be CREATE, UPDATE or DELETE, got {other:?}"),
            ));
        }
    };
    let object = request.object.filter(|o| !o.is_null());
    let old_object = request.old_object.filter(|o| !o.is_null());
    for (name, value) in [
        ("request.object", &object),
        ("request.oldObject", &old_object),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(field(name, "must be an object"));
        }
    }
    match operation {
        Operation::Create if object.is_none() => {
            return Err(field("request.object", "is required for CREATE"));
        }
        Operation::Update if object.is_none() || old_object.is_none() => {
            return Err(field(
                "request.oldObject",
                "request.object and request.oldObject are required for UPDATE",
            ));
        }
        Operation::Delete if old_object.is_none() => {
            return Err(field("request.oldObject", "is required for DELETE"));
        }
        _ => {}
    }
    Ok(AdmissionRequest {
        uid,
        kind: request.kind,
        namespace: request.namespace.unwrap_or_default(),
        name: request.name.unwrap_or_default(),
        dry_run: request.dry_run.unwrap_or(false),
        operation,
        object,
        old_object,
        user_info: UserInfo {
            username: request.user_info.username.unwrap_or_default(),
            uid: request.user_info.uid.unwrap_or_default(),
            groups: request.user_info.groups.unwrap_or_default(),
        },
    })
}

/// The webhook's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    uid: String,
    allowed: bool,
    message: Option<String>,
    warnings: Vec<String>,
}

impl Answer {
    /// Allowed.
    pub fn allow(uid: &str) -> Self {
        Answer {
            uid: uid.to_string(),
            allowed: true,
            message: None,
            warnings: Vec::new(),
        }
    }

    /// Denied, with the message the API server shows the user.
    pub fn deny(uid: &str, message: impl Into<String>) -> Self {
        Answer {
            uid: uid.to_string(),
            allowed: false,
            message: Some(message.into()),
            warnings: Vec::new(),
        }
    }

    /// Adds a warning (shown by kubectl; used for audit mode).
    #[must_use]
    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The AdmissionReview JSON to send back.
    pub fn to_json(&self) -> String {
        let mut response = json!({"uid": self.uid, "allowed": self.allowed});
        if let Some(message) = &self.message {
            // 403 is what the API server uses for a webhook denial.
            response["status"] = json!({"code": 403, "message": message});
        }
        if !self.warnings.is_empty() {
            response["warnings"] = json!(self.warnings);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: Value) -> Vec<u8> {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn decodes_an_update() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let request = decode(&body(json!({
            "uid": "u1", "operation": "UPDATE", "namespace": "ns", "name": "c",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "userInfo": {"username": "bob", "groups": ["dev"]},
            "object": object, "oldObject": object, "dryRun": true,
            "somethingNew": 1,
        })))
        .unwrap();
        assert_eq!(request.operation, Operation::Update);
        assert_eq!(request.user_info.groups, ["dev"]);
        assert!(request.dry_run);
        assert_eq!(request.kind.kind, "ConfigMap");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                b"not json".to_vec(),
                "AdmissionReview is not valid: expected ident at line 1 column 2",
            ),
            (
                br#"{"apiVersion": "v1", "kind": "AdmissionReview"}"#.to_vec(),
                "AdmissionReview apiVersion: must be admission.k8s.io/v1, got Some(\"v1\")",
            ),
            (
                body(json!({"operation": "CREATE"})),
                "AdmissionReview request.uid: is missing",
            ),
            (
                body(json!({"uid": "u", "operation": "CONNECT"})),
                "AdmissionReview request.operation: must be CREATE, UPDATE or DELETE, got Some(\"CONNECT\")",
            ),
            (
                body(json!({"uid": "u", "operation": "CREATE"})),
                "AdmissionReview request.object: is required for CREATE",
            ),
            (
                body(json!({"uid": "u", "operation": "CREATE", "object": [1]})),
                "AdmissionReview request.object: must be an object",
            ),
            (
                body(json!({"uid": "u", "operation": "DELETE"})),
                "AdmissionReview request.oldObject: is required for DELETE",
            ),
            (
                body(json!({"uid": 5})),
                "AdmissionReview is not valid: invalid type: integer `5`, expected a string at line 1 column 79",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(decode(&input).unwrap_err().to_string(), expected);
        }
        assert_eq!(
            decode(&vec![b' '; MAX_BODY_BYTES + 1]).unwrap_err(),
            DecodeError::TooLarge(MAX_BODY_BYTES + 1)
        );
    }

    #[test]
    fn answers_echo_the_uid() {
        let denied: Value = serde_json::from_str(
            &Answer::deny("u7", "missing label team")
                .warn("audit: x")
                .to_json(),
        )
        .unwrap();
        assert_eq!(denied["response"]["uid"], "u7");
        assert_eq!(denied["response"]["allowed"], false);
        assert_eq!(
            denied["response"]["status"]["message"],
            "missing label team"
        );
        assert_eq!(denied["response"]["warnings"][0], "audit: x");
    }
}
