//! `tessera test`: declarative test suites for plugins.
//!
//! A suite is a YAML file whose name ends in `.tessera.yaml`:
//!
//! ```yaml
//! apiVersion: tessera.dev/v1alpha1
//! kind: TestSuite
//! cases:
//!   - name: three replicas get a disruption budget
//!     composition:
//!       plugin: database              # a workspace plugin crate, or a path to a .wasm
//!       compositeFile: ../examples/database.yaml
//!     expect:
//!       childNames: [Secret/orders-credentials, ConfigMap/orders-config, ...]
//!       children:                     # partial: only the fields given are compared
//!         - kind: StatefulSet
//!           metadata: {name: orders}
//!           spec: {replicas: 3}
//! ```
//!
//! Case kinds: `composition`, `policy`, `pipeline` (a composition whose
//! children are checked by policies). Paths resolve against the suite file.
//! See `docs/TESTING-PLUGINS.md` for the whole format.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use tessera_runtime::{
    Binding, Context, CrashKind, Error, Fixtures, Operation, Plugin, ReadAccess, Review, Runtime,
    SecretKey, UserInfo, World,
};

/// What golden files hold in place of `tessera.dev/plugin-digest`.
pub const GOLDEN_DIGEST: &str = "sha256:<digest of the plugin under test>";

/// The suite `apiVersion` this version of tessera reads.
pub const API_VERSION: &str = "tessera.dev/v1alpha1";

/// A suite file that cannot be used: one line naming the file and the case.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SuiteError(pub String);

fn err(message: impl Into<String>) -> SuiteError {
    SuiteError(message.into())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SuiteFile {
    api_version: String,
    kind: String,
    cases: Vec<CaseFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseFile {
    name: String,
    #[serde(default)]
    composition: Option<CompositionInput>,
    #[serde(default)]
    policy: Option<PolicyInput>,
    #[serde(default)]
    pipeline: Option<PipelineInput>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompositionInput {
    plugin: String,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    settings_file: Option<PathBuf>,
    #[serde(default)]
    composite: Option<Value>,
    #[serde(default)]
    composite_file: Option<PathBuf>,
    #[serde(default)]
    observed: Vec<Value>,
    #[serde(default)]
    observed_files: Vec<PathBuf>,
    #[serde(default)]
    resources: Vec<Value>,
    #[serde(default)]
    resource_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyInput {
    plugin: String,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    settings_file: Option<PathBuf>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    object_file: Option<PathBuf>,
    #[serde(default)]
    old_object: Option<Value>,
    #[serde(default)]
    old_object_file: Option<PathBuf>,
    #[serde(default)]
    user_info: Option<UserInfoInput>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserInfoInput {
    #[serde(default)]
    username: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyRef {
    plugin: String,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    settings_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PipelineInput {
    composition: CompositionInput,
    policies: Vec<PolicyRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    /// `Kind/name` of every child, in order.
    #[serde(default)]
    child_names: Option<Vec<String>>,
    /// Partial children, matched by kind and `metadata.name`.
    #[serde(default)]
    children: Option<Vec<Value>>,
    /// A YAML stream holding every child exactly; `--update` rewrites it.
    #[serde(default)]
    golden: Option<PathBuf>,
    /// Partial status patch.
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    ready: Option<bool>,
    /// Policy: the verdict. Pipeline: whether every child passed every policy.
    #[serde(default)]
    allowed: Option<bool>,
    /// Findings, in order; each matches on the fields given.
    #[serde(default)]
    findings: Option<Vec<FindingExpect>>,
    /// Pipeline: verdicts for some (child, policy) pairs.
    #[serde(default)]
    verdicts: Option<Vec<VerdictExpect>>,
    /// The evaluation fails like this.
    #[serde(default)]
    error: Option<ErrorExpect>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FindingExpect {
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_contains: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerdictExpect {
    child: String,
    policy: String,
    allowed: bool,
    #[serde(default)]
    findings: Option<Vec<FindingExpect>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ErrorExpect {
    /// `refused`, `crashed`, `settings`, `input`.
    #[serde(default)]
    class: Option<String>,
    /// For `crashed`: `deadline`, `out-of-memory`, `trap`, ...
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message_contains: Option<String>,
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// The suite file.
    pub suite: PathBuf,
    /// The case's name.
    pub name: String,
    kind: CaseKind,
    expect: Expect,
}

#[derive(Debug, Clone)]
enum CaseKind {
    Composition(CompositionInput),
    Policy(PolicyInput),
    Pipeline(PipelineInput),
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every expectation held.
    Passed,
    /// Some did not: what differed, as readable text (diffs included).
    Failed(String),
    /// Not run: it did not match `--filter`.
    Skipped,
}

/// Options for a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Rewrite golden files instead of comparing.
    pub update: bool,
    /// Colour diffs.
    pub color: bool,
    /// Where workspace plugins are found (`<dir>/<crate_name>.wasm`) instead
    /// of building them with cargo.
    pub plugin_dir: Option<PathBuf>,
}

/// Finds suite files: each path is a suite file, or a directory searched
/// recursively for `*.tessera.yaml` (skipping `target` and hidden
/// directories).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut found)?;
        } else if path.is_file() {
            found.push(path.clone());
        } else {
            return Err(err(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let entries = std::fs::read_dir(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| err(format!("{}: {e}", dir.display())))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                walk(&path, found)?;
            }
        } else if name.ends_with(".tessera.yaml") || name.ends_with(".tessera.yml") {
            found.push(path);
        }
    }
    Ok(())
}

/// Reads a suite file into cases.
pub fn load_suite(path: &Path) -> Result<Vec<Case>, SuiteError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let suite: SuiteFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        err(format!(
            "{}: {}",
            path.display(),
            crate::one_line(&e.to_string())
        ))
    })?;
    if suite.api_version != API_VERSION || suite.kind != "TestSuite" {
        return Err(err(format!(
            "{}: expected apiVersion {API_VERSION} and kind TestSuite, got {} {}",
            path.display(),
            suite.api_version,
            suite.kind
        )));
    }
    let mut names = std::collections::HashSet::new();
    suite
        .cases
        .into_iter()
        .enumerate()
        .map(|(index, case)| {
            let at = format!("{}: case {index} ({:?})", path.display(), case.name);
            if case.name.trim().is_empty() {
                return Err(err(format!("{at}: name is empty")));
            }
            if !names.insert(case.name.clone()) {
                return Err(err(format!("{at}: another case has this name")));
            }
            let kind = match (case.composition, case.policy, case.pipeline) {
                (Some(c), None, None) => CaseKind::Composition(c),
                (None, Some(p), None) => CaseKind::Policy(p),
                (None, None, Some(p)) => CaseKind::Pipeline(p),
                _ => {
                    return Err(err(format!(
                        "{at}: needs exactly one of composition, policy, pipeline"
                    )));
                }
            };
            let misplaced = misplaced_expectations(&kind, &case.expect);
            if !misplaced.is_empty() {
                return Err(err(format!(
                    "{at}: expect.{} does not apply to a {} case",
                    misplaced.join(", expect."),
                    match kind {
                        CaseKind::Composition(_) => "composition",
                        CaseKind::Policy(_) => "policy",
                        CaseKind::Pipeline(_) => "pipeline",
                    }
                )));
            }
            Ok(Case {
                suite: path.to_path_buf(),
                name: case.name,
                kind,
                expect: case.expect,
            })
        })
        .collect()
}

/// Expectations a case of this kind would silently ignore: an error, so that
/// a misplaced expectation never passes without being checked.
fn misplaced_expectations(kind: &CaseKind, expect: &Expect) -> Vec<&'static str> {
    let given = [
        ("childNames", expect.child_names.is_some()),
        ("children", expect.children.is_some()),
        ("golden", expect.golden.is_some()),
        ("status", expect.status.is_some()),
        ("ready", expect.ready.is_some()),
        ("allowed", expect.allowed.is_some()),
        ("findings", expect.findings.is_some()),
        ("verdicts", expect.verdicts.is_some()),
        ("error", expect.error.is_some()),
    ];
    let applies: &[&str] = match kind {
        CaseKind::Composition(_) => &[
            "childNames",
            "children",
            "golden",
            "status",
            "ready",
            "findings",
            "error",
        ],
        CaseKind::Policy(_) => &["allowed", "findings", "error"],
        CaseKind::Pipeline(_) => &["childNames", "children", "golden", "allowed", "verdicts"],
    };
    given
        .into_iter()
        .filter(|(name, present)| *present && !applies.contains(name))
        .map(|(name, _)| name)
        .collect()
}

/// Loads plugins once per run, by resolved path.
pub struct PluginCache {
    runtime: Runtime,
    options: RunOptions,
    plugins: tokio::sync::Mutex<HashMap<PathBuf, Plugin>>,
    built: std::sync::Mutex<HashMap<(PathBuf, String), PathBuf>>,
}

impl std::fmt::Debug for PluginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCache").finish_non_exhaustive()
    }
}

impl PluginCache {
    /// A cache over a runtime.
    pub fn new(runtime: Runtime, options: RunOptions) -> Self {
        PluginCache {
            runtime,
            options,
            plugins: tokio::sync::Mutex::new(HashMap::new()),
            built: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a plugin reference from a suite: a path (with a `/` or ending
    /// in `.wasm`, relative to the suite) or the name of a plugin crate in
    /// the cargo workspace that holds the suite, built on demand.
    fn resolve(&self, suite: &Path, reference: &str) -> Result<PathBuf, String> {
        let base = suite.parent().unwrap_or(Path::new("."));
        if reference.contains('/') || reference.ends_with(".wasm") {
            return Ok(base.join(reference));
        }
        let file = format!("{}.wasm", reference.replace('-', "_"));
        if let Some(dir) = &self.options.plugin_dir {
            return Ok(dir.join(file));
        }
        let workspace = find_manifest_dir(base).ok_or_else(|| {
            format!(
                "plugin {reference:?}: no Cargo.toml above {}",
                base.display()
            )
        })?;
        let key = (workspace.clone(), reference.to_string());
        if let Some(path) = self
            .built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(path.clone());
        }
        let path = build_plugin(&workspace, reference)?;
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, path.clone());
        Ok(path)
    }

    async fn load(&self, suite: &Path, reference: &str, world: World) -> Result<Plugin, String> {
        let path = self.resolve(suite, reference)?;
        let mut plugins = self.plugins.lock().await;
        let plugin = match plugins.get(&path) {
            Some(plugin) => plugin.clone(),
            None => {
                let spinner =
                    crate::progress::Spinner::start(format!("loading {}", path.display()));
                let loaded = self.runtime.load_file(&path).await;
                drop(spinner);
                let plugin = loaded.map_err(|e| e.to_string())?;
                plugins.insert(path.clone(), plugin.clone());
                plugin
            }
        };
        if plugin.world() != world {
            return Err(format!(
                "plugin {reference}: is a {} plugin; this case needs a {world} plugin",
                plugin.world()
            ));
        }
        Ok(plugin)
    }
}

/// The nearest directory at or above `dir` with a `Cargo.toml`.
fn find_manifest_dir(dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

/// Builds a plugin crate for wasm32-wasip2 and returns its `.wasm`, read
/// from cargo's own report of what it built.
fn build_plugin(manifest_dir: &Path, crate_name: &str) -> Result<PathBuf, String> {
    let output =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(manifest_dir)
            .args([
                "build",
                "--quiet",
                "--message-format=json",
                "--target",
                "wasm32-wasip2",
                "--release",
                "-p",
                crate_name,
            ])
            .output()
            .map_err(|e| format!("plugin {crate_name}: cannot run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo failed");
        return Err(format!(
            "plugin {crate_name}: building it with cargo in {} failed: {first}",
            manifest_dir.display()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["name"].as_str().map(|n| n.replace('-', "_"))
                == Some(crate_name.replace('-', "_"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| format!("plugin {crate_name}: cargo built no .wasm (is it a cdylib crate?)"))
}

fn read_value(
    suite: &Path,
    inline: Option<&Value>,
    file: Option<&PathBuf>,
    what: &str,
) -> Result<Option<Value>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("give {what} or {what}File, not both")),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(file)) => {
            let mut values = read_values(suite, file)?;
            if values.len() != 1 {
                return Err(format!(
                    "{}: expected one document, found {}",
                    file.display(),
                    values.len()
                ));
            }
            Ok(values.pop())
        }
        (None, None) => Ok(None),
    }
}

fn read_values(suite: &Path, file: &Path) -> Result<Vec<Value>, String> {
    let path = suite.parent().unwrap_or(Path::new(".")).join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    tessera_documents::parse_stream(&text)
        .into_iter()
        .map(|d| {
            d.value
                .map_err(|e| format!("{}: document {}: {e}", path.display(), d.index))
        })
        .collect()
}

/// Runs cases concurrently; results come back in the cases' order.
pub async fn run_cases(cases: Vec<Case>, plugins: Arc<PluginCache>) -> Vec<(Case, Outcome)> {
    let filter = plugins.options.filter.clone();
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
            let outcome = match run_case(&case, &plugins).await {
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

/// Why a case could not even be evaluated: a problem with the case itself,
/// or a runtime error (settings, loading) that the case may expect.
enum SetupError {
    Case(String),
    Runtime(Error),
}

impl From<String> for SetupError {
    fn from(message: String) -> Self {
        SetupError::Case(message)
    }
}

impl From<&str> for SetupError {
    fn from(message: &str) -> Self {
        SetupError::Case(message.to_string())
    }
}

impl SetupError {
    fn into_message(self) -> String {
        match self {
            SetupError::Case(message) => message,
            SetupError::Runtime(e) => e.to_string(),
        }
    }
}

/// The result of a case whose setup failed: a runtime error the case
/// expects is checked like any other error.
fn setup_failed(error: SetupError, expect: &Expect) -> Result<(), String> {
    match (error, &expect.error) {
        (SetupError::Runtime(e), Some(wanted)) => check_error(&e, wanted),
        (other, _) => Err(other.into_message()),
    }
}

async fn bind_composition(
    input: &CompositionInput,
    suite: &Path,
    plugins: &PluginCache,
) -> Result<(Binding, Value, Vec<Value>), SetupError> {
    let plugin = plugins
        .load(suite, &input.plugin, World::Composition)
        .await?;
    let settings = read_value(
        suite,
        input.settings.as_ref(),
        input.settings_file.as_ref(),
        "settings",
    )?
    .unwrap_or(Value::Object(Map::new()));
    let composite = read_value(
        suite,
        input.composite.as_ref(),
        input.composite_file.as_ref(),
        "composite",
    )?
    .ok_or("composition needs composite or compositeFile")?;
    let mut observed = input.observed.clone();
    for file in &input.observed_files {
        observed.extend(read_values(suite, file)?);
    }
    let mut resources = input.resources.clone();
    for file in &input.resource_files {
        resources.extend(read_values(suite, file)?);
    }
    let fixtures = Fixtures::new(resources);
    let allowed = fixtures.kinds();
    // A fixed test key: credentials are deterministic and never the
    // development key's, so goldens do not depend on it.
    let key = SecretKey::new(b"tessera test suites: fixed key, not secret".to_vec())
        .expect("the test key is long enough");
    let binding = Binding::new(plugin, settings)
        .map_err(SetupError::Runtime)?
        .with_reads(ReadAccess::new(Arc::new(fixtures), allowed))
        .with_secret_key(Arc::new(key));
    Ok((binding, composite, observed))
}

async fn bind_policy(
    reference: &str,
    settings: Option<&Value>,
    settings_file: Option<&PathBuf>,
    suite: &Path,
    plugins: &PluginCache,
) -> Result<Binding, SetupError> {
    let plugin = plugins.load(suite, reference, World::Policy).await?;
    let settings = read_value(suite, settings, settings_file, "settings")?
        .unwrap_or(Value::Object(Map::new()));
    Binding::new(plugin, settings).map_err(SetupError::Runtime)
}

async fn run_case(case: &Case, plugins: &PluginCache) -> Result<(), String> {
    let suite = case.suite.as_path();
    let expect = &case.expect;
    let context = Context {
        caller: "test".into(),
        dry_run: true,
    };
    match &case.kind {
        CaseKind::Composition(input) => {
            let (binding, composite, observed) = match bind_composition(input, suite, plugins).await
            {
                Ok(bound) => bound,
                Err(e) => return setup_failed(e, expect),
            };
            let composed = binding.expand(&composite, &observed, &context).await;
            let composed = match (composed, &expect.error) {
                (Err(e), Some(wanted)) => return check_error(&e, wanted),
                (Err(e), None) => return Err(format!("expand failed: {e}")),
                (Ok(_), Some(_)) => return Err("expected an error, but expand succeeded".into()),
                (Ok(c), None) => c,
            };
            let mut failures = Vec::new();
            check_children(
                &composed.children,
                expect,
                suite,
                plugins.options.update,
                plugins.options.color,
                &mut failures,
            );
            if let Some(status) = &expect.status {
                let actual = composed.status.clone().unwrap_or(Value::Null);
                if let Some(diff) = partial_diff(status, &actual, plugins.options.color) {
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
        CaseKind::Policy(input) => {
            let binding = match bind_policy(
                &input.plugin,
                input.settings.as_ref(),
                input.settings_file.as_ref(),
                suite,
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
                (Err(e), None) => return Err(format!("validate failed: {e}")),
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
        CaseKind::Pipeline(input) => {
            let (binding, composite, observed) =
                bind_composition(&input.composition, suite, plugins)
                    .await
                    .map_err(SetupError::into_message)?;
            let composed = binding
                .expand(&composite, &observed, &context)
                .await
                .map_err(|e| format!("expand failed: {e}"))?;
            let mut failures = Vec::new();
            check_children(
                &composed.children,
                expect,
                suite,
                plugins.options.update,
                plugins.options.color,
                &mut failures,
            );
            let mut all_allowed = true;
            let mut verdicts = Vec::new();
            for policy in &input.policies {
                let policy_binding = bind_policy(
                    &policy.plugin,
                    policy.settings.as_ref(),
                    policy.settings_file.as_ref(),
                    suite,
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
                    let verdict = policy_binding
                        .validate(&review)
                        .await
                        .map_err(|e| format!("policy {name} on {}: {e}", child_id(child)))?;
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
            for wanted in expect.verdicts.iter().flatten() {
                match verdicts
                    .iter()
                    .find(|(child, policy, _)| *child == wanted.child && *policy == wanted.policy)
                {
                    None => failures.push(format!(
                        "no verdict of policy {} on {}",
                        wanted.policy, wanted.child
                    )),
                    Some((_, _, verdict)) => {
                        if verdict.allowed != wanted.allowed {
                            failures.push(format!(
                                "{} by {}: expected allowed {}, got {}{}",
                                wanted.child,
                                wanted.policy,
                                wanted.allowed,
                                verdict.allowed,
                                describe_findings(&verdict.findings)
                            ));
                        }
                        if let Some(findings) = &wanted.findings {
                            check_findings(
                                &format!("findings of {} on {}", wanted.policy, wanted.child),
                                findings,
                                &verdict.findings,
                                &mut failures,
                            );
                        }
                    }
                }
            }
            finish(failures)
        }
    }
}

fn finish(failures: Vec<String>) -> Result<(), String> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn child_id(child: &Value) -> String {
    format!(
        "{}/{}",
        child["kind"].as_str().unwrap_or("?"),
        child["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn describe_findings(findings: &[tessera_runtime::Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let list: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
    format!(": {}", list.join("; "))
}

fn check_children(
    children: &[Value],
    expect: &Expect,
    suite: &Path,
    update: bool,
    color: bool,
    failures: &mut Vec<String>,
) {
    if let Some(names) = &expect.child_names {
        let actual: Vec<String> = children.iter().map(child_id).collect();
        if *names != actual {
            failures.push(format!("childNames: expected {names:?}, got {actual:?}"));
        }
    }
    for wanted in expect.children.iter().flatten() {
        let kind = wanted["kind"].as_str();
        let name = wanted["metadata"]["name"].as_str();
        let Some(actual) = children
            .iter()
            .find(|c| c["kind"].as_str() == kind && c["metadata"]["name"].as_str() == name)
        else {
            failures.push(format!(
                "no child {}/{} among {:?}",
                kind.unwrap_or("?"),
                name.unwrap_or("?"),
                children.iter().map(child_id).collect::<Vec<_>>()
            ));
            continue;
        };
        if let Some(diff) = partial_diff(wanted, actual, color) {
            failures.push(format!("child {} differs:\n{diff}", child_id(actual)));
        }
    }
    if let Some(golden) = &expect.golden {
        let path = suite.parent().unwrap_or(Path::new(".")).join(golden);
        // The plugin digest changes with every rebuild of the plugin (and
        // between toolchains); goldens pin everything else.
        let children: Vec<Value> = children
            .iter()
            .map(|child| {
                let mut child = child.clone();
                if let Some(digest) = child
                    .pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut)
                    .and_then(|a| a.get_mut(tessera_runtime::provenance::PLUGIN_DIGEST))
                {
                    *digest = Value::String(GOLDEN_DIGEST.into());
                }
                child
            })
            .collect();
        let actual = match tessera_documents::to_yaml_stream(&children) {
            Ok(text) => text,
            Err(e) => {
                failures.push(format!("cannot write children as YAML: {e}"));
                return;
            }
        };
        if update {
            let written = match path.parent() {
                Some(dir) => {
                    std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &actual))
                }
                None => std::fs::write(&path, &actual),
            };
            if let Err(e) = written {
                failures.push(format!(
                    "{}: cannot update golden file: {e}",
                    path.display()
                ));
            }
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "golden {} differs (run with --update to accept):\n{}",
                path.display(),
                unified_diff(&expected, &actual, color)
            )),
            Err(e) => failures.push(format!(
                "{}: {e} (run with --update to create it)",
                path.display()
            )),
        }
    }
}

fn check_findings(
    what: &str,
    wanted: &[FindingExpect],
    actual: &[tessera_runtime::Finding],
    failures: &mut Vec<String>,
) {
    if wanted.len() != actual.len() {
        failures.push(format!(
            "{what}: expected {} findings, got {}{}",
            wanted.len(),
            actual.len(),
            describe_findings(actual)
        ));
        return;
    }
    for (i, (w, a)) in wanted.iter().zip(actual).enumerate() {
        let mut problems = Vec::new();
        if let Some(s) = &w.severity
            && *s != a.severity.to_string()
        {
            problems.push(format!("severity {s:?} != {:?}", a.severity.to_string()));
        }
        if let Some(m) = &w.message
            && *m != a.message
        {
            problems.push(format!("message {m:?} != {:?}", a.message));
        }
        if let Some(m) = &w.message_contains
            && !a.message.contains(m.as_str())
        {
            problems.push(format!("message {:?} does not contain {m:?}", a.message));
        }
        if let Some(f) = &w.field
            && Some(f) != a.field.as_ref()
        {
            problems.push(format!("field {f:?} != {:?}", a.field));
        }
        if !problems.is_empty() {
            failures.push(format!("{what}[{i}]: {}", problems.join(", ")));
        }
    }
}

fn check_error(error: &Error, wanted: &ErrorExpect) -> Result<(), String> {
    let (class, kind, field) = match error {
        Error::Refused { field, .. } => ("refused", None, field.clone()),
        Error::Crashed { kind, .. } => ("crashed", Some(*kind), None),
        Error::Settings { .. } => ("settings", None, None),
        Error::Input { .. } => ("input", None, None),
        Error::WrongWorld { .. } | Error::Incompatible { .. } => ("incompatible", None, None),
        Error::Host { .. } | Error::Io { .. } => ("host", None, None),
    };
    let text = error.to_string();
    let mut problems = Vec::new();
    if let Some(c) = &wanted.class
        && c != class
    {
        problems.push(format!("class {c:?} != {class:?}"));
    }
    if let Some(k) = &wanted.kind {
        let actual = kind.map(crash_kind_name);
        if actual != Some(k.as_str()) {
            problems.push(format!("kind {k:?} != {actual:?}"));
        }
    }
    if let Some(f) = &wanted.field
        && Some(f) != field.as_ref()
    {
        problems.push(format!("field {f:?} != {field:?}"));
    }
    if let Some(m) = &wanted.message_contains
        && !text.contains(m.as_str())
    {
        problems.push(format!("message does not contain {m:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "error differs: {} (got: {text})",
            problems.join(", ")
        ))
    }
}

fn crash_kind_name(kind: CrashKind) -> &'static str {
    match kind {
        CrashKind::Deadline => "deadline",
        CrashKind::OutOfFuel => "out-of-fuel",
        CrashKind::OutOfMemory => "out-of-memory",
        CrashKind::StackOverflow => "stack-overflow",
        CrashKind::Trap => "trap",
        CrashKind::OutputTooLarge => "output-too-large",
        CrashKind::InvalidOutput => "invalid-output",
    }
}

/// Whether `actual` holds everything `expected` says: objects by the keys
/// given (recursively), lists element by element with equal lengths,
/// scalars equal.
pub fn matches_partially(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| matches_partially(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(ev, av)| matches_partially(ev, av))
        }
        _ => expected == actual,
    }
}

/// `actual` cut down to the shape of `expected`, so a diff shows only what
/// the case asserts.
fn project(expected: &Value, actual: &Value) -> Value {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => Value::Object(
            e.iter()
                .filter_map(|(k, ev)| a.get(k).map(|av| (k.clone(), project(ev, av))))
                .collect(),
        ),
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            Value::Array(e.iter().zip(a).map(|(ev, av)| project(ev, av)).collect())
        }
        _ => actual.clone(),
    }
}

fn partial_diff(expected: &Value, actual: &Value, color: bool) -> Option<String> {
    if matches_partially(expected, actual) {
        return None;
    }
    let to_yaml = |v: &Value| serde_yaml_ng::to_string(v).unwrap_or_else(|_| v.to_string());
    Some(unified_diff(
        &to_yaml(expected),
        &to_yaml(&project(expected, actual)),
        color,
    ))
}

/// A unified diff of expected (`-`) against actual (`+`).
pub fn unified_diff(expected: &str, actual: &str, color: bool) -> String {
    let diff = similar::TextDiff::from_lines(expected, actual);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string();
    if !color {
        return text;
    }
    text.lines()
        .map(|line| {
            if line.starts_with('+') && !line.starts_with("+++") {
                format!("\x1b[32m{line}\x1b[0m")
            } else if line.starts_with('-') && !line.starts_with("---") {
                format!("\x1b[31m{line}\x1b[0m")
            } else if line.starts_with("@@") {
                format!("\x1b[36m{line}\x1b[0m")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A JUnit XML report of a run.
pub fn junit(results: &[(Case, Outcome)]) -> String {
    let escape = |s: &str| {
        // XML 1.0 allows no control characters but tab, newline and return.
        s.chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut by_suite: BTreeMap<String, Vec<&(Case, Outcome)>> = BTreeMap::new();
    for result in results {
        by_suite
            .entry(result.0.suite.display().to_string())
            .or_default()
            .push(result);
    }
    let failures = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    let skipped = results
        .iter()
        .filter(|(_, o)| *o == Outcome::Skipped)
        .count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tessera\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        results.len()
    );
    for (suite, cases) in by_suite {
        let suite_failures = cases
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count();
        let suite_skipped = cases.iter().filter(|(_, o)| *o == Outcome::Skipped).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{suite_failures}\" skipped=\"{suite_skipped}\">\n",
            escape(&suite),
            cases.len()
        ));
        for (case, outcome) in cases {
            xml.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&suite),
                escape(&case.name)
            ));
            match outcome {
                Outcome::Passed => xml.push_str("/>\n"),
                Outcome::Skipped => xml.push_str("><skipped/></testcase>\n"),
                Outcome::Failed(why) => xml.push_str(&format!(
                    "><failure message=\"{}\">{}</failure></testcase>\n",
                    escape(why.lines().next().unwrap_or("failed")),
                    escape(why)
                )),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_matching() {
        let actual = json!({"kind": "Service", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": [{"port": 80, "name": "http"}]}});
        assert!(matches_partially(&json!({"kind": "Service"}), &actual));
        assert!(matches_partially(
            &json!({"spec": {"ports": [{"port": 80}]}}),
            &actual
        ));
        assert!(!matches_partially(
            &json!({"spec": {"ports": [{"port": 81}]}}),
            &actual
        ));
        assert!(!matches_partially(&json!({"spec": {"ports": []}}), &actual));
        assert!(!matches_partially(&json!({"missing": null}), &actual));
    }

    #[test]
    fn diffs_show_only_asserted_fields() {
        let actual = json!({"kind": "Service", "metadata": {"name": "a"}, "spec": {"type": "ClusterIP", "port": 80}});
        let diff = partial_diff(&json!({"spec": {"port": 81}}), &actual, false).unwrap();
        assert!(
            diff.contains("-  port: 81") && diff.contains("+  port: 80"),
            "{diff}"
        );
        assert!(!diff.contains("ClusterIP"), "{diff}");
    }

    #[test]
    fn junit_escapes() {
        let case = Case {
            suite: "s.tessera.yaml".into(),
            name: "a <b>".into(),
            kind: CaseKind::Policy(PolicyInput {
                plugin: "p".into(),
                settings: None,
                settings_file: None,
                operation: None,
                object: None,
                object_file: None,
                old_object: None,
                old_object_file: None,
                user_info: None,
            }),
            expect: Expect::default(),
        };
        let xml = junit(&[(case, Outcome::Failed("x & \"y\"".into()))]);
        assert!(xml.contains("name=\"a &lt;b&gt;\""), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("x &amp; &quot;y&quot;"), "{xml}");
    }
}
