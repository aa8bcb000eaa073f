//! `m2m token`: gets an access token with m2m_client and prints it (or the JSON response, or an
//! `Authorization` header line), through the per-profile file cache unless `--no-cache`.

use std::sync::Arc;
use std::time::Duration;

use m2m_client::{ClientAuth, RetryPolicy, TokenClient, TokenResponse};
use m2m_core::hmac::SecretJwtBuilder;
use m2m_core::secret::ClientSecret;
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
    let endpoint = s.require_endpoint()?.clone();
    s.require_client_id()?;
    let secret = s.client_secret()?;
    let credential = match (&secret, s.key.is_some(), s.auth_method.as_deref()) {
        (_, _, Some("private_key_jwt")) | (None, _, None) => {
            Credential::Key(s.signer(endpoint.implied_profile())?)
        }
        (Some(_), true, None) => {
            return Err(CliError::usage(
                "both a key and a client secret are given: choose the method with --auth-method",
            ));
        }
        (Some(secret), false, method) => {
            Credential::Secret(secret.clone(), method.map(str::to_owned))
        }
        (None, _, Some(method)) => {
            return Err(CliError::usage(format!(
                "--auth-method {method} needs a client secret"
            ))
            .with_hint("pass --client-secret-file FILE, --client-secret-stdin or set M2M_CLIENT_SECRET"));
        }
        (Some(secret), true, Some(method)) => {
            Credential::Secret(secret.clone(), Some(method.to_owned()))
        }
    };
    let rt = runtime()?;
    let response = rt.block_on(fetch(args, &s, endpoint, credential))?;
    print_result(&render(args, &response)?)
}

/// What the client proves itself with.
enum Credential {
    /// A private key (`private_key_jwt`).
    Key(m2m_core::signer::KeySigner),
    /// A client secret, with the method asked for (`None`: chosen from metadata, else Basic).
    Secret(ClientSecret, Option<String>),
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

async fn fetch(
    args: &TokenArgs,
    s: &Settings,
    endpoint: Target,
    credential: Credential,
) -> CliResult<TokenResponse> {
    let kid = match &credential {
        Credential::Key(signer) => m2m_core::signer::Signer::key_id(signer).map(str::to_owned),
        Credential::Secret(..) => None,
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut builder = TokenClient::builder()
        .timeout(Some(timeout))
        .connect_timeout(Some(CONNECT_TIMEOUT.min(timeout)))
        .retry_policy(RetryPolicy::default().max_attempts(args.attempts))
        .user_agent(concat!("m2m/", env!("CARGO_PKG_VERSION")));
    if s.allow_insecure_http {
        eprintln!(
            "warning: --dangerous-allow-insecure-http: the assertion and token may travel in clear text"
        );
        builder = builder.dangerous_allow_insecure_http();
    }
    let mut metadata_methods: Option<Vec<String>> = None;
    let mut audience_given = None;
    builder = match &endpoint {
        Target::Endpoint { endpoint, issuer } => {
            audience_given = issuer.clone();
            builder.endpoint(endpoint.clone())
        }
        Target::Issuer(issuer) => {
            let metadata = m2m_client::discover(issuer).await?;
            metadata_methods = metadata
                .token_endpoint_auth_methods()
                .map(<[String]>::to_vec);
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
            let method = secret_method(asked.as_deref(), metadata_methods.as_deref());
            let auth = match method.as_str() {
                "client_secret_post" => ClientAuth::ClientSecretPost { client_id, secret },
                "client_secret_jwt" => {
                    let alg = s.hmac_alg.unwrap_or_default();
                    let mut b = SecretJwtBuilder::new(secret, alg, client_id, s.audience()?)
                        .map_err(|e| {
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
    }
    if let Some(scope) = &s.scope {
        builder = builder.scope(scope.clone());
    }
    let client = builder.build()?;
    if args.no_cache {
        return Ok(client.fetch().await?);
    }
    crate::commands::cache::fetch_cached(&client, kid.as_deref(), s.scope.as_deref()).await
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
