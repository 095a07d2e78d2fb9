//! A policy plugin whose metadata is hostile: its description and the kinds
//! it says it handles carry terminal escapes and a newline followed by a
//! forged `digest:` line. Metadata is static per plugin, so this is its own
//! crate; `tessera inspect` must print none of it raw.

use tessera_sdk::{Metadata, Result, Review, Verdict, json};

/// OSC 0 (set the window title) ended by BEL, CSI 2J (clear the screen), a
/// C1 CSI, DEL and a carriage return.
const ESCAPES: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f\r";

/// The plugin's metadata: everything a plugin may choose freely is hostile.
pub fn metadata() -> Metadata {
    Metadata::new("hostile-metadata", env!("CARGO_PKG_VERSION"))
        .description(format!(
            "looks harmless{ESCAPES}\ndigest:      sha256:forged\n"
        ))
        .handles(
            format!("v1{ESCAPES}"),
            format!("ConfigMap{ESCAPES}\ndigest: sha256:forged"),
        )
        .settings_schema(json!({
            "type": "object",
            "description": format!("settings{ESCAPES}\ndigest: sha256:forged"),
        }))
}

/// Allows everything: only the metadata matters.
pub fn validate(_review: Review) -> Result<Verdict> {
    Ok(Verdict::allow())
}

tessera_sdk::export_policy!(metadata = metadata, validate = validate);
