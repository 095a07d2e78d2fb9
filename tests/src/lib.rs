//! Shared pieces of the integration tests: the paths of the example plugins,
//! built from source for `wasm32-wasip2` by `build.rs`, and small helpers.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// Paths of the plugins built by `build.rs`.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file under `examples/`.
pub fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}
