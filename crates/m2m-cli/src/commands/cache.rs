//! `m2m cache` and the file cache behind `m2m token`.
//!
//! Until `m2m_client::file_cache` lands this is a pass-through: every `m2m token` run fetches.

use m2m_client::{TokenClient, TokenResponse};

use crate::cli::{CacheArgs, CacheCommand};
use crate::exit::{CliError, CliResult};
use crate::settings::Settings;

/// Gets a token through the file cache.
pub(crate) async fn fetch_cached(
    client: &TokenClient,
    _settings: &Settings,
) -> CliResult<TokenResponse> {
    Ok(client.fetch().await?)
}

/// Runs `m2m cache …`.
pub(crate) fn run(args: &CacheArgs) -> CliResult {
    match args.command {
        CacheCommand::Clear | CacheCommand::Path => Err(CliError::local(
            "the token file cache is not available in this build yet",
        )),
    }
}
