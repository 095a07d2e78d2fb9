//! The suite file format: the serde types a `*.tessera.yaml` file is read
//! into, and reading one file into [`Case`]s, refusing what would silently
//! go unchecked.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tessera_runtime::{LimitsSpec, ReadRule};

use super::{Case, CaseKind, SuiteError, err};

/// The suite `apiVersion` this version of tessera reads.
const API_VERSION: &str = "tessera.dev/v1alpha1";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SuiteFile {
    api_version: String,
    kind: String,
    /// Limits of every case in the file (over the CLI's flags).
    #[serde(default)]
    limits: LimitsSpec,
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
    /// Limits of this case (over the suite's).
    #[serde(default)]
    limits: LimitsSpec,
    #[serde(default)]
    expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CompositionInput {
    pub(super) plugin: String,
    #[serde(default)]
    pub(super) settings: Option<Value>,
    #[serde(default)]
    pub(super) settings_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) composite: Option<Value>,
    #[serde(default)]
    pub(super) composite_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) observed: Vec<Value>,
    #[serde(default)]
    pub(super) observed_files: Vec<PathBuf>,
    #[serde(default)]
    pub(super) resources: Vec<Value>,
    #[serde(default)]
    pub(super) resource_files: Vec<PathBuf>,
    /// What the plugin may read, as a Composition's `spec.reads`; without
    /// it, the kinds of `resources` except Secrets, in the composite's own
    /// namespace (as `tessera render --resources`).
    #[serde(default)]
    pub(super) reads: Option<Vec<ReadRule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PolicyInput {
    pub(super) plugin: String,
    #[serde(default)]
    pub(super) settings: Option<Value>,
    #[serde(default)]
    pub(super) settings_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) operation: Option<String>,
    #[serde(default)]
    pub(super) object: Option<Value>,
    #[serde(default)]
    pub(super) object_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) old_object: Option<Value>,
    #[serde(default)]
    pub(super) old_object_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) user_info: Option<UserInfoInput>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserInfoInput {
    #[serde(default)]
    pub(super) username: String,
    #[serde(default)]
    pub(super) uid: String,
    #[serde(default)]
    pub(super) groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PolicyRef {
    pub(super) plugin: String,
    #[serde(default)]
    pub(super) settings: Option<Value>,
    #[serde(default)]
    pub(super) settings_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PipelineInput {
    pub(super) composition: CompositionInput,
    pub(super) policies: Vec<PolicyRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Expect {
    /// `Kind/name` of every child, in order.
    #[serde(default)]
    pub(super) child_names: Option<Vec<String>>,
    /// Partial children, matched by kind and `metadata.name`.
    #[serde(default)]
    pub(super) children: Option<Vec<Value>>,
    /// A YAML stream holding every child exactly; `--update` rewrites it.
    #[serde(default)]
    pub(super) golden: Option<PathBuf>,
    /// Partial status patch.
    #[serde(default)]
    pub(super) status: Option<Value>,
    #[serde(default)]
    pub(super) ready: Option<bool>,
    /// Policy: the verdict. Pipeline: whether every child passed every policy.
    #[serde(default)]
    pub(super) allowed: Option<bool>,
    /// Findings, in order; each matches on the fields given.
    #[serde(default)]
    pub(super) findings: Option<Vec<FindingExpect>>,
    /// Pipeline: verdicts for some (child, policy) pairs.
    #[serde(default)]
    pub(super) verdicts: Option<Vec<VerdictExpect>>,
    /// The evaluation fails like this.
    #[serde(default)]
    pub(super) error: Option<ErrorExpect>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FindingExpect {
    #[serde(default)]
    pub(super) severity: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) message_contains: Option<String>,
    #[serde(default)]
    pub(super) field: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct VerdictExpect {
    pub(super) child: String,
    pub(super) policy: String,
    pub(super) allowed: bool,
    #[serde(default)]
    pub(super) findings: Option<Vec<FindingExpect>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ErrorExpect {
    /// `refused`, `crashed`, `settings`, `input`, `incompatible` (not a
    /// Tessera plugin, or a plugin of the other world) or `host` (the host
    /// failed, or a plugin file could not be read).
    #[serde(default)]
    pub(super) class: Option<String>,
    /// For `crashed`: `deadline`, `out-of-fuel`, `out-of-memory`,
    /// `stack-overflow`, `trap`, `output-too-large` or `invalid-output`.
    #[serde(default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) field: Option<String>,
    #[serde(default)]
    pub(super) message_contains: Option<String>,
}

/// Reads a suite file into cases. `base` holds the limits given on the
/// command line; the suite's `limits` and then each case's override them.
pub(crate) fn load_suite(path: &Path, base: &LimitsSpec) -> Result<Vec<Case>, SuiteError> {
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
    let suite_limits = base.overridden_by(&suite.limits);
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
            let limits = suite_limits
                .overridden_by(&case.limits)
                .to_limits()
                .map_err(|e| err(format!("{at}: {e}")))?;
            Ok(Case {
                suite: path.to_path_buf(),
                name: case.name,
                kind,
                expect: case.expect,
                limits,
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
