//! Per-binding limits on one evaluation.

use std::time::Duration;

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

    /// The configured deadline.
    pub fn get_deadline(&self) -> Duration {
        self.deadline
    }

    /// The configured memory cap.
    pub fn get_memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}
