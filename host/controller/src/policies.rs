//! Policies: loaded from `Policy` objects, judged on children (by the
//! controller) and on admission requests (by the webhook).
//!
//! A policy with `reads` reads the cluster from the process's shared read
//! caches ([`crate::reads`]); each evaluation gets a view whose home
//! namespace is the reviewed object's (for a Composition's policies, the
//! composite's), as `tessera validate --resources --reads` does offline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use tessera_runtime::{Binding, Operation, ReadAccess, ReadRule, Review, Severity, World};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::crd::{FailurePolicy, Policy, PolicyMode, PolicySpec};
use crate::plugins::{Active, BindError, PluginError, PluginLoader, User};

/// A policy as loaded: its spec and its plugin bound to its settings, or why
/// that failed.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The `Policy` object's name.
    pub name: String,
    /// Its spec.
    pub spec: PolicySpec,
    /// Its generation.
    pub generation: Option<i64>,
    /// The bound plugin, or why it could not be loaded (one line).
    pub binding: Result<Binding, Arc<BindError>>,
    /// For an `oci` plugin, its reference pinned to the manifest digest.
    pub reference: Option<String>,
    /// Why a newer plugin the source names was refused, while this one
    /// serves on.
    pub refused: Option<Arc<PluginError>>,
}

impl LoadedPolicy {
    /// The plugin's digest, when loaded.
    pub fn digest(&self) -> Option<&str> {
        self.binding.as_ref().ok().map(|b| b.plugin().digest())
    }
}

/// What one policy said about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Allowed; `warnings` are findings worth showing.
    Allow {
        /// Warnings to pass on.
        warnings: Vec<String>,
    },
    /// Denied (an enforcing policy denied, or a failing policy with
    /// `failurePolicy: Fail`).
    Deny {
        /// Why, naming the policy.
        message: String,
        /// Whether the plugin failed rather than denied.
        failed: bool,
    },
}

/// The loaded policies, by name. Shared by the controller and the webhook.
#[derive(Debug)]
pub struct PolicyStore {
    policies: RwLock<HashMap<String, Arc<LoadedPolicy>>>,
    version: watch::Sender<u64>,
    deadline_cap: Duration,
}

impl PolicyStore {
    /// An empty store. Every policy's deadline is capped at `deadline_cap`
    /// (well under the API server's webhook timeout).
    pub fn new(deadline_cap: Duration) -> Self {
        PolicyStore {
            policies: RwLock::new(HashMap::new()),
            version: watch::Sender::new(0),
            deadline_cap,
        }
    }

    /// The policy named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPolicy>> {
        self.policies
            .read()
            .expect("policy lock")
            .get(name)
            .cloned()
    }

    /// All policies, by name.
    pub fn all(&self) -> Vec<Arc<LoadedPolicy>> {
        let mut all: Vec<_> = self
            .policies
            .read()
            .expect("policy lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Changes whenever a policy was added, changed or removed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Brings the store in line with `objects`: loads new and changed
    /// policies, drops deleted ones. Returns the policies (re)loaded.
    pub async fn sync(
        &self,
        loader: &PluginLoader,
        objects: &[Arc<Policy>],
    ) -> Vec<Arc<LoadedPolicy>> {
        use futures::StreamExt as _;
        // Plugins load a few at a time: one behind a slow registry does not
        // hold up the others.
        let named: Vec<(Arc<Policy>, String)> = objects
            .iter()
            .filter_map(|object| Some((object.clone(), object.metadata.name.clone()?)))
            .collect();
        let bound: Vec<_> = futures::stream::iter(named.clone())
            .map(|(object, name)| async move {
                let previous = object.status.as_ref().and_then(|s| s.plugin_ref.as_deref());
                self.bind(loader, &name, &object.spec, previous).await
            })
            .buffered(crate::manager::LOADS_AT_ONCE)
            .collect()
            .await;
        let mut changed = Vec::new();
        let mut next = HashMap::new();
        for ((object, name), bound) in named.into_iter().zip(bound) {
            let generation = object.metadata.generation;
            let current = self.get(&name);
            // Reloaded on every sync: the spec may have changed, a path
            // plugin's file may have been replaced (an unchanged file costs a
            // read and a hash), an `oci` tag may have moved (one request).
            let (binding, reference, refused) = match bound {
                Ok((binding, active)) => (Ok(binding), active.reference, active.refused),
                Err(error) => (Err(Arc::new(error)), None, None),
            };
            let message = |e: &Option<Arc<PluginError>>| e.as_ref().map(|e| e.to_string());
            let same = current.as_ref().is_some_and(|c| {
                c.generation == generation
                    && c.spec == object.spec
                    && c.reference == reference
                    && message(&c.refused) == message(&refused)
                    && match (&c.binding, &binding) {
                        (Ok(a), Ok(b)) => a.plugin().digest() == b.plugin().digest(),
                        (Err(a), Err(b)) => a.to_string() == b.to_string(),
                        _ => false,
                    }
            });
            let loaded = match current {
                Some(current) if same => current,
                _ => {
                    let loaded = Arc::new(LoadedPolicy {
                        name: name.clone(),
                        spec: object.spec.clone(),
                        generation,
                        binding,
                        reference,
                        refused,
                    });
                    changed.push(loaded.clone());
                    loaded
                }
            };
            next.insert(name, loaded);
        }
        // Plugins of deleted or changed policies are not kept loaded.
        loader.end_pass(User::Policies);
        let removed = {
            let mut policies = self.policies.write().expect("policy lock");
            let removed = policies.keys().any(|k| !next.contains_key(k));
            *policies = next;
            removed
        };
        if removed || !changed.is_empty() {
            self.version.send_modify(|v| *v += 1);
        }
        changed
    }

    /// The policy's plugin bound to its settings and limits, with what the
    /// loader said of it.
    async fn bind(
        &self,
        loader: &PluginLoader,
        name: &str,
        spec: &PolicySpec,
        previous: Option<&str>,
    ) -> Result<(Binding, Active), BindError> {
        let active = loader
            .load(User::Policies, name, &spec.plugin, previous)
            .await
            .inspect_err(crate::metrics::plugin_load_failed)?;
        if let Some(refused) = &active.refused {
            crate::metrics::plugin_load_failed(refused);
        }
        let plugin = active.plugin.clone();
        if plugin.world() != World::Policy {
            return Err(BindError::WrongWorld {
                plugin: plugin.id().clone(),
                world: plugin.world(),
                expected: World::Policy,
            });
        }
        let mut limits = match &spec.limits {
            Some(limits) => crate::crd::binding_limits(limits)?,
            None => tessera_runtime::Limits::default(),
        };
        if limits.get_deadline() > self.deadline_cap {
            limits = limits.deadline(self.deadline_cap);
        }
        for rule in &spec.reads {
            rule.check().map_err(BindError::Reads)?;
        }
        let settings = spec.settings.clone().unwrap_or(Value::Null);
        let binding = Binding::new(plugin, settings).map_err(|error| match &active.refused {
            Some(refused) => BindError::Refused(refused.clone()),
            None => BindError::Settings(error),
        })?;
        tracing::debug!(policy = name, "policy plugin loaded");
        Ok((binding.with_limits(limits), active))
    }
}

/// The judgement of a policy that failed on `subject` (`error` says how,
/// one line): by its `failurePolicy`, a denial naming it (`Fail`) or an
/// allowance with a warning naming it (`Ignore`).
pub fn failed(policy: &LoadedPolicy, subject: &str, error: &str) -> Judgement {
    match policy.spec.failure_policy {
        FailurePolicy::Fail => Judgement::Deny {
            message: format!("policy {} failed on {subject}: {error}", policy.name),
            failed: true,
        },
        FailurePolicy::Ignore => Judgement::Allow {
            warnings: vec![format!(
                "policy {} failed on {subject} (failurePolicy Ignore): {error}",
                policy.name
            )],
        },
    }
}

/// Where a policy's reads are answered from in one evaluation.
#[derive(Debug, Clone)]
pub struct PolicyReads<'a> {
    /// The process's shared read caches and discovery.
    pub shared: &'a Arc<crate::compose::Shared>,
    /// The namespace rules without `namespaces` open: the reviewed object's
    /// (a Composition's policies: the composite's); none for cluster-scoped
    /// objects, whose reads must name namespaces.
    pub home: Option<&'a str>,
    /// How long a cache not ready yet is waited for: past it the policy
    /// fails (by its `failurePolicy`) naming the kind.
    pub deadline: Instant,
}

/// `binding` with the read view `policy.spec.reads` allows under `reads`,
/// or why it cannot be had (one line, naming the kind).
async fn bind_reads(
    policy: &LoadedPolicy,
    binding: &Binding,
    reads: Option<&PolicyReads<'_>>,
) -> Result<Binding, String> {
    let rules: &[ReadRule] = &policy.spec.reads;
    let Some(reads) = reads else {
        let kind = rules
            .first()
            .map(|r| format!("{} {}", r.api_version, r.kind))
            .unwrap_or_default();
        return Err(format!(
            "cannot read {kind}: no read caches serve this evaluation"
        ));
    };
    let home = reads.home.map(String::from);
    // Started on its own task: a cache still listing when this evaluation
    // gives up keeps starting, so the next one finds it ready.
    let task = {
        let (shared, rules, home) = (reads.shared.clone(), rules.to_vec(), home.clone());
        tokio::spawn(async move {
            shared
                .reads
                .view(&shared.kinds, &rules, home.as_deref())
                .await
        })
    };
    let view = match tokio::time::timeout_at(reads.deadline, task).await {
        Ok(Ok(Ok(view))) => view,
        Ok(Ok(Err(error))) => return Err(error.to_string()),
        Ok(Err(error)) => return Err(format!("reading the cluster: {error}")),
        Err(_) => {
            return Err(reads
                .shared
                .reads
                .waiting(rules, home.as_deref())
                .to_string());
        }
    };
    let access = ReadAccess::scoped(Arc::new(view), rules.to_vec(), home)?;
    Ok(binding.clone().with_reads(access))
}

/// Runs one policy on `review` and turns its verdict, mode and failure
/// policy into a [`Judgement`]. `subject` names the object in messages. A
/// policy with `reads` reads through `reads` (none: its reads fail).
pub async fn judge(
    policy: &LoadedPolicy,
    review: &Review,
    subject: &str,
    reads: Option<&PolicyReads<'_>>,
) -> Judgement {
    let spec = &policy.spec;
    let failure = |error: String| failed(policy, subject, &one_line(&error));
    let binding = match &policy.binding {
        Ok(binding) => binding,
        Err(error) => return failure(format!("not loaded: {error}")),
    };
    let with_reads;
    let binding = if spec.reads.is_empty() {
        binding
    } else {
        match bind_reads(policy, binding, reads).await {
            Ok(bound) => {
                with_reads = bound;
                &with_reads
            }
            Err(error) => return failure(error),
        }
    };
    let verdict = match crate::metrics::evaluation(binding, binding.validate(review)).await {
        Ok(verdict) => verdict,
        Err(error) => return failure(one_line(&error.to_string())),
    };
    let findings = |severities: &[Severity]| -> Vec<String> {
        verdict
            .findings
            .iter()
            .filter(|f| severities.contains(&f.severity))
            .map(|f| match &f.field {
                Some(field) => format!("{field}: {}", f.message),
                None => f.message.clone(),
            })
            .collect()
    };
    if verdict.allowed {
        let warnings = findings(&[Severity::Warning])
            .into_iter()
            .map(|w| format!("policy {}: {w}", policy.name))
            .collect();
        return Judgement::Allow { warnings };
    }
    let mut reasons = findings(&[Severity::Error]);
    if reasons.is_empty() {
        reasons = findings(&[Severity::Warning, Severity::Info]);
    }
    if reasons.is_empty() {
        reasons.push("denied without a finding".into());
    }
    let message = format!(
        "policy {} denied {subject}: {}",
        policy.name,
        reasons.join("; ")
    );
    match spec.mode {
        PolicyMode::Enforce => Judgement::Deny {
            message,
            failed: false,
        },
        PolicyMode::Audit => Judgement::Allow {
            warnings: vec![format!("(audit) {message}")],
        },
    }
}

/// Whether `policy` takes an admission request for `group`/`kind` and
/// `operation` on an object in a namespace with `namespace_labels` (`None`
/// for cluster-scoped objects).
pub fn matches(
    policy: &PolicySpec,
    group: &str,
    kind: &str,
    operation: Operation,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let operation = operation.as_api_str();
    let any_rule = policy.match_.rules.iter().any(|rule| {
        let has = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        let operation_matches = if rule.operations.is_empty() {
            operation != "DELETE"
        } else {
            has(&rule.operations, operation)
        };
        has(&rule.api_groups, group) && has(&rule.kinds, kind) && operation_matches
    });
    if !any_rule {
        return false;
    }
    match (&policy.match_.namespace_selector, namespace_labels) {
        (Some(selector), Some(labels)) => selector_matches(selector, labels),
        _ => true,
    }
}

/// Kubernetes label-selector semantics: every `matchLabels` entry and every
/// `matchExpressions` requirement must hold.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_hold = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_hold && expressions_hold
}

/// One line of text for a condition, an event or a log: the one helper
/// every front end uses.
pub(crate) use tessera_types::text::one_line;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MatchRule, PluginSource, PolicyMatch};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn spec(rules: Vec<MatchRule>, selector: Option<LabelSelector>) -> PolicySpec {
        PolicySpec {
            plugin: PluginSource::default(),
            settings: None,
            limits: None,
            match_: PolicyMatch {
                rules,
                namespace_selector: selector,
            },
            mode: PolicyMode::Enforce,
            failure_policy: FailurePolicy::Fail,
            reads: Vec::new(),
        }
    }

    fn rule(groups: &[&str], kinds: &[&str], operations: &[&str]) -> MatchRule {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        MatchRule {
            api_groups: strings(groups),
            kinds: strings(kinds),
            operations: strings(operations),
        }
    }

    #[test]
    fn rules_match_group_kind_and_operation() {
        let policy = spec(vec![rule(&[""], &["ConfigMap"], &[])], None);
        assert!(matches(&policy, "", "ConfigMap", Operation::Create, None));
        assert!(matches(&policy, "", "ConfigMap", Operation::Update, None));
        assert!(!matches(&policy, "", "ConfigMap", Operation::Delete, None));
        assert!(!matches(
            &policy,
            "apps",
            "ConfigMap",
            Operation::Create,
            None
        ));
        assert!(!matches(&policy, "", "Secret", Operation::Create, None));
        let any = spec(vec![rule(&["*"], &["*"], &["DELETE"])], None);
        assert!(matches(&any, "apps", "Deployment", Operation::Delete, None));
        assert!(!matches(
            &any,
            "apps",
            "Deployment",
            Operation::Create,
            None
        ));
        assert!(!matches(
            &spec(vec![], None),
            "",
            "ConfigMap",
            Operation::Create,
            None
        ));
    }

    #[test]
    fn namespace_selectors() {
        let selector = LabelSelector {
            match_labels: Some([("env".to_string(), "prod".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "NotIn".into(),
                values: Some(vec!["sandbox".into()]),
            }]),
        };
        let policy = spec(vec![rule(&["*"], &["*"], &[])], Some(selector));
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let prod = labels(&[("env", "prod")]);
        let sandbox = labels(&[("env", "prod"), ("team", "sandbox")]);
        assert!(matches(
            &policy,
            "",
            "ConfigMap",
            Operation::Create,
            Some(&prod)
        ));
        assert!(!matches(
            &policy,
            "",
            "ConfigMap",
            Operation::Create,
            Some(&sandbox)
        ));
        assert!(!matches(
            &policy,
            "",
            "ConfigMap",
            Operation::Create,
            Some(&labels(&[]))
        ));
        // Cluster-scoped objects have no namespace to select.
        assert!(matches(&policy, "", "Namespace", Operation::Create, None));
    }
}
