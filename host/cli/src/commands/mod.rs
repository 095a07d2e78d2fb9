//! The commands, one file each: its arguments (a clap `Args` struct) and its
//! `execute`.

use clap::{Args, ValueEnum};
use tessera_runtime::LimitsSpec;

pub(crate) mod bench;
pub(crate) mod build;
pub(crate) mod inspect;
pub(crate) mod new;
pub(crate) mod oci;
pub(crate) mod render;
pub(crate) mod test;
pub(crate) mod validate;

/// The limits of each evaluation, as flags (`render`, `validate`, `test`).
/// Unset flags keep the defaults (for `test`: what the suite or case sets,
/// else the defaults).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct LimitsArgs {
    /// Wall-clock deadline of one evaluation, e.g. 500ms or 2s [default: 1s].
    #[arg(long, value_name = "DURATION")]
    deadline: Option<String>,
    /// Memory cap of one plugin instance, e.g. 64Mi [default: 64Mi].
    #[arg(long, value_name = "QUANTITY")]
    memory: Option<String>,
    /// Cap on one answer's size, e.g. 4Mi [default: 4Mi].
    #[arg(long, value_name = "QUANTITY")]
    output_limit: Option<String>,
    /// Fuel budget of one evaluation (counts fuel, deterministic CPU
    /// accounting) [default: none].
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Most children one expansion may return [default: 500].
    #[arg(long, value_name = "COUNT")]
    max_children: Option<u32>,
}

impl LimitsArgs {
    /// The flags as a limits spec (`limits.output` is `--output-limit`).
    pub(crate) fn spec(&self) -> LimitsSpec {
        LimitsSpec {
            deadline: self.deadline.clone(),
            memory: self.memory.clone(),
            output: self.output_limit.clone(),
            fuel: self.fuel,
            max_children: self.max_children,
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A YAML stream (`---` between documents).
    Yaml,
    /// One JSON list.
    Json,
}
