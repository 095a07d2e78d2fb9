//! The one place wasmtime bindings for the Tessera WIT package are generated.
//!
//! Both worlds import the same `host` interface; the `policy` bindings reuse
//! the `composition` bindings' types and host traits through `with`, so the
//! host implements each interface once.

#![allow(missing_docs, missing_debug_implementations)]

wasmtime::component::bindgen!({
    world: "composition",
    path: "../../wit",
    exports: { default: async },
    // Host functions may fail the evaluation: each charges what it was
    // given against the evaluation's copy budget (`state::HostEnv::charge`).
    imports: { default: trappable },
});

/// Bindings of the `policy` world.
pub mod policy {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../../wit",
        exports: { default: async },
        imports: { default: trappable },
        with: {
            "tessera:plugin/types": crate::bindings::tessera::plugin::types,
            "tessera:plugin/host": crate::bindings::tessera::plugin::host,
        },
    });
}
