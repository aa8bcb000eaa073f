//! `m2m token`: gets an access token with m2m_client and prints it (or the JSON response, or an
//! `Authorization` header line), through the per-profile file cache unless `--no-cache`.

use std::sync::Arc;
use std::time::Duration;

use m2m_client::{AuthServerMetadata, RetryPolicy, TokenClient, TokenResponse};
use serde_json::{Map, Value};

use crate::cli::TokenArgs;
use crate::commands::{print_result, runtime};
use crate::exit::{CliError, CliResult};
use crate::settings::{self, Settings, Target};

/// Connect limit: a token endpoint that does not accept a TCP/TLS connection in this time is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `m2m token`.
pub(crate) fn run(args: &TokenArgs) -> CliResult {
    let s = settings::resolve(&args.client, args.scope.as_deref())?;
    if let Some(url) = &args.for_url {
        return run_for(args, &s, url);
    }
    let rt = runtime()?;
    let response = rt.block_on(async {
        let (client, kid) = token_client(&s, args.timeout, args.attempts).await?;
        fetch(args, &s, &client, kid.as_deref(), None).await
    })?;
    print_result(&render(args, &response)?)
}

/// `m2m token --for URL`: discovery from the resource (m2m_client::discover_from_resource), the
/// issuer pinned by --issuer when given, then the token request with `resource=`.
fn run_for(args: &TokenArgs, s: &Settings, url: &str) -> CliResult {
    let pin = match &s.endpoint {
        Some(Target::Issuer(issuer)) => Some(issuer.clone()),
        Some(Target::Endpoint { .. }) => {
            return Err(CliError::usage(
                "--for finds the token endpoint itself; pin the authorization server with --issuer, not --token-url/--env",
            ));
        }
        None => None,
    };
    s.require_client_id()?;
    let signer = s.signer(m2m_client::Profile::Generic)?;
    let kid = m2m_core::signer::Signer::key_id(&signer).map(str::to_owned);
    let mut policy = m2m_client::UrlPolicy::default();
    if s.allow_insecure_http {
        policy = policy.dangerous_allow_insecure_http();
    }
    let rt = runtime()?;
    let response = rt.block_on(async {
        let found = m2m_client::discover_from_resource_with(url, pin.as_deref(), policy).await?;
        eprintln!(
            "resource {} → authorization server {}",
            found.resource,
            found.auth_server.issuer()
        );
        let resource = found.resource.clone();
        let target = Target::Issuer(found.auth_server.issuer().to_owned());
        let timeout = Duration::from_secs(args.timeout.max(1));
        let (client, _) =
            build_client(s, &target, signer, timeout, args.attempts, Some(found)).await?;
        fetch(args, s, &client, kid.as_deref(), Some(&resource)).await
    })?;
    print_result(&render(args, &response)?)
}

/// One token: through the file cache (keyed by the resource too) unless `--no-cache`.
async fn fetch(
    args: &TokenArgs,
    s: &Settings,
    client: &TokenClient,
    kid: Option<&str>,
    resource: Option<&str>,
) -> CliResult<TokenResponse> {
    if args.no_cache {
        return Ok(client.fetch().await?);
    }
    crate::commands::cache::fetch_cached(client, kid, s.scope.as_deref(), resource).await
}

/// The token client every command that needs a token uses (`token`, `call`, `proxy`), built
/// from the resolved settings, so that whatever `m2m token` accepts works for all of them; with
/// the signing key's kid (part of the file-cache key).
pub(crate) async fn token_client(
    s: &Settings,
    timeout_secs: u64,
    attempts: u32,
) -> CliResult<(TokenClient, Option<String>)> {
    let endpoint = s.require_endpoint()?.clone();
    s.require_client_id()?;
    let signer = s.signer(endpoint.implied_profile())?;
    let kid = m2m_core::signer::Signer::key_id(&signer).map(str::to_owned);
    let timeout = Duration::from_secs(timeout_secs.max(1));
    let (client, _) = build_client(s, &endpoint, signer, timeout, attempts, None).await?;
    Ok((client, kid))
}

/// The token client for these settings, authenticated as `m2m token` is (also used by
/// `m2m introspect`); with the discovered metadata when the target was only an issuer. `found`:
/// what `--for` discovered from the resource (its authorization server, and `resource=`).
pub(crate) async fn build_client(
    s: &Settings,
    endpoint: &Target,
    signer: m2m_core::signer::KeySigner,
    timeout: Duration,
    attempts: u32,
    found: Option<m2m_client::ResourceDiscovery>,
) -> CliResult<(TokenClient, Option<AuthServerMetadata>)> {
    let mut builder = TokenClient::builder()
        .client_id(s.require_client_id()?)
        .signer(Arc::new(signer))
        .timeout(Some(timeout))
        .connect_timeout(Some(CONNECT_TIMEOUT.min(timeout)))
        .retry_policy(RetryPolicy::default().max_attempts(attempts))
        .user_agent(concat!("m2m/", env!("CARGO_PKG_VERSION")));
    if s.allow_insecure_http {
        eprintln!(
            "warning: --dangerous-allow-insecure-http: the assertion and token may travel in clear text"
        );
        builder = builder.dangerous_allow_insecure_http();
    }
    let mut discovered = None;
    builder = match (endpoint, found) {
        (_, Some(found)) => {
            discovered = Some(found.auth_server.clone());
            builder
                .discovered(found.auth_server)
                .resource(found.resource)
        }
        (Target::Endpoint { endpoint, issuer }, None) => {
            let b = builder.endpoint(endpoint.clone());
            match issuer {
                Some(issuer) => b.audience(issuer.clone()),
                None => b,
            }
        }
        (Target::Issuer(issuer), None) => {
            let metadata = m2m_client::discover(issuer).await?;
            discovered = Some(metadata.clone());
            builder.discovered(metadata)
        }
    };
    if let Some(aud) = &s.aud {
        builder = builder.audience(aud.clone());
    }
    if let Some(lifetime) = s.lifetime {
        builder = builder.assertion_lifetime(lifetime);
    }
    if let Some(scope) = &s.scope {
        builder = builder.scope(scope.clone());
    }
    Ok((builder.build()?, discovered))
}

fn render(args: &TokenArgs, response: &TokenResponse) -> CliResult<String> {
    let token = response.access_token().secret();
    if args.header {
        let kind = match response.token_type() {
            Some(t) if !t.eq_ignore_ascii_case("bearer") => t,
            _ => "Bearer",
        };
        return Ok(format!("Authorization: {kind} {token}"));
    }
    if args.json {
        return serde_json::to_string_pretty(&Value::Object(response_json(response)))
            .map_err(|e| CliError::local(format!("cannot encode JSON: {e}")));
    }
    Ok(token.to_owned())
}

/// The token response as JSON: the standard members as parsed, then every other member verbatim.
pub(crate) fn response_json(response: &TokenResponse) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "access_token".to_owned(),
        Value::String(response.access_token().secret().to_owned()),
    );
    if let Some(t) = response.token_type() {
        out.insert("token_type".to_owned(), Value::String(t.to_owned()));
    }
    if let Some(e) = response.expires_in() {
        out.insert("expires_in".to_owned(), Value::from(e.as_secs()));
    }
    if let Some(ms) = response.issued_at_millis() {
        out.insert("issued_at".to_owned(), Value::String(ms.to_string()));
    }
    if let Some(scope) = response.scope() {
        out.insert("scope".to_owned(), Value::String(scope.to_owned()));
    }
    if let Some(rt) = response.refresh_token() {
        out.insert(
            "refresh_token".to_owned(),
            Value::String(rt.secret().to_owned()),
        );
    }
    for (k, v) in response.extra() {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}
