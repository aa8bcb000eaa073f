//! `m2m introspect`: asks an authorization server whether a token is active (RFC 7662), the
//! caller authenticated exactly as `m2m token` authenticates (the same settings, the same
//! `ClientAuth` of m2m_client, a fresh credential for the request), and prints the server's
//! JSON answer.

use std::time::{Duration, SystemTime};

use m2m_client::{
    FormPost, ReqwestTransport, ResponseParts, TokenTransport as _, TokenUrl, TransportConfig,
    UrlPolicy,
};
use m2m_core::clock::{Clock as _, SystemClock};
use serde_json::Value;

use crate::cli::IntrospectArgs;
use crate::commands::token::build_client;
use crate::commands::{print_result, read_stdin_arg, runtime};
use crate::exit::{CliError, CliResult, Exit};
use crate::settings::{self, Target};

/// Runs `m2m introspect`.
pub(crate) fn run(args: &IntrospectArgs) -> CliResult {
    let token = read_stdin_arg(&args.token, "token")?;
    let s = settings::resolve(&args.client, None)?;
    let endpoint = s.require_endpoint()?.clone();
    s.require_client_id()?;
    let rt = runtime()?;
    let answer = rt.block_on(async {
        let timeout = Duration::from_secs(args.timeout.max(1));
        let (client, metadata) = build_client(&s, &endpoint, timeout, 1).await?;
        let url = introspection_url(args, &s, &endpoint, metadata.as_ref())?;
        if client.client_auth().grant_type() != m2m_core::wire::GRANT_CLIENT_CREDENTIALS {
            return Err(CliError::usage(
                "introspection needs client authentication, and --grant jwt-bearer authenticates no client: drop --grant to present the assertion as the client assertion",
            ));
        }
        // A federated assertion is read (file, command, GitHub) here, as for a token request.
        let parts = client.client_auth().credentials(SystemClock.now()).await?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", &token);
        if let Some(hint) = &args.token_type_hint {
            form.append_pair("token_type_hint", hint);
        }
        for (name, value) in &parts.form {
            form.append_pair(name, value);
        }
        let request = FormPost {
            url: url.url().clone(),
            headers: parts.headers.clone(),
            body: form.finish(),
        };
        let transport = ReqwestTransport::new(&TransportConfig {
            timeout: Some(timeout),
            user_agent: concat!("m2m/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..TransportConfig::default()
        })
        .map_err(m2m_client::Error::Config)?;
        let response = transport
            .post_form(&request)
            .await
            .map_err(m2m_client::Error::from)?;
        if !(200..300).contains(&response.status) {
            // The server's OAuth error, as `m2m token` reports one (exit 5, with a hint).
            let parts = ResponseParts {
                status: response.status,
                content_type: response.content_type.as_deref(),
                retry_after: response.retry_after.as_deref(),
                location: response.location.as_deref(),
                body: &response.body,
            };
            return Err(match m2m_client::parse_response(parts, SystemTime::now()) {
                Err(e) => CliError::from(e),
                Ok(_) => CliError::new(
                    Exit::Transport,
                    format!("introspection answered HTTP {}", response.status),
                ),
            });
        }
        let json: Value = serde_json::from_slice(&response.body).map_err(|e| {
            CliError::new(
                Exit::Transport,
                format!("the introspection response is not JSON: {e}"),
            )
        })?;
        if !json.get("active").is_some_and(Value::is_boolean) {
            return Err(CliError::new(
                Exit::Transport,
                "the introspection response has no boolean \"active\" member (RFC 7662 §2.2)",
            ));
        }
        Ok::<_, CliError>(json)
    })?;
    let text = serde_json::to_string_pretty(&answer)
        .map_err(|e| CliError::local(format!("cannot encode JSON: {e}")))?;
    print_result(&text)
}

/// Where the request goes: `--introspection-url`, else the discovered metadata's
/// `introspection_endpoint`. Under the same transport rule as the token URL.
fn introspection_url(
    args: &IntrospectArgs,
    s: &settings::Settings,
    endpoint: &Target,
    metadata: Option<&m2m_client::AuthServerMetadata>,
) -> CliResult<TokenUrl> {
    let policy = if s.allow_insecure_http {
        UrlPolicy::default().dangerous_allow_insecure_http()
    } else {
        UrlPolicy::default()
    };
    let (url, from) = match (&args.introspection_url, metadata) {
        (Some(url), _) => (url.clone(), "--introspection-url"),
        (None, Some(metadata)) => {
            let url = metadata
                .extra()
                .get("introspection_endpoint")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    CliError::local(format!(
                        "the metadata of {} publishes no introspection_endpoint",
                        metadata.issuer()
                    ))
                    .with_hint("pass --introspection-url URL")
                })?;
            (url.to_owned(), "the server's metadata")
        }
        (None, None) => {
            let hint = match endpoint {
                Target::Endpoint { .. } => {
                    "pass --issuer URL alone (discovery finds the introspection endpoint), or --introspection-url URL"
                }
                Target::Issuer(_) => "pass --introspection-url URL",
            };
            return Err(
                CliError::usage("no introspection endpoint to send the token to").with_hint(hint),
            );
        }
    };
    TokenUrl::parse_with(&url, policy)
        .map_err(|e| CliError::local(format!("introspection URL from {from}: {e}")))
}
