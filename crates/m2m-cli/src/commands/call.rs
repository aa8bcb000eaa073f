//! `m2m call`: one request to an API with this client's token (through the file cache of
//! `m2m token`), the body on stdout, status and headers on stderr with `-i`; exit 0 for 2xx and
//! 6 for any other status. A 401 `invalid_token` drops the cached token and retries once; with
//! `--dpop`, a 401 `use_dpop_nonce` is retried once with the API's nonce in a fresh proof.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use m2m_client::{DpopKey, TokenClient};
use url::Url;

use crate::authorize;
use crate::cli::CallArgs;
use crate::commands::cache::{drop_cached, fetch_cached};
use crate::commands::runtime;
use crate::commands::token::token_client;
use crate::exit::{CliError, CliResult, Exit};
use crate::settings::{self, Settings};

/// Runs `m2m call`.
pub(crate) fn run(args: &CallArgs) -> CliResult {
    let (method, url) = target(&args.target, args.data.is_some())?;
    let url = authorize::api_url(&url, args.token.client.dangerous_allow_insecure_http)
        .map_err(CliError::usage)?;
    let headers = parse_headers(&args.headers)?;
    let body = args.data.as_deref().map(read_data).transpose()?;
    let mut s = settings::resolve(&args.token.client, args.token.scope.as_deref())?;
    s.apply_dpop_flags(&args.token.dpop);
    let request = ApiRequest {
        method,
        url,
        headers,
        body,
    };
    runtime()?.block_on(call(args, &s, &request))
}

/// The request as the user gave it (sent at most twice).
struct ApiRequest {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
}

async fn call(args: &CallArgs, s: &Settings, request: &ApiRequest) -> CliResult {
    let (client, kid) = token_client(s, args.token.timeout, args.token.attempts).await?;
    let tokens = Tokens {
        client: &client,
        kid: kid.as_deref(),
        scope: s.scope.as_deref(),
        no_cache: args.no_cache,
    };
    let http = reqwest::Client::builder()
        // A redirect would carry the token to wherever the answer points.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(args.request_timeout.max(1)))
        .user_agent(concat!("m2m/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::local(format!("cannot build the HTTP client: {e}")))?;
    let mut token = tokens.get().await?;
    let mut retried = false;
    let mut nonce: Option<String> = None;
    let mut nonce_retried = false;
    let response = loop {
        let mut headers = request.headers.clone();
        authorize::strip_incoming(&mut headers);
        for (name, value) in authorize::headers_for(
            &token.secret,
            token.dpop.as_ref(),
            &request.method,
            &request.url,
            nonce.as_deref(),
        )
        .map_err(CliError::local)?
        {
            headers.insert(name, value);
        }
        let mut builder = http
            .request(request.method.clone(), request.url.clone())
            .headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(|e| {
            CliError::new(
                Exit::Transport,
                format!(
                    "no answer from {}: {}",
                    request.url,
                    m2m_client::error_chain(&e)
                ),
            )
        })?;
        if token.dpop.is_some()
            && !nonce_retried
            && let Some(asked) = authorize::nonce_asked(response.status(), response.headers())
        {
            nonce_retried = true;
            tracing::info!(
                "the API asked for a DPoP nonce (401 use_dpop_nonce): sending again with it"
            );
            nonce = Some(asked);
            continue;
        }
        if !retried && authorize::is_invalid_token(response.status(), response.headers()) {
            retried = true;
            tracing::info!("the API refused the token (401 invalid_token): fetching a new one");
            token = tokens.renew().await?;
            continue;
        }
        break response;
    };
    finish(response, args.include).await
}

/// Where `call` gets its token: the file cache, unless `--no-cache`.
struct Tokens<'a> {
    client: &'a TokenClient,
    kid: Option<&'a str>,
    scope: Option<&'a str>,
    no_cache: bool,
}

/// A token to call the API with, and the DPoP key when it is bound to one.
struct ApiToken {
    secret: String,
    dpop: Option<DpopKey>,
}

impl Tokens<'_> {
    async fn get(&self) -> CliResult<ApiToken> {
        let response = if self.no_cache {
            self.client.fetch().await?
        } else {
            fetch_cached(self.client, self.kid, self.scope, None).await?
        };
        // A Bearer answer to a DPoP request (logged by the client) is sent as Bearer.
        let dpop = if response.token_type_is(m2m_core::wire::DPOP) {
            self.client.dpop_key().cloned()
        } else {
            None
        };
        Ok(ApiToken {
            secret: response.access_token().secret().to_owned(),
            dpop,
        })
    }

    /// A new token after the API refused the cached one.
    async fn renew(&self) -> CliResult<ApiToken> {
        if !self.no_cache {
            drop_cached(self.client, self.kid, self.scope);
        }
        self.get().await
    }
}

/// Writes the answer (-i: status and headers on stderr; the body streamed to stdout) and turns
/// a non-2xx status into exit 6.
async fn finish(mut response: reqwest::Response, include: bool) -> CliResult {
    let status = response.status();
    if include {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{:?} {status}", response.version());
        for (name, value) in response.headers() {
            let _ = writeln!(err, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
        let _ = writeln!(err);
    }
    let mut out = std::io::stdout().lock();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            CliError::new(
                Exit::Transport,
                format!("the answer broke off: {}", m2m_client::error_chain(&e)),
            )
        })?;
        let Some(chunk) = chunk else { break };
        match out.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(CliError::local(format!("cannot write to stdout: {e}"))),
        }
    }
    let _ = out.flush();
    if status.is_success() {
        Ok(())
    } else {
        Err(CliError::new(
            Exit::HttpStatus,
            format!("the API answered {status}"),
        ))
    }
}

/// `[METHOD] URL`: the method defaults to GET, or POST when there is a body.
fn target(target: &[String], has_body: bool) -> CliResult<(Method, String)> {
    match target {
        [url] => Ok((
            if has_body { Method::POST } else { Method::GET },
            url.clone(),
        )),
        [method, url] => {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| CliError::usage(format!("{method:?} is not an HTTP method")))?;
            Ok((method, url.clone()))
        }
        _ => Err(CliError::usage("give the URL, or a method and the URL")),
    }
}

/// `-H 'Name: value'` flags as headers.
fn parse_headers(flags: &[String]) -> CliResult<HeaderMap> {
    let mut headers = HeaderMap::new();
    for flag in flags {
        let bad = || CliError::usage(format!("-H {flag:?}: expected 'Name: value'"));
        let (name, value) = flag.split_once(':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// `--data`: `@FILE`, `-` (stdin) or the text itself.
fn read_data(data: &str) -> CliResult<Bytes> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::local(format!("cannot read the body from stdin: {e}")))?;
        return Ok(Bytes::from(buf));
    }
    if let Some(path) = data.strip_prefix('@') {
        return std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| CliError::local(format!("cannot read --data @{path}: {e}")));
    }
    Ok(Bytes::from(data.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_defaults_and_headers_parse() {
        let url = "https://api.example/x".to_owned();
        let t =
            |v: &[&str], body| target(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), body);
        assert!(matches!(t(&[&url], false), Ok((Method::GET, _))));
        assert!(matches!(t(&[&url], true), Ok((Method::POST, _))));
        assert!(matches!(
            t(&["delete", &url], false),
            Ok((Method::DELETE, _))
        ));
        assert!(t(&["not a method", &url], false).is_err());
        let h = parse_headers(&["Accept: text/event-stream".to_owned(), "X-A:1".to_owned()]);
        assert!(matches!(h, Ok(h) if h.len() == 2));
        assert!(parse_headers(&["no colon".to_owned()]).is_err());
    }
}
