//! `m2m demo`: the whole private_key_jwt flow in one process on 127.0.0.1, in a temporary
//! directory, with no setup — server, fresh client key, registration, token, cache hit, a
//! replayed assertion refused, and a protected API (m2m-resource's layer) called with a token for
//! it, without one, and with a token for another audience. The README's first command.

use std::sync::Arc;
use std::time::Instant;

use m2m_client::TokenClient;
use m2m_client::source::TokenSource;
use m2m_core::alg::Algorithm;
use m2m_core::assertion::CLIENT_ASSERTION_TYPE;
use m2m_core::clock::{Clock as _, SystemClock};
use m2m_core::jwk::Jwks;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_server::{NewClient, NewClientKeys, add_client};
use m2m_server::{Server, ServerConfig};
use serde_json::Value;

use crate::cli::DemoArgs;
use crate::commands::decode::decoded_text;
use crate::commands::{print_result, runtime};
use crate::exit::{CliError, CliResult};
use crate::spinner::with_spinner;

/// The demo client's id and key id.
const CLIENT_ID: &str = "demo-client";
const KID: &str = "demo-1";

/// Runs `m2m demo`.
pub(crate) fn run(args: &DemoArgs) -> CliResult {
    let dir = tempfile::Builder::new()
        .prefix("m2m-demo-")
        .tempdir()
        .map_err(|e| CliError::local(format!("cannot create a temporary directory: {e}")))?;
    let started = Instant::now();

    // 1. The client's key: what `m2m keygen` makes (RSA, RS512 for NHS).
    let key = with_spinner(
        &format!("generating an RSA-{} client key", args.bits),
        || PrivateKey::generate(KeySpec::Rsa { bits: args.bits }),
    )?;
    let key = Arc::new(key);
    say(&format!(
        "1. generated the client key: RSA-{} (kid \"{KID}\", RS512) in {:.1}s",
        args.bits,
        started.elapsed().as_secs_f32()
    ))?;

    // The protected API's port is taken now, so the client can be registered for its URI.
    let api_listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| CliError::local(format!("cannot listen on 127.0.0.1: {e}")))?;
    let api_uri = match api_listener.local_addr() {
        Ok(addr) => format!("http://{addr}/api"),
        Err(e) => return Err(CliError::local(format!("cannot read the API address: {e}"))),
    };

    // 2. Register its public JWKS (`m2m clients add`), allowed to ask tokens for the API.
    let clients = dir.path().join("clients.toml");
    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some(KID.to_owned());
    jwk.alg = Some(Algorithm::Rs512.name().to_owned());
    jwk.use_ = Some("sig".to_owned());
    let mut client = NewClient::new(CLIENT_ID, NewClientKeys::Jwks(Jwks { keys: vec![jwk] }));
    client.resources = vec![api_uri.clone()];
    add_client(&clients, &client)
        .map_err(|e| CliError::local(format!("registering the client: {e}")))?;
    say(&format!(
        "2. registered client \"{CLIENT_ID}\" with its public JWKS in {}",
        clients.display()
    ))?;

    let rt = runtime()?;
    let api = Api {
        listener: api_listener,
        uri: api_uri,
    };
    rt.block_on(flow(dir.path(), &clients, key, api))?;
    say(&format!(
        "done in {:.1}s; the temporary directory is removed.",
        started.elapsed().as_secs_f32()
    ))?;
    drop(dir);
    Ok(())
}

/// The protected API's listener and resource URI.
struct Api {
    listener: std::net::TcpListener,
    uri: String,
}

async fn flow(
    dir: &std::path::Path,
    clients: &std::path::Path,
    key: Arc<PrivateKey>,
    api: Api,
) -> CliResult {
    // 3. The server: rfc profile, SQLite replay store, keys in the temp dir, a free port.
    let mut config = ServerConfig::new(clients);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.data_dir = dir.join("data");
    let server = Server::start(config)
        .await
        .map_err(|e| CliError::local(format!("starting the server: {e}")))?;
    let issuer = server.issuer().to_owned();
    let token_url = server.token_url();
    say(&format!(
        "3. started the authorization server: issuer {issuer}, token endpoint {token_url}"
    ))?;

    let result = client_side(&issuer, &token_url, key, api).await;
    server
        .shutdown()
        .await
        .map_err(|e| CliError::local(format!("stopping the server: {e}")))?;
    result
}

async fn client_side(issuer: &str, token_url: &str, key: Arc<PrivateKey>, api: Api) -> CliResult {
    // 4. The m2m client finds the token endpoint by discovery (RFC 8414), so the assertion's
    //    aud is the issuer and typ is client-authentication+jwt (RFC 10070).
    let metadata = m2m_client::discover(issuer).await?;
    let signer = Arc::new(KeySigner::new(key, Algorithm::Rs512, Some(KID.to_owned()))?);
    let client = TokenClient::builder()
        .discovered(metadata.clone())
        .client_id(CLIENT_ID)
        .signer(signer.clone())
        .build()?;
    let example = signing(&client)?.build(SystemClock.now())?;
    say("4. the client assertion m2m signs for each request (decoded):")?;
    print_result(&decoded_text(example.as_str(), SystemClock.now())?)?;

    let source = TokenSource::new(client.clone());
    let t0 = Instant::now();
    let first = source
        .token()
        .await
        .map_err(|e| CliError::local(e.to_string()))?;
    let fetch_time = t0.elapsed();
    say(&format!(
        "5. got an access token from {token_url} in {} ms (decoded):",
        fetch_time.as_millis()
    ))?;
    print_result(&decoded_text(first.secret(), SystemClock.now())?)?;

    let t1 = Instant::now();
    let second = source
        .token()
        .await
        .map_err(|e| CliError::local(e.to_string()))?;
    let cached_time = t1.elapsed();
    let same = first.secret() == second.secret();
    say(&format!(
        "6. asked again: {} in {:.1?} — no request sent (TokenSource refreshes ahead of expiry, one request in flight)",
        if same {
            "the same token, from the cache,"
        } else {
            "a different token (unexpected)"
        },
        // Debug formatting picks the unit: a cache hit takes well under a microsecond, which
        // whole microseconds showed as "0 µs".
        cached_time
    ))?;
    if !same {
        return Err(CliError::local(
            "the second call was not answered from the cache",
        ));
    }

    // 7. Replay: send one assertion twice, as an attacker who captured it would.
    let assertion = signing(&client)?.build(SystemClock.now())?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::local(format!("HTTP client: {e}")))?;
    let send = || async {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = http
            .post(token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                CliError::new(crate::exit::Exit::Transport, format!("token request: {e}"))
            })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok::<_, CliError>((status, body))
    };
    let (status1, _) = send().await?;
    let (status2, body2) = send().await?;
    let field = |name: &str| {
        body2
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    say(&format!(
        "7. sent one assertion (jti {}) twice: first HTTP {status1}, replay HTTP {status2} {}: \"{}\"",
        assertion.jti,
        field("error"),
        field("error_description")
    ))?;
    if status1 != 200 || status2 == 200 {
        return Err(CliError::local("the replay was not refused as expected"));
    }

    // 8. A protected API: m2m-resource's layer in front of a handler, in this process.
    let for_api = TokenClient::builder()
        .discovered(metadata)
        .client_id(CLIENT_ID)
        .signer(signer)
        .resource(api.uri.as_str())
        .build()?
        .fetch()
        .await?;
    let api_url = api.uri.clone();
    let server = protected_api(issuer, api).await?;
    let call = |token: Option<String>| {
        let (http, url) = (http.clone(), api_url.clone());
        async move {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|e| {
                CliError::new(
                    crate::exit::Exit::Transport,
                    format!("calling the API: {e}"),
                )
            })?;
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = response.text().await.unwrap_or_default();
            Ok::<_, CliError>((status, challenge, body))
        }
    };
    let (ok, _, body) = call(Some(for_api.access_token().secret().to_owned())).await?;
    say(&format!(
        "8. called the protected API {api_url} with a token for it (resource={api_url}): HTTP {ok} \"{body}\""
    ))?;
    let (none, challenge, _) = call(None).await?;
    say(&format!(
        "   without a token: HTTP {none}, WWW-Authenticate: {challenge}"
    ))?;
    let (other, challenge2, _) = call(Some(first.secret().to_owned())).await?;
    say(&format!(
        "   with the token from step 5 (aud = the issuer, another audience): HTTP {other}, WWW-Authenticate: {challenge2}"
    ))?;
    server.abort();
    if ok != 200 || none != 401 || other != 401 || !challenge2.contains("invalid_token") {
        return Err(CliError::local(
            "the protected API did not answer 200 / 401 / 401 invalid_token as expected",
        ));
    }
    Ok(())
}

/// The demo API: `GET /api` behind [`RequireBearerLayer`], trusting the demo server (keys by
/// discovery), with its RFC 9728 document.
async fn protected_api(issuer: &str, api: Api) -> CliResult<tokio::task::JoinHandle<()>> {
    use m2m_resource::{Caller, RequireBearerLayer, ResourceMetadata, TrustedIssuer, Verifier};
    let verifier = Verifier::builder(api.uri.as_str())
        .issuer(TrustedIssuer::discover(issuer))
        .build()
        .map_err(|e| CliError::local(format!("the API's verifier: {e}")))?;
    let metadata = ResourceMetadata::from_identifier(&api.uri, vec![issuer.to_owned()])
        .map_err(|e| CliError::local(format!("the API's metadata: {e}")))?;
    let app = axum::Router::new()
        .route(
            "/api",
            axum::routing::get(|caller: Caller| async move {
                format!(
                    "hello {}, scopes [{}]",
                    caller.client_id(),
                    caller.scopes().join(" ")
                )
            }),
        )
        .layer(RequireBearerLayer::new(verifier).challenge(metadata.challenge()))
        .merge(metadata.router());
    api.listener
        .set_nonblocking(true)
        .map_err(|e| CliError::local(format!("the API listener: {e}")))?;
    let listener = tokio::net::TcpListener::from_std(api.listener)
        .map_err(|e| CliError::local(format!("the API listener: {e}")))?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the demo API stopped");
        }
    }))
}

/// Demo narration is the demo's result, so it goes to stdout with the decoded tokens.
fn say(line: &str) -> CliResult {
    print_result(line)
}

/// The demo client's assertion builder (it signs with a private key).
fn signing(client: &TokenClient) -> CliResult<&m2m_core::assertion::AssertionBuilder> {
    client
        .assertion_builder()
        .ok_or_else(|| CliError::local("the demo client does not sign assertions"))
}
