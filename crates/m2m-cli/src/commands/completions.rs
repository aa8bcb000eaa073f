//! `m2m completions SHELL` and `m2m man`: generated from the clap definitions, so they never
//! drift from the real command line.

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::{CliError, CliResult};

/// Prints the completion script for the shell.
pub(crate) fn completions(args: &CompletionsArgs) -> CliResult {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "m2m", &mut out);
    write_stdout(&out)
}

/// Prints the man page (roff) for `m2m`.
pub(crate) fn man() -> CliResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::local(format!("cannot render the man page: {e}")))?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::local(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
