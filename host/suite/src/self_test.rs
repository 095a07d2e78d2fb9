//! The self-test of a pulled plugin: the suite bundled with its artifact,
//! unpacked into a directory, run against exactly that plugin — the one
//! call the composition controller makes ([`self_test`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_runtime::{LimitsSpec, Plugin};
use tessera_types::text::{one_line, shorten};

use crate::{OnePlugin, Outcome, RunOptions, SuiteError, discover, load_suite, run_cases};

/// The most bytes of a failure a [`SelfTestReport::summary`] quotes.
const SUMMARY_FAILURE_BYTES: usize = 512;

/// Why a case was skipped, as [`SelfTestReport::summary`] says it.
const FUEL_SKIPPED: &str = "fuel budgets need fuel counting";

/// What a bundled suite's run came to ([`self_test`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfTestReport {
    passed: usize,
    failed: usize,
    skipped: usize,
    first_failure: Option<FirstFailure>,
}

/// A case that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstFailure {
    /// Its suite file, relative to the suite's directory.
    pub suite: PathBuf,
    /// The case's name.
    pub case: String,
    /// What differed, as `tessera test` prints it (several lines, diffs
    /// included; it quotes what the plugin produced: untrusted text).
    pub failure: String,
}

impl SelfTestReport {
    /// Cases whose every expectation held.
    pub fn passed(&self) -> usize {
        self.passed
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Cases not run: their limits set a fuel budget, and the plugin's
    /// runtime does not count fuel (the budget would be ignored, so what the
    /// case expects of it could not hold).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The first case that failed, in the order of the suite files (sorted
    /// by path) and of the cases in each; `None` when none failed.
    pub fn first_failure(&self) -> Option<&FirstFailure> {
        self.first_failure.as_ref()
    }

    /// Every case counted: passed, failed and skipped.
    pub fn cases(&self) -> usize {
        self.passed + self.failed + self.skipped
    }

    /// Whether no case failed (skipped cases do not fail a suite).
    pub fn passed_all(&self) -> bool {
        self.failed == 0
    }

    /// One line for a Kubernetes condition's message, with no control
    /// character: the first failure (its text on one line, at most 512
    /// bytes of it), e.g. `case "three replicas" in database.tessera.yaml
    /// failed: ready: expected true, got false`, or what passed, e.g.
    /// `3 cases passed (1 skipped: fuel budgets need fuel counting)`.
    pub fn summary(&self) -> String {
        if let Some(first) = &self.first_failure {
            let more = match self.failed {
                0 | 1 => String::new(),
                2 => " (1 more case failed)".to_string(),
                n => format!(" ({} more cases failed)", n - 1),
            };
            return format!(
                "case {:?} in {} failed: {}{more}",
                one_line(&first.case),
                one_line(&first.suite.display().to_string()),
                shorten(&one_line(&first.failure), SUMMARY_FAILURE_BYTES)
            );
        }
        // No failure: `failed` is 0 (a failure is always recorded).
        let mut summary = format!(
            "{} {} passed",
            self.passed,
            if self.passed == 1 { "case" } else { "cases" }
        );
        if self.skipped > 0 {
            summary.push_str(&format!(" ({} skipped: {FUEL_SKIPPED})", self.skipped));
        }
        summary
    }
}

/// Why a bundled suite could not be run at all: one line.
#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    /// The suite's directory could not be searched for suite files.
    #[error("bundled suite: {0}")]
    Discover(SuiteError),
    /// A suite file cannot be used: it does not parse, breaks the format,
    /// or names a path (a plugin, or a file outside its directory).
    #[error("bundled suite {}: {message}", shown(.file))]
    Suite {
        /// The file, relative to the suite's directory.
        file: PathBuf,
        /// What is wrong with it (the case, where it is one case).
        message: String,
    },
}

/// A path as an error shows it: one line.
fn shown(path: &Path) -> String {
    one_line(&path.display().to_string())
}

/// Runs the suite bundled with `plugin`'s artifact, unpacked under `dir`,
/// against `plugin` alone ([`OnePlugin`]: cases name it `name`).
///
/// Every `*.tessera.yaml` under `dir` is read as a downloaded suite
/// (`confined`: plugins by name only, files inside `dir` only), with
/// `limits` under the suite's and each case's own; golden files are
/// compared, never rewritten. No suite file is no case: `Ok`, with nothing
/// counted (the caller decides what that means). A case whose limits set a
/// fuel budget is skipped when `plugin`'s runtime does not count fuel
/// ([`Plugin::fuel_enabled`]). Needs a tokio runtime: the cases run
/// concurrently, on tasks.
pub async fn self_test(
    plugin: Plugin,
    name: &str,
    dir: &Path,
    limits: &LimitsSpec,
) -> Result<SelfTestReport, SelfTestError> {
    let files = discover(&[dir.to_path_buf()]).map_err(SelfTestError::Discover)?;
    let relative = |file: &Path| file.strip_prefix(dir).unwrap_or(file).to_path_buf();
    let mut cases = Vec::new();
    for file in &files {
        let loaded = load_suite(file, limits, true).map_err(|e| {
            let message = e.to_string();
            // load_suite's messages start with the file's path.
            let message = message
                .strip_prefix(&format!("{}: ", file.display()))
                .unwrap_or(&message);
            SelfTestError::Suite {
                file: relative(file),
                message: one_line(message),
            }
        })?;
        cases.extend(loaded);
    }
    let mut report = SelfTestReport::default();
    let (runnable, fuelled): (Vec<_>, Vec<_>) = cases
        .into_iter()
        .partition(|case| plugin.fuel_enabled() || case.limits.get_fuel().is_none());
    report.skipped = fuelled.len();
    let plugins = Arc::new(OnePlugin::new(name, plugin));
    for (case, outcome) in run_cases(runnable, plugins, &RunOptions::default()).await {
        match outcome {
            Outcome::Passed => report.passed += 1,
            // No filter: every case runs.
            Outcome::Skipped => report.skipped += 1,
            Outcome::Failed(failure) => {
                report.failed += 1;
                report.first_failure.get_or_insert_with(|| FirstFailure {
                    suite: relative(&case.suite),
                    case: case.name.clone(),
                    failure,
                });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(failure: &str, failed: usize) -> SelfTestReport {
        SelfTestReport {
            passed: 2,
            failed,
            skipped: 0,
            first_failure: Some(FirstFailure {
                suite: "sub/database.tessera.yaml".into(),
                case: "three\x1b[2J replicas".into(),
                failure: failure.into(),
            }),
        }
    }

    #[test]
    fn a_summary_names_the_first_failure_on_one_short_line() {
        let summary = failed("ready: expected true, got false\n\x1b]0;x\x07more", 1).summary();
        assert_eq!(
            summary,
            "case \"three\u{fffd}[2J replicas\" in sub/database.tessera.yaml failed: \
             ready: expected true, got false | \u{fffd}]0;x\u{fffd}more"
        );
        let long = failed(&"x".repeat(5000), 3).summary();
        assert!(long.ends_with("xxx... (2 more cases failed)"), "{long}");
        assert!(long.len() < 512 + 120, "{}", long.len());
        assert!(!long.chars().any(char::is_control));
    }

    #[test]
    fn a_summary_counts_what_passed_and_what_was_skipped() {
        let mut report = SelfTestReport {
            passed: 3,
            ..SelfTestReport::default()
        };
        assert_eq!(report.summary(), "3 cases passed");
        report.skipped = 1;
        assert_eq!(
            report.summary(),
            "3 cases passed (1 skipped: fuel budgets need fuel counting)"
        );
        report.passed = 1;
        report.skipped = 0;
        assert_eq!(report.summary(), "1 case passed");
        assert!(report.passed_all());
        assert_eq!(report.cases(), 1);
    }
}
