//! Reading what the commands are given: documents from files or stdin,
//! settings, the secret key and plugins. Every error names the file and,
//! where there is one, the document.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use tessera_runtime::{Plugin, ReadRule, Runtime, SecretKey, World};

use crate::documents::{Document, display_name, parse_stream, read_text};
use crate::failure::Failure;
use crate::progress;

/// Reads every document of a file, failing on the first bad one.
pub(crate) fn read_all(path: &Path, stdin: &mut dyn Read) -> Result<Vec<Value>, Failure> {
    let text = read_text(path, stdin)?;
    parse_stream(&text)
        .into_iter()
        .map(|doc| document_value(path, doc))
        .collect()
}

fn document_value(path: &Path, doc: Document) -> Result<Value, Failure> {
    doc.value.map_err(|e| {
        Failure(format!(
            "{}: document {}: {e}",
            display_name(path),
            doc.index
        ))
    })
}

/// Reads a file that must hold exactly one document.
pub(crate) fn read_one(path: &Path, stdin: &mut dyn Read, what: &str) -> Result<Value, Failure> {
    let mut values = read_all(path, stdin)?;
    match values.len() {
        1 => Ok(values.remove(0)),
        0 => Err(Failure(format!(
            "{}: no {what} in the file",
            display_name(path)
        ))),
        n => Err(Failure(format!(
            "{}: expected one {what}, found {n} documents",
            display_name(path)
        ))),
    }
}

/// Reads a settings object; no file means empty settings.
pub(crate) fn read_settings(path: Option<&Path>, stdin: &mut dyn Read) -> Result<Value, Failure> {
    let Some(path) = path else {
        return Ok(Value::Object(Map::new()));
    };
    let value = read_one(path, stdin, "settings object")?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Failure(format!(
            "{}: settings must be an object",
            display_name(path)
        )))
    }
}

/// Checks that each value is a Kubernetes object; errors name file and
/// document.
pub(crate) fn objects(path: &Path, values: Vec<Value>) -> Result<Vec<Value>, Failure> {
    for (index, value) in values.iter().enumerate() {
        if let Err(message) = check_object(value) {
            return Err(Failure(format!(
                "{}: document {index}: {message}",
                display_name(path)
            )));
        }
    }
    Ok(values)
}

/// Checks that a value is a Kubernetes object: a mapping with `apiVersion`,
/// `kind` and `metadata.name`.
pub(crate) fn check_object(value: &Value) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err("not a Kubernetes object (expected a mapping)".into());
    };
    for (field, present) in [
        ("apiVersion", object.get("apiVersion")),
        ("kind", object.get("kind")),
    ] {
        match present {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(format!("{field} is missing"));
            }
            Some(other) => return Err(format!("{field} must be a string, got {other}")),
        }
    }
    match value.pointer("/metadata/name") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err("metadata.name is missing".into()),
        Some(other) => Err(format!("metadata.name must be a string, got {other}")),
    }
}

/// Refuses more than one input from stdin: it can be read only once.
pub(crate) fn check_stdin_once(paths: &[&Path]) -> Result<(), Failure> {
    if paths.iter().filter(|p| **p == Path::new("-")).count() > 1 {
        return Err(Failure("only one input can be read from stdin (-)".into()));
    }
    Ok(())
}

/// The key credentials are derived from: the file given, else
/// `$TESSERA_SECRET_KEY_FILE`, else the public development key.
pub(crate) fn load_secret_key(path: Option<&Path>) -> Result<Arc<SecretKey>, Failure> {
    let path = path
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TESSERA_SECRET_KEY_FILE").map(PathBuf::from));
    let Some(path) = path else {
        return Ok(Arc::new(SecretKey::development()));
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| Failure(format!("{}: cannot read secret key: {e}", path.display())))?;
    SecretKey::new(bytes)
        .map(Arc::new)
        .map_err(|e| Failure(format!("{}: {e}", path.display())))
}

/// Loads a plugin — a file, or an `oci://` reference (fetched by digest and
/// verified against the trust policy before it is compiled) — and checks it
/// implements the world the command needs.
pub(crate) async fn load_plugin(
    global: &crate::GlobalArgs,
    runtime: &Runtime,
    path: &Path,
    world: World,
) -> Result<Plugin, Failure> {
    let loaded = match path
        .to_str()
        .filter(|p| tessera_oci::Reference::is_reference(p))
    {
        Some(reference) => {
            let (bytes, pinned) = crate::commands::oci::plugin_bytes(global, reference).await?;
            let spinner = progress::Spinner::start(format!("loading {pinned}"));
            let loaded = runtime.load(&bytes, Path::new(&pinned.to_string())).await;
            drop(spinner);
            loaded
        }
        None => {
            let spinner = progress::Spinner::start(format!("loading {}", path.display()));
            let loaded = runtime.load_file(path).await;
            drop(spinner);
            loaded
        }
    };
    let plugin = loaded.map_err(|e| match e {
        tessera_runtime::Error::Io { path, source } => Failure(format!(
            "{}: cannot read plugin: {}",
            path.display(),
            if source.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                source.to_string()
            }
        )),
        other => Failure(other.to_string()),
    })?;
    if plugin.world() != world {
        return Err(Failure(format!(
            "{}: plugin {} is a {} plugin; a {world} plugin is needed here",
            path.display(),
            plugin.metadata().name,
            plugin.world()
        )));
    }
    Ok(plugin)
}

/// `WASM[=SETTINGS_FILE]`.
pub(crate) fn split_policy_arg(arg: &str) -> (PathBuf, Option<PathBuf>) {
    match arg.split_once('=') {
        Some((wasm, settings)) => (PathBuf::from(wasm), Some(PathBuf::from(settings))),
        None => (PathBuf::from(arg), None),
    }
}

/// The reads `--reads FILE` allows: a YAML list of rules (or one rule per
/// document), the shape of a Composition's `spec.reads`, or a Composition
/// or Policy whose `spec.reads` is taken. Errors name the file.
pub(crate) fn read_rules(path: &Path, stdin: &mut dyn Read) -> Result<Vec<ReadRule>, Failure> {
    let values = read_all(path, stdin)?;
    let values = match values.as_slice() {
        [one] if one.get("spec").is_some() => one
            .pointer("/spec/reads")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => values,
    };
    let mut rules = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let rule: ReadRule = serde_json::from_value(value).map_err(|e| {
            Failure(format!(
                "{}: read {index}: not {{apiVersion, kind, namespaces, labelSelector}}: {e}",
                display_name(path)
            ))
        })?;
        rule.check()
            .map_err(|m| Failure(format!("{}: {m}", display_name(path))))?;
        rules.push(rule);
    }
    Ok(rules)
}
