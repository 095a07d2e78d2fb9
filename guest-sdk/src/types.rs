//! The typed values a plugin reads and returns.

use std::fmt;

use serde_json::Value;

pub use tessera_types::{Condition, ConditionStatus, Finding, Operation, Severity, UserInfo};

use crate::fields::Fields;
use crate::object::Object;
use crate::wit::composition::tessera::plugin::composition_types as c;
use crate::wit::composition::tessera::plugin::types as t;
use crate::wit::policy::tessera::plugin::policy_types as p;

/// The plugin refuses its input. The host shows `message` (and `field`) to
/// the user as the plugin's answer, not as a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    field: Option<String>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error about the input as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            field: None,
        }
    }

    /// An error about one field, given by its dotted path (`spec.replicas`).
    pub fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub(crate) fn into_wit(self) -> t::PluginError {
        t::PluginError {
            message: self.message,
            field: self.field,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// What a plugin says about itself: name, version, the kinds it handles and
/// the JSON schema of its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    name: String,
    version: String,
    description: String,
    kinds: Vec<(String, String)>,
    settings_schema: Option<Value>,
}

impl Metadata {
    /// Metadata with a name and a version (use `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Metadata {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            kinds: Vec::new(),
            settings_schema: None,
        }
    }

    /// A one-line description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a kind the plugin expands or checks.
    #[must_use]
    pub fn handles(mut self, api_version: impl Into<String>, kind: impl Into<String>) -> Self {
        self.kinds.push((api_version.into(), kind.into()));
        self
    }

    /// The JSON schema (draft 2020-12) the host checks settings against
    /// before the first call.
    #[must_use]
    pub fn settings_schema(mut self, schema: Value) -> Self {
        self.settings_schema = Some(schema);
        self
    }

    pub(crate) fn into_wit(self) -> t::PluginMetadata {
        t::PluginMetadata {
            name: self.name,
            version: self.version,
            description: self.description,
            kinds: self
                .kinds
                .into_iter()
                .map(|(api_version, kind)| t::KindRef { api_version, kind })
                .collect(),
            settings_schema: self.settings_schema.as_ref().map(json_text),
        }
    }
}

/// A finding as the WIT carries it.
fn finding_into_wit(finding: Finding) -> t::Finding {
    t::Finding {
        severity: match finding.severity {
            Severity::Info => t::Severity::Info,
            Severity::Warning => t::Severity::Warning,
            Severity::Error => t::Severity::Error,
        },
        message: finding.message,
        field: finding.field,
    }
}

/// A condition as the WIT carries it.
fn condition_into_wit(condition: Condition) -> t::Condition {
    t::Condition {
        type_: condition.type_,
        status: match condition.status {
            ConditionStatus::True => t::ConditionStatus::True,
            ConditionStatus::False => t::ConditionStatus::False,
            ConditionStatus::Unknown => t::ConditionStatus::Unknown,
        },
        reason: condition.reason,
        message: condition.message,
    }
}

/// Facts about the evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Where the evaluation runs: `cli`, `controller`, ...
    pub caller: String,
    /// True when the result will not be applied.
    pub dry_run: bool,
}

/// What `expand` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositionRequest {
    /// The composite.
    pub composite: Object,
    /// The children the composite already owns, as observed.
    pub observed: Vec<Object>,
    /// The binding's settings (an object; empty when none were given).
    pub settings: Value,
    /// Facts about the evaluation.
    pub context: Context,
}

impl CompositionRequest {
    /// Reads fields of the composite's `spec` with error messages that name
    /// the field. A missing `spec` reads as empty.
    pub fn spec(&self) -> Fields<'_> {
        Fields::new("spec", self.composite.as_value().get("spec"))
    }

    /// Reads fields of the settings.
    pub fn settings(&self) -> Fields<'_> {
        Fields::new("settings", Some(&self.settings))
    }

    /// The observed child with this apiVersion, kind and name, if any.
    pub fn observed(&self, api_version: &str, kind: &str, name: &str) -> Option<&Object> {
        self.observed
            .iter()
            .find(|o| o.api_version() == api_version && o.kind() == kind && o.name() == name)
    }

    /// The decoded value of `data[key]` in the observed Secret `name`, if
    /// there is one. Use it to keep a generated credential stable.
    pub fn observed_secret_value(&self, name: &str, key: &str) -> Option<String> {
        let secret = self.observed("v1", "Secret", name)?;
        let encoded = secret.as_value().get("data")?.get(key)?.as_str()?;
        let bytes = crate::object::base64_decode(encoded)?;
        String::from_utf8(bytes).ok()
    }

    /// A credential: the observed Secret's value when there is one (and it
    /// is not empty), otherwise
    /// a value derived by the host from its secret key, this composite's
    /// identity and `purpose` (see [`crate::host::derive_secret`]).
    pub fn credential(&self, secret_name: &str, key: &str, length: u32) -> String {
        self.observed_secret_value(secret_name, key)
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| crate::host::derive_secret(&format!("{secret_name}/{key}"), length))
    }

    /// A new child object with `metadata.name`, the composite's namespace (if
    /// any) and the composite's labels.
    pub fn child(&self, api_version: &str, kind: &str, name: impl Into<String>) -> Object {
        let mut child = Object::new(api_version, kind, name);
        if let Some(namespace) = self.composite.namespace() {
            child = child.with_namespace(namespace);
        }
        for (key, value) in self.composite.labels() {
            child = child.with_label(key, value);
        }
        child
    }

    pub(crate) fn from_wit(request: c::Request) -> Result<Self> {
        Ok(CompositionRequest {
            composite: Object::parse("composite", &request.composite)?,
            observed: request
                .observed
                .iter()
                .enumerate()
                .map(|(i, o)| Object::parse(&format!("observed[{i}]"), o))
                .collect::<Result<_>>()?,
            settings: parse_json("settings", &request.settings)?,
            context: Context {
                caller: request.context.caller,
                dry_run: request.context.dry_run,
            },
        })
    }
}

/// What `expand` answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expansion {
    children: Vec<Object>,
    status: Option<Value>,
    conditions: Vec<Condition>,
    findings: Vec<Finding>,
    ready: bool,
}

impl Expansion {
    /// An empty expansion, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a child.
    #[must_use]
    pub fn child(mut self, child: Object) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the JSON object merged into the composite's `status`.
    #[must_use]
    pub fn status(mut self, status: Value) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds a condition for the composite.
    #[must_use]
    pub fn condition(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Adds a finding.
    #[must_use]
    pub fn finding(mut self, finding: Finding) -> Self {
        self.findings.push(finding);
        self
    }

    /// Says whether the composite is ready.
    #[must_use]
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    /// The children so far.
    pub fn children(&self) -> &[Object] {
        &self.children
    }

    /// The status patch so far.
    pub fn status_patch(&self) -> Option<&Value> {
        self.status.as_ref()
    }

    /// The findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether the composite is ready.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub(crate) fn into_wit(self) -> c::Expansion {
        c::Expansion {
            children: self.children.iter().map(Object::to_json).collect(),
            status: self.status.as_ref().map(json_text),
            conditions: self
                .conditions
                .into_iter()
                .map(condition_into_wit)
                .collect(),
            findings: self.findings.into_iter().map(finding_into_wit).collect(),
            ready: self.ready,
        }
    }
}

/// What `validate` is asked to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// The operation.
    pub operation: Operation,
    /// The object after the operation (none on delete).
    pub object: Option<Object>,
    /// The object before the operation (update and delete).
    pub old_object: Option<Object>,
    /// Who asked.
    pub user_info: UserInfo,
    /// The binding's settings (an object; empty when none were given).
    pub settings: Value,
}

impl Review {
    /// The object the operation is about: the new object, or the old one on
    /// delete.
    pub fn subject(&self) -> Option<&Object> {
        self.object.as_ref().or(self.old_object.as_ref())
    }

    /// Reads fields of the settings.
    pub fn settings(&self) -> Fields<'_> {
        Fields::new("settings", Some(&self.settings))
    }

    pub(crate) fn from_wit(review: p::Review) -> Result<Self> {
        Ok(Review {
            operation: match review.operation {
                p::Operation::Create => Operation::Create,
                p::Operation::Update => Operation::Update,
                p::Operation::Delete => Operation::Delete,
            },
            object: review
                .object
                .map(|o| Object::parse("object", &o))
                .transpose()?,
            old_object: review
                .old_object
                .map(|o| Object::parse("oldObject", &o))
                .transpose()?,
            user_info: UserInfo {
                username: review.user_info.username,
                uid: review.user_info.uid,
                groups: review.user_info.groups,
            },
            settings: parse_json("settings", &review.settings)?,
        })
    }
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the operation is allowed.
    pub allowed: bool,
    /// Why, in detail.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Allowed, with no findings.
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            findings: Vec::new(),
        }
    }

    /// Denied when any finding is an error, allowed otherwise.
    pub fn from_findings(findings: Vec<Finding>) -> Self {
        Verdict {
            allowed: !findings.iter().any(|f| f.severity == Severity::Error),
            findings,
        }
    }

    pub(crate) fn into_wit(self) -> p::Verdict {
        p::Verdict {
            allowed: self.allowed,
            findings: self.findings.into_iter().map(finding_into_wit).collect(),
        }
    }
}

/// A value as compact JSON text. `serde_json::to_string` writes straight
/// into a buffer; `Value::to_string` goes through `fmt::Display` and its
/// per-token indirect calls, which made serialising the children the largest
/// single cost of a plugin's `expand` in WebAssembly (BENCHMARKS.md).
pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value with string keys always serializes")
}

fn parse_json(what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::new(format!("{what} is not valid JSON: {e}")))
}
