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

/// The namespace entry of a [`ReadRule`] that allows every namespace and
/// cluster-scoped objects.
pub const ALL_NAMESPACES: &str = "*";

/// One kind a binding may read, and where: the `reads` entries of a
/// `Composition` or `Policy`, and of `tessera render --reads`.
///
/// ```yaml
/// - apiVersion: v1
///   kind: ConfigMap
///   namespaces: [platform-defaults]  # default: the home namespace only
///   labelSelector: tessera.dev/defaults=true
/// ```
///
/// Without `namespaces` a rule allows reads in the *home* namespace only:
/// the composite's own namespace (for a policy, the reviewed object's).
/// Other namespaces must be named; `"*"` allows every namespace, lists
/// across all namespaces and cluster-scoped objects. A kind is always named
/// exactly (there is no wildcard kind), so a binding reads `Secret`s only
/// when a rule names `v1` `Secret`.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(
        description = "A kind the plugin may read: by default in the home namespace only (the composite's, or the reviewed object's); other namespaces when named, all of them and cluster-scoped objects with `*`. Secrets only when a rule names them."
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReadRule {
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// The kind, e.g. `ConfigMap`.
    pub kind: String,
    /// The namespaces reads may name; empty: the home namespace only; `*`:
    /// every namespace and cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only objects whose labels match this selector (`a=b,c!=d,e,!f`) are
    /// visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

impl ReadRule {
    /// A rule for `api_version` `kind` in the home namespace, any labels.
    pub fn new(api_version: impl Into<String>, kind: impl Into<String>) -> Self {
        ReadRule {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaces: Vec::new(),
            label_selector: None,
        }
    }

    /// Checks the rule: a kind and apiVersion, namespaces that are names or
    /// `*`, a selector that parses. The error names the rule.
    pub fn check(&self) -> Result<(), String> {
        let name = format!("reads {}/{}", self.api_version, self.kind);
        if self.api_version.trim().is_empty() || self.kind.trim().is_empty() {
            return Err(format!("{name}: apiVersion and kind are required"));
        }
        for namespace in &self.namespaces {
            if namespace != ALL_NAMESPACES && namespace.trim().is_empty() {
                return Err(format!(
                    "{name}: an empty namespace; name one, or \"*\" for all"
                ));
            }
        }
        LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(())
    }

    /// Whether reads across all namespaces (and of cluster-scoped objects)
    /// are allowed.
    pub fn all_namespaces(&self) -> bool {
        self.namespaces.iter().any(|n| n == ALL_NAMESPACES)
    }

    /// The namespaces this rule opens given the home namespace: `None` for
    /// all of them, else the named ones (the home one when none is named).
    pub fn scope(&self, home: Option<&str>) -> Option<Vec<String>> {
        if self.all_namespaces() {
            None
        } else if self.namespaces.is_empty() {
            Some(home.map(String::from).into_iter().collect())
        } else {
            Some(self.namespaces.clone())
        }
    }

    fn allows(&self, namespace: Option<&str>, home: Option<&str>) -> bool {
        match (self.scope(home), namespace) {
            (None, _) => true,
            (Some(allowed), Some(namespace)) => allowed.iter().any(|a| a == namespace),
            (Some(_), None) => false,
        }
    }

    fn describe_scope(&self, home: Option<&str>) -> String {
        match self.scope(home) {
            None => "every namespace".into(),
            Some(allowed) if allowed.is_empty() => "no namespace".into(),
            Some(allowed) => format!("only namespace {}", allowed.join(", ")),
        }
    }
}

/// What one binding may read: a source, the rules of what is allowed from
/// it, and the home namespace rules without `namespaces` open.
#[derive(Clone)]
pub struct ReadAccess {
    source: Arc<dyn ResourceSource>,
    rules: Vec<ReadRule>,
    home: Option<String>,
}

impl std::fmt::Debug for ReadAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAccess")
            .field("rules", &self.rules)
            .field("home", &self.home)
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
            rules: Vec::new(),
            home: None,
        }
    }

    /// Reads of the `allowed` (apiVersion, kind) pairs from `source`, in
    /// any namespace (for tests and embedders; the front ends use
    /// [`ReadAccess::scoped`]).
    pub fn new(source: Arc<dyn ResourceSource>, allowed: Vec<(String, String)>) -> Self {
        let rules = allowed
            .into_iter()
            .map(|(api_version, kind)| ReadRule {
                namespaces: vec![ALL_NAMESPACES.into()],
                ..ReadRule::new(api_version, kind)
            })
            .collect();
        ReadAccess {
            source,
            rules,
            home: None,
        }
    }

    /// Reads from `source` within `rules`; a rule without namespaces opens
    /// `home` only (the composite's namespace, or the reviewed object's).
    /// Every rule is checked first ([`ReadRule::check`]).
    pub fn scoped(
        source: Arc<dyn ResourceSource>,
        rules: Vec<ReadRule>,
        home: Option<String>,
    ) -> Result<Self, String> {
        for rule in &rules {
            rule.check()?;
        }
        Ok(ReadAccess {
            source,
            rules,
            home,
        })
    }

    /// The rules of this access.
    pub fn rules(&self) -> &[ReadRule] {
        &self.rules
    }

    /// The rules that allow this read, or the plugin's error saying why
    /// none does.
    fn check(
        &self,
        plugin: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<&ReadRule>, String> {
        let of_kind: Vec<&ReadRule> = self
            .rules
            .iter()
            .filter(|r| r.api_version == api_version && r.kind == kind)
            .collect();
        let Some(first) = of_kind.first() else {
            return Err(format!(
                "plugin {plugin} may not read {api_version}/{kind}: its binding does not allow it"
            ));
        };
        let home = self.home.as_deref();
        let allowing: Vec<&ReadRule> = of_kind
            .iter()
            .copied()
            .filter(|r| r.allows(namespace, home))
            .collect();
        if allowing.is_empty() {
            let place = match namespace {
                Some(namespace) => format!("in namespace {namespace}"),
                None => "across all namespaces or cluster-scoped".into(),
            };
            return Err(format!(
                "plugin {plugin} may not read {api_version}/{kind} {place}: its binding allows {}",
                first.describe_scope(home)
            ));
        }
        Ok(allowing)
    }

    pub(crate) fn get(
        &self,
        plugin: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, String> {
        let rules = self.check(plugin, api_version, kind, namespace)?;
        let visible = visibility(&rules)?;
        Ok(self
            .source
            .get(api_version, kind, namespace, name)
            .filter(|o| visible.iter().any(|s| s.matches(o))))
    }

    pub(crate) fn list(
        &self,
        plugin: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        let rules = self.check(plugin, api_version, kind, namespace)?;
        let visible = visibility(&rules)?;
        let selector = LabelSelector::parse(selector.unwrap_or(""))?;
        let home = self.home.as_deref();
        Ok(self
            .source
            .list(api_version, kind, namespace)
            .into_iter()
            .filter(|o| selector.matches(o) && visible.iter().any(|s| s.matches(o)))
            // A list across namespaces still holds only what some rule
            // allows in the object's own namespace.
            .filter(|o| {
                let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
                rules.iter().any(|r| r.allows(ns, home))
            })
            .collect())
    }
}

/// The selectors of the rules allowing a read: an object is visible when
/// any of them matches.
fn visibility(rules: &[&ReadRule]) -> Result<Vec<LabelSelector>, String> {
    rules
        .iter()
        .map(|r| LabelSelector::parse(r.label_selector.as_deref().unwrap_or("")))
        .collect()
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

    fn rule(kind: &str, namespaces: &[&str]) -> ReadRule {
        ReadRule {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            ..ReadRule::new("v1", kind)
        }
    }

    #[test]
    fn a_rule_without_namespaces_reads_only_the_home_namespace() {
        let mut objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "other"}}),
        ];
        objects.extend(fixtures().objects.clone());
        let source = Arc::new(Fixtures::new(objects));
        let access = ReadAccess::scoped(
            source.clone(),
            vec![rule("ConfigMap", &[])],
            Some("x".into()),
        )
        .unwrap();
        assert!(
            access
                .get("p", "v1", "ConfigMap", Some("x"), "a")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            access
                .get("p", "v1", "ConfigMap", Some("other"), "d")
                .unwrap_err(),
            "plugin p may not read v1/ConfigMap in namespace other: its binding allows only namespace x"
        );
        assert_eq!(
            access.list("p", "v1", "ConfigMap", None, None).unwrap_err(),
            "plugin p may not read v1/ConfigMap across all namespaces or cluster-scoped: its binding allows only namespace x"
        );
        // Named namespaces open those (and not the home one); `*` opens all.
        let named = ReadAccess::scoped(
            source.clone(),
            vec![rule("ConfigMap", &["other"])],
            Some("x".into()),
        )
        .unwrap();
        assert!(
            named
                .get("p", "v1", "ConfigMap", Some("other"), "d")
                .unwrap()
                .is_some()
        );
        assert!(named.get("p", "v1", "ConfigMap", Some("x"), "a").is_err());
        let all =
            ReadAccess::scoped(source, vec![rule("ConfigMap", &["*"])], Some("x".into())).unwrap();
        assert_eq!(
            all.list("p", "v1", "ConfigMap", None, None).unwrap().len(),
            3
        );
        // A cluster-scoped composite has no home namespace: nothing opens.
        let homeless = ReadAccess::scoped(fixtures(), vec![rule("ConfigMap", &[])], None).unwrap();
        assert_eq!(
            homeless
                .get("p", "v1", "ConfigMap", Some("x"), "a")
                .unwrap_err(),
            "plugin p may not read v1/ConfigMap in namespace x: its binding allows no namespace"
        );
    }

    #[test]
    fn a_rule_selector_hides_objects_it_does_not_match() {
        let access = ReadAccess::scoped(
            fixtures(),
            vec![ReadRule {
                label_selector: Some("tier=db".into()),
                ..rule("ConfigMap", &[])
            }],
            Some("x".into()),
        )
        .unwrap();
        assert!(
            access
                .get("p", "v1", "ConfigMap", Some("x"), "a")
                .unwrap()
                .is_some()
        );
        assert!(
            access
                .get("p", "v1", "ConfigMap", Some("x"), "b")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            access
                .list("p", "v1", "ConfigMap", Some("x"), None)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn secrets_need_a_rule_naming_them() {
        let access = ReadAccess::scoped(fixtures(), vec![rule("ConfigMap", &["*"])], None).unwrap();
        assert_eq!(
            access.get("p", "v1", "Secret", Some("x"), "s").unwrap_err(),
            "plugin p may not read v1/Secret: its binding does not allow it"
        );
        let named =
            ReadAccess::scoped(fixtures(), vec![rule("Secret", &[])], Some("x".into())).unwrap();
        assert!(
            named
                .get("p", "v1", "Secret", Some("x"), "s")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        let bad = ReadRule {
            label_selector: Some("a b".into()),
            ..rule("ConfigMap", &[])
        };
        assert_eq!(
            ReadAccess::scoped(fixtures(), vec![bad], None).unwrap_err(),
            "reads v1/ConfigMap: invalid label selector term \"a b\""
        );
        assert!(ReadAccess::scoped(fixtures(), vec![rule("", &[])], None).is_err());
        assert!(ReadAccess::scoped(fixtures(), vec![rule("ConfigMap", &[" "])], None).is_err());
    }
}
