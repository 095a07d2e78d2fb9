//! `tessera build [DIR]`: build the plugin of the project at or above DIR
//! (Rust, Python or JavaScript) for `wasm32-wasip2` and print where the
//! component is.

use std::path::PathBuf;

use clap::Args;

use crate::failure::{Failure, Outcome};
use crate::projects::{self, BuildError, Project};
use crate::{EXIT_OK, Stdio};

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The project: a directory at or below a `Cargo.toml`, a
    /// `pyproject.toml` with `[tool.tessera]` or a `package.json` with
    /// `"tessera"` [default: .].
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The plugin crate to build, in a cargo workspace [default: the
    /// package of the nearest Cargo.toml].
    #[arg(short = 'p', long = "package", value_name = "CRATE")]
    package: Option<String>,
}

/// Runs `tessera build`.
pub(crate) async fn execute(args: BuildArgs, io: &mut Stdio<'_>) -> Outcome {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let project = projects::find(&dir)?.ok_or_else(|| {
        Failure(format!(
            "{}: no plugin project here or above (a Cargo.toml, a pyproject.toml with [tool.tessera] or a package.json with \"tessera\")",
            dir.display()
        ))
    })?;
    let name = match &project {
        Project::Guest(guest) => {
            if let Some(package) = &args.package {
                return Err(Failure(format!(
                    "--package {package}: {} is a project of one plugin ({}); -p is for cargo workspaces",
                    guest.manifest.display(),
                    guest.name
                )));
            }
            guest.name.clone()
        }
        Project::Cargo(manifest_dir) => match args.package {
            Some(package) => package,
            None => projects::cargo_package(manifest_dir)?,
        },
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spinner = crate::progress::Spinner::start(format!("building {name}"));
    let crate_name = name.clone();
    let built =
        tokio::task::spawn_blocking(move || projects::build(&project, &crate_name, &cargo)).await;
    drop(spinner);
    let built = built.map_err(|e| Failure(format!("plugin {name}: building it failed: {e}")))?;
    match built {
        Ok(path) => {
            writeln!(io.stdout, "{}", path.display())?;
            Ok(EXIT_OK)
        }
        Err(BuildError {
            summary,
            diagnostics,
        }) => {
            for line in tessera_types::text::lines(&diagnostics) {
                writeln!(io.stderr, "{line}")?;
            }
            if !diagnostics.is_empty() {
                writeln!(io.stderr)?;
            }
            Err(Failure(summary))
        }
    }
}
