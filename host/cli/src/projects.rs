//! Plugin projects, in each language `tessera new` writes: found from a
//! directory (the nearest manifest at or above it) and built into a
//! `wasm32-wasip2` component by the language's own toolchain.
//!
//! - **Rust**: a `Cargo.toml` (a crate or a workspace); each `cdylib` crate
//!   is a plugin, named by its crate name, built with `cargo build --release
//!   --target wasm32-wasip2`.
//! - **Python**: a `pyproject.toml` with a `[tool.tessera]` table (`world`,
//!   `module`, `sdk`); one plugin, named by `[project] name`, built by the
//!   Python SDK's `build` script with componentize-py.
//! - **JavaScript**: a `package.json` with a `"tessera"` object (`world`,
//!   `sdk`, optional `engine`); one plugin, named by `"name"`, whose module
//!   is `"main"`, built by the JS SDK's `build.mjs` with componentize-js.
//!
//! The Python and JavaScript toolchains are pinned and installed into the
//! tools cache by the checkout's `scripts/build-python-guest` and
//! `scripts/build-js-guest`, which the SDKs' builders run the first time;
//! nothing is installed globally. A guest build writes
//! `target/wasm32-wasip2/release/<name>.wasm` in the project (where cargo
//! puts a Rust plugin), and is skipped while a fingerprint of its inputs
//! (the project's files, the SDK, the WIT, the toolchain's pin) is
//! unchanged, as cargo skips a fresh crate.
//!
//! A failed build returns the toolchain's own diagnostics (the first errors,
//! with file and line) and a one-line summary of the first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_runtime::World;

/// The language of a guest (non-Rust) plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    /// componentize-py, on `guest-sdk/python`.
    Python,
    /// componentize-js (or componentize-qjs), on `guest-sdk/js`.
    JavaScript,
}

impl Language {
    /// The toolchain that builds it, for messages.
    fn toolchain(self, engine: Option<&str>) -> &'static str {
        match (self, engine) {
            (Language::Python, _) => "componentize-py",
            (Language::JavaScript, Some("qjs")) => "componentize-qjs",
            (Language::JavaScript, _) => "componentize-js",
        }
    }
}

/// A project found above a directory.
#[derive(Debug, Clone)]
pub(crate) enum Project {
    /// A cargo crate or workspace (its directory): its plugins are crates,
    /// named on demand.
    Cargo(PathBuf),
    /// A Python or JavaScript project: exactly one plugin.
    Guest(Guest),
}

/// A Python or JavaScript plugin project, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Guest {
    /// Python or JavaScript.
    pub(crate) language: Language,
    /// The project's directory (absolute).
    pub(crate) dir: PathBuf,
    /// The manifest (`pyproject.toml` or `package.json`), for messages.
    pub(crate) manifest: PathBuf,
    /// The plugin's name, as suites name it (`plugin: NAME`).
    pub(crate) name: String,
    /// The world it implements.
    pub(crate) world: World,
    /// The Python module, or the JavaScript entry file (relative to `dir`).
    pub(crate) source: String,
    /// The SDK directory (absolute) whose builder builds it.
    pub(crate) sdk: PathBuf,
    /// The JavaScript engine (`qjs` for componentize-qjs); `None` for the
    /// default.
    pub(crate) engine: Option<String>,
}

impl Guest {
    /// Where the built component goes.
    pub(crate) fn output(&self) -> PathBuf {
        self.dir
            .join("target/wasm32-wasip2/release")
            .join(format!("{}.wasm", self.name.replace('-', "_")))
    }
}

/// A build that failed: a one-line summary (the first error, with its file
/// and line when the toolchain gave them), and the toolchain's diagnostics
/// (its first errors, as it printed them; empty when it printed nothing
/// useful).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildError {
    /// One line: `plugin NAME: building it with TOOL in DIR failed: ...`.
    pub(crate) summary: String,
    /// What the toolchain said, many lines.
    pub(crate) diagnostics: String,
}

impl BuildError {
    fn plain(summary: String) -> Self {
        BuildError {
            summary,
            diagnostics: String::new(),
        }
    }
}

/// At most this many compiler errors are shown in full.
const SHOWN_ERRORS: usize = 3;
/// At most this many lines of a guest toolchain's report are shown.
const SHOWN_LINES: usize = 40;

/// The nearest project at or above `dir`: a `pyproject.toml` with
/// `[tool.tessera]` or a `package.json` with `"tessera"` in that directory,
/// else a `Cargo.toml`; `None` when there is none up to the root. A
/// manifest that claims to be a Tessera project but is malformed is an
/// error naming the file and the field.
pub(crate) fn find(dir: &Path) -> Result<Option<Project>, String> {
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for d in dir.ancestors() {
        let pyproject = d.join("pyproject.toml");
        if pyproject.is_file()
            && let Some(guest) = python_project(&pyproject)?
        {
            return Ok(Some(Project::Guest(guest)));
        }
        let package = d.join("package.json");
        if package.is_file()
            && let Some(guest) = js_project(&package)?
        {
            return Ok(Some(Project::Guest(guest)));
        }
        if d.join("Cargo.toml").is_file() {
            return Ok(Some(Project::Cargo(d.to_path_buf())));
        }
    }
    Ok(None)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A `pyproject.toml`'s `[tool.tessera]` project; `None` without that table.
fn python_project(manifest: &Path) -> Result<Option<Guest>, String> {
    let text = read(manifest)?;
    let doc: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", manifest.display(), one_line_toml(&e)))?;
    let Some(tessera) = doc.get("tool").and_then(|t| t.get("tessera")) else {
        return Ok(None);
    };
    let field = |path: &str, value: Option<&toml::Value>| -> Result<String, String> {
        match value {
            Some(toml::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(other) => Err(format!(
                "{}: {path} must be a non-empty string, got {}",
                manifest.display(),
                other.type_str()
            )),
            None => Err(format!("{}: {path} is required", manifest.display())),
        }
    };
    let name = field(
        "project.name",
        doc.get("project").and_then(|p| p.get("name")),
    )?;
    let world = field("tool.tessera.world", tessera.get("world"))?;
    let module = field("tool.tessera.module", tessera.get("module"))?;
    let sdk = field("tool.tessera.sdk", tessera.get("sdk"))?;
    if !module
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "{}: tool.tessera.module must be a module name (letters, digits, '_'), got {module:?}",
            manifest.display()
        ));
    }
    guest(
        Language::Python,
        manifest,
        name,
        &world,
        "tool.tessera.world",
        module,
        &sdk,
        "tool.tessera.sdk",
        None,
    )
    .map(Some)
}

/// A `package.json`'s `"tessera"` project; `None` without that key.
fn js_project(manifest: &Path) -> Result<Option<Guest>, String> {
    let text = read(manifest)?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not JSON: {e}", manifest.display()))?;
    let Some(tessera) = doc.get("tessera") else {
        return Ok(None);
    };
    let field = |path: &str, value: Option<&Value>| -> Result<String, String> {
        match value {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(other) => Err(format!(
                "{}: {path} must be a non-empty string, got {other}",
                manifest.display()
            )),
            None => Err(format!("{}: {path} is required", manifest.display())),
        }
    };
    let name = field("name", doc.get("name"))?;
    let main = match doc.get("main") {
        None => "index.js".to_string(),
        some => field("main", some)?,
    };
    let world = field("tessera.world", tessera.get("world"))?;
    let sdk = field("tessera.sdk", tessera.get("sdk"))?;
    let engine = match tessera.get("engine") {
        None => None,
        some => match field("tessera.engine", some)?.as_str() {
            "componentize-js" => None,
            "qjs" => Some("qjs".to_string()),
            other => {
                return Err(format!(
                    "{}: tessera.engine must be \"componentize-js\" or \"qjs\", got {other:?}",
                    manifest.display()
                ));
            }
        },
    };
    guest(
        Language::JavaScript,
        manifest,
        name,
        &world,
        "tessera.world",
        main,
        &sdk,
        "tessera.sdk",
        engine,
    )
    .map(Some)
}

#[allow(clippy::too_many_arguments)]
fn guest(
    language: Language,
    manifest: &Path,
    name: String,
    world: &str,
    world_field: &str,
    source: String,
    sdk: &str,
    sdk_field: &str,
    engine: Option<String>,
) -> Result<Guest, String> {
    let dir = manifest
        .parent()
        .expect("a manifest is in a directory")
        .to_path_buf();
    crate::commands::new::check_name(&name).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let world = match world {
        "composition" => World::Composition,
        "policy" => World::Policy,
        other => {
            return Err(format!(
                "{}: {world_field} must be \"composition\" or \"policy\", got {other:?}",
                manifest.display()
            ));
        }
    };
    let builder = match language {
        Language::Python => "build",
        _ => "build.mjs",
    };
    let sdk = std::fs::canonicalize(dir.join(sdk))
        .ok()
        .filter(|sdk| sdk.join(builder).is_file())
        .ok_or_else(|| {
            format!(
                "{}: {sdk_field}: {sdk} is not a tessera guest SDK (no {builder} in it)",
                manifest.display()
            )
        })?;
    Ok(Guest {
        language,
        dir,
        manifest: manifest.to_path_buf(),
        name,
        world,
        source,
        sdk,
        engine,
    })
}

/// A TOML error on one line (the parser's report spans several, with a
/// code frame).
fn one_line_toml(error: &toml::de::Error) -> String {
    let message = error.message();
    match error.span() {
        Some(span) => format!("invalid TOML at byte {}: {message}", span.start),
        None => format!("invalid TOML: {message}"),
    }
}

/// Builds the plugin `name` of a project: a crate of a cargo project, or
/// the one plugin of a Python or JavaScript project (whose name the caller
/// has checked). Blocking: runs the toolchain to the end.
pub(crate) fn build(
    project: &Project,
    name: &str,
    cargo: &OsString,
) -> Result<PathBuf, BuildError> {
    match project {
        Project::Cargo(dir) => build_crate(cargo, dir, name),
        Project::Guest(guest) => build_guest(guest),
    }
}

/// Builds a Python or JavaScript project, unless its inputs are unchanged
/// since the last build. Blocking: runs the toolchain to the end.
pub(crate) fn build_guest(guest: &Guest) -> Result<PathBuf, BuildError> {
    let out = guest.output();
    let toolchain = guest.language.toolchain(guest.engine.as_deref());
    let failed = |why: String| {
        BuildError::plain(format!(
            "plugin {}: building it with {toolchain} in {} failed: {why}",
            guest.name,
            guest.dir.display()
        ))
    };
    let fingerprint = fingerprint(guest).map_err(&failed)?;
    let stamp = out.with_extension("wasm.fingerprint");
    if out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == fingerprint) {
        return Ok(out);
    }
    let out_dir = out.parent().expect("the output is in a directory");
    std::fs::create_dir_all(out_dir).map_err(|e| failed(format!("{}: {e}", out_dir.display())))?;
    // Written beside the output and renamed once complete: a failed or
    // interrupted build leaves the last good one in place.
    let partial = out.with_extension("wasm.partial");
    let world = guest.world.to_string();
    let (program, mut command) = match guest.language {
        Language::Python => {
            let mut command = Command::new("bash");
            command
                .arg(guest.sdk.join("build"))
                .arg(&guest.dir)
                .arg(&guest.source)
                .arg(&world)
                .arg(&partial);
            ("bash", command)
        }
        _ => {
            let mut command = Command::new("node");
            command.arg(guest.sdk.join("build.mjs"));
            if let Some(engine) = &guest.engine {
                command.args(["--engine", engine]);
            }
            command
                .arg(&guest.source)
                .arg(wit_dir(&guest.sdk))
                .arg(&world)
                .arg(&partial);
            ("node", command)
        }
    };
    // Paths in the toolchain's report are then the project's own.
    command.current_dir(&guest.dir);
    let output = command
        .output()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let diagnostics = toolchain_report(&stderr);
        let first = match guest.language {
            Language::Python => python_summary(&diagnostics, &guest.dir),
            _ => js_summary(&diagnostics),
        };
        return Err(BuildError {
            summary: failed(
                first.unwrap_or_else(|| format!("{program} exited with {}", output.status)),
            )
            .summary,
            diagnostics,
        });
    }
    std::fs::rename(&partial, &out)
        .and_then(|()| std::fs::write(&stamp, format!("{fingerprint}\n")))
        .map_err(|e| failed(format!("{}: {e}", out.display())))?;
    Ok(out)
}

/// The WIT directory of the checkout an SDK lies in (`<repo>/wit`).
fn wit_dir(sdk: &Path) -> PathBuf {
    sdk.join("../../wit")
}

/// What a guest build depends on, hashed: the project's files (not its
/// `target/`, `tests/`, `node_modules/` or caches), the SDK's, the WIT, the
/// script that pins the toolchain, and the manifest's choices.
fn fingerprint(guest: &Guest) -> Result<String, String> {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "{:?}\0{}\0{}\0{}\0{:?}\0",
        guest.language, guest.name, guest.world, guest.source, guest.engine
    ));
    let repo = guest.sdk.join("../..");
    let installer = match guest.language {
        Language::Python => "scripts/build-python-guest",
        _ => "scripts/build-js-guest",
    };
    let skip_top = ["target", "tests", "node_modules"];
    hash_tree(&mut hasher, &guest.dir, &skip_top)?;
    hash_tree(&mut hasher, &guest.sdk, &["test", "tests", "node_modules"])?;
    hash_tree(&mut hasher, &wit_dir(&guest.sdk), &[])?;
    let installer = repo.join(installer);
    if installer.is_file() {
        hasher.update(read(&installer)?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hashes every file under `root`, sorted by path, skipping the top-level
/// directories in `skip`, caches (`__pycache__`) and hidden entries.
fn hash_tree(hasher: &mut Sha256, root: &Path, skip: &[&str]) -> Result<(), String> {
    let mut stack = vec![root.to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            if path.is_dir() {
                if !(dir == root && skip.contains(&name.as_ref())) {
                    stack.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(())
}

/// A toolchain's report (what it wrote to stderr), cut to its first lines,
/// without the guest builders' own progress lines.
fn toolchain_report(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("build: componentize") && !l.starts_with("build-"))
        .collect();
    let mut shown: Vec<String> = lines
        .iter()
        .take(SHOWN_LINES)
        .map(|l| l.to_string())
        .collect();
    if lines.len() > SHOWN_LINES {
        shown.push(format!("... ({} more lines)", lines.len() - SHOWN_LINES));
    }
    let text = shown.join("\n");
    text.trim_matches('\n').to_string()
}

/// The first Python error of a report: its last line (`SyntaxError:
/// expected ':'`) and the last frame's file and line, relative to the
/// project.
fn python_summary(diagnostics: &str, dir: &Path) -> Option<String> {
    let error = diagnostics
        .lines()
        .rev()
        .find(|l| !l.starts_with(' ') && l.contains(':') && !l.starts_with("Traceback"))?;
    let frame = diagnostics.lines().rev().find_map(|l| {
        let rest = l.trim_start().strip_prefix("File \"")?;
        let (file, rest) = rest.split_once('"')?;
        let line: String = rest
            .strip_prefix(", line ")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let file = Path::new(file);
        let file = file.strip_prefix(dir).unwrap_or(file);
        Some(format!("{}:{line}", file.display()))
    });
    Some(match frame {
        Some(at) => format!("{error} ({at})"),
        None => error.to_string(),
    })
}

/// The first JavaScript error of a report: rolldown's `[CODE] message` with
/// the `file:line:column` of its frame, or the engine's `file:line:column
/// Error: message` from initialising the component.
fn js_summary(diagnostics: &str) -> Option<String> {
    let lines: Vec<&str> = diagnostics.lines().collect();
    if let Some(i) = lines.iter().position(|l| l.starts_with('[')) {
        let at = lines[i + 1..].iter().find_map(|l| {
            let inner = l.split_once("─[ ")?.1;
            Some(inner.trim_end().trim_end_matches(']').trim().to_string())
        });
        return Some(match at {
            Some(at) => format!("{} ({at})", lines[i]),
            None => lines[i].to_string(),
        });
    }
    let thrown = lines.iter().find_map(|l| {
        let (at, error) = l.split_once(' ')?;
        let position = at.rsplitn(3, ':').collect::<Vec<_>>();
        (position.len() == 3
            && position[..2]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            && error.contains(':'))
        .then(|| format!("{error} ({at})"))
    });
    thrown.or_else(|| {
        lines
            .iter()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.to_string())
    })
}

/// The package name of the `Cargo.toml` in `dir`, for `tessera build`
/// without `-p`.
pub(crate) fn cargo_package(dir: &Path) -> Result<String, String> {
    let manifest = dir.join("Cargo.toml");
    let doc: toml::Table = toml::from_str(&read(&manifest)?)
        .map_err(|e| format!("{}: {}", manifest.display(), one_line_toml(&e)))?;
    match doc.get("package").and_then(|p| p.get("name")) {
        Some(toml::Value::String(name)) => Ok(name.clone()),
        _ => Err(format!(
            "{}: a workspace without a package of its own: name the plugin crate with -p CRATE",
            manifest.display()
        )),
    }
}

/// Builds a plugin crate of a cargo project for wasm32-wasip2 and returns
/// its `.wasm`, read from cargo's own report of what it built. On a
/// compile error, the first errors as rustc rendered them (with file, line
/// and code frame), and the first one's headline and place in the summary.
/// Blocking: runs cargo to the end.
pub(crate) fn build_crate(
    cargo: &OsString,
    manifest_dir: &Path,
    crate_name: &str,
) -> Result<PathBuf, BuildError> {
    let failed = |why: String| {
        format!(
            "plugin {crate_name}: building it with cargo in {} failed: {why}",
            manifest_dir.display()
        )
    };
    let output = Command::new(cargo)
        .current_dir(manifest_dir)
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "--target",
            "wasm32-wasip2",
            "--release",
            "-p",
            crate_name,
        ])
        .output()
        .map_err(|e| BuildError::plain(format!("plugin {crate_name}: cannot run cargo: {e}")))?;
    let messages: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    if !output.status.success() {
        let errors: Vec<&Value> = messages
            .iter()
            .filter(|m| m["reason"] == "compiler-message" && m["message"]["level"] == "error")
            .map(|m| &m["message"])
            // rustc's closing "aborting due to N previous errors".
            .filter(|m| !m["spans"].as_array().is_none_or(Vec::is_empty))
            .collect();
        if let Some(first) = errors.first() {
            let mut diagnostics: Vec<String> = errors
                .iter()
                .take(SHOWN_ERRORS)
                .map(|m| {
                    m["rendered"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_end()
                        .to_string()
                })
                .collect();
            if errors.len() > SHOWN_ERRORS {
                diagnostics.push(format!(
                    "... and {} more errors",
                    errors.len() - SHOWN_ERRORS
                ));
            }
            let headline = match first["code"]["code"].as_str() {
                Some(code) => format!(
                    "error[{code}]: {}",
                    first["message"].as_str().unwrap_or_default()
                ),
                None => format!("error: {}", first["message"].as_str().unwrap_or_default()),
            };
            let at = first["spans"]
                .as_array()
                .and_then(|spans| {
                    spans
                        .iter()
                        .find(|s| s["is_primary"] == true)
                        .or(spans.first())
                })
                .map(|s| {
                    format!(
                        " ({}:{}:{})",
                        s["file_name"].as_str().unwrap_or("?"),
                        s["line_start"],
                        s["column_start"]
                    )
                })
                .unwrap_or_default();
            let more = match errors.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            };
            return Err(BuildError {
                summary: failed(format!("{headline}{at}{more}")),
                diagnostics: diagnostics.join("\n\n"),
            });
        }
        // Not a compile error (a manifest, a missing target, ...): cargo's
        // own first error line, and what it printed.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo failed");
        return Err(BuildError {
            summary: failed(first.to_string()),
            diagnostics: toolchain_report(&stderr),
        });
    }
    messages
        .iter()
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["name"].as_str().map(|n| n.replace('-', "_"))
                == Some(crate_name.replace('-', "_"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            BuildError::plain(format!(
                "plugin {crate_name}: cargo built no .wasm (is it a cdylib crate?)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A fake SDK directory with both builders.
    fn sdk(dir: &Path) -> PathBuf {
        let sdk = dir.join("sdk");
        write(&sdk.join("build"), "");
        write(&sdk.join("build.mjs"), "");
        sdk
    }

    #[test]
    fn the_nearest_tessera_manifest_wins_and_others_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        sdk(dir.path());
        write(&dir.path().join("Cargo.toml"), "[workspace]\n");
        // A pyproject.toml without [tool.tessera] is not a plugin project.
        write(
            &dir.path().join("other/pyproject.toml"),
            "[project]\nname = \"x\"\n",
        );
        write(&dir.path().join("other/tests/s.tessera.yaml"), "");
        write(
            &dir.path().join("py/pyproject.toml"),
            "[project]\nname = \"my-policy\"\n[tool.tessera]\nworld = \"policy\"\nmodule = \"my_policy\"\nsdk = \"../sdk\"\n",
        );
        write(
            &dir.path().join("js/package.json"),
            r#"{"name": "my-comp", "main": "src/index.js", "tessera": {"world": "composition", "sdk": "../sdk", "engine": "qjs"}}"#,
        );
        let root = std::fs::canonicalize(dir.path()).unwrap();
        match find(&dir.path().join("other/tests")).unwrap() {
            Some(Project::Cargo(d)) => assert_eq!(d, root),
            other => panic!("{other:?}"),
        }
        let Some(Project::Guest(py)) = find(&dir.path().join("py")).unwrap() else {
            panic!("python project")
        };
        assert_eq!(
            (py.language, py.name.as_str(), py.world),
            (Language::Python, "my-policy", World::Policy)
        );
        assert_eq!(py.source, "my_policy");
        assert_eq!(py.sdk, root.join("sdk"));
        assert_eq!(
            py.output(),
            root.join("py/target/wasm32-wasip2/release/my_policy.wasm")
        );
        let Some(Project::Guest(js)) = find(&dir.path().join("js")).unwrap() else {
            panic!("js project")
        };
        assert_eq!(
            (js.language, js.world),
            (Language::JavaScript, World::Composition)
        );
        assert_eq!(
            (js.source.as_str(), js.engine.as_deref()),
            ("src/index.js", Some("qjs"))
        );
    }

    #[test]
    fn a_malformed_manifest_is_named_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        sdk(dir.path());
        let cases = [
            (
                "pyproject.toml",
                "[tool.tessera]\nworld = \"policy\"\n",
                "project.name is required",
            ),
            (
                "pyproject.toml",
                "[project]\nname = \"p\"\n[tool.tessera]\nworld = \"gate\"\nmodule = \"p\"\nsdk = \"../sdk\"\n",
                "tool.tessera.world must be \"composition\" or \"policy\", got \"gate\"",
            ),
            (
                "pyproject.toml",
                "[project]\nname = \"p\"\n[tool.tessera]\nworld = \"policy\"\nmodule = 3\nsdk = \"../sdk\"\n",
                "tool.tessera.module must be a non-empty string, got integer",
            ),
            (
                "pyproject.toml",
                "[project]\nname = \"p\"\n[tool.tessera]\nworld = \"policy\"\nmodule = \"p\"\nsdk = \"../nowhere\"\n",
                "tool.tessera.sdk: ../nowhere is not a tessera guest SDK (no build in it)",
            ),
            ("pyproject.toml", "[project\n", "invalid TOML at byte"),
            (
                "package.json",
                r#"{"name": "Bad Name", "tessera": {"world": "policy", "sdk": "../sdk"}}"#,
                "plugin name \"Bad Name\" must be lowercase",
            ),
            (
                "package.json",
                r#"{"name": "p", "tessera": {"world": "policy", "sdk": "../sdk", "engine": "v8"}}"#,
                "tessera.engine must be \"componentize-js\" or \"qjs\", got \"v8\"",
            ),
            (
                "package.json",
                r#"{"name": "p", "tessera": {"sdk": "../sdk"}}"#,
                "tessera.world is required",
            ),
        ];
        for (i, (file, text, expected)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("p{i}/{file}"));
            write(&path, text);
            let error = find(path.parent().unwrap()).unwrap_err();
            assert!(
                error.starts_with(&std::fs::canonicalize(&path).unwrap().display().to_string()),
                "{error}"
            );
            assert!(error.contains(expected), "{error} lacks {expected}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn python_and_js_reports_give_their_first_error_with_its_place() {
        let dir = Path::new("/work/p");
        let syntax = "  File \"/work/p/greeter.py\", line 3\n    def validate(review)\n                        ^\nSyntaxError: expected ':'";
        assert_eq!(
            python_summary(syntax, dir).unwrap(),
            "SyntaxError: expected ':' (greeter.py:3)"
        );
        let import = "Traceback (most recent call last):\n  File \"/work/p/greeter.py\", line 2, in <module>\n    import nosuchmodule\nModuleNotFoundError: No module named 'nosuchmodule'";
        assert_eq!(
            python_summary(import, dir).unwrap(),
            "ModuleNotFoundError: No module named 'nosuchmodule' (greeter.py:2)"
        );
        let parse = "[PARSE_ERROR] Unexpected token\n   ╭─[ index.js:3:24 ]\n   │\n 3 │   return Verdict.allow(;\n───╯";
        assert_eq!(
            js_summary(parse).unwrap(),
            "[PARSE_ERROR] Unexpected token (index.js:3:24)"
        );
        let thrown = "Failed to initialize component (wizer (/x/wizer)):\nException while evaluating top-level script\nindex.js:2:11 ReferenceError: undefinedThing is not defined\nStack:\n  @index.js:2:11";
        assert_eq!(
            js_summary(thrown).unwrap(),
            "ReferenceError: undefinedThing is not defined (index.js:2:11)"
        );
    }

    #[test]
    fn the_fingerprint_follows_sources_but_not_tests_or_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = sdk(dir.path());
        std::fs::create_dir_all(dir.path().join("wit")).unwrap();
        // The SDK's checkout: sdk/../../wit.
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let sdk = {
            let moved = nested.join("sdk");
            std::fs::rename(&sdk, &moved).unwrap();
            moved
        };
        write(
            &dir.path().join("a/wit/tessera.wit"),
            "package tessera:plugin;",
        );
        let project = dir.path().join("proj");
        write(&project.join("p.py"), "print(1)");
        let guest = Guest {
            language: Language::Python,
            dir: project.clone(),
            manifest: project.join("pyproject.toml"),
            name: "p".into(),
            world: World::Policy,
            source: "p".into(),
            sdk: sdk.clone(),
            engine: None,
        };
        let first = fingerprint(&guest).unwrap();
        write(&project.join("tests/p.tessera.yaml"), "cases: []");
        write(&project.join("target/wasm32-wasip2/release/p.wasm"), "x");
        write(&project.join("__pycache__/p.pyc"), "x");
        assert_eq!(fingerprint(&guest).unwrap(), first);
        write(&project.join("p.py"), "print(2)");
        let edited = fingerprint(&guest).unwrap();
        assert_ne!(edited, first);
        write(
            &dir.path().join("a/wit/tessera.wit"),
            "package tessera:plugin@0.2.0;",
        );
        assert_ne!(fingerprint(&guest).unwrap(), edited);
    }
}
