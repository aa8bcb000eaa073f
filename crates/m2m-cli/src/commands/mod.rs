//! One module per command; [`run`] dispatches. Each command writes its result to stdout and
//! everything else to stderr, and returns a [`CliError`](crate::exit::CliError) on failure.

mod assertion;
mod cache;
mod call;
mod clients;
mod completions;
mod decode;
mod demo;
mod gateway;
mod introspect;
mod jwks;
mod keygen;
mod proxy;
mod serve;
pub(crate) mod token;
pub(crate) mod trust;
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
        Command::Introspect(args) => introspect::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Jwks(args) => jwks::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Clients(args) => clients::run(&args),
        Command::Trust(args) => trust::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Call(args) => call::run(&args),
        Command::Proxy(args) => proxy::run(&args),
        Command::Gateway(args) => gateway::run(&args),
        Command::Cache(args) => cache::run(&args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}

/// A Tokio runtime for the commands that do network I/O (one thread: a CLI does one thing).
pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::local(format!("cannot start the async runtime: {e}")))
}

/// The runtime of the long-running forwarders (`m2m proxy`, `m2m gateway`): one worker per core
/// this process may run on (its CPU affinity, so `taskset` and container CPU sets count). On a
/// single core that is the current-thread scheduler: the same one event loop, without the
/// work-stealing scheduler's cross-thread bookkeeping on every wake-up, which measured about
/// 1 µs less CPU per forwarded request (docs/benchmarks.md).
pub(crate) fn server_runtime() -> CliResult<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cores);
        b
    };
    builder
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

/// `arg` itself, or for `-` the first MiB of stdin, trimmed; `what` names it in errors.
pub(crate) fn read_stdin_arg(arg: &str, what: &str) -> CliResult<String> {
    use std::io::Read as _;
    let text = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| CliError::usage(format!("cannot read the {what} from stdin: {e}")))?;
        text
    } else {
        arg.to_owned()
    };
    let value = text.trim();
    if value.is_empty() {
        return Err(CliError::usage(format!(
            "no {what} given (argument or stdin)"
        )));
    }
    Ok(value.to_owned())
}
