//! The small types Tessera's host and guest share.
//!
//! The WIT package (`wit/tessera.wit`) is the contract between a plugin and
//! the host; this crate holds the Rust side of the parts of it that several
//! crates need in the same shape — the runtime, the guest SDK, the admission
//! decoder, the controller and the CLI — so that each of them keeps only its
//! conversion from and to the generated bindings, not a copy of the type.
//!
//! It has no dependency but `serde_json` and builds for `wasm32-wasip2`.
//!
//! ```
//! use tessera_types::{Finding, Severity, text};
//!
//! let finding = Finding::error("label team is missing").at("metadata.labels");
//! assert_eq!(finding.severity, Severity::Error);
//! assert_eq!(finding.severity.to_string(), "error");
//! assert_eq!(text::one_line("first\n\nsecond\x1b[2J"), "first | second\u{fffd}[2J");
//! ```

#![deny(missing_docs)]

mod condition;
mod crash;
mod finding;
pub mod json;
pub mod names;
pub mod provenance;
mod review;
pub mod text;

pub use condition::{Condition, ConditionStatus};
pub use crash::CrashKind;
pub use finding::{Finding, Severity};
pub use review::{Operation, UserInfo};
