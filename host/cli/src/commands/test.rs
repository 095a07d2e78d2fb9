//! `tessera test [PATH...]`: find the suites, run their cases, print one line
//! per case and a summary, and optionally write a JUnit report.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::commands::LimitsArgs;
use crate::failure::{Failure, Outcome};
use crate::suite_plugins::PluginCache;
use crate::{EXIT_DENIED, EXIT_OK, GlobalArgs, Stdio, Untrusted, build_runtime};
use tessera_suite as suite;

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Suite files, directories searched for `*.tessera.yaml`, or `oci://`
    /// plugin references (the suite the artifact bundles) [default: .].
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Run only cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Rewrite golden files with the actual output (also: TESSERA_BLESS=1).
    #[arg(long)]
    update: bool,
    /// Also write a report: `--output junit FILE`.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
    output: Option<Vec<String>>,
    /// Find workspace plugins as `<DIR>/<crate_name>.wasm` instead of
    /// building them with cargo.
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Colour diffs.
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorArg,
    #[command(flatten)]
    limits: LimitsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

/// Runs `tessera test`.
pub(crate) async fn execute(global: &GlobalArgs, args: TestArgs, io: &mut Stdio<'_>) -> Outcome {
    use suite::Outcome as CaseOutcome;
    let junit_file = match args.output.as_deref() {
        None => None,
        Some([format, file]) if format == "junit" => Some(PathBuf::from(file)),
        Some([format, _]) => {
            return Err(Failure(format!(
                "--output: unknown report format {format:?} (supported: junit)"
            )));
        }
        Some(_) => {
            return Err(Failure(
                "--output takes one format and one file, once (e.g. --output junit report.xml)"
                    .into(),
            ));
        }
    };
    let mut paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    // `oci://` references: the artifact's bundled suite, run against the
    // pulled component alone (each in its own directory, kept in `bundles`
    // until the run ends).
    let is_reference = |p: &PathBuf| p.to_str().is_some_and(tessera_oci::Reference::is_reference);
    if args.plugin_dir.is_some() && paths.iter().any(is_reference) {
        return Err(Failure(
            "--plugin-dir cannot be used with oci:// references (their suites run the pulled plugin)"
                .into(),
        ));
    }
    let plugin_dir = args.plugin_dir;
    let mut bundled = Vec::new();
    let bundles = tempfile::tempdir().map_err(|e| Failure(format!("temporary directory: {e}")))?;
    for (index, path) in paths.iter_mut().enumerate() {
        if let Some(reference) = path
            .to_str()
            .filter(|p| tessera_oci::Reference::is_reference(p))
        {
            let bundle =
                crate::commands::oci::bundled_suite(global, reference, bundles.path(), index)
                    .await?;
            *path = bundle.suites.clone();
            bundled.push(bundle);
        }
    }
    let files = suite::discover(&paths)?;
    if files.is_empty() {
        return Err(Failure(format!(
            "no test suites (*.tessera.yaml) under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut cases = Vec::new();
    for file in &files {
        let confined = bundled.iter().any(|b| file.starts_with(&b.suites));
        cases.extend(suite::load_suite(file, &args.limits.spec(), confined)?);
    }
    let color = match args.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let options = suite::RunOptions {
        filter: args.filter,
        update: args.update || std::env::var_os("TESSERA_BLESS").is_some_and(|v| v == "1"),
    };
    // Fuel is counted when any case has a budget (it changes the compiled
    // code, so it is on for the whole run or not at all).
    let fuel = cases.iter().any(|case| case.limits.get_fuel().is_some());
    let plugins = Arc::new(PluginCache::new(
        build_runtime(global, fuel)?,
        plugin_dir,
        bundled,
    ));
    let results = suite::run_cases(cases, plugins.clone(), &options).await;
    // A plugin that did not build: what its toolchain said (the first
    // errors, with file and line) goes to stderr, once; each case that
    // needed it names the first error.
    for report in plugins.take_build_diagnostics() {
        for line in tessera_types::text::lines(&report) {
            writeln!(io.stderr, "{line}")?;
        }
        writeln!(io.stderr)?;
    }

    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (case, outcome) in &results {
        // The suite's path and the case's name are the user's; the reasons
        // a case failed quote what plugins said, and are printed line by
        // line through `tessera_types::text` like everything else.
        let label = format!(
            "{} :: {}",
            Untrusted(&case.suite.display().to_string()),
            Untrusted(&case.name)
        );
        match outcome {
            CaseOutcome::Passed => {
                passed += 1;
                writeln!(io.stdout, "ok     {label}")?;
            }
            CaseOutcome::Skipped => skipped += 1,
            CaseOutcome::Failed(why) => {
                failed += 1;
                let tag = if color { "\x1b[31mFAIL\x1b[0m" } else { "FAIL" };
                writeln!(io.stdout, "{tag}   {label}")?;
                write_failure(io.stdout, why, color)?;
            }
        }
    }
    writeln!(
        io.stdout,
        "{passed} passed, {failed} failed, {skipped} skipped"
    )?;
    if let Some(file) = junit_file {
        std::fs::write(&file, suite::junit(&results)).map_err(|e| {
            Failure(format!(
                "{}: cannot write the JUnit report: {e}",
                file.display()
            ))
        })?;
    }
    Ok(if failed > 0 { EXIT_DENIED } else { EXIT_OK })
}

/// Writes why a case failed, indented, each line with its control
/// characters replaced; diffs are coloured (when `color`) only after that,
/// so the escape sequences printed are Tessera's own.
fn write_failure(out: &mut dyn std::io::Write, why: &str, color: bool) -> std::io::Result<()> {
    let mut in_diff = false;
    for line in tessera_types::text::lines(why) {
        in_diff |= line == suite::DIFF_START;
        match suite::colour(&line).filter(|_| color && in_diff) {
            Some(sgr) => writeln!(out, "       {sgr}{line}\x1b[0m")?,
            None => writeln!(out, "       {line}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(why: &str, color: bool) -> String {
        let mut out = Vec::new();
        write_failure(&mut out, why, color).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn failures_print_no_escape_of_the_plugins_and_colour_only_diffs() {
        let why = "findings: expected 0 findings, got 1: \x1b]0;pwned\x07\x1b[2J\r+x\n\
                   golden g.yaml differs:\n--- expected\n+++ actual\n@@ -1 +1 @@\n-a: 1\n+a: \x1b[2J\n";
        let plain = written(why, false);
        assert!(
            !plain.chars().any(|c| c.is_control() && c != '\n'),
            "{plain:?}"
        );
        assert_eq!(plain.lines().count(), 7, "{plain}");
        assert!(plain.lines().all(|l| l.starts_with("       ")), "{plain}");
        let coloured = written(why, true);
        // Only Tessera's own colours, on diff lines only.
        assert_eq!(coloured.matches('\x1b').count(), 6, "{coloured:?}");
        assert!(
            coloured.contains("       \x1b[31m-a: 1\x1b[0m\n"),
            "{coloured:?}"
        );
        assert!(
            coloured
                .lines()
                .next()
                .unwrap()
                .starts_with("       findings"),
            "{coloured:?}"
        );
    }
}
