//! Builds every plugin under `plugins/` from source for `wasm32-wasip2` and
//! generates one constant per plugin with the path of its `.wasm`.
//!
//! The nested cargo uses its own target directory under `OUT_DIR`, so it
//! never waits on the lock of the build that runs this script; it shares the
//! parent's jobserver, so `-j` limits hold.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target_dir = out_dir.join("wasm-target");

    // The example plugins, then the test-only ones.
    let mut plugins = plugin_crates(&workspace.join("plugins"));
    plugins.extend(plugin_crates(&manifest_dir.join("plugins")));
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("plugins").display()
    );
    for dir in ["plugins", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    // The lock file pins the plugins' dependencies; the manifest holds the
    // `plugin` profile they are built with.
    for file in ["Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the host build must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    for plugin in &plugins {
        command.args(["-p", plugin]);
    }
    let status = command
        .status()
        .expect("running cargo to build the plugins for wasm32-wasip2");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );

    let mut generated = String::new();
    let mut idents = Vec::new();
    for plugin in &plugins {
        // A library's file name has `_` for `-`; a binary's keeps the name.
        let file = plugin.replace('-', "_");
        let out = target_dir.join("wasm32-wasip2").join("plugin");
        let path = [format!("{file}.wasm"), format!("{plugin}.wasm")]
            .into_iter()
            .map(|name| out.join(name))
            .find(|path| path.exists())
            .unwrap_or_else(|| panic!("{plugin} was not built into {}", out.display()));
        let ident = file.to_uppercase();
        generated.push_str(&format!(
            "/// `{plugin}`, built from `plugins/{plugin}` for wasm32-wasip2.\npub const {ident}: &str = {:?};\n",
            path.display().to_string()
        ));
        idents.push((plugin.clone(), file, ident));
    }
    generated
        .push_str("/// Every plugin: (crate name, path).\npub const ALL: &[(&str, &str)] = &[\n");
    for (plugin, _, ident) in &idents {
        generated.push_str(&format!("    ({plugin:?}, {ident}),\n"));
    }
    generated.push_str("];\n");
    generated.push_str(
        "/// Calls `$m!(module_name)` once per plugin; the test suite uses it so\n\
         /// that a plugin without a test module fails to compile.\n\
         #[macro_export]\nmacro_rules! foreach_plugin {\n    ($m:ident) => {\n",
    );
    for (_, file, _) in &idents {
        generated.push_str(&format!("        $m!({file});\n"));
    }
    generated.push_str("    };\n}\n");
    std::fs::write(out_dir.join("plugins.rs"), generated).unwrap();
}

/// The crate names of the plugins in `dir`: every sub-directory with a
/// `Cargo.toml`, sorted.
fn plugin_crates(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            path.join("Cargo.toml")
                .exists()
                .then(|| path.file_name()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names
}
