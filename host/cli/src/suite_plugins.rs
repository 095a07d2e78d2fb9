//! The plugins `tessera test` cases name (the CLI's [`Plugins`] of
//! `tessera_suite`): resolved to a file (a path, the plugin of the project
//! that holds the suite — a cargo crate, a Python or a JavaScript project —
//! built for `wasm32-wasip2`, or the plugin pulled with a downloaded suite)
//! and loaded once per run.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use tessera_runtime::{Plugin, Runtime, World};
use tessera_suite::Plugins;

use crate::projects::Project;

/// Where one downloaded suite was unpacked, and the directory holding only
/// the plugin pulled with it.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    /// The directory the suite was unpacked into.
    pub(crate) suites: PathBuf,
    /// The directory holding the pulled plugin (`<name>.wasm`).
    pub(crate) plugins: PathBuf,
}

/// One plugin loaded (or one crate built) at most once per run: the cell is
/// made under a lock held only to find it, and filled without any lock, so
/// cases that need other plugins go on while this one builds or compiles;
/// cases that need the same one wait for it.
type Once<T> = Arc<OnceCell<T>>;

/// A build's result: the component, or the one-line error.
type Built = Result<PathBuf, String>;

/// Loads plugins once per run, by resolved path.
pub(crate) struct PluginCache {
    runtime: Runtime,
    /// Where workspace plugins are found (`<dir>/<crate_name>.wasm`) instead
    /// of building them with cargo.
    plugin_dir: Option<PathBuf>,
    /// Suites downloaded from a registry (`tessera test oci://...`): each
    /// suite under `suites` runs only the plugin pulled with it, from
    /// `plugins`, never a path it names.
    bundles: Vec<Bundle>,
    plugins: Mutex<HashMap<PathBuf, Once<Plugin>>>,
    /// Each build's result, failures included: a plugin that did not build
    /// is built once per run, not once per case that needs it.
    built: Mutex<HashMap<(PathBuf, String), Once<Built>>>,
    /// The toolchains' reports of the builds that failed.
    diagnostics: Mutex<Vec<String>>,
    /// The cargo that builds workspace plugins: `$CARGO` (set when run by
    /// cargo) or `cargo`.
    cargo: OsString,
}

/// The cell for `key`, made empty when there is none yet.
fn cell<K: std::hash::Hash + Eq, T>(map: &Mutex<HashMap<K, Once<T>>>, key: K) -> Once<T> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

impl std::fmt::Debug for PluginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCache").finish_non_exhaustive()
    }
}

impl PluginCache {
    /// A cache over a runtime.
    pub(crate) fn new(runtime: Runtime, plugin_dir: Option<PathBuf>, bundles: Vec<Bundle>) -> Self {
        PluginCache {
            runtime,
            plugin_dir,
            bundles,
            plugins: Mutex::new(HashMap::new()),
            built: Mutex::new(HashMap::new()),
            diagnostics: Mutex::new(Vec::new()),
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        }
    }

    /// Resolves a plugin reference from a suite: a path (with a `/` or ending
    /// in `.wasm`, relative to the suite) or the name of a plugin of the
    /// project that holds the suite (a crate of its cargo workspace, or the
    /// Python or JavaScript project's one plugin), built on demand.
    async fn resolve(&self, suite: &Path, reference: &str) -> Result<PathBuf, String> {
        let base = suite.parent().unwrap_or(Path::new("."));
        if let Some(bundle) = self.bundles.iter().find(|b| suite.starts_with(&b.suites)) {
            // A downloaded suite runs the plugin pulled with it, by name.
            if !tessera_suite::is_plugin_name(reference) {
                return Err(format!(
                    "plugin {reference:?}: a downloaded suite must name its plugin, not a path"
                ));
            }
            return Ok(bundle
                .plugins
                .join(format!("{}.wasm", reference.replace('-', "_"))));
        }
        if reference.contains('/') || reference.ends_with(".wasm") {
            return Ok(base.join(reference));
        }
        let file = format!("{}.wasm", reference.replace('-', "_"));
        if let Some(dir) = &self.plugin_dir {
            return Ok(dir.join(file));
        }
        let project = crate::projects::find(base)?.ok_or_else(|| {
            format!(
                "plugin {reference:?}: no plugin project above {} (a Cargo.toml, a pyproject.toml with [tool.tessera] or a package.json with \"tessera\")",
                base.display()
            )
        })?;
        let key = match &project {
            Project::Cargo(dir) => dir.clone(),
            Project::Guest(guest) => {
                if guest.name != reference {
                    return Err(format!(
                        "plugin {reference:?}: the project above this suite ({}) builds {:?}",
                        guest.manifest.display(),
                        guest.name
                    ));
                }
                guest.dir.clone()
            }
        };
        let built = cell(&self.built, (key, reference.to_string()));
        built
            .get_or_init(|| async {
                // A build runs for seconds to minutes: on a blocking thread,
                // never on a runtime worker.
                let cargo = self.cargo.clone();
                let crate_name = reference.to_string();
                let spinner = crate::progress::Spinner::start(format!("building {reference}"));
                let built = tokio::task::spawn_blocking(move || {
                    crate::projects::build(&project, &crate_name, &cargo)
                })
                .await;
                drop(spinner);
                let built =
                    built.map_err(|e| format!("plugin {reference}: building it failed: {e}"))?;
                built.map_err(|failure| {
                    if !failure.diagnostics.is_empty() {
                        self.diagnostics
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(failure.diagnostics);
                    }
                    failure.summary
                })
            })
            .await
            .clone()
    }

    /// What the toolchains said about the builds that failed (their first
    /// errors), once each, emptied: `tessera test` prints them to stderr
    /// after the cases.
    pub(crate) fn take_build_diagnostics(&self) -> Vec<String> {
        std::mem::take(&mut *self.diagnostics.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Plugins for PluginCache {
    async fn load(&self, suite: &Path, reference: &str, world: World) -> Result<Plugin, String> {
        let path = self.resolve(suite, reference).await?;
        let plugin = cell(&self.plugins, path.clone())
            .get_or_try_init(|| async {
                let spinner =
                    crate::progress::Spinner::start(format!("loading {}", path.display()));
                let loaded = self.runtime.load_file(&path).await;
                drop(spinner);
                loaded.map_err(|e| e.to_string())
            })
            .await?
            .clone();
        if plugin.world() != world {
            return Err(format!(
                "plugin {reference}: is a {} plugin; this case needs a {world} plugin",
                plugin.world()
            ));
        }
        Ok(plugin)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A suite file in a fresh cargo workspace, and a cache over a runtime
    /// without an artifact cache, whose "cargo" is `cargo_script` (a shell
    /// script).
    fn cache(dir: &Path, cargo_script: &str) -> (PathBuf, PluginCache) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(dir.join("Cargo.toml"), "[workspace]\n").unwrap();
        let suite = dir.join("cases.tessera.yaml");
        std::fs::write(&suite, "").unwrap();
        let cargo = dir.join("fake-cargo");
        std::fs::write(&cargo, format!("#!/bin/sh\n{cargo_script}\n")).unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("not-wasm.wasm"), "not a plugin").unwrap();
        let runtime = Runtime::builder().no_cache().build().unwrap();
        let mut cache = PluginCache::new(runtime, None, Vec::new());
        cache.cargo = cargo.into_os_string();
        (suite, cache)
    }

    /// A downloaded suite resolves its plugin name in its own bundle's
    /// plugin directory (never another bundle's, nor --plugin-dir), and may
    /// not name a path.
    #[test]
    fn a_downloaded_suite_runs_only_its_own_pulled_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut cache) = cache(dir.path(), "exit 1");
        let bundle = |i: usize| Bundle {
            suites: dir.path().join(format!("{i}/suite")),
            plugins: dir.path().join(format!("{i}/plugins")),
        };
        cache.bundles = vec![bundle(0), bundle(1)];
        cache.plugin_dir = Some(dir.path().join("elsewhere"));
        let executor = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        executor.block_on(async {
            let first = dir.path().join("0/suite/s.tessera.yaml");
            let second = dir.path().join("1/suite/sub/s.tessera.yaml");
            assert_eq!(
                cache.resolve(&first, "my-plugin").await.unwrap(),
                dir.path().join("0/plugins/my_plugin.wasm")
            );
            assert_eq!(
                cache.resolve(&second, "my-plugin").await.unwrap(),
                dir.path().join("1/plugins/my_plugin.wasm")
            );
            for path in ["/opt/x.wasm", "x.wasm", "../../../elsewhere/p"] {
                let error = cache.resolve(&first, path).await.unwrap_err();
                assert!(
                    error.contains("must name its plugin, not a path"),
                    "{error}"
                );
            }
        });
    }

    /// While cargo builds one plugin, on a runtime with a single worker, a
    /// case that needs another plugin of the same cache gets its answer:
    /// the build holds neither the worker nor a lock. (Built on the worker,
    /// the build would end first.)
    #[test]
    fn building_a_plugin_blocks_neither_the_worker_nor_other_plugins() {
        let dir = tempfile::tempdir().unwrap();
        let (suite, cache) = cache(
            dir.path(),
            "sleep 1\necho 'error: no such crate' >&2\nexit 101",
        );
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        executor.block_on(async {
            let building = cache.load(&suite, "slow-plugin", World::Policy);
            let other = cache.load(&suite, "not-wasm.wasm", World::Policy);
            tokio::pin!(building);
            let other_first = tokio::select! {
                biased;
                _ = &mut building => None,
                other = other => Some(other),
            };
            let other = other_first.expect("the other plugin waited for the build");
            let error = other.expect_err("not a plugin");
            assert!(error.contains("not-wasm.wasm"), "{error}");
            assert!(error.contains("no \\0asm header"), "{error}");
            let built = building.await.expect_err("the fake cargo fails");
            assert_eq!(
                built,
                format!(
                    "plugin slow-plugin: building it with cargo in {} failed: error: no such crate",
                    std::fs::canonicalize(dir.path()).unwrap().display()
                )
            );
        });
    }

    /// While one plugin compiles (no artifact cache: a real compile, on a
    /// blocking thread), a case that needs another plugin of the same cache
    /// gets its answer first: the compile holds no lock of the cache.
    #[test]
    fn compiling_a_plugin_does_not_hold_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (suite, cache) = cache(dir.path(), "exit 1");
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        executor.block_on(async {
            let compiling = cache.load(
                &suite,
                tessera_tests::plugins::REQUIRE_LABELS,
                World::Policy,
            );
            let other = cache.load(&suite, "not-wasm.wasm", World::Policy);
            tokio::pin!(compiling);
            let other_first = tokio::select! {
                biased;
                _ = &mut compiling => None,
                other = other => Some(other),
            };
            let other = other_first.expect("the other plugin waited for the compile");
            assert!(other.is_err(), "not a plugin");
            let plugin = compiling.await.expect("require-labels loads");
            assert_eq!(
                plugin.artifact_source(),
                tessera_runtime::ArtifactSource::Compiled
            );
            // Loaded once: the second time comes from the cell.
            let again = cache
                .load(
                    &suite,
                    tessera_tests::plugins::REQUIRE_LABELS,
                    World::Policy,
                )
                .await
                .unwrap();
            assert_eq!(again.digest(), plugin.digest());
        });
    }
}
