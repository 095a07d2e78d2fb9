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
//!
//! The parts:
//! - [`format`](mod@format): the file format, and reading a file into cases;
//! - [`discover`](mod@discover): finding suite files;
//! - [`plugins`]: loading (and building) the plugins cases name;
//! - [`run`]: running cases, one function per case kind, with [`setup`]
//!   reading their inputs and binding their plugins;
//! - [`check`] and [`partial`]: comparing what happened with what a case
//!   expects, and [`diff`] showing how they differ;
//! - [`junit`](mod@junit): the JUnit report.

mod check;
mod diff;
mod discover;
mod format;
mod junit;
mod partial;
mod plugins;
mod run;
mod setup;

use std::path::PathBuf;

use tessera_runtime::Limits;

pub(crate) use diff::{DIFF_START, colour};
pub(crate) use discover::discover;
pub(crate) use format::load_suite;
pub(crate) use junit::junit;
pub(crate) use plugins::PluginCache;
pub(crate) use run::run_cases;

use format::{CompositionInput, Expect, PipelineInput, PolicyInput};

/// A suite file that cannot be used: one line naming the file and the case.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SuiteError(pub(crate) String);

/// A [`SuiteError`] with this message.
fn err(message: impl Into<String>) -> SuiteError {
    SuiteError(message.into())
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// The suite file.
    pub(crate) suite: PathBuf,
    /// The case's name.
    pub(crate) name: String,
    kind: CaseKind,
    expect: Expect,
    /// The limits each evaluation of the case runs within.
    pub(crate) limits: Limits,
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
pub(crate) enum Outcome {
    /// Every expectation held.
    Passed,
    /// Some did not: what differed, as readable text (diffs included).
    Failed(String),
    /// Not run: it did not match `--filter`.
    Skipped,
}

/// Options for a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    /// Only cases whose name contains this.
    pub(crate) filter: Option<String>,
    /// Rewrite golden files instead of comparing.
    pub(crate) update: bool,
    /// Where workspace plugins are found (`<dir>/<crate_name>.wasm`) instead
    /// of building them with cargo.
    pub(crate) plugin_dir: Option<PathBuf>,
    /// Suites downloaded from a registry (`tessera test oci://...`): each
    /// suite under `suites` runs only the plugin pulled with it, from
    /// `plugins`, never a path it names.
    pub(crate) bundles: Vec<Bundle>,
}

/// Where one downloaded suite was unpacked, and the directory holding only
/// the plugin pulled with it.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    /// The directory the suite was unpacked into.
    pub(crate) suites: PathBuf,
    /// The directory holding the pulled plugin (`<name>.wasm`).
    pub(crate) plugins: PathBuf,
}
