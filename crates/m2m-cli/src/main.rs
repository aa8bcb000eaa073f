//! The `m2m` binary: parses the command line and hands over to one command module; every
//! failure becomes `error: …` (+ `hint: …`) on stderr and a documented exit code (see `exit`).
//!
//! # Layout
//!
//! The binary is thin: the protocol work is done by `m2m-client`, `m2m-core` and `m2m-server`.
//!
//! - `cli`: the command line declared with clap (flags, `M2M_*` variables, `--help` examples).
//! - `commands`: one module per command (`token`, `assertion`, `decode`, `introspect`, `verify`,
//!   `keygen`, `jwks`, `clients`, `trust`, `cache`, `serve`, `call`, `proxy`, `gateway`, `demo`,
//!   `completions`); `commands::run` dispatches.
//! - `forward`: the forwarding engine (reverse proxy to one upstream with a per-request hook,
//!   admin listener, listen addresses) behind `m2m proxy` and `m2m gateway`.
//! - `authorize`: the authorization headers of an API request (`Bearer`, or `DPoP` with a fresh
//!   proof, by m2m-client's rule) and the 401 `invalid_token` / `use_dpop_nonce` tests.
//! - `config_file`: the config file (`config.toml`) and its named profiles (`ConfigProfile`).
//! - `settings`: flag > env > config-file profile precedence, resolved into the endpoint, signer
//!   and audience the client commands use.
//! - `dpop_key`: the DPoP key of `--dpop` / `--dpop-key` (ephemeral, or a 0600 key file).
//! - `federation`: federated assertion sources (file, command, variable, GitHub Actions) and the
//!   jwt-bearer grant, from flags or the profile.
//! - `keyfile`: reading private key files (precise messages, passphrase prompt).
//! - `exit`: the CLI's error type and its documented exit codes.
//! - `server_hint`: hints on a server's refusal from what only the command line knows (how the
//!   alg and the aud were chosen, the kid).
//! - `spinner`: progress on stderr for slow local work, terminals only.
//! - `times`: human-readable times for `m2m decode`.
// A command-line tool's job is to print: results on stdout, messages on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod authorize;
mod cli;
mod commands;
mod config_file;
mod dpop_key;
mod exit;
mod federation;
mod forward;
mod keyfile;
mod server_hint;
mod settings;
mod spinner;
mod times;

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: allocation was 6.5% of the token endpoint's CPU under load
/// (many small, short-lived buffers per request) and glibc's per-thread arenas kept memory after
/// load spikes; see docs/benchmarks.md. Built without transparent huge pages (the `no_thp`
/// feature in Cargo.toml): with them a heap of a few MB is rounded up to 2 MB pages, so `m2m
/// proxy` sat at 18.5 MB instead of 13.7 MB and grew by 2 MB at once when its first token
/// refresh touched a new region, at no measurable gain in throughput (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // A server must log every refusal with its precise reason (docs/protocol.md, "Errors"): info
    // by default there; the client commands stay quiet unless asked.
    let is_server = matches!(
        cli.command,
        cli::Command::Serve(_) | cli::Command::Proxy(_) | cli::Command::Gateway(_)
    );
    init_logging(cli.verbose, is_server);
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
fn init_logging(verbose: u8, is_server: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(verbose, is_server)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a server's stderr usually goes to a file or journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The crates whose log lines a user sees without `-v` (`m2m` is the binary itself).
const OWN_CRATES: [&str; 5] = ["m2m", "m2m_cli", "m2m_client", "m2m_core", "m2m_server"];

/// The filter without RUST_LOG. Without `-v`, only m2m's own crates: dependencies log at warn or
/// error what m2m already reports in its own words (on a TLS failure the platform verifier logs
/// `failed to verify TLS certificate` next to m2m's own error), so their lines would only repeat
/// it, in a form the user did not ask for. With `-v`, everything at the chosen level.
fn default_filter(verbose: u8, is_server: bool) -> String {
    let level = match verbose + u8::from(is_server) {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    if verbose > 0 {
        return level.to_owned();
    }
    let own: Vec<String> = OWN_CRATES.iter().map(|c| format!("{c}={level}")).collect();
    format!("off,{}", own.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log lines written with `filter`, for one event per (target, level) below.
    fn logged_with(filter: &str) -> String {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let buf = Arc::clone(&buf);
            move || SharedBuf(Arc::clone(&buf))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rustls_platform_verifier::verification", "failed to verify TLS certificate");
            tracing::warn!(target: "m2m_client::file_cache", "own warning");
            tracing::info!(target: "m2m_server::app", "own info");
            tracing::warn!(target: "m2m::commands::token", "binary warning");
        });
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    struct SharedBuf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn without_v_only_m2m_crates_log() {
        let client = logged_with(&default_filter(0, false));
        assert!(
            !client.contains("failed to verify TLS certificate"),
            "{client}"
        );
        assert!(client.contains("own warning"), "{client}");
        assert!(client.contains("binary warning"), "{client}");
        assert!(!client.contains("own info"), "{client}");
        let server = logged_with(&default_filter(0, true));
        assert!(
            !server.contains("failed to verify TLS certificate"),
            "{server}"
        );
        assert!(server.contains("own info"), "{server}");
    }

    #[test]
    fn with_v_dependencies_log_too() {
        let verbose = logged_with(&default_filter(1, false));
        assert!(
            verbose.contains("failed to verify TLS certificate"),
            "{verbose}"
        );
        assert!(verbose.contains("own info"), "{verbose}");
        assert_eq!(default_filter(2, false), "debug");
    }
}
