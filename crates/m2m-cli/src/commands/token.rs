//! `m2m token`: gets an access token with m2m_client and prints it (or the JSON response, or an
//! `Authorization` header line), through the per-profile file cache unless `--no-cache`.

use std::sync::Arc;
use std::time::Duration;

use m2m_client::{
    AuthServerMetadata, ClientAuth, Endpoint, Profile, RetryPolicy, TokenClient, TokenResponse,
    TokenUrl,
};
use m2m_core::assertion::Audience;
use m2m_core::hmac::SecretJwtBuilder;
use m2m_core::secret::ClientSecret;
use serde_json::{Map, Value};

use crate::cli::TokenArgs;
use crate::commands::{print_result, runtime};
use crate::dpop_key;
use crate::exit::{CliError, CliResult};
use crate::server_hint::{self, AudRule};
use crate::settings::{self, AlgChoice, Settings, Target};

/// Connect limit: a token endpoint that does not accept a TCP/TLS connection in this time is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `m2m token`.
pub(crate) fn run(args: &TokenArgs) -> CliResult {
    let mut s = settings::resolve(&args.client, args.scope.as_deref())?;
    s.apply_dpop_flags(&args.dpop);
    let s = s;
    if let Some(url) = &args.for_url {
        return run_for(args, &s, url);
    }
    let endpoint = s.require_endpoint()?.clone();
    s.require_client_id()?;
    let (credential, alg) = credential(&s, endpoint.implied_profile())?;
    let kid = credential.kid();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let dpop = dpop_key::load(&s)?;
    let rt = runtime()?;
    let response = rt.block_on(async {
        let built = build(
            &s,
            &endpoint,
            credential,
            timeout,
            args.attempts,
            None,
            dpop,
        )
        .await?;
        let result = fetch(args, &s, &built.client, kid.as_deref(), None).await;
        built.explain(result, alg.as_ref())
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
    let (credential, alg) = credential(s, Profile::Generic)?;
    let kid = credential.kid();
    let mut policy = m2m_client::UrlPolicy::default();
    if s.allow_insecure_http {
        policy = policy.dangerous_allow_insecure_http();
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    let dpop = dpop_key::load(s)?;
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
        let built = build(
            s,
            &target,
            credential,
            timeout,
            args.attempts,
            Some(found),
            dpop,
        )
        .await?;
        let result = fetch(args, s, &built.client, kid.as_deref(), Some(&resource)).await;
        built.explain(result, alg.as_ref())
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
/// from the resolved settings, so that whatever `m2m token` accepts works for all of them (DPoP
/// included); with the signing key's kid (part of the file-cache key).
pub(crate) async fn token_client(
    s: &Settings,
    timeout_secs: u64,
    attempts: u32,
) -> CliResult<(TokenClient, Option<String>)> {
    let endpoint = s.require_endpoint()?.clone();
    s.require_client_id()?;
    let (credential, _) = credential(s, endpoint.implied_profile())?;
    let kid = credential.kid();
    let timeout = Duration::from_secs(timeout_secs.max(1));
    let dpop = dpop_key::load(s)?;
    let built = build(s, &endpoint, credential, timeout, attempts, None, dpop).await?;
    Ok((built.client, kid))
}

/// The token client for these settings, authenticated as `m2m token` is (also used by
/// `m2m introspect`, without DPoP); with the discovered metadata when the target was only an
/// issuer.
pub(crate) async fn build_client(
    s: &Settings,
    endpoint: &Target,
    timeout: Duration,
    attempts: u32,
) -> CliResult<(TokenClient, Option<AuthServerMetadata>)> {
    let (credential, _) = credential(s, endpoint.implied_profile())?;
    let built = build(s, endpoint, credential, timeout, attempts, None, None).await?;
    Ok((built.client, built.discovered))
}

/// What the client proves itself with.
enum Credential {
    /// A private key (`private_key_jwt`).
    Key(m2m_core::signer::KeySigner),
    /// A client secret, with the method asked for (`None`: chosen from metadata, else Basic).
    Secret(ClientSecret, Option<String>),
    /// A federated workload credential (docs/federation.md): its source, and whether it is the
    /// jwt-bearer grant rather than the client assertion.
    Federated(crate::federation::SourceSpec, bool),
}

/// The secret method: the one asked for, else `client_secret_basic` unless the metadata lists
/// only `client_secret_post` (docs/secrets.md).
fn secret_method(asked: Option<&str>, metadata: Option<&[String]>) -> String {
    if let Some(m) = asked {
        return m.to_owned();
    }
    match metadata {
        Some(methods)
            if methods.iter().any(|m| m == "client_secret_post")
                && !methods.iter().any(|m| m == "client_secret_basic") =>
        {
            "client_secret_post".to_owned()
        }
        _ => "client_secret_basic".to_owned(),
    }
}

/// The credential the settings give (a key or a client secret) and, for a key, where its
/// algorithm came from. A key and a secret together need `--auth-method` to choose.
fn credential(s: &Settings, profile: Profile) -> CliResult<(Credential, Option<AlgChoice>)> {
    let secret = s.client_secret()?;
    if let Some(source) = &s.federation.source {
        // Flags conflict in clap already; this catches a key or secret from the profile or the
        // environment.
        if s.key.is_some() || secret.is_some() || s.auth_method.is_some() {
            return Err(CliError::usage(
                "a federated assertion (--assertion-*) replaces the key, the client secret and --auth-method: drop them",
            ));
        }
        let grant = s.federation.grant_jwt_bearer;
        return Ok((Credential::Federated(source.clone(), grant), None));
    }
    Ok(match (secret, s.key.is_some(), s.auth_method.as_deref()) {
        (_, _, Some("private_key_jwt")) | (None, _, None) => {
            let (signer, alg) = s.signer_explained(profile)?;
            (Credential::Key(signer), Some(alg))
        }
        (Some(_), true, None) => {
            return Err(CliError::usage(
                "both a key and a client secret are given: choose the method with --auth-method",
            ));
        }
        (Some(secret), _, method) => (Credential::Secret(secret, method.map(str::to_owned)), None),
        (None, _, Some(method)) => {
            return Err(CliError::usage(format!(
                "--auth-method {method} needs a client secret"
            ))
            .with_hint(
                "pass --client-secret-file FILE, --client-secret-stdin or set M2M_CLIENT_SECRET",
            ));
        }
    })
}

impl Credential {
    /// The signing key's kid (part of the file-cache key); none for a secret.
    fn kid(&self) -> Option<String> {
        match self {
            Credential::Key(signer) => m2m_core::signer::Signer::key_id(signer).map(str::to_owned),
            Credential::Secret(..) | Credential::Federated(..) => None,
        }
    }
}

/// A token client and how its `aud` was chosen, for what `m2m token` says after the request.
struct Built {
    client: TokenClient,
    /// The metadata found on the way (an issuer target, or the token URL's origin).
    discovered: Option<AuthServerMetadata>,
    aud_rule: AudRule,
    /// Said after success; a refusal of the aud says it in its hint, and other failures are
    /// about something else (stderr then starts with the error).
    aud_note: Option<String>,
}

impl Built {
    /// The request's outcome as the user sees it: the audience note after a success, the hint
    /// for a server's refusal (naming `--issuer`, `--alg`, the kid) after a rejection.
    fn explain<T>(&self, result: CliResult<T>, alg: Option<&AlgChoice>) -> CliResult<T> {
        if let (Ok(_), Some(note)) = (&result, &self.aud_note) {
            eprintln!("{note}");
        }
        result.map_err(|mut e| {
            if e.exit == crate::exit::Exit::Rejected
                && let Some(alg) = alg
                && let Some(h) = server_hint::hint(&e.message, alg, &self.aud_rule)
            {
                e.hint = Some(h);
            }
            e
        })
    }
}

/// `found`: what `--for` discovered from the resource (its authorization server, and the
/// `resource=` to send); `dpop`: the key token requests carry proofs of.
async fn build(
    s: &Settings,
    endpoint: &Target,
    credential: Credential,
    timeout: Duration,
    attempts: u32,
    found: Option<m2m_client::ResourceDiscovery>,
    dpop: Option<m2m_client::DpopKey>,
) -> CliResult<Built> {
    let mut builder = TokenClient::builder()
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
    let mut aud_rule = AudRule::Given;
    let mut audience_given: Option<String> = None;
    let mut aud_note = None;
    let mut discovered = None;
    builder = match (endpoint, found) {
        (_, Some(found)) => {
            discovered = Some(found.auth_server.clone());
            builder
                .discovered(found.auth_server)
                .resource(found.resource)
        }
        (
            Target::Endpoint {
                endpoint: Endpoint::Url(url),
                issuer: None,
            },
            None,
        ) if s.aud.is_none() && Profile::for_token_url(url) == Profile::Generic => {
            match metadata_naming(url, s.allow_insecure_http).await {
                Some(metadata) => {
                    aud_note = Some(format!(
                        "note: aud = issuer {} (RFC 8414 metadata at the token URL's origin names this token endpoint); pass --issuer {} to say so",
                        metadata.issuer(),
                        metadata.issuer()
                    ));
                    aud_rule = AudRule::DiscoveredIssuer(metadata.issuer().to_owned());
                    discovered = Some(metadata.clone());
                    builder.discovered(metadata)
                }
                None => {
                    aud_note = Some(format!(
                        "note: aud = the token URL {url} (no RFC 8414 metadata at its origin names it); pass --issuer URL if the server wants its issuer identifier"
                    ));
                    aud_rule = AudRule::TokenUrlGuess;
                    builder.endpoint(Endpoint::Url(url.clone()))
                }
            }
        }
        (Target::Endpoint { endpoint, issuer }, None) => {
            audience_given.clone_from(issuer);
            builder.endpoint(endpoint.clone())
        }
        (Target::Issuer(issuer), None) => {
            let metadata = m2m_client::discover(issuer).await?;
            discovered = Some(metadata.clone());
            builder.discovered(metadata)
        }
    };
    if let Some(aud) = &s.aud {
        audience_given = Some(aud.clone());
    }
    let client_id = s.require_client_id()?.to_owned();
    match credential {
        Credential::Key(signer) => {
            builder = builder.client_id(client_id).signer(Arc::new(signer));
            if let Some(aud) = audience_given {
                builder = builder.audience(aud);
            }
            if let Some(lifetime) = s.lifetime {
                builder = builder.assertion_lifetime(lifetime);
            }
        }
        Credential::Secret(secret, asked) => {
            let methods = discovered
                .as_ref()
                .and_then(AuthServerMetadata::token_endpoint_auth_methods);
            let method = secret_method(asked.as_deref(), methods);
            let auth = match method.as_str() {
                "client_secret_post" => ClientAuth::ClientSecretPost { client_id, secret },
                "client_secret_jwt" => {
                    // The same aud rule as a signed assertion: --aud, else the issuer (given or
                    // discovered), else the token URL.
                    let audience = match (audience_given, &discovered) {
                        (Some(aud), _) => Audience::Explicit(aud),
                        (None, Some(metadata)) => Audience::Issuer(metadata.issuer().to_owned()),
                        (None, None) => s.audience()?,
                    };
                    let alg = s.hmac_alg.unwrap_or_default();
                    let mut b = SecretJwtBuilder::new(secret, alg, client_id, audience).map_err(|e| {
                        CliError::from(e).with_hint(
                            "client_secret_jwt needs a secret at least as long as the hash: 32 bytes for HS256, 48 for HS384, 64 for HS512",
                        )
                    })?;
                    if let Some(lifetime) = s.lifetime {
                        b = b.lifetime(lifetime)?;
                    }
                    ClientAuth::ClientSecretJwt(b)
                }
                _ => ClientAuth::ClientSecretBasic { client_id, secret },
            };
            builder = builder.client_auth(auth);
        }
        Credential::Federated(spec, grant) => {
            // GitHub Actions asks for a token for an audience: the same aud rule as a signed
            // assertion (--aud, else the issuer, else the token URL).
            let source = spec.build(
                || {
                    Ok(match (&audience_given, &discovered) {
                        (Some(aud), _) => aud.clone(),
                        (None, Some(metadata)) => metadata.issuer().to_owned(),
                        (None, None) => s.audience()?.value().to_owned(),
                    })
                },
                s.allow_insecure_http,
            )?;
            if !spec.uses_audience() {
                aud_note = None;
            }
            let client_id = Some(client_id).filter(|c| !c.is_empty());
            let auth = if grant {
                ClientAuth::JwtBearerGrant { client_id, source }
            } else {
                ClientAuth::FederatedAssertion { client_id, source }
            };
            builder = builder.client_auth(auth);
        }
    }
    if let Some(scope) = &s.scope {
        builder = builder.scope(scope.clone());
    }
    if let Some(dpop) = dpop {
        builder = builder.dpop(dpop);
    }
    Ok(Built {
        client: builder.build()?,
        discovered,
        aud_rule,
        aud_note,
    })
}

/// The RFC 8414 metadata at the origin of `url`, when it names `url` as its token endpoint: the
/// server's issuer is then the `aud` RFC 10070 asks for. Anything else (no metadata, another
/// token endpoint, an error) gives `None`, and the token URL stays the `aud`.
async fn metadata_naming(url: &TokenUrl, allow_insecure_http: bool) -> Option<AuthServerMetadata> {
    if allow_insecure_http {
        // Discovery keeps the strict URL policy; an insecure target gets no guess from it.
        return None;
    }
    let parsed = url::Url::parse(url.as_str()).ok()?;
    let origin = parsed.origin().ascii_serialization();
    match m2m_client::discover(&origin).await {
        Ok(metadata) if metadata.token_endpoint().as_str() == url.as_str() => Some(metadata),
        Ok(metadata) => {
            tracing::info!(
                origin,
                token_endpoint = metadata.token_endpoint().as_str(),
                "the metadata at the token URL's origin names another token endpoint"
            );
            None
        }
        Err(e) => {
            tracing::info!(origin, error = %e, "no usable RFC 8414 metadata at the token URL's origin");
            None
        }
    }
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
