//! `m2m serve`: the authorization server (m2m_server) until SIGTERM or ctrl-c, reloading the
//! client registry on SIGHUP; `--check` validates the configuration and exits; `--rotate-keys`
//! rotates the signing key and exits.

use std::path::Path;
use std::time::Duration;

use m2m_core::validate::AudienceMode;
use m2m_server::{Profile, Server, ServerConfig};

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
    // clap requires --clients unless --rotate-keys.
    let clients = args
        .clients
        .as_deref()
        .ok_or_else(|| CliError::usage("--clients FILE is required"))?;
    let config = config(args, clients)?;
    let clients_path = clients.to_path_buf();
    if args.check {
        return check(&config, args);
    }
    // The server runs many connections at once: a multi-threaded runtime, unlike the client commands.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .or_else(|_| runtime())?;
    rt.block_on(async {
        // Bound, registry and keys loaded, store opened: only then is it "listening". A failure
        // says what failed, with no banner before it.
        let server = Server::start(config)
            .await
            .map_err(|e| CliError::local(format!("server: {e}")))?;
        let (addr, issuer, clients) = (server.local_addr(), server.issuer().to_owned(), server.client_count());
        // Signal handlers first, so a SIGHUP sent on seeing the banner reloads rather than kills.
        let running = server.run_until_signal();
        // The spec may be `redis://:password@host` (from --replay-store or M2M_REPLAY_STORE), and
        // stderr usually ends up in a log: print it redacted, as every other message does.
        eprintln!(
            "m2m serve: listening on {addr} (issuer {issuer}, {} profile, {clients} client(s) from {}, replay store {}; SIGHUP reloads the clients)",
            args.profile,
            clients_path.display(),
            m2m_server::replay::redact_url(&args.replay_store)
        );
        running
            .await
            .map_err(|e| CliError::local(format!("server: {e}")))
    })
}

/// `m2m serve --check`: everything `m2m serve` would load, validated; nothing bound or written.
fn check(config: &ServerConfig, args: &ServeArgs) -> CliResult {
    let report = Server::check(config).map_err(|e| CliError::local(format!("check: {e}")))?;
    let keys = match &report.signing_kid {
        Some(kid) => format!("signing key {kid}"),
        None => format!(
            "no signing key yet (one is generated in {} on start)",
            config.data_dir.display()
        ),
    };
    eprintln!(
        "m2m serve --check: ok: issuer {}, {} profile, {} client(s) in {}, {keys}, replay store {} (not bound, nothing written)",
        report.issuer,
        args.profile,
        report.clients,
        config.clients_file.display(),
        m2m_server::replay::redact_url(&args.replay_store)
    );
    if report.clients == 0 {
        eprintln!(
            "warning: the client registry is empty: every token request will be refused (m2m clients add)"
        );
    }
    Ok(())
}

fn config(args: &ServeArgs, clients: &Path) -> CliResult<ServerConfig> {
    let mut config = ServerConfig::new(clients);
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
    config.dpop_nonce = args.dpop_nonce;
    config.audience = match args.audience.as_str() {
        "issuer-string" => AudienceMode::IssuerStringOnly,
        "dangerous-legacy-token-url" => AudienceMode::DangerousLegacyTokenUrl,
        _ => AudienceMode::Issuer,
    };
    Ok(config)
}
