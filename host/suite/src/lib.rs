//! Declarative test suites for Tessera plugins: what `tessera test` runs,
//! and what the composition controller runs to self-test a plugin pulled
//! with its bundled suite ([`self_test()`]).
//!
//! A suite is a YAML file whose name ends in `.tessera.yaml`:
//!
//! ```yaml
//! apiVersion: tessera.dev/v1alpha1
//! kind: TestSuite
//! cases:
//!   - name: three replicas get a disruption budget
//!     composition:
//!       plugin: database              # a plugin's name, or a path to a .wasm
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
//!
//! Which plugin a case's `plugin:` names is the caller's: a [`Plugins`]
//! resolver. The CLI's builds workspace crates and reads paths; [`OnePlugin`]
//! answers only the one plugin an artifact was pulled with.
//!
//! Reading a suite, as `tessera test` and [`self_test()`] do:
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("labels.tessera.yaml");
//! std::fs::write(&file, "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n  \
//!     - name: deletes are allowed\n    \
//!       policy: {plugin: require-labels, operation: delete}\n    \
//!       expect: {allowed: true}\n").unwrap();
//! assert_eq!(tessera_suite::discover(&[dir.path().to_path_buf()]).unwrap(), [file.clone()]);
//! let limits = tessera_runtime::LimitsSpec::default();
//! let cases = tessera_suite::load_suite(&file, &limits, true).unwrap();
//! assert_eq!(cases[0].name, "deletes are allowed");
//! // A downloaded (confined) suite may not name a plugin by path.
//! std::fs::write(&file, "apiVersion: tessera.dev/v1alpha1\nkind: TestSuite\ncases:\n  \
//!     - name: c\n    policy: {plugin: ./p.wasm}\n").unwrap();
//! let error = tessera_suite::load_suite(&file, &limits, true).unwrap_err().to_string();
//! assert!(error.ends_with("policy.plugin: \"./p.wasm\" is a path; a downloaded suite \
//!     runs only the plugin pulled with it, by name"), "{error}");
//! ```
//!
//! The parts (private modules; the crate's surface is re-exported here):
//! - `format`: the file format, and reading a file into cases
//!   ([`load_suite`]);
//! - `discover`: finding suite files ([`discover()`]);
//! - `plugins`: the [`Plugins`] trait and [`OnePlugin`];
//! - `run`: running cases ([`run_cases`]), one function per case kind, with
//!   `setup` reading their inputs and binding their plugins;
//! - `check` and `partial`: comparing what happened with what a case
//!   expects, and `diff` showing how they differ;
//! - `junit`: the JUnit report ([`junit()`]);
//! - `self_test`: running a pulled plugin's bundled suite ([`self_test()`]).

#![deny(missing_docs)]

mod check;
mod diff;
mod discover;
mod format;
mod junit;
mod partial;
mod plugins;
mod run;
mod self_test;
mod setup;

use std::path::PathBuf;

use tessera_runtime::Limits;

pub use diff::{DIFF_START, colour};
pub use discover::discover;
pub use format::{is_plugin_name, load_suite};
pub use junit::junit;
pub use plugins::{OnePlugin, Plugins};
pub use run::run_cases;
pub use self_test::{FirstFailure, SelfTestError, SelfTestReport, self_test};
pub use setup::implied_rules;

use format::{CompositionInput, Expect, PipelineInput, PolicyInput};

/// A suite file that cannot be used: one line naming the file and the case.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SuiteError(String);

/// A [`SuiteError`] with this message.
fn err(message: impl Into<String>) -> SuiteError {
    SuiteError(message.into())
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
    /// The limits each evaluation of the case runs within.
    pub limits: Limits,
}

/// What a case runs, with its input.
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
    /// Not run: it did not match [`RunOptions::filter`].
    Skipped,
}

/// Options for a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Rewrite golden files instead of comparing.
    pub update: bool,
}
