//! [`BearerMiddleware`]: a `reqwest_middleware` middleware that puts a [`TokenSource`] token on
//! every request and, when the API answers 401, fetches a fresh token and retries once.
//!
//! Why retry once: a 401 usually means the token was revoked or the server's clock is ahead of
//! ours; one retry with a fresh token fixes both, a second 401 means the application itself is not
//! authorised and is returned as is. Requests whose body cannot be cloned (streams) cannot be
//! resent, so their 401 is returned without a retry (the cached token is still dropped).

use http::Extensions;
use http::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use crate::source::{Token, TokenSource};

/// Adds `Authorization: Bearer …` from a [`TokenSource`].
///
/// ```no_run
/// # async fn run(tokens: m2m_client::source::TokenSource) -> Result<(), Box<dyn std::error::Error>> {
/// use m2m_client::integrations::middleware::BearerMiddleware;
///
/// let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(BearerMiddleware::new(tokens))
///     .build();
/// let hello = api.get("https://sandbox.api.service.nhs.uk/hello-world/hello/application")
///     .send().await?.text().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BearerMiddleware {
    source: TokenSource,
    retry_on_401: bool,
}

impl BearerMiddleware {
    /// Middleware that retries once on a 401.
    pub fn new(source: TokenSource) -> Self {
        BearerMiddleware {
            source,
            retry_on_401: true,
        }
    }

    /// Turns the retry on 401 off (the cached token is still dropped on a 401).
    pub fn without_retry(mut self) -> Self {
        self.retry_on_401 = false;
        self
    }
}

fn authorize(request: &mut Request, token: &Token) -> reqwest_middleware::Result<()> {
    let mut value = HeaderValue::from_str(&token.bearer()).map_err(|_| {
        // The message never includes the token.
        reqwest_middleware::Error::middleware(InvalidTokenChars)
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// The token holds characters an HTTP header cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("the access token contains characters that are not allowed in an HTTP header")]
struct InvalidTokenChars;

#[async_trait::async_trait]
impl Middleware for BearerMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let token = self
            .source
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        authorize(&mut request, &token)?;
        let retry = if self.retry_on_401 {
            request.try_clone()
        } else {
            None
        };
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.source.invalidate_token(&token);
        let Some(mut retry) = retry else {
            return Ok(response);
        };
        tracing::debug!("API answered 401; retrying once with a fresh access token");
        let fresh = self
            .source
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        authorize(&mut retry, &fresh)?;
        next.run(retry, extensions).await
    }
}
