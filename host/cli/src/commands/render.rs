//! `tessera render COMPOSITE --plugin WASM`: expand a composite, check every
//! child with the policies, and print the children.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tessera_runtime::{
    Binding, Composed, Context, Fixtures, Operation, ReadAccess, Review, UserInfo, World,
};

use crate::commands::{Format, LimitsArgs};
use crate::documents::{self, display_name};
use crate::failure::{Failure, Outcome};
use crate::input::{
    check_object, check_stdin_once, load_plugin, load_secret_key, objects, read_all, read_one,
    read_rules, read_settings, split_policy_arg,
};
use crate::report::{describe, write_finding, write_report};
use crate::{EXIT_DENIED, EXIT_OK, GlobalArgs, Stdio, Untrusted, build_runtime, json_for_terminal};

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// The composite (YAML or JSON; `-` for stdin).
    #[arg(value_name = "COMPOSITE")]
    composite: PathBuf,
    /// The composition plugin (`.wasm` component, or an oci:// reference).
    #[arg(long, value_name = "WASM")]
    plugin: PathBuf,
    /// Settings for the composition plugin (a YAML or JSON object).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Children the composite already owns, as observed (repeatable;
    /// multi-document files allowed).
    #[arg(long, value_name = "FILE")]
    observed: Vec<PathBuf>,
    /// Objects the plugin may read through the host (repeatable). Without
    /// `--reads` the plugin may read the kinds found in these files except
    /// Secrets, in the composite's own namespace only, as in the cluster.
    #[arg(long, value_name = "FILE")]
    resources: Vec<PathBuf>,
    /// What the plugin may read, as a Composition's `spec.reads`: a YAML
    /// list of `{apiVersion, kind, namespaces, labelSelector}`, or a
    /// Composition (or Policy) whose `spec.reads` is used.
    #[arg(long, value_name = "FILE")]
    reads: Option<PathBuf>,
    /// A policy plugin to check every child with, optionally with a settings
    /// file (repeatable). It reads what the plugin may read (`--resources`,
    /// `--reads`), in the composite's namespace by default.
    #[arg(long = "policy", value_name = "WASM[=SETTINGS_FILE]")]
    policies: Vec<String>,
    /// The key credentials are derived from (at least 32 bytes)
    /// [default: $TESSERA_SECRET_KEY_FILE, else a public development key].
    #[arg(long, value_name = "FILE")]
    secret_key: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Format,
    #[command(flatten)]
    limits: LimitsArgs,
}

struct PolicyBinding {
    binding: Binding,
    name: String,
}

/// Runs `tessera render`.
pub(crate) async fn execute(global: &GlobalArgs, args: RenderArgs, io: &mut Stdio<'_>) -> Outcome {
    let mut inputs: Vec<&Path> = vec![&args.composite];
    inputs.extend(args.settings.as_deref());
    inputs.extend(args.observed.iter().map(PathBuf::as_path));
    inputs.extend(args.resources.iter().map(PathBuf::as_path));
    inputs.extend(args.reads.as_deref());
    let policy_args: Vec<(PathBuf, Option<PathBuf>)> =
        args.policies.iter().map(|p| split_policy_arg(p)).collect();
    inputs.extend(policy_args.iter().filter_map(|(_, s)| s.as_deref()));
    check_stdin_once(&inputs)?;

    // Read and check every input before loading any plugin: bad input fails
    // fast and names its file.
    let composite = read_one(&args.composite, io.stdin, "composite")?;
    check_object(&composite)
        .map_err(|m| Failure(format!("{}: {m}", display_name(&args.composite))))?;
    let settings = read_settings(args.settings.as_deref(), io.stdin)?;
    let mut observed = Vec::new();
    for path in &args.observed {
        observed.extend(objects(path, read_all(path, io.stdin)?)?);
    }
    let mut resources = Vec::new();
    for path in &args.resources {
        resources.extend(objects(path, read_all(path, io.stdin)?)?);
    }
    let rules = match &args.reads {
        Some(path) => Some(read_rules(path, io.stdin)?),
        None => None,
    };
    let mut policy_settings = Vec::new();
    for (_, settings_path) in &policy_args {
        policy_settings.push(read_settings(settings_path.as_deref(), io.stdin)?);
    }
    let secret_key = load_secret_key(args.secret_key.as_deref())?;

    let limits_spec = args.limits.spec();
    let limits = limits_spec.to_limits()?;
    let runtime = build_runtime(global, limits_spec.fuel.is_some())?;
    let plugin = load_plugin(global, &runtime, &args.plugin, World::Composition).await?;
    let fixtures = Fixtures::new(resources);
    let rules = rules.unwrap_or_else(|| tessera_suite::implied_rules(&fixtures));
    let home = composite
        .pointer("/metadata/namespace")
        .and_then(serde_json::Value::as_str)
        .map(String::from);
    let reads = ReadAccess::scoped(Arc::new(fixtures), rules, home).map_err(|m| {
        Failure(match &args.reads {
            Some(path) => format!("{}: {m}", display_name(path)),
            None => m,
        })
    })?;
    let binding = Binding::new(plugin, settings)?
        .with_limits(limits.clone())
        .with_reads(reads.clone())
        .with_secret_key(secret_key.clone());
    let mut policies = Vec::new();
    for ((wasm, _), settings) in policy_args.iter().zip(policy_settings) {
        let plugin = load_plugin(global, &runtime, wasm, World::Policy).await?;
        let name = plugin.metadata().name.clone();
        policies.push(PolicyBinding {
            // As the controller gives a Composition's `policies` the
            // composite's namespace as home: the same objects and rules.
            binding: Binding::new(plugin, settings)?
                .with_limits(limits.clone())
                .with_reads(reads.clone()),
            name,
        });
    }

    let plugin_name = binding.plugin().metadata().name.clone();
    let context = Context {
        caller: "cli".into(),
        dry_run: true,
    };
    let composed = binding
        .expand(&composite, &observed, &context)
        .await
        .map_err(|e| Failure(format!("{}: {e}", display_name(&args.composite))))?;
    let Composed {
        children,
        status,
        findings,
        ready,
        report,
        ..
    } = composed;
    write_report(io.stderr, &plugin_name, &report)?;
    if report.secrets_derived > 0 && secret_key.is_development() {
        writeln!(
            io.stderr,
            "warning: credentials were derived from the built-in DEVELOPMENT key and are NOT secret; \
             pass --secret-key FILE (or set TESSERA_SECRET_KEY_FILE) for real use"
        )?;
    }
    let subject = describe(&composite);
    for finding in &findings {
        write_finding(io.stderr, &plugin_name, &subject, finding)?;
    }

    let mut denials = Vec::new();
    for (index, child) in children.iter().enumerate() {
        let child_name = format!("child {index} ({})", describe(child));
        for policy in &policies {
            let review = Review {
                operation: Operation::Create,
                object: Some(child.clone()),
                old_object: None,
                user_info: UserInfo::default(),
            };
            let verdict = policy
                .binding
                .validate(&review)
                .await
                .map_err(|e| Failure(format!("{child_name}: {e}")))?;
            write_report(io.stderr, &policy.name, &verdict.report)?;
            for finding in &verdict.findings {
                write_finding(io.stderr, &policy.name, &child_name, finding)?;
            }
            if !verdict.allowed {
                denials.push(format!(
                    "{child_name} denied by policy {}",
                    Untrusted(&policy.name)
                ));
            }
        }
    }
    if !denials.is_empty() {
        for denial in &denials {
            writeln!(io.stderr, "denied: {denial}")?;
        }
        return Ok(EXIT_DENIED);
    }

    if let Some(status) = &status {
        writeln!(io.stderr, "status patch for {subject}: {status}")?;
    }
    writeln!(
        io.stderr,
        "{subject}: {} children, ready: {ready}",
        children.len()
    )?;
    let text = match args.output {
        Format::Yaml => documents::to_yaml_stream(&children).map_err(Failure)?,
        Format::Json => json_for_terminal(&documents::to_json_list(&children)),
    };
    io.stdout.write_all(text.as_bytes())?;
    io.stdout.flush()?;
    Ok(EXIT_OK)
}
