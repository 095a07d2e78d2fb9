//! Running cases: concurrently, one function per case kind (`composition`,
//! `policy`, `pipeline`), each evaluating the case and checking what it
//! expects.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tessera_runtime::{Context, Limits, Operation, Review, UserInfo};
use tessera_types::text::Untrusted;

use super::check::{
    check_children, check_error, check_findings, check_verdicts, child_id, describe_findings,
    finish,
};
use super::format::{CompositionInput, Expect, PipelineInput, PolicyInput};
use super::partial::partial_diff;
use super::plugins::Plugins;
use super::setup::{SetupError, bind_composition, bind_policy, read_value, setup_failed};
use super::{Case, CaseKind, Outcome, RunOptions};

/// Runs cases concurrently, each on its own task, loading the plugins they
/// name from `plugins`; results come back in the cases' order. A case that
/// does not match [`RunOptions::filter`] is [`Outcome::Skipped`]; with
/// [`RunOptions::update`], golden files are rewritten instead of compared.
pub async fn run_cases<P: Plugins>(
    cases: Vec<Case>,
    plugins: Arc<P>,
    options: &RunOptions,
) -> Vec<(Case, Outcome)> {
    let filter = options.filter.clone();
    let update = options.update;
    let mut tasks = tokio::task::JoinSet::new();
    let mut task_case = HashMap::new();
    for (index, case) in cases.iter().cloned().enumerate() {
        if filter
            .as_ref()
            .is_some_and(|f| !case.name.contains(f.as_str()))
        {
            continue;
        }
        let plugins = plugins.clone();
        let task = tasks.spawn(async move {
            let outcome = match run_case(&case, plugins.as_ref(), update).await {
                Ok(()) => Outcome::Passed,
                Err(failure) => Outcome::Failed(failure),
            };
            (index, outcome)
        });
        task_case.insert(task.id(), index);
    }
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome)) => {
                outcomes.insert(index, outcome);
            }
            Err(e) => {
                // A panicking case is a bug in tessera; it fails that case
                // (never counts as skipped or passed).
                if let Some(index) = task_case.get(&e.id()) {
                    outcomes.insert(*index, Outcome::Failed(format!("internal error: {e}")));
                }
            }
        }
    }
    cases
        .into_iter()
        .enumerate()
        .map(|(index, case)| {
            let outcome = outcomes.remove(&index).unwrap_or(Outcome::Skipped);
            (case, outcome)
        })
        .collect()
}

/// Runs one case with the function for its kind.
async fn run_case<P: Plugins>(case: &Case, plugins: &P, update: bool) -> Result<(), String> {
    let suite = case.suite.as_path();
    let expect = &case.expect;
    let limits = &case.limits;
    match &case.kind {
        CaseKind::Composition(input) => {
            run_composition(input, suite, expect, limits, plugins, update).await
        }
        CaseKind::Policy(input) => run_policy(input, suite, expect, limits, plugins).await,
        CaseKind::Pipeline(input) => {
            run_pipeline(input, suite, expect, limits, plugins, update).await
        }
    }
}

/// What cases run as: the caller `test`, a dry run.
fn context() -> Context {
    Context {
        caller: "test".into(),
        dry_run: true,
    }
}

/// A `composition` case: expand the composite; check the children, status,
/// readiness and findings, or the error.
async fn run_composition<P: Plugins>(
    input: &CompositionInput,
    suite: &Path,
    expect: &Expect,
    limits: &Limits,
    plugins: &P,
    update: bool,
) -> Result<(), String> {
    let (binding, composite, observed) = match bind_composition(input, suite, limits, plugins).await
    {
        Ok(bound) => bound,
        Err(e) => return setup_failed(e, expect),
    };
    let composed = binding.expand(&composite, &observed, &context()).await;
    let composed = match (composed, &expect.error) {
        (Err(e), Some(wanted)) => return check_error(&e, wanted),
        (Err(e), None) => return Err(format!("expand failed: {}", Untrusted(&e.to_string()))),
        (Ok(_), Some(_)) => return Err("expected an error, but expand succeeded".into()),
        (Ok(c), None) => c,
    };
    let mut failures = Vec::new();
    check_children(&composed.children, expect, suite, update, &mut failures);
    if let Some(status) = &expect.status {
        let actual = composed.status.clone().unwrap_or(Value::Null);
        if let Some(diff) = partial_diff(status, &actual) {
            failures.push(format!("status differs:\n{diff}"));
        }
    }
    if let Some(ready) = expect.ready
        && ready != composed.ready
    {
        failures.push(format!("ready: expected {ready}, got {}", composed.ready));
    }
    if let Some(findings) = &expect.findings {
        check_findings("findings", findings, &composed.findings, &mut failures);
    }
    finish(failures)
}

/// A `policy` case: validate the review; check the verdict and findings, or
/// the error.
async fn run_policy<P: Plugins>(
    input: &PolicyInput,
    suite: &Path,
    expect: &Expect,
    limits: &Limits,
    plugins: &P,
) -> Result<(), String> {
    let binding = match bind_policy(
        &input.plugin,
        input.settings.as_ref(),
        input.settings_file.as_ref(),
        suite,
        limits,
        plugins,
    )
    .await
    {
        Ok(binding) => binding,
        Err(e) => return setup_failed(e, expect),
    };
    let operation = match input.operation.as_deref().unwrap_or("create") {
        "create" | "CREATE" => Operation::Create,
        "update" | "UPDATE" => Operation::Update,
        "delete" | "DELETE" => Operation::Delete,
        other => {
            return Err(format!(
                "operation must be create, update or delete, got {other:?}"
            ));
        }
    };
    let object = read_value(
        suite,
        input.object.as_ref(),
        input.object_file.as_ref(),
        "object",
    )?;
    let old_object = read_value(
        suite,
        input.old_object.as_ref(),
        input.old_object_file.as_ref(),
        "oldObject",
    )?;
    let user = input.user_info.clone().unwrap_or_default();
    let review = Review {
        operation,
        object,
        old_object,
        user_info: UserInfo {
            username: user.username,
            uid: user.uid,
            groups: user.groups,
        },
    };
    let verdict = match (binding.validate(&review).await, &expect.error) {
        (Err(e), Some(wanted)) => return check_error(&e, wanted),
        (Err(e), None) => return Err(format!("validate failed: {}", Untrusted(&e.to_string()))),
        (Ok(_), Some(_)) => return Err("expected an error, but validate succeeded".into()),
        (Ok(v), None) => v,
    };
    let mut failures = Vec::new();
    if let Some(allowed) = expect.allowed
        && allowed != verdict.allowed
    {
        failures.push(format!(
            "allowed: expected {allowed}, got {}{}",
            verdict.allowed,
            describe_findings(&verdict.findings)
        ));
    }
    if let Some(findings) = &expect.findings {
        check_findings("findings", findings, &verdict.findings, &mut failures);
    }
    finish(failures)
}

/// A `pipeline` case: expand the composite, check every child with every
/// policy (as a `create`); check the children, whether all were allowed,
/// and the verdicts asked about.
async fn run_pipeline<P: Plugins>(
    input: &PipelineInput,
    suite: &Path,
    expect: &Expect,
    limits: &Limits,
    plugins: &P,
    update: bool,
) -> Result<(), String> {
    let (binding, composite, observed) =
        bind_composition(&input.composition, suite, limits, plugins)
            .await
            .map_err(SetupError::into_message)?;
    let composed = binding
        .expand(&composite, &observed, &context())
        .await
        .map_err(|e| format!("expand failed: {}", Untrusted(&e.to_string())))?;
    let mut failures = Vec::new();
    check_children(&composed.children, expect, suite, update, &mut failures);
    let mut all_allowed = true;
    let mut verdicts = Vec::new();
    for policy in &input.policies {
        let policy_binding = bind_policy(
            &policy.plugin,
            policy.settings.as_ref(),
            policy.settings_file.as_ref(),
            suite,
            limits,
            plugins,
        )
        .await
        .map_err(SetupError::into_message)?;
        let name = policy_binding.plugin().metadata().name.clone();
        for child in &composed.children {
            let review = Review {
                operation: Operation::Create,
                object: Some(child.clone()),
                old_object: None,
                user_info: UserInfo::default(),
            };
            let verdict = policy_binding.validate(&review).await.map_err(|e| {
                format!(
                    "policy {name} on {}: {}",
                    child_id(child),
                    Untrusted(&e.to_string())
                )
            })?;
            all_allowed &= verdict.allowed;
            verdicts.push((child_id(child), name.clone(), verdict));
        }
    }
    if let Some(allowed) = expect.allowed
        && allowed != all_allowed
    {
        let denied: Vec<String> = verdicts
            .iter()
            .filter(|(_, _, v)| !v.allowed)
            .map(|(child, policy, v)| {
                format!(
                    "{child} denied by {policy}{}",
                    describe_findings(&v.findings)
                )
            })
            .collect();
        failures.push(format!(
            "allowed: expected {allowed}, got {all_allowed}{}",
            if denied.is_empty() {
                String::new()
            } else {
                format!(" ({})", denied.join("; "))
            }
        ));
    }
    check_verdicts(expect.verdicts.iter().flatten(), &verdicts, &mut failures);
    finish(failures)
}
