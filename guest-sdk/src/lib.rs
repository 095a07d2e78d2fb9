//! Write Tessera plugins in plain Rust.
//!
//! A plugin is one function over typed values plus one export macro. The
//! component-model bindings are generated inside this crate and hidden; you
//! compile the plugin crate (`crate-type = ["cdylib"]`) for `wasm32-wasip2`
//! and get a component the Tessera host can load.
//!
//! # A complete composition plugin
//!
//! ```no_run
//! use tessera_sdk::{CompositionRequest, Expansion, Metadata, Result, json};
//!
//! fn metadata() -> Metadata {
//!     Metadata::new("cache", "0.1.0")
//!         .description("Expands a Cache into a Deployment and a Service")
//!         .handles("platform.example.com/v1", "Cache")
//! }
//!
//! fn expand(request: CompositionRequest) -> Result<Expansion> {
//!     let spec = request.spec();
//!     let replicas = spec.opt_int("replicas")?.unwrap_or(1);
//!     let name = request.composite.name();
//!
//!     let deployment = request
//!         .child("apps/v1", "Deployment", name)
//!         .with("spec", json!({
//!             "replicas": replicas,
//!             "selector": {"matchLabels": {"app": name}},
//!             "template": {
//!                 "metadata": {"labels": {"app": name}},
//!                 "spec": {"containers": [{"name": "cache", "image": "redis:7"}]},
//!             },
//!         }));
//!     Ok(Expansion::new().child(deployment).ready(true))
//! }
//!
//! tessera_sdk::export_composition!(metadata = metadata, expand = expand);
//! # fn main() {}
//! ```
//!
//! A policy plugin is the same with [`export_policy!`], a function from
//! [`Review`] to [`Verdict`].
//!
//! # Errors
//!
//! Returning `Err(Error)` is an *answer*: the plugin refuses its input, and the
//! host reports the message (and the field, when given) to the user. A panic
//! is a *crash*: the host reports it as a broken plugin. Prefer errors; the
//! field readers ([`Fields`]) produce them with messages such as
//! `spec.replicas must be an integer, got "three"`.

#![deny(missing_docs)]

extern crate self as tessera_sdk;

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
pub mod arena;
mod fields;
mod object;
mod types;

/// With the `arena` feature, plugins allocate from a bump arena instead of
/// the default allocator (see [`arena`]).
#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

pub mod host;

pub use fields::{Fields, is_dns1035_label, is_quantity};
pub use object::Object;
pub use serde_json::{Map, Value, json};
/// The keys of the provenance the host stamps on every composed child, for
/// policies that check it.
pub use tessera_types::provenance;
pub use types::{
    CompositionRequest, Condition, ConditionStatus, Context, Error, Expansion, Finding, Metadata,
    Operation, Result, Review, Severity, UserInfo, Verdict,
};

/// Generated component-model bindings. Not part of the public API.
#[doc(hidden)]
pub mod wit {
    /// Bindings of the `composition` world.
    #[allow(clippy::too_many_arguments)]
    pub mod composition {
        wit_bindgen::generate!({
            world: "composition",
            path: "../wit",
            pub_export_macro: true,
            default_bindings_module: "tessera_sdk::wit::composition",
            export_macro_name: "export",
            generate_all,
        });
    }

    /// Bindings of the `policy` world; the shared interfaces come from
    /// [`composition`] so that both worlds use one set of Rust types.
    #[allow(clippy::too_many_arguments)]
    pub mod policy {
        wit_bindgen::generate!({
            world: "policy",
            path: "../wit",
            pub_export_macro: true,
            default_bindings_module: "tessera_sdk::wit::policy",
            export_macro_name: "export",
            with: {
                "tessera:plugin/types@0.1.0": tessera_sdk::wit::composition::tessera::plugin::types,
                "tessera:plugin/host@0.1.0": tessera_sdk::wit::composition::tessera::plugin::host,
            },
            generate_all,
        });
    }
}

/// Glue used by the export macros. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    use crate::types::{CompositionRequest, Expansion, Metadata, Review, Verdict};
    use crate::wit::composition::tessera::plugin::composition_types as c;
    use crate::wit::composition::tessera::plugin::types as t;
    use crate::wit::policy::tessera::plugin::policy_types as p;

    pub use crate::wit::composition::Guest as CompositionGuest;
    pub use crate::wit::composition::export as export_composition_world;
    pub use crate::wit::policy::Guest as PolicyGuest;
    pub use crate::wit::policy::export as export_policy_world;

    /// Converts the author's metadata into the WIT record.
    pub fn metadata(meta: Metadata) -> t::PluginMetadata {
        meta.into_wit()
    }

    /// Runs an author's `expand` on a WIT request.
    pub fn expand(
        request: c::Request,
        f: fn(CompositionRequest) -> crate::Result<Expansion>,
    ) -> Result<c::Expansion, t::PluginError> {
        crate::host::start_evaluation();
        let request = CompositionRequest::from_wit(request).map_err(crate::Error::into_wit)?;
        f(request)
            .map(Expansion::into_wit)
            .map_err(crate::Error::into_wit)
    }

    /// Runs an author's `validate` on a WIT review.
    pub fn validate(
        review: p::Review,
        f: fn(Review) -> crate::Result<Verdict>,
    ) -> Result<p::Verdict, t::PluginError> {
        crate::host::start_evaluation();
        let review = Review::from_wit(review).map_err(crate::Error::into_wit)?;
        f(review)
            .map(Verdict::into_wit)
            .map_err(crate::Error::into_wit)
    }
}

/// Exports a composition plugin.
///
/// `metadata` names a `fn() -> Metadata`, `expand` a
/// `fn(CompositionRequest) -> Result<Expansion>`. Use it once per crate.
#[macro_export]
macro_rules! export_composition {
    (metadata = $metadata:path, expand = $expand:path $(,)?) => {
        #[doc(hidden)]
        pub struct __TesseraComposition;

        impl $crate::__private::CompositionGuest for __TesseraComposition {
            fn metadata() -> $crate::wit::composition::tessera::plugin::types::PluginMetadata {
                $crate::__private::metadata($metadata())
            }

            fn expand(
                request: $crate::wit::composition::tessera::plugin::composition_types::Request,
            ) -> ::core::result::Result<
                $crate::wit::composition::tessera::plugin::composition_types::Expansion,
                $crate::wit::composition::tessera::plugin::types::PluginError,
            > {
                $crate::__private::expand(request, $expand)
            }
        }

        // Only a wasm build exports the component's functions: natively the
        // plugin is a plain library (unit tests, benchmarks), and several
        // plugins can link into one binary.
        #[cfg(target_arch = "wasm32")]
        $crate::__private::export_composition_world!(
            __TesseraComposition with_types_in $crate::wit::composition
        );
    };
}

/// Exports a policy plugin.
///
/// `metadata` names a `fn() -> Metadata`, `validate` a
/// `fn(Review) -> Result<Verdict>`. Use it once per crate.
#[macro_export]
macro_rules! export_policy {
    (metadata = $metadata:path, validate = $validate:path $(,)?) => {
        #[doc(hidden)]
        pub struct __TesseraPolicy;

        impl $crate::__private::PolicyGuest for __TesseraPolicy {
            fn metadata() -> $crate::wit::composition::tessera::plugin::types::PluginMetadata {
                $crate::__private::metadata($metadata())
            }

            fn validate(
                review: $crate::wit::policy::tessera::plugin::policy_types::Review,
            ) -> ::core::result::Result<
                $crate::wit::policy::tessera::plugin::policy_types::Verdict,
                $crate::wit::composition::tessera::plugin::types::PluginError,
            > {
                $crate::__private::validate(review, $validate)
            }
        }

        // See `export_composition!`: exports exist in wasm builds only.
        #[cfg(target_arch = "wasm32")]
        $crate::__private::export_policy_world!(__TesseraPolicy with_types_in $crate::wit::policy);
    };
}
