//! Per-binding limits on one evaluation: [`Limits`], what the runtime
//! enforces, and [`LimitsSpec`], the same limits as users write them (in a
//! Composition or Policy, a test suite, or on the command line).
//!
//! The defaults are stated once, in [`Limits::default`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest log line kept; longer lines are cut. 1 KiB holds any useful
/// message and keeps a log flood cheap.
pub(crate) const MAX_LOG_LINE: usize = 1024;

/// Limits applied to every evaluation of a binding.
///
/// The defaults suit an admission webhook, the strictest caller: the API
/// server's webhook timeout is 10 s by default, so one plugin gets 1 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub(crate) deadline: Duration,
    pub(crate) memory_bytes: usize,
    pub(crate) max_output_bytes: usize,
    pub(crate) max_instances: usize,
    pub(crate) fuel: Option<u64>,
    pub(crate) max_log_lines: usize,
    pub(crate) max_log_bytes: usize,
    pub(crate) max_stdio_bytes: usize,
    pub(crate) max_children: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(1),
            // 64 MiB: a Rust plugin needs about 1-2 MiB; language runtimes
            // (Python, JavaScript) need tens of MiB.
            memory_bytes: 64 << 20,
            // 4 MiB: etcd's default request limit is 1.5 MiB per object, so
            // this allows a few large children and refuses a runaway plugin.
            max_output_bytes: 4 << 20,
            // Components built from language runtimes instantiate dozens of
            // core instances; 64 is the floor the design asks for.
            max_instances: 64,
            fuel: None,
            max_log_lines: 1000,
            max_log_bytes: 64 << 10,
            max_stdio_bytes: 64 << 10,
            // 500: real compositions own a handful to a few dozen children,
            // and every child is parsed, stamped, judged by every policy and
            // applied, so the work an answer causes grows with the count, not
            // its bytes (4 MiB of JSON is about 70,000 small children).
            max_children: 500,
        }
    }
}

impl Limits {
    /// The wall-clock deadline of one call (enforced by epoch interruption,
    /// with the granularity of [`crate::EPOCH_TICK`]).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The most linear memory a plugin instance may grow to, in bytes.
    #[must_use]
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// The most output (children and status, as JSON) one call may return.
    #[must_use]
    pub fn max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// The most core instances, memories and tables one plugin may create.
    #[must_use]
    pub fn max_instances(mut self, count: usize) -> Self {
        self.max_instances = count;
        self
    }

    /// A fuel budget for one call. Needs a runtime built with fuel on
    /// ([`crate::RuntimeBuilder::fuel`]); ignored otherwise.
    #[must_use]
    pub fn fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }

    /// The most children one `expand` may return; more fail the evaluation
    /// before any child is parsed or judged.
    #[must_use]
    pub fn max_children(mut self, count: usize) -> Self {
        self.max_children = count;
        self
    }

    /// The configured deadline.
    pub fn get_deadline(&self) -> Duration {
        self.deadline
    }

    /// The configured memory cap.
    pub fn get_memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// The configured output cap.
    pub fn get_max_output_bytes(&self) -> usize {
        self.max_output_bytes
    }

    /// The configured fuel budget.
    pub fn get_fuel(&self) -> Option<u64> {
        self.fuel
    }

    /// The configured bound on children.
    pub fn get_max_children(&self) -> usize {
        self.max_children
    }
}

/// Limits as users write them: `spec.limits` of a Composition or Policy,
/// `limits:` in a test suite, and the CLI's `--deadline`, `--memory`,
/// `--output-limit`, `--fuel` and `--max-children`. Every field is optional; an unset field
/// keeps the value of the limits it is applied to (in the end the defaults of
/// [`Limits::default`]).
///
/// ```
/// use std::time::Duration;
/// use tessera_runtime::{Limits, LimitsSpec};
///
/// let spec: LimitsSpec = serde_json::from_str(r#"{"deadline": "500ms", "memory": "32Mi"}"#).unwrap();
/// let limits = spec.to_limits().unwrap();
/// assert_eq!(limits.get_deadline(), Duration::from_millis(500));
/// assert_eq!(limits.get_memory_bytes(), 32 << 20);
/// ```
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(
        description = "Limits of one evaluation. Durations are written like `500ms` or `2s`, sizes as Kubernetes quantities (`64Mi`)."
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Wall-clock deadline of one call (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Memory cap of one instance (default `64Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Cap on the answer's size (default `4Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Fuel budget of one call (default: none): deterministic CPU
    /// accounting, for offline runs; the controller refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Most children one expansion may return (default `500`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children: Option<u32>,
}

/// A [`LimitsSpec`] field that cannot be read; the message names the field
/// (`limits.memory: expected a quantity like 64Mi, got "lots"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field}: {message}")]
pub struct LimitsError {
    /// The field: `deadline`, `memory`, `output`, `fuel` or `maxChildren`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl LimitsSpec {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self == &LimitsSpec::default()
    }

    /// The defaults with what this sets.
    pub fn to_limits(&self) -> Result<Limits, LimitsError> {
        self.apply_to(Limits::default())
    }

    /// `base` with what this sets.
    pub fn apply_to(&self, base: Limits) -> Result<Limits, LimitsError> {
        let error = |field| move |message| LimitsError { field, message };
        let mut limits = base;
        if let Some(deadline) = &self.deadline {
            limits = limits.deadline(parse_duration(deadline).map_err(error("deadline"))?);
        }
        if let Some(memory) = &self.memory {
            limits = limits.memory_bytes(parse_bytes(memory).map_err(error("memory"))?);
        }
        if let Some(output) = &self.output {
            limits = limits.max_output_bytes(parse_bytes(output).map_err(error("output"))?);
        }
        if let Some(fuel) = self.fuel {
            if fuel == 0 {
                return Err(error("fuel")("must be more than zero, got 0".to_string()));
            }
            limits = limits.fuel(Some(fuel));
        }
        if let Some(children) = self.max_children {
            if children == 0 {
                return Err(error("maxChildren")(
                    "must be more than zero, got 0".to_string(),
                ));
            }
            limits = limits.max_children(children as usize);
        }
        Ok(limits)
    }

    /// `self`, with the fields `over` sets taking their place.
    #[must_use]
    pub fn overridden_by(&self, over: &LimitsSpec) -> LimitsSpec {
        LimitsSpec {
            deadline: over.deadline.clone().or_else(|| self.deadline.clone()),
            memory: over.memory.clone().or_else(|| self.memory.clone()),
            output: over.output.clone().or_else(|| self.output.clone()),
            fuel: over.fuel.or(self.fuel),
            max_children: over.max_children.or(self.max_children),
        }
    }
}

/// Parses a duration as Tessera's flags and specs take it: `250ms`, `2s`,
/// `1m`, `1m30s` (the `humantime` syntax). Zero is refused.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(tessera_runtime::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert!(tessera_runtime::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| format!("expected a duration like 500ms or 2s, got {text:?}"))?;
    if duration.is_zero() {
        return Err(format!("must be more than zero, got {text:?}"));
    }
    Ok(duration)
}

/// Parses a byte quantity as Kubernetes writes one: `64Mi`, `1Gi`, `512Ki`,
/// `1M`, `4096` (the `parse-size` syntax, which also takes `64MiB`). A
/// lone `m` is Kubernetes' *milli* and makes no sense for bytes, so it is
/// refused rather than read as mega. Zero is refused.
///
/// ```
/// assert_eq!(tessera_runtime::parse_bytes("64Mi"), Ok(64 << 20));
/// assert!(tessera_runtime::parse_bytes("100m").is_err());
/// ```
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let expected = || format!("expected a quantity like 64Mi, got {text:?}");
    if trimmed.ends_with('m') {
        return Err(expected());
    }
    let bytes = parse_size::parse_size(trimmed).map_err(|e| match e {
        parse_size::Error::PosOverflow => format!("too large: {text:?}"),
        _ => expected(),
    })?;
    match usize::try_from(bytes) {
        Ok(0) => Err(format!("must be more than zero, got {text:?}")),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(format!("too large: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("2x").unwrap_err().contains("\"2x\""));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_bytes("1M"), Ok(1_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("100m").is_err());
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("99999999999999999999Gi").is_err());
    }

    #[test]
    fn limits_name_the_field() {
        let limits = LimitsSpec {
            memory: Some("lots".into()),
            ..LimitsSpec::default()
        };
        assert!(
            limits
                .to_limits()
                .unwrap_err()
                .to_string()
                .starts_with("limits.memory:")
        );
    }

    #[test]
    fn later_specs_override_earlier_ones() {
        let suite = LimitsSpec {
            deadline: Some("2s".into()),
            fuel: Some(10),
            ..LimitsSpec::default()
        };
        let case = LimitsSpec {
            deadline: Some("100ms".into()),
            ..LimitsSpec::default()
        };
        let merged = suite.overridden_by(&case);
        assert_eq!(merged.deadline.as_deref(), Some("100ms"));
        assert_eq!(merged.fuel, Some(10));
        let limits = merged.to_limits().unwrap();
        assert_eq!(limits.get_deadline(), Duration::from_millis(100));
    }

    #[test]
    fn max_children_is_read_and_checked() {
        assert_eq!(Limits::default().get_max_children(), 500);
        let spec: LimitsSpec = serde_json::from_str(r#"{"maxChildren": 20}"#).unwrap();
        assert_eq!(spec.to_limits().unwrap().get_max_children(), 20);
        let zero: LimitsSpec = serde_json::from_str(r#"{"maxChildren": 0}"#).unwrap();
        assert!(
            zero.to_limits()
                .unwrap_err()
                .to_string()
                .starts_with("limits.maxChildren:")
        );
        let merged = spec.overridden_by(&LimitsSpec::default());
        assert_eq!(merged.max_children, Some(20));
    }
}
