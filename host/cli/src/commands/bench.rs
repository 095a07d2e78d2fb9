//! `tessera bench WASM --input FILE`: read the input, measure the plugin
//! (`measure`), print the measurements, and save or compare them.

mod measure;

use std::path::PathBuf;

use clap::Args;

use crate::commands::Format;
use crate::documents::display_name;
use crate::failure::{Failure, Outcome};
use crate::input::{check_object, check_stdin_once, read_one, read_settings};
use crate::{EXIT_DENIED, EXIT_OK, Stdio};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The plugin (`.wasm` component).
    #[arg(value_name = "WASM")]
    wasm: PathBuf,
    /// The composite (composition plugin) or object (policy plugin).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Settings for the plugin.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Timed evaluations.
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    /// Save the measurements (JSON) for a later --baseline.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Compare fuel per evaluation with a saved run; exit 1 on a regression
    /// beyond --threshold.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Allowed fuel increase over the baseline, in percent.
    #[arg(long, default_value_t = 2.0)]
    threshold: f64,
    /// Output format [default: text].
    #[arg(short, long, value_enum)]
    output: Option<Format>,
}

/// Runs `tessera bench`.
pub(crate) async fn execute(args: BenchArgs, io: &mut Stdio<'_>) -> Outcome {
    check_stdin_once(&[&args.input])?;
    if args.iterations == 0 {
        return Err(Failure("--iterations must be at least 1".into()));
    }
    let input = read_one(&args.input, io.stdin, "input object")?;
    check_object(&input).map_err(|m| Failure(format!("{}: {m}", display_name(&args.input))))?;
    let settings = read_settings(args.settings.as_deref(), io.stdin)?;
    let measurements = measure::run(&measure::BenchOptions {
        wasm: args.wasm,
        input,
        settings,
        iterations: args.iterations,
    })
    .await
    .map_err(Failure)?;
    if args.output == Some(Format::Json) {
        writeln!(
            io.stdout,
            "{}",
            crate::json_for_terminal(&serde_json::to_string_pretty(&measurements)?)
        )?;
    } else {
        write!(io.stdout, "{}", measure::render_text(&measurements))?;
    }
    if let Some(file) = &args.save {
        std::fs::write(file, serde_json::to_string_pretty(&measurements)? + "\n")
            .map_err(|e| Failure(format!("{}: cannot save: {e}", file.display())))?;
    }
    if let Some(baseline) = &args.baseline {
        return match measure::compare(&measurements, baseline, args.threshold).map_err(Failure)? {
            Ok(line) => {
                writeln!(io.stderr, "no regression: {line}")?;
                Ok(EXIT_OK)
            }
            Err(line) => {
                writeln!(io.stderr, "regression: {line}")?;
                Ok(EXIT_DENIED)
            }
        };
    }
    Ok(EXIT_OK)
}
