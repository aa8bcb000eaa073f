//! `m2m proxy`: a local reverse proxy that adds this client's access token to every request, so
//! programs in any language call the API without handling tokens. One `TokenSource` behind it
//! (refresh-ahead, single flight); incoming credentials removed; 401 `invalid_token` → a new
//! token and one retry. With `--dpop`, a fresh proof per request (and per retry), the upstream's
//! latest `DPoP-Nonce` in the next proofs, and one retry on `401 use_dpop_nonce`. The
//! forwarding itself is the `forward` engine.

use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use m2m_client::authorization::DpopNonces;
use m2m_client::source::{FetchToken, Token, TokenSource};
use m2m_client::{BoxFuture, DpopKey, TokenClient, TokenResponse};
use m2m_server::ConnectionLimits;
use url::Url;

use crate::authorize;
use crate::cli::ProxyArgs;
use crate::commands::token::token_client;
use crate::exit::{CliError, CliResult};
use crate::forward::{self, Forwarder, Hook, ListenAddr, Metrics, plain};
use crate::settings;

/// Runs `m2m proxy` until SIGINT or SIGTERM.
pub(crate) fn run(args: &ProxyArgs) -> CliResult {
    let listen_hint = "listen on 127.0.0.1:PORT or unix:PATH; --dangerous-listen-any only behind a firewall that admits nobody but this client's own programs";
    let listen = ListenAddr::parse(&args.listen, args.dangerous_listen_any)
        .map_err(|e| CliError::usage(format!("--listen: {e}")).with_hint(listen_hint))?;
    let admin = args
        .admin_listen
        .as_deref()
        .map(|a| ListenAddr::parse(a, args.dangerous_listen_any))
        .transpose()
        .map_err(|e| CliError::usage(format!("--admin-listen: {e}")).with_hint(listen_hint))?;
    let insecure = args.token.client.dangerous_allow_insecure_http;
    let upstream = authorize::api_url(&args.upstream, insecure)
        .map_err(|e| CliError::usage(format!("--upstream: {e}")))?;
    if upstream.query().is_some() {
        return Err(CliError::usage("--upstream: a base URL takes no ?query"));
    }
    let mut s = settings::resolve(&args.token.client, args.token.scope.as_deref())?;
    s.apply_dpop_flags(&args.token.dpop);
    // Serves many callers at once: a worker per core.
    let rt = crate::commands::server_runtime()?;
    rt.block_on(async {
        let (client, _kid) = token_client(&s, args.token.timeout, args.token.attempts).await?;
        serve(client, upstream, &listen, admin.as_ref()).await
    })
}

async fn serve(
    client: TokenClient,
    upstream: Url,
    listen: &ListenAddr,
    admin: Option<&ListenAddr>,
) -> CliResult {
    let metrics = Arc::new(Metrics::default());
    let source = TokenSource::new(CountingFetch {
        client,
        metrics: Arc::clone(&metrics),
    });
    let hook = TokenHook {
        source,
        nonces: DpopNonces::new(),
        upstream: upstream.clone(),
        bearer: Mutex::new(None),
    };
    let forwarder =
        Forwarder::new(upstream.clone(), hook, Arc::clone(&metrics)).map_err(CliError::local)?;
    let mut limits = ConnectionLimits::default();
    // Every local caller has the same address (127.0.0.1, or none on a Unix socket): a per-address
    // cap would cap the proxy itself, and a caller's connection pool can be large.
    limits.max_connections_per_ip = 0;
    forward::serve_until_signal(
        "m2m proxy",
        listen,
        admin,
        forwarder.service(),
        &metrics,
        limits,
        &upstream,
    )
    .await
    .map_err(CliError::local)
}

/// The proxy's hook: the caller's credentials out, this client's token in (with a fresh DPoP
/// proof for a bound token); a 401 `use_dpop_nonce` asks for one retry with the nonce, a 401
/// `invalid_token` throws the token away and asks for one retry.
#[derive(Debug)]
struct TokenHook {
    source: TokenSource,
    /// The upstream's latest `DPoP-Nonce` (checked and kept per origin by m2m-client).
    nonces: DpopNonces,
    /// Where every request goes (the origin its nonces belong to).
    upstream: Url,
    /// The `Authorization` value of the latest Bearer token, made once per token rather than on
    /// every request (formatting and checking a header value of a kilobyte costs more than the
    /// rest of the hook). A DPoP-bound token needs a fresh proof per request, so is never kept.
    bearer: Mutex<Option<(Token, HeaderValue)>>,
}

impl TokenHook {
    /// The kept `Authorization` value when it is `token`'s.
    fn kept_bearer(&self, token: &Token) -> Option<HeaderValue> {
        let kept = self.bearer.lock().unwrap_or_else(PoisonError::into_inner);
        kept.as_ref()
            .filter(|(t, _)| t.secret() == token.secret())
            .map(|(_, value)| value.clone())
    }
}

impl Hook for TokenHook {
    type Ticket = Token;

    async fn prepare(
        &self,
        method: &Method,
        url: &Url,
        _extensions: &Extensions,
        headers: &mut HeaderMap,
    ) -> Result<Token, Response> {
        authorize::strip_incoming(headers);
        let token = self.source.token().await.map_err(|e| {
            tracing::warn!(error = %e, "no access token for the request");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "m2m proxy: no access token (see the proxy's log)\n",
            )
        })?;
        if !token.is_dpop()
            && let Some(value) = self.kept_bearer(&token)
        {
            headers.insert(header::AUTHORIZATION, value);
            return Ok(token);
        }
        let nonce = token.dpop_key().and_then(|_| self.nonces.get(url.as_str()));
        let auth = authorize::headers_for(
            token.secret(),
            token.dpop_key(),
            method,
            url,
            nonce.as_deref(),
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot use the access token");
            plain(
                StatusCode::BAD_GATEWAY,
                "m2m proxy: unusable access token\n",
            )
        })?;
        for (name, value) in auth {
            if !token.is_dpop() && name == header::AUTHORIZATION {
                *self.bearer.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((token.clone(), value.clone()));
            }
            headers.insert(name, value);
        }
        Ok(token)
    }

    fn retry(&self, token: &Token, status: StatusCode, headers: &HeaderMap) -> bool {
        if token.is_dpop() {
            if let Some(nonce) = authorize::dpop_nonce(headers) {
                self.nonces.remember(self.upstream.as_str(), &nonce);
            }
            if authorize::nonce_asked(status, headers).is_some() {
                tracing::info!(
                    "the API asked for a DPoP nonce (401 use_dpop_nonce): sending again with it"
                );
                return true;
            }
        }
        if !authorize::is_invalid_token(status, headers) {
            return false;
        }
        tracing::info!("the API refused the token (401 invalid_token): fetching a new one");
        // Only this token: a newer one fetched meanwhile stays.
        self.source.invalidate_token(token);
        true
    }
}

/// The token client, counting its token requests for `/metrics`.
#[derive(Debug)]
struct CountingFetch {
    client: TokenClient,
    metrics: Arc<Metrics>,
}

impl FetchToken for CountingFetch {
    fn fetch(&self) -> BoxFuture<'_, Result<TokenResponse, m2m_client::Error>> {
        Box::pin(async move {
            let result = self.client.fetch().await;
            self.metrics.token_fetch(result.is_ok());
            result
        })
    }

    fn dpop_key(&self) -> Option<DpopKey> {
        self.client.dpop_key().cloned()
    }
}
