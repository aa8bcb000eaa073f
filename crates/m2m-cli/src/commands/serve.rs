//! `m2m serve`: the authorization server (m2m_server) until SIGTERM or ctrl-c.

use std::time::Duration;

use m2m_core::validate::AudienceMode;
use m2m_server::{Profile, ServerConfig};

use crate::cli::ServeArgs;
use crate::commands::runtime;
use crate::exit::{CliError, CliResult};

/// Runs `m2m serve`.
pub(crate) fn run(args: &ServeArgs) -> CliResult {
    if args.rotate_keys {
        m2m_server::ServerKeys::rotate(&args.data_dir).map_err(|e| {
            CliError::local(format!("rotating keys in {}: {e}", args.data_dir.display()))
        })?;
        eprintln!(
            "m2m serve: rotated the signing key in {} (the previous key stays published); restart the server to use it",
            args.data_dir.display()
        );
        return Ok(());
    }
    let config = config(args)?;
    // The server runs many connections at once: a multi-threaded runtime, unlike the client commands.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .or_else(|_| runtime())?;
    // The spec may be `redis://:password@host` (from --replay-store or M2M_REPLAY_STORE), and
    // stderr usually ends up in a log: print it redacted, as every other message does.
    eprintln!(
        "m2m serve: listening on {} ({} profile, clients from {}, replay store {})",
        args.listen,
        args.profile,
        args.clients.display(),
        m2m_server::replay::redact_url(&args.replay_store)
    );
    rt.block_on(m2m_server::run_until_signal(config))
        .map_err(|e| CliError::local(format!("server: {e}")))
}

fn config(args: &ServeArgs) -> CliResult<ServerConfig> {
    let mut config = ServerConfig::new(&args.clients);
    config.secrets_file.clone_from(&args.secrets);
    config.listen = args.listen;
    config.issuer = args.issuer.clone();
    config.replay_store = args.replay_store.clone();
    config.profile = args.profile.parse::<Profile>().map_err(CliError::usage)?;
    config.data_dir = args.data_dir.clone();
    if let Some(limit) = args.rate_limit {
        config.rate_limit_per_minute = limit;
    }
    if let Some(secs) = args.token_lifetime {
        config.access_token_lifetime = Duration::from_secs(secs);
    }
    config.opaque_errors = args.opaque_errors;
    config.audience = match args.audience.as_str() {
        "issuer-string" => AudienceMode::IssuerStringOnly,
        "dangerous-legacy-token-url" => AudienceMode::DangerousLegacyTokenUrl,
        _ => AudienceMode::Issuer,
    };
    Ok(config)
}
