//! How a plugin broke.

use std::fmt;

/// How a plugin broke (as opposed to refusing its input, which is an
/// answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashKind {
    /// It ran past its deadline.
    Deadline,
    /// It ran out of its fuel budget.
    OutOfFuel,
    /// It tried to grow past its memory cap.
    OutOfMemory,
    /// It overflowed its stack.
    StackOverflow,
    /// It trapped (a panic, `unreachable`, `abort`, a bad memory access, ...).
    Trap,
    /// It returned more output than the binding allows.
    OutputTooLarge,
    /// It returned output that is not what the contract says (bad JSON, a
    /// child without a name, ...).
    InvalidOutput,
}

impl CrashKind {
    /// Every kind, in declaration order.
    pub const ALL: [CrashKind; 7] = [
        CrashKind::Deadline,
        CrashKind::OutOfFuel,
        CrashKind::OutOfMemory,
        CrashKind::StackOverflow,
        CrashKind::Trap,
        CrashKind::OutputTooLarge,
        CrashKind::InvalidOutput,
    ];

    /// The short name test suites and metrics use: `deadline`,
    /// `out-of-fuel`, `out-of-memory`, `stack-overflow`, `trap`,
    /// `output-too-large`, `invalid-output`.
    pub fn name(self) -> &'static str {
        match self {
            CrashKind::Deadline => "deadline",
            CrashKind::OutOfFuel => "out-of-fuel",
            CrashKind::OutOfMemory => "out-of-memory",
            CrashKind::StackOverflow => "stack-overflow",
            CrashKind::Trap => "trap",
            CrashKind::OutputTooLarge => "output-too-large",
            CrashKind::InvalidOutput => "invalid-output",
        }
    }

    /// The kind with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for CrashKind {
    /// The phrase error messages use (`deadline exceeded`, ...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CrashKind::Deadline => "deadline exceeded",
            CrashKind::OutOfFuel => "fuel exhausted",
            CrashKind::OutOfMemory => "memory cap reached",
            CrashKind::StackOverflow => "stack overflow",
            CrashKind::Trap => "trapped",
            CrashKind::OutputTooLarge => "output too large",
            CrashKind::InvalidOutput => "invalid output",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in CrashKind::ALL {
            assert_eq!(CrashKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(CrashKind::from_name("deadline exceeded"), None);
    }
}
