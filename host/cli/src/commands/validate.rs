//! `tessera validate RESOURCE --policy WASM`: judge every document of a file
//! with a policy and print one verdict per document.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tessera_runtime::{
    Binding, Fixtures, Operation, ReadAccess, ReadRule, Review, UserInfo, World,
};

use crate::commands::{Format, LimitsArgs};
use crate::documents::{self, display_name, parse_stream, read_text};
use crate::failure::{Failure, Outcome};
use crate::input::{
    check_object, check_stdin_once, load_plugin, objects, read_all, read_rules, read_settings,
};
use crate::report::{describe, verdict_value, write_finding, write_report};
use crate::{
    EXIT_DENIED, EXIT_ERROR, EXIT_OK, GlobalArgs, Stdio, build_runtime, json_for_terminal, one_line,
};

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The resources to judge (YAML or JSON, multi-document allowed; `-` for
    /// stdin).
    #[arg(value_name = "RESOURCE")]
    resource: PathBuf,
    /// The policy plugin (`.wasm` component, or an oci:// reference).
    #[arg(long, value_name = "WASM")]
    policy: PathBuf,
    /// Settings for the policy (a YAML or JSON object).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// The operation under review.
    #[arg(long, value_enum, default_value = "create")]
    operation: OperationArg,
    /// The old object(s) for `update` (one document, or one per resource).
    #[arg(long, value_name = "FILE")]
    old: Option<PathBuf>,
    /// Objects the policy may read through the host (repeatable). Without
    /// `--reads` the policy may read the kinds found in these files except
    /// Secrets, in the reviewed object's own namespace only, as in the
    /// cluster.
    #[arg(long, value_name = "FILE")]
    resources: Vec<PathBuf>,
    /// What the policy may read, as a Policy's `spec.reads`: a YAML list of
    /// `{apiVersion, kind, namespaces, labelSelector}`, or a Policy (or
    /// Composition) whose `spec.reads` is used. Rules without `namespaces`
    /// open the reviewed object's namespace only.
    #[arg(long, value_name = "FILE")]
    reads: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Format,
    #[command(flatten)]
    limits: LimitsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OperationArg {
    Create,
    Update,
    Delete,
}

/// Runs `tessera validate`.
pub(crate) async fn execute(
    global: &GlobalArgs,
    args: ValidateArgs,
    io: &mut Stdio<'_>,
) -> Outcome {
    let mut inputs: Vec<&Path> = vec![&args.resource];
    inputs.extend(args.settings.as_deref());
    inputs.extend(args.old.as_deref());
    inputs.extend(args.resources.iter().map(PathBuf::as_path));
    inputs.extend(args.reads.as_deref());
    check_stdin_once(&inputs)?;
    let operation = match args.operation {
        OperationArg::Create => Operation::Create,
        OperationArg::Update => Operation::Update,
        OperationArg::Delete => Operation::Delete,
    };
    match (operation, &args.old) {
        (Operation::Update, None) => {
            return Err(Failure("--operation update needs --old FILE".into()));
        }
        (Operation::Create | Operation::Delete, Some(_)) => {
            return Err(Failure(
                "--old is only for --operation update (delete reviews the resource itself as the old object)"
                    .into(),
            ));
        }
        _ => {}
    }

    let text = read_text(&args.resource, io.stdin)?;
    let documents = parse_stream(&text);
    if documents.is_empty() {
        return Err(Failure(format!(
            "{}: no documents in the file",
            display_name(&args.resource)
        )));
    }
    let settings = read_settings(args.settings.as_deref(), io.stdin)?;
    let old = match &args.old {
        Some(path) => {
            let old = objects(path, read_all(path, io.stdin)?)?;
            if old.len() != 1 && old.len() != documents.len() {
                return Err(Failure(format!(
                    "{}: has {} documents; expected 1 or one per resource ({})",
                    display_name(path),
                    old.len(),
                    documents.len()
                )));
            }
            old
        }
        None => Vec::new(),
    };
    let mut resources = Vec::new();
    for path in &args.resources {
        resources.extend(objects(path, read_all(path, io.stdin)?)?);
    }
    let fixtures = Arc::new(Fixtures::new(resources));
    let rules = match &args.reads {
        Some(path) => read_rules(path, io.stdin)?,
        None => tessera_suite::implied_rules(&fixtures),
    };

    let limits_spec = args.limits.spec();
    let limits = limits_spec.to_limits()?;
    let runtime = build_runtime(global, limits_spec.fuel.is_some())?;
    let plugin = load_plugin(global, &runtime, &args.policy, World::Policy).await?;
    let name = plugin.metadata().name.clone();
    let binding = Binding::new(plugin, settings)?.with_limits(limits);
    let source = display_name(&args.resource);

    let mut results = Vec::new();
    let mut any_denied = false;
    let mut any_failed = false;
    for (position, document) in documents.into_iter().enumerate() {
        let index = document.index;
        let object = match document.value.and_then(|v| check_object(&v).map(|()| v)) {
            Ok(object) => object,
            Err(message) => {
                writeln!(
                    io.stderr,
                    "error: {source}: document {index} (line {}): {}",
                    document.line,
                    one_line(&message)
                )?;
                any_failed = true;
                continue;
            }
        };
        let old_object = match operation {
            Operation::Update => Some(old[if old.len() == 1 { 0 } else { position }].clone()),
            Operation::Delete => Some(object.clone()),
            Operation::Create => None,
        };
        let review = Review {
            operation,
            object: (operation != Operation::Delete).then(|| object.clone()),
            old_object,
            user_info: UserInfo::default(),
        };
        let subject = format!("document {index} ({})", describe(&object));
        let binding = match reads_for(&binding, &fixtures, &rules, &object) {
            Ok(binding) => binding,
            Err(message) => {
                writeln!(
                    io.stderr,
                    "error: {source}: {subject}: {}",
                    one_line(&message)
                )?;
                any_failed = true;
                continue;
            }
        };
        match binding.validate(&review).await {
            Ok(verdict) => {
                write_report(io.stderr, &name, &verdict.report)?;
                for finding in &verdict.findings {
                    write_finding(io.stderr, &name, &subject, finding)?;
                }
                any_denied |= !verdict.allowed;
                results.push(verdict_value(index, &object, &verdict));
            }
            Err(e) => {
                writeln!(
                    io.stderr,
                    "error: {source}: {subject}: {}",
                    one_line(&e.to_string())
                )?;
                any_failed = true;
            }
        }
    }
    let text = match args.output {
        Format::Yaml => documents::to_yaml_stream(&results).map_err(Failure)?,
        Format::Json => json_for_terminal(&documents::to_json_list(&results)),
    };
    io.stdout.write_all(text.as_bytes())?;
    io.stdout.flush()?;
    Ok(if any_failed {
        EXIT_ERROR
    } else if any_denied {
        EXIT_DENIED
    } else {
        EXIT_OK
    })
}

/// `binding` reading `fixtures` within `rules`, with the namespace of
/// `object` (the reviewed one) as home, as the webhook does; no rules: the
/// binding as it is (no reads).
fn reads_for(
    binding: &Binding,
    fixtures: &Arc<Fixtures>,
    rules: &[ReadRule],
    object: &serde_json::Value,
) -> Result<Binding, String> {
    if rules.is_empty() {
        return Ok(binding.clone());
    }
    let home = object
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from);
    let access = ReadAccess::scoped(fixtures.clone(), rules.to_vec(), home)?;
    Ok(binding.clone().with_reads(access))
}
