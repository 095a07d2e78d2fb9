//! A policy plugin that misbehaves on request, for the runtime's error paths
//! in the `policy` world. `settings.mode` picks the behaviour.

use tessera_sdk::{Error, Finding, Metadata, Result, Review, Verdict, json};

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("faulty-policy", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .settings_schema(json!({
            "type": "object",
            "properties": {"mode": {"type": "string"}},
            "required": ["mode"]
        }))
}

/// Misbehaves as `settings.mode` says.
pub fn validate(review: Review) -> Result<Verdict> {
    match review.settings().str("mode")? {
        "allow" => Ok(Verdict::allow()),
        "deny" => Ok(Verdict::from_findings(vec![Finding::error(
            "denied on purpose",
        )])),
        "refuse" => Err(Error::new("cannot judge this object")),
        "panic" => panic!("faulty policy panicked on purpose"),
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        other => Err(Error::at(
            "settings.mode",
            format!("unknown mode {other:?}"),
        )),
    }
}

tessera_sdk::export_policy!(metadata = metadata, validate = validate);
