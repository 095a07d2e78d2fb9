//! Before a case runs: its inputs read (inline or from files beside the
//! suite) and its plugins bound with their settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use tessera_runtime::{Binding, Error, Fixtures, Limits, ReadAccess, ReadRule, SecretKey, World};

use super::check::check_error;
use super::format::{CompositionInput, Expect};
use super::plugins::Plugins;

/// A case input given inline or as a file (one document), not both.
pub(super) fn read_value(
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

/// Every document of `file`, resolved against the suite's directory.
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

/// Why a case could not even be evaluated: a problem with the case itself,
/// or a runtime error (settings, loading) that the case may expect.
pub(super) enum SetupError {
    /// The case is wrong (a file missing, an input given twice).
    Case(String),
    /// The runtime refused (settings, loading).
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
    /// The error as a failure line, for a case that expects none.
    pub(super) fn into_message(self) -> String {
        match self {
            SetupError::Case(message) => message,
            SetupError::Runtime(e) => e.to_string(),
        }
    }
}

/// The result of a case whose setup failed: a runtime error the case
/// expects is checked like any other error.
pub(super) fn setup_failed(error: SetupError, expect: &Expect) -> Result<(), String> {
    match (error, &expect.error) {
        (SetupError::Runtime(e), Some(wanted)) => check_error(&e, wanted),
        (other, _) => Err(other.into_message()),
    }
}

/// Loads a composition case's plugin with its settings, reads (host) and
/// a fixed secret key; returns it with the composite and observed children.
pub(super) async fn bind_composition<P: Plugins>(
    input: &CompositionInput,
    suite: &Path,
    limits: &Limits,
    plugins: &P,
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
    let rules = input
        .reads
        .clone()
        .unwrap_or_else(|| implied_rules(&fixtures));
    let home = composite
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(String::from);
    let reads = ReadAccess::scoped(Arc::new(fixtures), rules, home)?;
    // A fixed test key: credentials are deterministic and never the
    // development key's, so goldens do not depend on it.
    let key = SecretKey::new(b"tessera test suites: fixed key, not secret".to_vec())
        .expect("the test key is long enough");
    let binding = Binding::new(plugin, settings)
        .map_err(SetupError::Runtime)?
        .with_reads(reads)
        .with_secret_key(Arc::new(key))
        .with_limits(limits.clone());
    Ok((binding, composite, observed))
}

/// Loads a policy plugin with its settings.
pub(super) async fn bind_policy<P: Plugins>(
    reference: &str,
    settings: Option<&Value>,
    settings_file: Option<&PathBuf>,
    suite: &Path,
    limits: &Limits,
    plugins: &P,
) -> Result<Binding, SetupError> {
    let plugin = plugins.load(suite, reference, World::Policy).await?;
    let settings = read_value(suite, settings, settings_file, "settings")?
        .unwrap_or(Value::Object(Map::new()));
    Binding::new(plugin, settings)
        .map(|binding| binding.with_limits(limits.clone()))
        .map_err(SetupError::Runtime)
}

/// The reads fixtures imply when no rules are given (a case without
/// `reads`, `tessera render --resources` or `tessera validate --resources`
/// without `--reads`): each kind found in them except Secrets (readable only
/// when named), in the home namespace only — what the same binding reads in
/// the cluster.
pub fn implied_rules(fixtures: &Fixtures) -> Vec<ReadRule> {
    fixtures
        .kinds()
        .into_iter()
        .filter(|(api_version, kind)| !(api_version == "v1" && kind == "Secret"))
        .map(|(api_version, kind)| ReadRule::new(api_version, kind))
        .collect()
}
