//! What the host offers a plugin: logging, reads of other resources (only
//! those the plugin's binding allows), and derived secrets.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::object::Object;
use crate::types::{Error, Result};
use crate::wit::composition::tessera::plugin::host as wit_host;
use crate::wit::composition::tessera::plugin::types::ResourceRef;

pub use crate::wit::composition::tessera::plugin::host::LogLevel;

/// The host's log byte budget of one evaluation. The host spends it by what
/// it is offered (and keeps at most 1 KiB of a line), so once this much was
/// sent in an evaluation nothing more can be kept.
const LOG_BUDGET: usize = 64 << 10;

/// Bytes of log messages sent to the host in this evaluation.
static LOG_SENT: AtomicUsize = AtomicUsize::new(0);

/// Called by the export glue as each evaluation starts: a reused instance
/// keeps its statics, the host gives each evaluation a fresh log budget.
pub(crate) fn start_evaluation() {
    LOG_SENT.store(0, Ordering::Relaxed);
}

/// Writes a log line through the host, which keeps a bounded number of
/// lines and bytes per evaluation (long lines cut) and counts the rest as
/// dropped.
///
/// The host copies every message it is sent, and one evaluation may hand it
/// only so much (SECURITY.md, "Output"), so this sends only what can still
/// be kept: at most the first 64 KiB of a message, and once 64 KiB were sent
/// in this evaluation an empty line, which the host counts as dropped. So
/// logging never fails an evaluation, however much a plugin logs.
pub fn log(level: LogLevel, message: &str) {
    let sent = LOG_SENT.load(Ordering::Relaxed);
    let offered = if sent >= LOG_BUDGET {
        ""
    } else {
        tessera_types::text::truncate(message, LOG_BUDGET)
    };
    LOG_SENT.store(sent.saturating_add(offered.len()), Ordering::Relaxed);
    wit_host::log(level, offered);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// Reads one object; `Ok(None)` when it does not exist. Fails when the
/// binding does not allow reading this kind.
pub fn get_resource(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Object>> {
    let target = ResourceRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
    };
    let found = wit_host::get_resource(&target).map_err(Error::new)?;
    found
        .map(|text| parse(&format!("{kind} {name}"), &text))
        .transpose()
}

/// Lists objects of a kind, optionally in one namespace and filtered by a
/// label selector (`key=value,key2=value2`).
pub fn list_resources(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    label_selector: Option<&str>,
) -> Result<Vec<Object>> {
    wit_host::list_resources(api_version, kind, namespace, label_selector)
        .map_err(Error::new)?
        .iter()
        .map(|text| parse(kind, text))
        .collect()
}

/// A secret of `length` characters from `[A-Za-z0-9]`, derived by the host
/// from the key it holds, the identity of the composite being expanded and
/// `purpose`. Deterministic, yet not guessable without the host's key.
/// Only composition plugins may call it.
pub fn derive_secret(purpose: &str, length: u32) -> String {
    crate::wit::composition::tessera::plugin::credentials::derive_secret(purpose, length)
}

fn parse(what: &str, text: &str) -> Result<Object> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::new(format!("host returned invalid JSON for {what}: {e}")))?;
    Object::from_value(what, value)
}
