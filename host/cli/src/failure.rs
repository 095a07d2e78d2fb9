//! How a command fails: one line, shown as `error: <line>` with exit code 2.

/// A failure: one line, shown as `error: <line>`, exit code 2.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

/// What a command returns: its exit code, or a failure.
pub(crate) type Outcome = Result<i32, Failure>;
