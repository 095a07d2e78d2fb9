//! One integration-test binary with a module per area. Every plugin under
//! `plugins/` and `tests/plugins/` is built from source for wasm32-wasip2 by
//! `tests/build.rs`; `foreach_plugin!` below makes a plugin without a test
//! module here fail to compile.

mod cli;
mod common;
mod runtime;
mod stamping;
mod suites;
mod terminal;

mod database;
mod faulty;
mod faulty_policy;
mod fuel;
mod guests;
mod hostile;
mod hostile_metadata;
mod provenance;
mod require_labels;
mod reuse;
mod service_binding;
mod team_database;
mod wasi_command;
mod wat_plugins;
mod web_app;

macro_rules! plugin_has_tests {
    ($name:ident) => {
        #[allow(unused_imports)]
        use crate::$name as _;
    };
}
tessera_tests::foreach_plugin!(plugin_has_tests);
