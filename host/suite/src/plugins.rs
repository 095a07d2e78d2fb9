//! The plugins cases name: [`Plugins`] resolves a case's `plugin:` to a
//! loaded plugin. The caller decides what a name may mean — the CLI builds
//! workspace crates and reads paths; [`OnePlugin`] answers only the plugin
//! an artifact was pulled with.

use std::future::Future;
use std::path::Path;

use tessera_runtime::{Plugin, World};

use crate::format::is_plugin_name;

/// Resolves the plugins cases name. Shared by every case of a run (each on
/// its own task), so an implementation loads each plugin at most once and
/// lets cases that need other plugins go on meanwhile.
pub trait Plugins: Send + Sync + 'static {
    /// The plugin `reference` (a case's `plugin:`, as written in the suite
    /// file `suite`) names, checked to implement `world`; an error is one
    /// line, and fails the case.
    fn load(
        &self,
        suite: &Path,
        reference: &str,
        world: World,
    ) -> impl Future<Output = Result<Plugin, String>> + Send;
}

/// The one plugin an artifact was pulled with, for the suite bundled with
/// it: a case may name it only by its name (`-` and `_` are the same), never
/// a path or another plugin.
#[derive(Debug, Clone)]
pub struct OnePlugin {
    name: String,
    plugin: Plugin,
}

impl OnePlugin {
    /// `plugin`, answered to cases that name it `name`.
    pub fn new(name: impl Into<String>, plugin: Plugin) -> Self {
        OnePlugin {
            name: name.into(),
            plugin,
        }
    }

    /// The plugin `reference` names, or why a bundled suite may not use it.
    fn resolve(&self, reference: &str, world: World) -> Result<Plugin, String> {
        if !is_plugin_name(reference) {
            return Err(format!(
                "plugin {reference:?}: is a path; a bundled suite runs only its own plugin, {:?}, by name",
                self.name
            ));
        }
        if reference.replace('-', "_") != self.name.replace('-', "_") {
            return Err(format!(
                "plugin {reference:?}: not in this artifact (a bundled suite runs only its own plugin, {:?})",
                self.name
            ));
        }
        if self.plugin.world() != world {
            return Err(format!(
                "plugin {reference}: is a {} plugin; this case needs a {world} plugin",
                self.plugin.world()
            ));
        }
        Ok(self.plugin.clone())
    }
}

impl Plugins for OnePlugin {
    fn load(
        &self,
        _suite: &Path,
        reference: &str,
        world: World,
    ) -> impl Future<Output = Result<Plugin, String>> + Send {
        std::future::ready(self.resolve(reference, world))
    }
}
