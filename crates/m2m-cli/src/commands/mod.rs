//! One module per command; [`run`] dispatches. Each command writes its result to stdout and
//! everything else to stderr, and returns a [`CliError`](crate::exit::CliError) on failure.

mod assertion;
mod cache;
mod clients;
mod completions;
mod decode;
mod demo;
mod jwks;
mod keygen;
mod serve;
mod token;
mod verify;

use crate::cli::{Cli, Command};
use crate::exit::{CliError, CliResult};

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Keygen(args) => keygen::run(&args),
        Command::Assertion(args) => assertion::run(&args),
        Command::Token(args) => token::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Jwks(args) => jwks::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Clients(args) => clients::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Cache(args) => cache::run(&args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man => completions::man(),
    }
}

/// A Tokio runtime for the commands that do network I/O (one thread: a CLI does one thing).
pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::local(format!("cannot start the async runtime: {e}")))
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not an error worth a trace.
pub(crate) fn print_result(text: &str) -> CliResult {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::local(format!("cannot write to stdout: {e}"))),
    }
}
