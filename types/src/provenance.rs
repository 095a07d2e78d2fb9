//! The keys of the provenance the host stamps on every child. Policies (the
//! `provenance` plugin among them) and users rely on these exact keys; the
//! runtime's `provenance` module says what each value holds.

/// Annotation: which plugin made the child, `<name>@<version>`.
pub const COMPOSED_BY: &str = "tessera.dev/composed-by";
/// Annotation: the sha256 of the plugin that made the child,
/// `sha256:<hex>`.
pub const PLUGIN_DIGEST: &str = "tessera.dev/plugin-digest";
/// Annotation: the OCI reference the plugin was pulled from, as resolved
/// (with its manifest digest), `oci://REGISTRY/REPO:TAG@sha256:<hex>`;
/// only on children of a plugin that came from a registry.
pub const PLUGIN_REF: &str = "tessera.dev/plugin-ref";
/// Annotation: the composite the child belongs to,
/// `<apiVersion>/<kind>/<namespace>/<name>`.
pub const COMPOSITE: &str = "tessera.dev/composite";
/// Annotation: the composite's uid.
pub const COMPOSITE_UID: &str = "tessera.dev/composite-uid";
/// Annotation: the composite's generation.
pub const COMPOSITE_GENERATION: &str = "tessera.dev/composite-generation";
/// Annotation: digest of the input the child was made from,
/// `sha256:<hex>`.
pub const INPUT_DIGEST: &str = "tessera.dev/input-digest";
/// Label: the composite's name.
pub const COMPOSITE_NAME_LABEL: &str = "tessera.dev/composite-name";
