//! The `m2m` binary: parses the command line and hands over to one command module; every
//! failure becomes `error: …` (+ `hint: …`) on stderr and a documented exit code (see `exit`).
//!
//! # Layout
//!
//! The binary is thin: the protocol work is done by `m2m-client`, `m2m-core` and `m2m-server`.
//!
//! - `cli`: the command line declared with clap (flags, `M2M_*` variables, `--help` examples).
//! - `commands`: one module per command (`token`, `assertion`, `decode`, `keygen`, `jwks`,
//!   `clients`, `cache`, `serve`, `demo`, `completions`); `commands::run` dispatches.
//! - `config_file`: the config file (`config.toml`) and its named profiles (`ConfigProfile`).
//! - `settings`: flag > env > config-file profile precedence, resolved into the endpoint, signer
//!   and audience the client commands use.
//! - `keyfile`: reading private key files (precise messages, passphrase prompt).
//! - `exit`: the CLI's error type and its documented exit codes.
//! - `spinner`: progress on stderr for slow local work, terminals only.
//! - `times`: human-readable times for `m2m decode`.
// A command-line tool's job is to print: results on stdout, messages on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod config_file;
mod exit;
mod keyfile;
mod settings;
mod spinner;
mod times;

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: allocation was 6.5% of the token endpoint's CPU under load
/// (many small, short-lived buffers per request) and glibc's per-thread arenas kept memory after
/// load spikes; see docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // A server must log every refusal with its precise reason (SPEC §4): info by default there;
    // the client commands stay quiet unless asked.
    let is_server = matches!(cli.command, cli::Command::Serve(_));
    init_logging(cli.verbose + u8::from(is_server));
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit as u8)
        }
    }
}

/// Logs go to stderr so stdout stays the result alone; quiet unless -v or RUST_LOG (`serve`
/// starts one level up, at info).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a server's stderr usually goes to a file or journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
