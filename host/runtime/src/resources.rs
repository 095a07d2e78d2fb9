//! Reads of other resources on a plugin's behalf, limited to what its binding
//! allows.

use std::sync::Arc;

use serde_json::Value;

/// Where reads are answered from: fixture files offline, a watch-backed cache
/// in a cluster.
pub trait ResourceSource: Send + Sync {
    /// The object with this apiVersion, kind, namespace and name.
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value>;

    /// Every object of this apiVersion and kind (in `namespace` when given).
    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value>;
}

/// A fixed set of objects, e.g. read from `--resources` files.
#[derive(Debug, Clone, Default)]
pub struct Fixtures {
    objects: Vec<Value>,
}

impl Fixtures {
    /// Fixtures from objects.
    pub fn new(objects: Vec<Value>) -> Self {
        Fixtures { objects }
    }

    /// The distinct (apiVersion, kind) pairs among the objects, in order.
    pub fn kinds(&self) -> Vec<(String, String)> {
        let mut kinds: Vec<(String, String)> = Vec::new();
        for object in &self.objects {
            let kind = (
                str_field(object, "/apiVersion").to_string(),
                str_field(object, "/kind").to_string(),
            );
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
    }

    fn matching<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| {
            str_field(o, "/apiVersion") == api_version
                && str_field(o, "/kind") == kind
                && namespace.is_none_or(|ns| str_field(o, "/metadata/namespace") == ns)
        })
    }
}

fn str_field<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl ResourceSource for Fixtures {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.matching(api_version, kind, Some(namespace.unwrap_or("")))
            .find(|o| str_field(o, "/metadata/name") == name)
            .cloned()
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.matching(api_version, kind, namespace)
            .cloned()
            .collect()
    }
}

/// What one binding may read: a source and the kinds allowed from it.
#[derive(Clone)]
pub struct ReadAccess {
    source: Arc<dyn ResourceSource>,
    allowed: Vec<(String, String)>,
}

impl std::fmt::Debug for ReadAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAccess")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl Default for ReadAccess {
    fn default() -> Self {
        Self::none()
    }
}

impl ReadAccess {
    /// No reads at all.
    pub fn none() -> Self {
        ReadAccess {
            source: Arc::new(Fixtures::default()),
            allowed: Vec::new(),
        }
    }

    /// Reads of the `allowed` (apiVersion, kind) pairs from `source`.
    pub fn new(source: Arc<dyn ResourceSource>, allowed: Vec<(String, String)>) -> Self {
        ReadAccess { source, allowed }
    }

    fn check(&self, plugin: &str, api_version: &str, kind: &str) -> Result<(), String> {
        if self
            .allowed
            .iter()
            .any(|(v, k)| v == api_version && k == kind)
        {
            Ok(())
        } else {
            Err(format!(
                "plugin {plugin} may not read {api_version}/{kind}: its binding does not allow it"
            ))
        }
    }

    pub(crate) fn get(
        &self,
        plugin: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, String> {
        self.check(plugin, api_version, kind)?;
        Ok(self.source.get(api_version, kind, namespace, name))
    }

    pub(crate) fn list(
        &self,
        plugin: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        self.check(plugin, api_version, kind)?;
        let selector = LabelSelector::parse(selector.unwrap_or(""))?;
        Ok(self
            .source
            .list(api_version, kind, namespace)
            .into_iter()
            .filter(|o| selector.matches(o))
            .collect())
    }
}

/// An equality-based label selector: `a=b,c!=d,e,!f`.
#[derive(Debug, Default, PartialEq, Eq)]
struct LabelSelector {
    terms: Vec<Term>,
}

#[derive(Debug, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

impl LabelSelector {
    fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let term = if let Some((k, v)) = raw.split_once("!=") {
                Term::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                Term::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = raw.strip_prefix('!') {
                Term::NotExists(k.trim().into())
            } else {
                Term::Exists(raw.into())
            };
            let key = match &term {
                Term::Equals(k, _)
                | Term::NotEquals(k, _)
                | Term::Exists(k)
                | Term::NotExists(k) => k,
            };
            if key.is_empty() || key.contains([' ', '(', ')']) {
                return Err(format!("invalid label selector term {raw:?}"));
            }
            terms.push(term);
        }
        Ok(LabelSelector { terms })
    }

    fn matches(&self, object: &Value) -> bool {
        let label = |k: &str| {
            object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        self.terms.iter().all(|term| match term {
            Term::Equals(k, v) => label(k) == Some(v.as_str()),
            Term::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Term::Exists(k) => label(k).is_some(),
            Term::NotExists(k) => label(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixtures() -> Arc<Fixtures> {
        Arc::new(Fixtures::new(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x", "labels": {"tier": "db"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "x"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "x"}}),
        ]))
    }

    #[test]
    fn reads_are_limited_to_allowed_kinds() {
        let access = ReadAccess::new(fixtures(), vec![("v1".into(), "ConfigMap".into())]);
        assert!(
            access
                .get("p", "v1", "ConfigMap", Some("x"), "a")
                .unwrap()
                .is_some()
        );
        assert!(
            access
                .get("p", "v1", "ConfigMap", Some("y"), "a")
                .unwrap()
                .is_none()
        );
        let err = access.get("p", "v1", "Secret", Some("x"), "s").unwrap_err();
        assert_eq!(
            err,
            "plugin p may not read v1/Secret: its binding does not allow it"
        );
        assert_eq!(
            access
                .list("p", "v1", "ConfigMap", None, Some("tier=db"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            access
                .list("p", "v1", "ConfigMap", None, Some("!tier"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            access
                .list("p", "v1", "ConfigMap", Some("x"), None)
                .unwrap()
                .len(),
            2
        );
        assert!(
            access
                .list("p", "v1", "ConfigMap", None, Some("a b"))
                .is_err()
        );
    }
}
