//! Errors of the runtime, in three classes that are never confused: the
//! plugin refused (an answer), the plugin broke (a crash), the host failed.

use std::fmt;
use std::path::PathBuf;

/// Which plugin an error is about: its name (from its metadata, or its file
/// name before the metadata is known) and the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginId {
    /// The plugin's name.
    pub name: String,
    /// `sha256:<hex>` of the plugin's `.wasm` bytes.
    pub digest: String,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 12 hex digits are enough to tell plugins apart in a message.
        let short = self
            .digest
            .strip_prefix("sha256:")
            .map(|hex| &hex[..hex.len().min(12)])
            .unwrap_or(&self.digest);
        write!(f, "plugin {} (sha256:{short})", self.name)
    }
}

/// What the runtime was doing when an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and compiling (or loading from the cache) the component.
    Load,
    /// Checking the component against the Tessera worlds.
    Link,
    /// Calling `metadata`.
    Metadata,
    /// Checking settings against the plugin's schema.
    Settings,
    /// Creating the instance for one evaluation.
    Instantiate,
    /// Calling `expand`.
    Expand,
    /// Calling `validate`.
    Validate,
    /// Checking and stamping what the plugin returned.
    Output,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Load => "load",
            Phase::Link => "link",
            Phase::Metadata => "metadata",
            Phase::Settings => "settings",
            Phase::Instantiate => "instantiate",
            Phase::Expand => "expand",
            Phase::Validate => "validate",
            Phase::Output => "output",
        })
    }
}

pub use tessera_types::CrashKind;

/// An error from the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin refused its input: its `err` answer. Not a failure of the
    /// plugin or the host.
    #[error("{plugin} refused the input in {phase}: {}{message}", field_prefix(field.as_deref(), message))]
    Refused {
        /// The plugin.
        plugin: PluginId,
        /// The phase (expand or validate).
        phase: Phase,
        /// The plugin's message.
        message: String,
        /// The field the plugin named, if any.
        field: Option<String>,
    },

    /// The plugin broke: it trapped, ran out of time, memory or fuel, or
    /// returned output that breaks the contract.
    #[error(
        "{plugin} failed in {phase}: {kind}: {message}{}",
        stderr_suffix(stderr)
    )]
    Crashed {
        /// The plugin.
        plugin: PluginId,
        /// The phase.
        phase: Phase,
        /// How it broke.
        kind: CrashKind,
        /// What happened, e.g. the panic message.
        message: String,
        /// What the plugin wrote to stderr (bounded), if anything.
        stderr: String,
    },

    /// The component is not a Tessera plugin: it is not a component, or it
    /// does not export what a world needs, or it imports what the host does
    /// not provide.
    #[error("{path}: not a Tessera plugin: {message}")]
    Incompatible {
        /// Where the plugin came from.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// The plugin implements the other world: a policy plugin asked to
    /// expand, or a composition plugin asked to validate.
    #[error("{plugin} is a {world} plugin; it cannot be used as a {wanted} plugin")]
    WrongWorld {
        /// The plugin.
        plugin: PluginId,
        /// The world it implements.
        world: crate::plugin::World,
        /// The world the caller needed.
        wanted: crate::plugin::World,
    },

    /// The settings do not match the plugin's settings schema.
    #[error("{plugin}: invalid settings: {message}")]
    Settings {
        /// The plugin.
        plugin: PluginId,
        /// What is wrong, naming the setting.
        message: String,
    },

    /// The host failed: I/O, the cache, or a wasmtime error that is not the
    /// plugin's fault.
    #[error("{}host error in {phase}: {message}", plugin.as_ref().map(|p| format!("{p}: ")).unwrap_or_default())]
    Host {
        /// The plugin, when the error concerns one.
        plugin: Option<PluginId>,
        /// The phase.
        phase: Phase,
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The input (composite, object, settings) is not what the runtime
    /// needs, e.g. a composite without `metadata.name`.
    #[error("invalid input: {message}")]
    Input {
        /// What is wrong, naming the field.
        message: String,
    },

    /// The plugin file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `"<field>: "` unless the message already names the field.
fn field_prefix(field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) if !message.contains(field) => format!("{field}: "),
        _ => String::new(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        // Errors are one line: fold the plugin's stderr into it.
        format!(" (stderr: {})", trimmed.replace('\n', " | "))
    }
}

impl Error {
    /// The plugin the error is about, when there is one.
    pub fn plugin(&self) -> Option<&PluginId> {
        match self {
            Error::Refused { plugin, .. }
            | Error::Crashed { plugin, .. }
            | Error::Settings { plugin, .. }
            | Error::WrongWorld { plugin, .. } => Some(plugin),
            Error::Host { plugin, .. } => plugin.as_ref(),
            Error::Incompatible { .. } | Error::Input { .. } | Error::Io { .. } => None,
        }
    }

    /// True when the plugin answered `err` (refused its input).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. })
    }

    /// How the plugin broke, when it did.
    pub fn crash_kind(&self) -> Option<CrashKind> {
        match self {
            Error::Crashed { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub(crate) fn host(
        plugin: Option<&PluginId>,
        phase: Phase,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Host {
            plugin: plugin.cloned(),
            phase,
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
