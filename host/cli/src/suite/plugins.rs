//! The plugins cases name: resolved to a file (a path, or a workspace
//! plugin crate built with cargo for `wasm32-wasip2`) and loaded once per
//! run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_runtime::{Plugin, Runtime, World};

use super::RunOptions;

/// Loads plugins once per run, by resolved path.
pub(crate) struct PluginCache {
    runtime: Runtime,
    pub(super) options: RunOptions,
    plugins: tokio::sync::Mutex<HashMap<PathBuf, Plugin>>,
    built: std::sync::Mutex<HashMap<(PathBuf, String), PathBuf>>,
}

impl std::fmt::Debug for PluginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCache").finish_non_exhaustive()
    }
}

impl PluginCache {
    /// A cache over a runtime.
    pub(crate) fn new(runtime: Runtime, options: RunOptions) -> Self {
        PluginCache {
            runtime,
            options,
            plugins: tokio::sync::Mutex::new(HashMap::new()),
            built: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a plugin reference from a suite: a path (with a `/` or ending
    /// in `.wasm`, relative to the suite) or the name of a plugin crate in
    /// the cargo workspace that holds the suite, built on demand.
    fn resolve(&self, suite: &Path, reference: &str) -> Result<PathBuf, String> {
        let base = suite.parent().unwrap_or(Path::new("."));
        if reference.contains('/') || reference.ends_with(".wasm") {
            return Ok(base.join(reference));
        }
        let file = format!("{}.wasm", reference.replace('-', "_"));
        if let Some(dir) = &self.options.plugin_dir {
            return Ok(dir.join(file));
        }
        let workspace = find_manifest_dir(base).ok_or_else(|| {
            format!(
                "plugin {reference:?}: no Cargo.toml above {}",
                base.display()
            )
        })?;
        let key = (workspace.clone(), reference.to_string());
        if let Some(path) = self
            .built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(path.clone());
        }
        let path = build_plugin(&workspace, reference)?;
        self.built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, path.clone());
        Ok(path)
    }

    pub(super) async fn load(
        &self,
        suite: &Path,
        reference: &str,
        world: World,
    ) -> Result<Plugin, String> {
        let path = self.resolve(suite, reference)?;
        let mut plugins = self.plugins.lock().await;
        let plugin = match plugins.get(&path) {
            Some(plugin) => plugin.clone(),
            None => {
                let spinner =
                    crate::progress::Spinner::start(format!("loading {}", path.display()));
                let loaded = self.runtime.load_file(&path).await;
                drop(spinner);
                let plugin = loaded.map_err(|e| e.to_string())?;
                plugins.insert(path.clone(), plugin.clone());
                plugin
            }
        };
        if plugin.world() != world {
            return Err(format!(
                "plugin {reference}: is a {} plugin; this case needs a {world} plugin",
                plugin.world()
            ));
        }
        Ok(plugin)
    }
}

/// The nearest directory at or above `dir` with a `Cargo.toml`.
fn find_manifest_dir(dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

/// Builds a plugin crate for wasm32-wasip2 and returns its `.wasm`, read
/// from cargo's own report of what it built.
fn build_plugin(manifest_dir: &Path, crate_name: &str) -> Result<PathBuf, String> {
    let output =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
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
            .map_err(|e| format!("plugin {crate_name}: cannot run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo failed");
        return Err(format!(
            "plugin {crate_name}: building it with cargo in {} failed: {first}",
            manifest_dir.display()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
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
        .ok_or_else(|| format!("plugin {crate_name}: cargo built no .wasm (is it a cdylib crate?)"))
}
