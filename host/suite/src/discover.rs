//! Finding suite files: `*.tessera.yaml` under the paths given.

use std::path::{Path, PathBuf};

use super::{SuiteError, err};

/// Finds suite files: each path is a suite file, or a directory searched
/// recursively for `*.tessera.yaml` (skipping `target` and hidden
/// directories).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut found)?;
        } else if path.is_file() {
            found.push(path.clone());
        } else {
            return Err(err(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let entries = std::fs::read_dir(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| err(format!("{}: {e}", dir.display())))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                walk(&path, found)?;
            }
        } else if name.ends_with(".tessera.yaml") || name.ends_with(".tessera.yml") {
            found.push(path);
        }
    }
    Ok(())
}
