//! `tessera new composition|policy NAME`: create a plugin crate (the files
//! come from `scaffold`) and say what to run next.

mod scaffold;

pub(crate) use scaffold::check_name;

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::failure::{Failure, Outcome};
use crate::{EXIT_OK, Stdio};

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// What the plugin does.
    #[arg(value_enum)]
    kind: NewKind,
    /// The plugin's name (a crate name: lowercase, digits, '-').
    name: String,
    /// The language of the plugin.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to create it [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The tessera guest SDK to depend on [default: the one this tessera was
    /// built from].
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NewKind {
    Composition,
    Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    Rust,
    /// Python (componentize-py).
    Python,
    /// JavaScript (componentize-js).
    Js,
}

/// Runs `tessera new`.
pub(crate) fn execute(args: NewArgs, io: &mut Stdio<'_>) -> Outcome {
    let language = match args.lang {
        Lang::Rust => scaffold::Language::Rust,
        Lang::Python => scaffold::Language::Python,
        Lang::Js => scaffold::Language::JavaScript,
    };
    let kind = match args.kind {
        NewKind::Composition => scaffold::Kind::Composition,
        NewKind::Policy => scaffold::Kind::Policy,
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args
        .sdk
        .unwrap_or_else(|| scaffold::default_sdk_path(language));
    let files = scaffold::generate(kind, language, &args.name, &dir, &sdk).map_err(Failure)?;
    for file in &files {
        writeln!(io.stdout, "created {}", file.display())?;
    }
    writeln!(
        io.stdout,
        "next: cd {} && tessera test    (builds the plugin for wasm32-wasip2 and runs its suite)",
        dir.display()
    )?;
    Ok(EXIT_OK)
}
