//! The `tessera` binary: parses arguments and calls [`tessera_cli::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    // Errors are reported as one line by `run`; a panic would be a bug, and
    // even then the user gets one line and exit code 2, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("error: internal error (a bug in tessera): {message}");
    }));
    let result = std::panic::catch_unwind(|| {
        let mut stdin = std::io::stdin().lock();
        let mut stdout = std::io::stdout().lock();
        // Not locked for the whole run: the progress spinner writes to
        // stderr from its own thread.
        let mut stderr = std::io::stderr();
        tessera_cli::run(
            std::env::args_os(),
            &mut tessera_cli::Stdio {
                stdin: &mut stdin,
                stdout: &mut stdout,
                stderr: &mut stderr,
            },
        )
    });
    let code = result.unwrap_or(tessera_cli::EXIT_ERROR);
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
