//! A policy plugin that misbehaves on request, for the runtime's error paths
//! in the `policy` world. `settings.mode` picks the behaviour; one mode
//! (`require-configmap`) reads the cluster, for policies' `reads`.

use tessera_sdk::{Error, Finding, Metadata, Result, Review, Verdict, json};

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("faulty-policy", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .settings_schema(json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string"},
                "configMap": {"type": "string"},
                "namespace": {"type": "string"}
            },
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
        "escapes" => {
            // Terminal escapes and forged lines in everything a policy says,
            // and a denial: the host prints none of them raw.
            let escapes = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f\r";
            println!("out{escapes}\nforged: stdout line");
            eprintln!("err{escapes}");
            tessera_sdk::host::warn(&format!("log{escapes}\ndigest: sha256:forged"));
            Ok(Verdict::from_findings(vec![
                Finding::error(format!("message{escapes}\ndenied: forged"))
                    .at(format!("metadata{escapes}")),
            ]))
        }
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
        "big-findings" => {
            // 5 findings of 1 MiB: over the default 4 MiB output cap.
            let message = "f".repeat(1 << 20);
            Ok(Verdict::from_findings(
                (0..5).map(|_| Finding::error(message.clone())).collect(),
            ))
        }
        "big-refusal" => Err(Error::at("spec", "r".repeat(5 << 20))),
        "require-configmap" => {
            // Denies unless the ConfigMap `settings.configMap` exists in
            // `settings.namespace` (default: the reviewed object's own).
            let settings = review.settings();
            let name = settings.str("configMap")?;
            let object = review.object.as_ref().or(review.old_object.as_ref());
            let namespace = settings
                .opt_str("namespace")?
                .or_else(|| object.and_then(|o| o.namespace()));
            let found = tessera_sdk::host::get_resource("v1", "ConfigMap", namespace, name)?;
            Ok(match found {
                Some(_) => Verdict::allow(),
                None => Verdict::from_findings(vec![Finding::error(format!(
                    "no ConfigMap {name} in namespace {}",
                    namespace.unwrap_or("(none)")
                ))]),
            })
        }
        other => Err(Error::at(
            "settings.mode",
            format!("unknown mode {other:?}"),
        )),
    }
}

tessera_sdk::export_policy!(metadata = metadata, validate = validate);
