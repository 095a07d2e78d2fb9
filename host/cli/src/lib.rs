//! The `tessera` command line: render composites and validate resources with
//! Tessera plugins, offline (no cluster, no Docker, no network).
//!
//! `main` only calls [`run`]; everything else is here so that tests reach
//! the logic without spawning a process.
//!
//! Exit codes: 0 ok/allowed, 1 a policy denied, 2 an error. Errors are one
//! line naming the file, document, field or plugin; nothing panics.
//!
//! This file holds the top-level parser, the global options and the
//! dispatch; each command lives in its own file under `commands/`, with its
//! arguments and its `execute`.

#![deny(missing_docs)]

pub use tessera_documents as documents;

mod commands;
mod failure;
mod input;
mod progress;
mod projects;
mod report;
mod suite_plugins;

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tessera_runtime::Runtime;

use crate::commands::{bench, build, inspect, new, oci, render, test, validate};
use crate::failure::Failure;

/// Render and validate Kubernetes resources with Tessera plugins, offline.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

// The options every command takes (`global = true`).
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Directory for precompiled plugins [default: $TESSERA_CACHE_DIR,
    /// $XDG_CACHE_HOME/tessera or ~/.cache/tessera]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins on every run; read and write no cache.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(flatten)]
    registry: commands::oci::RegistryArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Expand a composite with a composition plugin, check every child with
    /// policy plugins, and print the children.
    Render(render::RenderArgs),
    /// Judge resources with a policy plugin.
    Validate(validate::ValidateArgs),
    /// Run declarative test suites (`*.tessera.yaml`) against plugins.
    Test(test::TestArgs),
    /// Show what a plugin is: name, version, world, kinds, settings schema,
    /// digest, imports, whether it is cached.
    Inspect(inspect::InspectArgs),
    /// Measure a plugin: compile, cache load, instantiate, evaluation
    /// percentiles, throughput, fuel and memory per evaluation.
    Bench(bench::BenchArgs),
    /// Create a plugin project (Rust, Python or JavaScript) that builds and
    /// passes its sample suite.
    New(new::NewArgs),
    /// Build the plugin of a project (Rust, Python or JavaScript) for
    /// wasm32-wasip2 and print where the component is.
    Build(build::BuildArgs),
    /// Push a plugin (with its metadata and, optionally, its test suite) to
    /// an OCI registry; prints the reference pinned to its digest.
    Push(oci::PushArgs),
    /// Pull a plugin from an OCI registry (or the cache, by digest).
    Pull(oci::PullArgs),
    /// Sign a plugin in a registry (cosign-compatible, keyed).
    Sign(oci::SignArgs),
    /// Check a plugin's signatures in a registry against public keys or a
    /// trust policy.
    Verify(oci::VerifyArgs),
}

/// Exit code: success / allowed.
pub const EXIT_OK: i32 = 0;
/// Exit code: a policy denied.
pub const EXIT_DENIED: i32 = 1;
/// Exit code: an error.
pub const EXIT_ERROR: i32 = 2;

/// The process's standard streams, or test doubles.
pub struct Stdio<'a> {
    /// Standard input.
    pub stdin: &'a mut dyn Read,
    /// Standard output.
    pub stdout: &'a mut dyn Write,
    /// Standard error.
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Stdio<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stdio")
    }
}

/// Runs the command line `args` (including the program name) and returns
/// the exit code. Never panics on bad input; every error is one line on
/// stderr.
pub fn run<I, T>(args: I, io: &mut Stdio<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors go to
            // stderr with exit code 2.
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = write!(io.stderr, "{text}");
                EXIT_ERROR
            } else {
                let _ = write!(io.stdout, "{text}");
                EXIT_OK
            };
        }
    };
    // Two worker threads: `tessera test` runs cases concurrently; the other
    // commands run one evaluation at a time.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(io.stderr, "error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Render(args) => render::execute(&cli.global, args, io).await,
            Command::Validate(args) => validate::execute(&cli.global, args, io).await,
            Command::Test(args) => test::execute(&cli.global, args, io).await,
            Command::Inspect(args) => inspect::execute(&cli.global, args, io).await,
            Command::Bench(args) => bench::execute(args, io).await,
            Command::New(args) => new::execute(args, io),
            Command::Build(args) => build::execute(args, io).await,
            Command::Push(args) => oci::push(&cli.global, args, io).await,
            Command::Pull(args) => oci::pull(&cli.global, args, io).await,
            Command::Sign(args) => oci::sign(&cli.global, args, io).await,
            Command::Verify(args) => oci::verify(&cli.global, args, io).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(Failure(message)) => {
            let _ = writeln!(io.stderr, "error: {}", one_line(&message));
            EXIT_ERROR
        }
    }
}

/// One line, safe for a terminal: every message the CLI prints from a
/// plugin or an error goes through one of these (`tessera_types::text`, the
/// one choke point; `Untrusted` displays what `one_line` returns).
pub(crate) use tessera_types::text::{Untrusted, json_for_terminal, one_line};

/// The runtime the global options ask for (cache directory, or no cache),
/// otherwise configured as in the cluster ([`Runtime::standard_builder`]);
/// `fuel` counts fuel, for `--fuel` budgets.
pub(crate) fn build_runtime(global: &GlobalArgs, fuel: bool) -> Result<Runtime, Failure> {
    let mut builder = Runtime::standard_builder().fuel(fuel);
    if let Some(dir) = &global.cache_dir {
        builder = builder.cache_dir(dir);
    }
    if global.no_cache {
        builder = builder.no_cache();
    }
    Ok(builder.build()?)
}
