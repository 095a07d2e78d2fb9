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

/// Whether a suite's `plugin` is a plugin's name (letters, digits, `-` and
/// `_`), not a path.
pub fn is_plugin_name(reference: &str) -> bool {
    !reference.is_empty()
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a path a suite names stays inside the suite's directory: relative,
/// with only normal components (no `..`, no root, no `.`).
fn is_confined(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// For a downloaded suite: the first plugin that is not a name, or the first
/// file that is not confined to the suite's directory, as `field: value`.
fn unconfined(kind: &CaseKind, expect: &Expect) -> Option<String> {
    let mut plugins: Vec<(String, &str)> = Vec::new();
    let mut files: Vec<(String, &Path)> = Vec::new();
    fn composition<'a>(
        prefix: &str,
        c: &'a CompositionInput,
        plugins: &mut Vec<(String, &'a str)>,
        files: &mut Vec<(String, &'a Path)>,
    ) {
        plugins.push((format!("{prefix}plugin"), c.plugin.as_str()));
        for (name, file) in [
            ("settingsFile", &c.settings_file),
            ("compositeFile", &c.composite_file),
        ] {
            if let Some(file) = file {
                files.push((format!("{prefix}{name}"), file.as_path()));
            }
        }
        for (name, list) in [
            ("observedFiles", &c.observed_files),
            ("resourceFiles", &c.resource_files),
        ] {
            for (i, file) in list.iter().enumerate() {
                files.push((format!("{prefix}{name}[{i}]"), file.as_path()));
            }
        }
    }
    match kind {
        CaseKind::Composition(c) => {
            composition("composition.", c, &mut plugins, &mut files);
        }
        CaseKind::Policy(p) => {
            plugins.push(("policy.plugin".into(), p.plugin.as_str()));
            for (name, file) in [
                ("settingsFile", &p.settings_file),
                ("objectFile", &p.object_file),
                ("oldObjectFile", &p.old_object_file),
            ] {
                if let Some(file) = file {
                    files.push((format!("policy.{name}"), file.as_path()));
                }
            }
        }
        CaseKind::Pipeline(p) => {
            composition(
                "pipeline.composition.",
                &p.composition,
                &mut plugins,
                &mut files,
            );
            for (i, policy) in p.policies.iter().enumerate() {
                plugins.push((
                    format!("pipeline.policies[{i}].plugin"),
                    policy.plugin.as_str(),
                ));
                if let Some(file) = &policy.settings_file {
                    files.push((
                        format!("pipeline.policies[{i}].settingsFile"),
                        file.as_path(),
                    ));
                }
            }
        }
    }
    if let Some(golden) = &expect.golden {
        files.push(("expect.golden".into(), golden.as_path()));
    }
    if let Some((field, plugin)) = plugins.into_iter().find(|(_, p)| !is_plugin_name(p)) {
        return Some(format!(
            "{field}: {plugin:?} is a path; a downloaded suite runs only the plugin pulled with it, by name"
        ));
    }
    files.into_iter().find(|(_, f)| !is_confined(f)).map(|(field, file)| {
        format!(
            "{field}: {:?} is outside the suite's directory; a downloaded suite may name only relative paths (no leading /, no . or ..)",
            file.display().to_string()
        )
    })
}

/// Reads a suite file into cases. `base` holds the caller's limits (those
/// given on the command line); the suite's `limits` and then each case's
/// override them. A `confined` suite (downloaded from a registry, or
/// bundled with an artifact) may name only files inside its directory and
/// plugins by name. An error is one line naming the file (and the case).
pub fn load_suite(path: &Path, base: &LimitsSpec, confined: bool) -> Result<Vec<Case>, SuiteError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let suite: SuiteFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        err(format!(
            "{}: {}",
            path.display(),
            tessera_types::text::one_line(&e.to_string())
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
            if confined && let Some(why) = unconfined(&kind, &case.expect) {
                return Err(err(format!("{at}: {why}")));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, confined: bool) -> Result<Vec<Case>, SuiteError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.tessera.yaml");
        std::fs::write(&file, text).unwrap();
        load_suite(&file, &LimitsSpec::default(), confined)
    }

    fn suite(case: &str) -> String {
        format!("apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n  - name: c\n{case}")
    }

    #[test]
    fn a_downloaded_suite_names_only_files_inside_it_and_plugins_by_name() {
        let refused = [
            (
                "    policy: {plugin: p, objectFile: /root/.kube/config}\n",
                "policy.objectFile",
            ),
            (
                "    policy: {plugin: p, settingsFile: ../settings.yaml}\n",
                "policy.settingsFile",
            ),
            (
                "    composition: {plugin: p, resourceFiles: [ok.yaml, a/../../x.yaml]}\n",
                "composition.resourceFiles[1]",
            ),
            (
                "    composition: {plugin: p}\n    expect: {golden: /etc/cron.d/x}\n",
                "expect.golden",
            ),
            ("    policy: {plugin: /opt/x.wasm}\n", "policy.plugin"),
            ("    policy: {plugin: x.wasm}\n", "policy.plugin"),
            (
                "    pipeline:\n      composition: {plugin: p}\n      policies: [{plugin: q, settingsFile: /s.yaml}]\n",
                "pipeline.policies[0].settingsFile",
            ),
        ];
        for (case, field) in refused {
            let text = suite(case);
            // A local suite may name any path.
            load(&text, false).unwrap();
            let error = load(&text, true).unwrap_err().0;
            assert!(error.contains("s.tessera.yaml: case 0 (\"c\")"), "{error}");
            assert!(error.contains(&format!("{field}: ")), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        load(
            &suite("    composition: {plugin: p, compositeFile: in/x.yaml}\n    expect: {golden: golden/c.yaml}\n"),
            true,
        )
        .unwrap();
    }
}
