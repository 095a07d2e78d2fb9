//! What every step says about children: a child's identity ([`ChildKey`]),
//! a child as it is to be applied ([`Desired`]) and the children the
//! composite controls now ([`Observed`]).

use std::collections::HashMap;
use std::fmt;

use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

use crate::kinds::Kind;

/// A child's identity: what server-side apply and the status's
/// `resourceRefs` name it by. Orders by apiVersion, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ChildKey {
    /// `group/version`, or `version` for the core group.
    pub(super) api_version: String,
    /// The kind.
    pub(super) kind: String,
    /// The namespace; empty for cluster-scoped children.
    pub(super) namespace: String,
    /// The name.
    pub(super) name: String,
}

impl ChildKey {
    /// The key of `object`; a missing field reads as empty.
    pub(super) fn of(object: &Value) -> Self {
        let s = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ChildKey {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }

    /// The entry of the status's `resourceRefs` naming this child.
    pub(super) fn reference(&self) -> Value {
        let mut r = json!({"apiVersion": self.api_version, "kind": self.kind, "name": self.name});
        if !self.namespace.is_empty() {
            r["namespace"] = json!(self.namespace);
        }
        r
    }

    /// The API of this child's kind, in its namespace when it has one.
    pub(super) fn api(&self, client: &Client, kind: &Kind) -> Api<DynamicObject> {
        if kind.namespaced {
            Api::namespaced_with(client.clone(), &self.namespace, &kind.resource)
        } else {
            Api::all_with(client.clone(), &kind.resource)
        }
    }
}

/// `Kind name` or `Kind namespace/name`, as messages name a child.
impl fmt::Display for ChildKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A child as it is to be applied.
#[derive(Debug)]
pub(super) struct Desired {
    /// Its identity.
    pub(super) key: ChildKey,
    /// Its kind, resolved.
    pub(super) kind: Kind,
    /// The object, with its ownerReference.
    pub(super) object: Value,
}

/// The children the composite controls now, as JSON without
/// `managedFields`, ordered by key.
#[derive(Debug)]
pub(super) struct Observed {
    children: Vec<Value>,
    by_key: HashMap<ChildKey, usize>,
}

impl Observed {
    /// Indexes `children` by key (the last of two with one key wins).
    pub(super) fn new(children: Vec<Value>) -> Self {
        let by_key = children
            .iter()
            .enumerate()
            .map(|(index, child)| (ChildKey::of(child), index))
            .collect();
        Observed { children, by_key }
    }

    /// The observed child with `key`.
    pub(super) fn get(&self, key: &ChildKey) -> Option<&Value> {
        self.by_key.get(key).map(|&index| &self.children[index])
    }

    /// Every observed child, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Value> {
        self.children.iter()
    }
}
