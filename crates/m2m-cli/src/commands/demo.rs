//! `m2m demo`: the whole private_key_jwt flow in one process on 127.0.0.1, in a temporary
//! directory, with no setup — server, fresh client key, registration, token, cache hit, and a
//! replayed assertion refused, and (rfc profile) a protected API — m2m-resource's layer — called
//! with a token for it, without one, and with a token for another audience. The README's first
//! command. Each step prints the `m2m` command
//! that does the same by hand, so the demo also teaches the CLI. `--profile nhs` runs the flow
//! against the NHS emulation (RS512, `aud` = token URL, `"expires_in": "599"`, NHS's errors).
//!
//! Steps are numbered by [`Steps`] as they are said: a new step is one more `steps.say(…)` with
//! its command, wherever it goes in the flow.

use std::sync::Arc;
use std::time::Instant;

use m2m_client::source::TokenSource;
use m2m_client::{Profile, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::CLIENT_ASSERTION_TYPE;
use m2m_core::clock::{Clock as _, SystemClock};
use m2m_core::jwk::Jwks;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_server::{NewClient, NewClientKeys, add_client};
use m2m_server::{Server, ServerConfig};
use serde_json::Value;

use crate::cli::{DemoArgs, DemoProfile};
use crate::commands::decode::decoded_text;
use crate::commands::{print_result, runtime};
use crate::exit::{CliError, CliResult};
use crate::spinner::with_spinner;

/// The demo client's id and key id.
const CLIENT_ID: &str = "demo-client";
const KID: &str = "demo-1";

/// The flags every client command of the demo repeats.
const CLIENT_FLAGS: &str = "--client-id demo-client --key keys/demo-1.pem --kid demo-1";

/// Numbers the demo's steps and prints each with the commands a user would type for it.
#[derive(Debug)]
struct Steps {
    next: usize,
}

impl Steps {
    fn new() -> Self {
        Steps { next: 1 }
    }

    /// Prints `N. text`, then each of `commands` as `   $ command`.
    fn say(&mut self, text: &str, commands: &[String]) -> CliResult {
        let n = self.next;
        self.next += 1;
        say(&format!("{n}. {text}"))?;
        for command in commands {
            say(&format!("   $ {command}"))?;
        }
        Ok(())
    }
}

/// What differs between the rfc and the NHS run: how the client names the server, and how the
/// server is started.
#[derive(Debug)]
struct Flavour {
    profile: DemoProfile,
}

impl Flavour {
    fn is_nhs(&self) -> bool {
        matches!(self.profile, DemoProfile::Nhs)
    }

    /// `m2m serve …` for this flavour.
    fn serve_command(&self, listen: std::net::SocketAddr) -> String {
        let profile = if self.is_nhs() { " --profile nhs" } else { "" };
        format!("m2m serve{profile} --clients clients.toml --listen {listen}")
    }

    /// How the client commands point at the server: the issuer (rfc: discovery, aud = issuer)
    /// or the token URL (NHS: aud = token URL).
    fn target_flags(&self, issuer: &str, token_url: &str) -> String {
        if self.is_nhs() {
            format!("--token-url {token_url}")
        } else {
            format!("--issuer {issuer}")
        }
    }
}

/// Runs `m2m demo`.
pub(crate) fn run(args: &DemoArgs) -> CliResult {
    let dir = tempfile::Builder::new()
        .prefix("m2m-demo-")
        .tempdir()
        .map_err(|e| CliError::local(format!("cannot create a temporary directory: {e}")))?;
    let started = Instant::now();
    let flavour = Flavour {
        profile: args.profile,
    };
    let mut steps = Steps::new();

    // 1. The client's key: what `m2m keygen` makes (RSA, RS512 for NHS).
    let key = with_spinner(
        &format!("generating an RSA-{} client key", args.bits),
        || PrivateKey::generate(KeySpec::Rsa { bits: args.bits }),
    )?;
    let key = Arc::new(key);
    steps.say(
        &format!(
            "generated the client key: RSA-{} (kid \"{KID}\", RS512) in {:.1}s",
            args.bits,
            started.elapsed().as_secs_f32()
        ),
        &[format!("m2m keygen --kid {KID} --out keys/")],
    )?;

    // The protected API's port is taken now, so the client can be registered for its URI (rfc
    // only: the NHS emulation has no resource indicators).
    let api = if flavour.is_nhs() {
        None
    } else {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| CliError::local(format!("cannot listen on 127.0.0.1: {e}")))?;
        let uri = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}/api"),
            Err(e) => return Err(CliError::local(format!("cannot read the API address: {e}"))),
        };
        Some(Api { listener, uri })
    };

    // 2. Register its public JWKS (`m2m clients add`), allowed to ask tokens for the API.
    let clients = dir.path().join("clients.toml");
    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some(KID.to_owned());
    jwk.alg = Some(Algorithm::Rs512.name().to_owned());
    jwk.use_ = Some("sig".to_owned());
    let mut client = NewClient::new(CLIENT_ID, NewClientKeys::Jwks(Jwks { keys: vec![jwk] }));
    let resource_flag = match &api {
        Some(api) => {
            client.resources = vec![api.uri.clone()];
            format!(" --resource {}", api.uri)
        }
        None => String::new(),
    };
    add_client(&clients, &client)
        .map_err(|e| CliError::local(format!("registering the client: {e}")))?;
    steps.say(
        &format!(
            "registered client \"{CLIENT_ID}\" with its public JWKS in {}",
            clients.display()
        ),
        &[format!(
            "m2m clients add --clients clients.toml --id {CLIENT_ID} --jwks keys/{KID}.jwks.json{resource_flag}"
        )],
    )?;

    let rt = runtime()?;
    rt.block_on(flow(dir.path(), &clients, key, &flavour, &mut steps, api))?;
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
    flavour: &Flavour,
    steps: &mut Steps,
    api: Option<Api>,
) -> CliResult {
    // The server: rfc or nhs profile, SQLite replay store, keys in the temp dir, a free port.
    let mut config = ServerConfig::new(clients);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.data_dir = dir.join("data");
    if flavour.is_nhs() {
        config.profile = m2m_server::Profile::Nhs;
    }
    let server = Server::start(config)
        .await
        .map_err(|e| CliError::local(format!("starting the server: {e}")))?;
    let issuer = server.issuer().to_owned();
    let token_url = server.token_url();
    let what = if flavour.is_nhs() {
        "the NHS emulation (RS512 only, aud = token URL, NHS's errors)"
    } else {
        "the authorization server"
    };
    steps.say(
        &format!("started {what}: issuer {issuer}, token endpoint {token_url}"),
        &[flavour.serve_command(server.local_addr())],
    )?;

    let result = client_side(&issuer, &token_url, key, flavour, steps, api).await;
    server
        .shutdown()
        .await
        .map_err(|e| CliError::local(format!("stopping the server: {e}")))?;
    result
}

async fn client_side(
    issuer: &str,
    token_url: &str,
    key: Arc<PrivateKey>,
    flavour: &Flavour,
    steps: &mut Steps,
    api: Option<Api>,
) -> CliResult {
    let target = flavour.target_flags(issuer, token_url);
    let signer = Arc::new(KeySigner::new(key, Algorithm::Rs512, Some(KID.to_owned()))?);
    let builder = TokenClient::builder()
        .client_id(CLIENT_ID)
        .signer(signer.clone());
    let (client, how) = if flavour.is_nhs() {
        // NHS: the token URL is the aud, typ JWT, RS512 (what the NHS profile enforces).
        let client = builder.token_url(token_url).profile(Profile::Nhs).build()?;
        (client, "aud = the token URL, typ JWT: the NHS rules")
    } else {
        // The m2m client finds the token endpoint by discovery (RFC 8414), so the assertion's
        // aud is the issuer and typ is client-authentication+jwt (RFC 10070).
        let metadata = m2m_client::discover(issuer).await?;
        let client = builder.discovered(metadata.clone()).build()?;
        (
            client,
            "found by RFC 8414 discovery: aud = the issuer, typ client-authentication+jwt (RFC 10070)",
        )
    };
    let example = signing(&client)?.build(SystemClock.now())?;
    let lint = if flavour.is_nhs() {
        format!("m2m decode --lint nhs --token-url {token_url} -")
    } else {
        format!("m2m decode --lint rfc --issuer {issuer} -")
    };
    steps.say(
        &format!("the client assertion m2m signs for each request, {how} (decoded):"),
        &[format!("m2m assertion {target} {CLIENT_FLAGS} | {lint}")],
    )?;
    print_result(&decoded_text(example.as_str(), SystemClock.now())?)?;

    let source = TokenSource::new(client.clone());
    let t0 = Instant::now();
    let first = source
        .token()
        .await
        .map_err(|e| CliError::local(e.to_string()))?;
    let fetch_time = t0.elapsed();
    let token_command = format!("m2m token {target} {CLIENT_FLAGS}");
    steps.say(
        &format!(
            "got an access token from {token_url} in {} ms (decoded):",
            fetch_time.as_millis()
        ),
        &[format!("{token_command} | m2m decode -")],
    )?;
    print_result(&decoded_text(first.secret(), SystemClock.now())?)?;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::local(format!("HTTP client: {e}")))?;
    if flavour.is_nhs() {
        // NHS's success body, as sent: `expires_in` is the string "599".
        let assertion = signing(&client)?.build(SystemClock.now())?;
        let (status, mut body) = post_assertion(&http, token_url, assertion.as_str()).await?;
        if let Some(token) = body.get_mut("access_token") {
            *token = Value::String("…".to_owned());
        }
        steps.say(
            &format!("the NHS emulation's answer as sent (HTTP {status}; access_token elided):"),
            &[format!("{token_command} --json --no-cache")],
        )?;
        print_result(&format!("   {body}"))?;
    }

    let t1 = Instant::now();
    let second = source
        .token()
        .await
        .map_err(|e| CliError::local(e.to_string()))?;
    let cached_time = t1.elapsed();
    let same = first.secret() == second.secret();
    steps.say(
        &format!(
            "asked again: {} in {:.1?} — no request sent (TokenSource refreshes ahead of expiry, one request in flight; `m2m token` keeps a file cache)",
            if same {
                "the same token, from the cache,"
            } else {
                "a different token (unexpected)"
            },
            // Debug formatting picks the unit: a cache hit takes well under a microsecond, which
            // whole microseconds showed as "0 µs".
            cached_time
        ),
        std::slice::from_ref(&token_command),
    )?;
    if !same {
        return Err(CliError::local(
            "the second call was not answered from the cache",
        ));
    }

    // Replay: send one assertion twice, as an attacker who captured it would.
    let assertion = signing(&client)?.build(SystemClock.now())?;
    let (status1, _) = post_assertion(&http, token_url, assertion.as_str()).await?;
    let (status2, body2) = post_assertion(&http, token_url, assertion.as_str()).await?;
    let field = |name: &str| {
        body2
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let message_id = match body2.get("message_id").and_then(Value::as_str) {
        Some(id) => format!(" (message_id {id})"),
        None => String::new(),
    };
    steps.say(
        &format!(
            "sent one assertion (jti {}) twice: first HTTP {status1}, replay HTTP {status2} {}: \"{}\"{message_id}",
            assertion.jti,
            field("error"),
            field("error_description")
        ),
        &[
            format!("A=$(m2m assertion {target} {CLIENT_FLAGS})"),
            format!(
                "curl -d grant_type=client_credentials -d client_assertion_type={CLIENT_ASSERTION_TYPE} -d client_assertion=$A {token_url}   # twice"
            ),
        ],
    )?;
    if status1 != 200 || status2 == 200 {
        return Err(CliError::local("the replay was not refused as expected"));
    }
    match api {
        Some(api) => call_protected_api(issuer, signer, &http, first.secret(), api, steps).await,
        None => Ok(()),
    }
}

/// The last step (rfc): a protected API — m2m-resource's layer in front of a handler, in this
/// process — called with a token for it (RFC 8707 `resource`), without one, and with the token
/// of step 5 (aud = the issuer, so another audience).
async fn call_protected_api(
    issuer: &str,
    signer: Arc<KeySigner>,
    http: &reqwest::Client,
    other_token: &str,
    api: Api,
    steps: &mut Steps,
) -> CliResult {
    let metadata = m2m_client::discover(issuer).await?;
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
    steps.say(
        &format!(
            "called the protected API {api_url} with a token for it (resource={api_url}): HTTP {ok} \"{body}\""
        ),
        &[format!(
            "curl -H \"Authorization: Bearer $(m2m token --for {api_url} --issuer {issuer} {CLIENT_FLAGS})\" {api_url}"
        )],
    )?;
    let (none, challenge, _) = call(None).await?;
    say(&format!(
        "   without a token: HTTP {none}, WWW-Authenticate: {challenge}"
    ))?;
    let (other, challenge2, _) = call(Some(other_token.to_owned())).await?;
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

/// POSTs a token request with `assertion` as a plain form, as curl would: (status, JSON body).
async fn post_assertion(
    http: &reqwest::Client,
    token_url: &str,
    assertion: &str,
) -> CliResult<(u16, Value)> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
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
        .map_err(|e| CliError::new(crate::exit::Exit::Transport, format!("token request: {e}")))?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
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
