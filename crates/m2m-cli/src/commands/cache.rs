//! `m2m cache clear|path` and the file cache behind `m2m token` (m2m_client::file_cache):
//! one 0600 file per token URL + client id + kid + scope (+ DPoP key thumbprint) under
//! `$XDG_CACHE_HOME/m2m`, so scripts calling `m2m token` in a loop stay under the token
//! endpoint's rate limit. Tokens bound to an ephemeral DPoP key are never cached.

use m2m_client::file_cache::{CacheKey, FileCache};
use m2m_client::{TokenClient, TokenResponse};
use m2m_core::clock::SystemClock;

use crate::cli::{CacheArgs, CacheCommand};
use crate::commands::print_result;
use crate::exit::{CliError, CliResult};

/// Gets a token through the file cache: a cached one while it is still usable, else a fresh one
/// (then stored; a cache that cannot be written only warns), by
/// [`FileCache::get_or_fetch`].
pub(crate) async fn fetch_cached(
    client: &TokenClient,
    kid: Option<&str>,
    scope: Option<&str>,
    resource: Option<&str>,
) -> CliResult<TokenResponse> {
    let Some(cache) = FileCache::user_default() else {
        tracing::warn!("no cache directory on this platform; fetching without the cache");
        return Ok(client.fetch().await?);
    };
    let Some(key) = cache_key(client, kid, scope, resource) else {
        eprintln!(
            "note: the DPoP key was made for this run, so the token is not cached (it dies with the key); pass --dpop-key FILE to cache it"
        );
        return Ok(client.fetch().await?);
    };
    Ok(cache
        .get_or_fetch(&key, client, &SystemClock)
        .await?
        .response)
}

/// Removes the cached token of `client` (an API refused it), so the next
/// [`fetch_cached`] gets a fresh one. A cache that cannot be changed only warns.
pub(crate) fn drop_cached(client: &TokenClient, kid: Option<&str>, scope: Option<&str>) {
    let Some(cache) = FileCache::user_default() else {
        return;
    };
    let Some(key) = cache_key(client, kid, scope, None) else {
        return;
    };
    if let Err(e) = cache.remove(&key)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "cannot remove the refused token from the cache");
    }
}

/// The file-cache key of `client`'s tokens; `None` for tokens bound to an ephemeral DPoP key,
/// which must not outlive the process (a persistent key's tokens are keyed by its thumbprint).
fn cache_key(
    client: &TokenClient,
    kid: Option<&str>,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Option<CacheKey> {
    let key = CacheKey::new(
        client.token_url().as_str(),
        client.client_id(),
        client.client_auth().method_name(),
        kid,
        scope,
    );
    // A federated credential: the token belongs to the source (file, command, variable, GitHub
    // audience) and the grant it was presented with.
    let key = match client.client_auth().assertion_source() {
        Some(source) => {
            key.for_assertion_source(&source.identity(), client.client_auth().grant_type())
        }
        None => key,
    };
    let key = match resource {
        Some(resource) => key.for_resource(resource),
        None => key,
    };
    match client.dpop_key() {
        None => Some(key),
        Some(dpop) if dpop.is_persistent() => Some(key.for_dpop_key(dpop.thumbprint())),
        Some(_) => None,
    }
}

fn user_cache() -> CliResult<FileCache> {
    FileCache::user_default().ok_or_else(|| {
        CliError::local("this platform has no user cache directory (set XDG_CACHE_HOME)")
    })
}

/// Runs `m2m cache …`.
pub(crate) fn run(args: &CacheArgs) -> CliResult {
    let cache = user_cache()?;
    match args.command {
        CacheCommand::Clear => {
            let removed = cache.clear().map_err(|e| {
                CliError::local(format!(
                    "cannot clear the token cache in {}: {e}",
                    cache.dir().display()
                ))
            })?;
            eprintln!(
                "removed {removed} cached token(s) from {}",
                cache.dir().display()
            );
            Ok(())
        }
        CacheCommand::Path => print_result(&cache.dir().display().to_string()),
    }
}
