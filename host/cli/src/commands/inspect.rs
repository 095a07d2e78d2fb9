//! `tessera inspect WASM`: what a plugin is, without running its logic
//! (only its `metadata` export is called).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};
use tessera_runtime::Runtime;

use crate::commands::Format;
use crate::failure::{Failure, Outcome};
use crate::{EXIT_OK, GlobalArgs, Stdio, Untrusted, build_runtime, json_for_terminal, progress};

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The plugin (`.wasm` component, or an oci:// reference).
    #[arg(value_name = "WASM")]
    wasm: PathBuf,
    /// Output format [default: text].
    #[arg(short, long, value_enum)]
    output: Option<Format>,
}

/// Runs `tessera inspect`.
pub(crate) async fn execute(global: &GlobalArgs, args: InspectArgs, io: &mut Stdio<'_>) -> Outcome {
    let runtime = build_runtime(global, false)?;
    inspect(
        global,
        &runtime,
        &args.wasm,
        args.output.map(|f| f == Format::Json),
        io,
    )
    .await
    .map_err(Failure)
}

/// Loads the plugin and writes its description as text, or as JSON when
/// `json` is true. Errors are one line.
async fn inspect(
    global: &GlobalArgs,
    runtime: &Runtime,
    path: &Path,
    json: Option<bool>,
    io: &mut Stdio<'_>,
) -> Result<i32, String> {
    let bytes = match path
        .to_str()
        .filter(|p| tessera_oci::Reference::is_reference(p))
    {
        Some(reference) => {
            crate::commands::oci::plugin_bytes(global, reference)
                .await
                .map_err(|f| f.0)?
                .0
        }
        None => std::fs::read(path)
            .map_err(|e| format!("{}: cannot read plugin: {e}", path.display()))?,
    };
    // Asked before loading: loading fills the cache.
    let cached = runtime.is_cached(&bytes);
    let spinner = progress::Spinner::start(format!("loading {}", path.display()));
    let loaded = runtime.load(&bytes, path).await;
    drop(spinner);
    let plugin = loaded.map_err(|e| e.to_string())?;
    let meta = plugin.metadata();
    let description = json!({
        "name": meta.name,
        "version": meta.version,
        "description": meta.description,
        "world": plugin.world().to_string(),
        "witPackage": plugin.wit_version().map(|v| format!("tessera:plugin@{v}")),
        "kinds": meta.kinds.iter().map(|k| json!({"apiVersion": k.api_version, "kind": k.kind})).collect::<Vec<_>>(),
        "settingsSchema": meta.settings_schema,
        "digest": plugin.digest(),
        "size": plugin.size(),
        "imports": plugin.imports(),
        "exports": plugin.exports(),
        "cached": cached,
        "cacheDir": runtime.cache_dir().map(|d| d.display().to_string()),
    });
    let write = |io: &mut Stdio<'_>, text: String| {
        io.stdout
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())
    };
    if json == Some(true) {
        let mut text = json_for_terminal(
            &serde_json::to_string_pretty(&description).expect("JSON values serialize"),
        );
        text.push('\n');
        write(io, text)?;
        return Ok(EXIT_OK);
    }
    // Everything below but the digest, size and cache is what the plugin says
    // about itself: one line each through `Untrusted`, so that a description
    // cannot draw lines of its own (a second `digest:`). The settings schema
    // is printed as JSON, whose strings escape every control character
    // (`json_for_terminal`: DEL and C1 too).
    let kinds = meta
        .kinds
        .iter()
        .map(|k| format!("{} {}", Untrusted(&k.api_version), Untrusted(&k.kind)))
        .collect::<Vec<_>>();
    let mut text = String::new();
    let mut line = |key: &str, value: String| text.push_str(&format!("{key:<13}{value}\n"));
    line("name:", Untrusted(&meta.name).to_string());
    line("version:", Untrusted(&meta.version).to_string());
    line("description:", Untrusted(&meta.description).to_string());
    line(
        "world:",
        match plugin.wit_version() {
            Some(v) => format!("{} (tessera:plugin@{v})", plugin.world()),
            None => plugin.world().to_string(),
        },
    );
    line(
        "kinds:",
        if kinds.is_empty() {
            "(any)".into()
        } else {
            kinds.join(", ")
        },
    );
    line("digest:", plugin.digest().to_string());
    line("size:", format!("{} bytes", plugin.size()));
    line(
        "cached:",
        match (cached, runtime.cache_dir()) {
            (Some(true), Some(dir)) => format!("yes, in {}", dir.display()),
            (Some(false), Some(dir)) => format!("no (now compiled into {})", dir.display()),
            _ => "caching is off".into(),
        },
    );
    line("imports:", String::new());
    for import in plugin.imports() {
        text.push_str(&format!("  {}\n", Untrusted(import)));
    }
    match &meta.settings_schema {
        Some(schema) => {
            text.push_str("settings schema:\n");
            let pretty = json_for_terminal(
                &serde_json::to_string_pretty(schema).unwrap_or_else(|_| Value::Null.to_string()),
            );
            for l in pretty.lines() {
                text.push_str(&format!("  {l}\n"));
            }
        }
        None => text.push_str("settings schema: (none: the plugin takes no settings)\n"),
    }
    write(io, text)?;
    Ok(EXIT_OK)
}
