//! The `tessera` command line: render composites and validate resources with
//! Tessera plugins, offline (no cluster, no Docker, no network).
//!
//! `main` only calls [`run`]; everything else is here so that tests reach
//! the logic without spawning a process.
//!
//! Exit codes: 0 ok/allowed, 1 a policy denied, 2 an error. Errors are one
//! line naming the file, document, field or plugin; nothing panics.

#![deny(missing_docs)]

pub use tessera_documents as documents;
pub mod bench;
pub mod inspect;
pub mod progress;
pub mod scaffold;
pub mod suite;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use tessera_runtime::{
    Binding, Composed, Context, Finding, Fixtures, LogLevel, Operation, Plugin, ReadAccess, Report,
    Review, Runtime, SecretKey, UserInfo, Verdict, World,
};

use crate::documents::{Document, display_name, parse_stream, read_text};

/// Render and validate Kubernetes resources with Tessera plugins, offline.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Directory for precompiled plugins [default: $TESSERA_CACHE_DIR,
    /// $XDG_CACHE_HOME/tessera or ~/.cache/tessera]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins on every run; read and write no cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Expand a composite with a composition plugin, check every child with
    /// policy plugins, and print the children.
    Render(RenderArgs),
    /// Judge resources with a policy plugin.
    Validate(ValidateArgs),
    /// Run declarative test suites (`*.tessera.yaml`) against plugins.
    Test(TestArgs),
    /// Show what a plugin is: name, version, world, kinds, settings schema,
    /// digest, imports, whether it is cached.
    Inspect(InspectArgs),
    /// Measure a plugin: compile, cache load, instantiate, evaluation
    /// percentiles, throughput, fuel and memory per evaluation.
    Bench(BenchArgs),
    /// Create a plugin crate that builds and passes its sample suite.
    New(NewArgs),
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The plugin (`.wasm` component).
    #[arg(value_name = "WASM")]
    wasm: PathBuf,
    /// The composite (composition plugin) or object (policy plugin).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Settings for the plugin.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Timed evaluations.
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    /// Save the measurements (JSON) for a later --baseline.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Compare fuel per evaluation with a saved run; exit 1 on a regression
    /// beyond --threshold.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Allowed fuel increase over the baseline, in percent.
    #[arg(long, default_value_t = 2.0)]
    threshold: f64,
    /// Output format [default: text].
    #[arg(short, long, value_enum)]
    output: Option<Format>,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// What the plugin does.
    #[arg(value_enum)]
    kind: NewKind,
    /// The plugin's name (a crate name: lowercase, digits, '-').
    name: String,
    /// The language of the plugin.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to create it [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The tessera guest SDK to depend on [default: the one this tessera was
    /// built from].
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NewKind {
    Composition,
    Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    Rust,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Suite files, or directories searched for `*.tessera.yaml`
    /// [default: .].
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Run only cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Rewrite golden files with the actual output (also: TESSERA_BLESS=1).
    #[arg(long)]
    update: bool,
    /// Also write a report: `--output junit FILE`.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
    output: Option<Vec<String>>,
    /// Find workspace plugins as `<DIR>/<crate_name>.wasm` instead of
    /// building them with cargo.
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Colour diffs.
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The plugin (`.wasm` component).
    #[arg(value_name = "WASM")]
    wasm: PathBuf,
    /// Output format [default: text].
    #[arg(short, long, value_enum)]
    output: Option<Format>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A YAML stream (`---` between documents).
    Yaml,
    /// One JSON list.
    Json,
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// The composite (YAML or JSON; `-` for stdin).
    #[arg(value_name = "COMPOSITE")]
    composite: PathBuf,
    /// The composition plugin (`.wasm` component).
    #[arg(long, value_name = "WASM")]
    plugin: PathBuf,
    /// Settings for the composition plugin (a YAML or JSON object).
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Children the composite already owns, as observed (repeatable;
    /// multi-document files allowed).
    #[arg(long, value_name = "FILE")]
    observed: Vec<PathBuf>,
    /// Objects the plugin may read through the host (repeatable); the
    /// plugin may read exactly the kinds found in these files.
    #[arg(long, value_name = "FILE")]
    resources: Vec<PathBuf>,
    /// A policy plugin to check every child with, optionally with a settings
    /// file (repeatable).
    #[arg(long = "policy", value_name = "WASM[=SETTINGS_FILE]")]
    policies: Vec<String>,
    /// The key credentials are derived from (at least 32 bytes)
    /// [default: $TESSERA_SECRET_KEY_FILE, else a public development key].
    #[arg(long, value_name = "FILE")]
    secret_key: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Format,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// The resources to judge (YAML or JSON, multi-document allowed; `-` for
    /// stdin).
    #[arg(value_name = "RESOURCE")]
    resource: PathBuf,
    /// The policy plugin (`.wasm` component).
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
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OperationArg {
    Create,
    Update,
    Delete,
}

/// Exit code: success / allowed.
pub const EXIT_OK: i32 = 0;
/// Exit code: a policy denied.
pub const EXIT_DENIED: i32 = 1;
/// Exit code: an error.
pub const EXIT_ERROR: i32 = 2;

/// A failure: one line, shown as `error: <line>`, exit code 2.
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

type Outcome = Result<i32, Failure>;

/// The process's standard streams, or test doubles.
pub struct Stdio<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Stdio<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stdio")
    }
}

/// Runs the command line `args` (including the program name) and returns
/// the exit code. Never panics on bad input; every error is one line on
/// stderr.
pub fn run<I, T>(args: I, io: &mut Stdio<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors go to
            // stderr with exit code 2.
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = write!(io.stderr, "{text}");
                EXIT_ERROR
            } else {
                let _ = write!(io.stdout, "{text}");
                EXIT_OK
            };
        }
    };
    // Two worker threads: `tessera test` runs cases concurrently; the other
    // commands run one evaluation at a time.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(io.stderr, "error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Render(args) => render(&cli.global, args, io).await,
            Command::Validate(args) => validate(&cli.global, args, io).await,
            Command::Test(args) => test(&cli.global, args, io).await,
            Command::Inspect(args) => {
                let runtime = build_runtime(&cli.global)?;
                inspect::inspect(
                    &runtime,
                    &args.wasm,
                    args.output.map(|f| f == Format::Json),
                    io,
                )
                .await
                .map_err(Failure)
            }
            Command::Bench(args) => bench(args, io).await,
            Command::New(args) => new_plugin(args, io),
        }
    });
    match outcome {
        Ok(code) => code,
        Err(Failure(message)) => {
            let _ = writeln!(io.stderr, "error: {}", one_line(&message));
            EXIT_ERROR
        }
    }
}

/// One line, safe for a terminal: newlines fold to ` | `, and other control
/// characters (a plugin's text may carry `\r` or escape sequences that would
/// rewrite what the operator sees) become `\u{fffd}`.
pub(crate) fn one_line(message: &str) -> String {
    message
        .trim()
        .replace("\r\n", "\n")
        .replace('\n', " | ")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn build_runtime(global: &GlobalArgs) -> Result<Runtime, Failure> {
    let mut builder = Runtime::builder();
    if let Some(dir) = &global.cache_dir {
        builder = builder.cache_dir(dir);
    }
    if global.no_cache {
        builder = builder.no_cache();
    }
    Ok(builder.build()?)
}

/// Reads every document of a file, failing on the first bad one.
fn read_all(path: &Path, stdin: &mut dyn Read) -> Result<Vec<Value>, Failure> {
    let text = read_text(path, stdin)?;
    parse_stream(&text)
        .into_iter()
        .map(|doc| document_value(path, doc))
        .collect()
}

fn document_value(path: &Path, doc: Document) -> Result<Value, Failure> {
    doc.value.map_err(|e| {
        Failure(format!(
            "{}: document {}: {e}",
            display_name(path),
            doc.index
        ))
    })
}

/// Reads a file that must hold exactly one document.
fn read_one(path: &Path, stdin: &mut dyn Read, what: &str) -> Result<Value, Failure> {
    let mut values = read_all(path, stdin)?;
    match values.len() {
        1 => Ok(values.remove(0)),
        0 => Err(Failure(format!(
            "{}: no {what} in the file",
            display_name(path)
        ))),
        n => Err(Failure(format!(
            "{}: expected one {what}, found {n} documents",
            display_name(path)
        ))),
    }
}

fn read_settings(path: Option<&Path>, stdin: &mut dyn Read) -> Result<Value, Failure> {
    let Some(path) = path else {
        return Ok(Value::Object(Map::new()));
    };
    let value = read_one(path, stdin, "settings object")?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Failure(format!(
            "{}: settings must be an object",
            display_name(path)
        )))
    }
}

/// Checks that each value is a Kubernetes object; errors name file and
/// document.
fn objects(path: &Path, values: Vec<Value>) -> Result<Vec<Value>, Failure> {
    for (index, value) in values.iter().enumerate() {
        if let Err(message) = check_object(value) {
            return Err(Failure(format!(
                "{}: document {index}: {message}",
                display_name(path)
            )));
        }
    }
    Ok(values)
}

fn check_object(value: &Value) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err("not a Kubernetes object (expected a mapping)".into());
    };
    for (field, present) in [
        ("apiVersion", object.get("apiVersion")),
        ("kind", object.get("kind")),
    ] {
        match present {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(format!("{field} is missing"));
            }
            Some(other) => return Err(format!("{field} must be a string, got {other}")),
        }
    }
    match value.pointer("/metadata/name") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err("metadata.name is missing".into()),
        Some(other) => Err(format!("metadata.name must be a string, got {other}")),
    }
}

/// Refuses more than one input from stdin: it can be read only once.
fn check_stdin_once(paths: &[&Path]) -> Result<(), Failure> {
    if paths.iter().filter(|p| **p == Path::new("-")).count() > 1 {
        return Err(Failure("only one input can be read from stdin (-)".into()));
    }
    Ok(())
}

fn load_secret_key(path: Option<&Path>) -> Result<Arc<SecretKey>, Failure> {
    let path = path
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TESSERA_SECRET_KEY_FILE").map(PathBuf::from));
    let Some(path) = path else {
        return Ok(Arc::new(SecretKey::development()));
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| Failure(format!("{}: cannot read secret key: {e}", path.display())))?;
    SecretKey::new(bytes)
        .map(Arc::new)
        .map_err(|e| Failure(format!("{}: {e}", path.display())))
}

/// Loads a plugin and checks it implements the world the command needs.
async fn load_plugin(runtime: &Runtime, path: &Path, world: World) -> Result<Plugin, Failure> {
    let spinner = progress::Spinner::start(format!("loading {}", path.display()));
    let loaded = runtime.load_file(path).await;
    drop(spinner);
    let plugin = loaded.map_err(|e| match e {
        tessera_runtime::Error::Io { path, source } => Failure(format!(
            "{}: cannot read plugin: {}",
            path.display(),
            if source.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                source.to_string()
            }
        )),
        other => Failure(other.to_string()),
    })?;
    if plugin.world() != world {
        return Err(Failure(format!(
            "{}: plugin {} is a {} plugin; a {world} plugin is needed here",
            path.display(),
            plugin.metadata().name,
            plugin.world()
        )));
    }
    Ok(plugin)
}

/// `WASM[=SETTINGS_FILE]`.
fn split_policy_arg(arg: &str) -> (PathBuf, Option<PathBuf>) {
    match arg.split_once('=') {
        Some((wasm, settings)) => (PathBuf::from(wasm), Some(PathBuf::from(settings))),
        None => (PathBuf::from(arg), None),
    }
}

/// `Kind namespace/name` (or `Kind name`) for messages.
fn describe(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    }
}

fn write_report(stderr: &mut dyn Write, plugin: &str, report: &Report) -> std::io::Result<()> {
    for line in &report.logs {
        if line.level >= LogLevel::Info {
            writeln!(
                stderr,
                "[{plugin}] {}: {}",
                line.level,
                one_line(&line.message)
            )?;
        }
    }
    if report.logs_dropped > 0 {
        writeln!(
            stderr,
            "[{plugin}] warn: {} log lines dropped (log limit reached)",
            report.logs_dropped
        )?;
    }
    for (stream, text) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(stderr, "[{plugin}] {stream}: {line}")?;
        }
    }
    Ok(())
}

fn write_finding(
    stderr: &mut dyn Write,
    plugin: &str,
    subject: &str,
    finding: &Finding,
) -> std::io::Result<()> {
    let field = finding
        .field
        .as_ref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    writeln!(
        stderr,
        "{}: {plugin}: {subject}: {}{field}",
        finding.severity,
        one_line(&finding.message)
    )
}

struct PolicyBinding {
    binding: Binding,
    name: String,
}

async fn render(global: &GlobalArgs, args: RenderArgs, io: &mut Stdio<'_>) -> Outcome {
    let mut inputs: Vec<&Path> = vec![&args.composite];
    inputs.extend(args.settings.as_deref());
    inputs.extend(args.observed.iter().map(PathBuf::as_path));
    inputs.extend(args.resources.iter().map(PathBuf::as_path));
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
    let mut policy_settings = Vec::new();
    for (_, settings_path) in &policy_args {
        policy_settings.push(read_settings(settings_path.as_deref(), io.stdin)?);
    }
    let secret_key = load_secret_key(args.secret_key.as_deref())?;

    let runtime = build_runtime(global)?;
    let plugin = load_plugin(&runtime, &args.plugin, World::Composition).await?;
    let fixtures = Fixtures::new(resources);
    let allowed = fixtures.kinds();
    let binding = Binding::new(plugin, settings)?
        .with_reads(ReadAccess::new(Arc::new(fixtures), allowed))
        .with_secret_key(secret_key.clone());
    let mut policies = Vec::new();
    for ((wasm, _), settings) in policy_args.iter().zip(policy_settings) {
        let plugin = load_plugin(&runtime, wasm, World::Policy).await?;
        let name = plugin.metadata().name.clone();
        policies.push(PolicyBinding {
            binding: Binding::new(plugin, settings)?,
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
                denials.push(format!("{child_name} denied by policy {}", policy.name));
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
        Format::Json => documents::to_json_list(&children),
    };
    io.stdout.write_all(text.as_bytes())?;
    io.stdout.flush()?;
    Ok(EXIT_OK)
}

async fn validate(global: &GlobalArgs, args: ValidateArgs, io: &mut Stdio<'_>) -> Outcome {
    let mut inputs: Vec<&Path> = vec![&args.resource];
    inputs.extend(args.settings.as_deref());
    inputs.extend(args.old.as_deref());
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

    let runtime = build_runtime(global)?;
    let plugin = load_plugin(&runtime, &args.policy, World::Policy).await?;
    let name = plugin.metadata().name.clone();
    let binding = Binding::new(plugin, settings)?;
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
        Format::Json => documents::to_json_list(&results),
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

fn verdict_value(index: usize, object: &Value, verdict: &Verdict) -> Value {
    let findings: Vec<Value> = verdict
        .findings
        .iter()
        .map(|f| {
            let mut finding = json!({"severity": f.severity.to_string(), "message": f.message});
            if let Some(field) = &f.field {
                finding["field"] = json!(field);
            }
            finding
        })
        .collect();
    let mut value = json!({
        "document": index,
        "apiVersion": object.get("apiVersion"),
        "kind": object.get("kind"),
        "name": object.pointer("/metadata/name"),
    });
    if let Some(ns) = object.pointer("/metadata/namespace") {
        value["namespace"] = ns.clone();
    }
    value["allowed"] = json!(verdict.allowed);
    value["findings"] = Value::Array(findings);
    value
}

async fn test(global: &GlobalArgs, args: TestArgs, io: &mut Stdio<'_>) -> Outcome {
    use suite::Outcome as CaseOutcome;
    let junit_file = match args.output.as_deref() {
        None => None,
        Some([format, file]) if format == "junit" => Some(PathBuf::from(file)),
        Some([format, _]) => {
            return Err(Failure(format!(
                "--output: unknown report format {format:?} (supported: junit)"
            )));
        }
        Some(_) => {
            return Err(Failure(
                "--output takes one format and one file, once (e.g. --output junit report.xml)"
                    .into(),
            ));
        }
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let files = suite::discover(&paths)?;
    if files.is_empty() {
        return Err(Failure(format!(
            "no test suites (*.tessera.yaml) under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut cases = Vec::new();
    for file in &files {
        cases.extend(suite::load_suite(file)?);
    }
    let color = match args.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let options = suite::RunOptions {
        filter: args.filter,
        update: args.update || std::env::var_os("TESSERA_BLESS").is_some_and(|v| v == "1"),
        color,
        plugin_dir: args.plugin_dir,
    };
    let plugins = Arc::new(suite::PluginCache::new(build_runtime(global)?, options));
    let results = suite::run_cases(cases, plugins).await;

    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (case, outcome) in &results {
        let label = format!("{} :: {}", case.suite.display(), case.name);
        match outcome {
            CaseOutcome::Passed => {
                passed += 1;
                writeln!(io.stdout, "ok     {label}")?;
            }
            CaseOutcome::Skipped => skipped += 1,
            CaseOutcome::Failed(why) => {
                failed += 1;
                let tag = if color { "\x1b[31mFAIL\x1b[0m" } else { "FAIL" };
                writeln!(io.stdout, "{tag}   {label}")?;
                for line in why.lines() {
                    writeln!(io.stdout, "       {line}")?;
                }
            }
        }
    }
    writeln!(
        io.stdout,
        "{passed} passed, {failed} failed, {skipped} skipped"
    )?;
    if let Some(file) = junit_file {
        std::fs::write(&file, suite::junit(&results)).map_err(|e| {
            Failure(format!(
                "{}: cannot write the JUnit report: {e}",
                file.display()
            ))
        })?;
    }
    Ok(if failed > 0 { EXIT_DENIED } else { EXIT_OK })
}

async fn bench(args: BenchArgs, io: &mut Stdio<'_>) -> Outcome {
    check_stdin_once(&[&args.input])?;
    if args.iterations == 0 {
        return Err(Failure("--iterations must be at least 1".into()));
    }
    let input = read_one(&args.input, io.stdin, "input object")?;
    check_object(&input).map_err(|m| Failure(format!("{}: {m}", display_name(&args.input))))?;
    let settings = read_settings(args.settings.as_deref(), io.stdin)?;
    let measurements = bench::run(&bench::BenchOptions {
        wasm: args.wasm,
        input,
        settings,
        iterations: args.iterations,
    })
    .await
    .map_err(Failure)?;
    if args.output == Some(Format::Json) {
        writeln!(
            io.stdout,
            "{}",
            serde_json::to_string_pretty(&measurements)?
        )?;
    } else {
        write!(io.stdout, "{}", bench::render_text(&measurements))?;
    }
    if let Some(file) = &args.save {
        std::fs::write(file, serde_json::to_string_pretty(&measurements)? + "\n")
            .map_err(|e| Failure(format!("{}: cannot save: {e}", file.display())))?;
    }
    if let Some(baseline) = &args.baseline {
        return match bench::compare(&measurements, baseline, args.threshold).map_err(Failure)? {
            Ok(line) => {
                writeln!(io.stderr, "no regression: {line}")?;
                Ok(EXIT_OK)
            }
            Err(line) => {
                writeln!(io.stderr, "regression: {line}")?;
                Ok(EXIT_DENIED)
            }
        };
    }
    Ok(EXIT_OK)
}

fn new_plugin(args: NewArgs, io: &mut Stdio<'_>) -> Outcome {
    let Lang::Rust = args.lang;
    let kind = match args.kind {
        NewKind::Composition => scaffold::Kind::Composition,
        NewKind::Policy => scaffold::Kind::Policy,
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args.sdk.unwrap_or_else(scaffold::default_sdk_path);
    let files = scaffold::generate(kind, &args.name, &dir, &sdk).map_err(Failure)?;
    for file in &files {
        writeln!(io.stdout, "created {}", file.display())?;
    }
    writeln!(
        io.stdout,
        "next: cd {} && tessera test    (builds the plugin for wasm32-wasip2 and runs its suite)",
        dir.display()
    )?;
    Ok(EXIT_OK)
}
