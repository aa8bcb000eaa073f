//! [`BearerMiddleware`]: a `reqwest_middleware` middleware that puts a [`TokenSource`] token on
//! every request and, when the API answers 401, fetches a fresh token and retries once.
//!
//! Why retry once: a 401 usually means the token was revoked or the server's clock is ahead of
//! ours; one retry with a fresh token fixes both, a second 401 means the application itself is not
//! authorised and is returned as is. Requests whose body cannot be cloned (streams) cannot be
//! resent, so their 401 is returned without a retry (the cached token is still dropped).
//!
//! DPoP-bound tokens go with a fresh proof per request (the rule is in `crate::authorization`);
//! a `401` asking for a DPoP nonce is retried once with the nonce and the same token.

use http::Extensions;
use http::header::WWW_AUTHENTICATE;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::authorization::{ApiCalls, Retry};
use crate::source::{Token, TokenSource};

/// Adds `Authorization: Bearer …` from a [`TokenSource`], or for a DPoP-bound token
/// `Authorization: DPoP …` and a fresh `DPoP` proof per request (and per retry).
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
    calls: ApiCalls,
    retry_on_401: bool,
}

impl BearerMiddleware {
    /// Middleware that retries once on a 401.
    pub fn new(source: TokenSource) -> Self {
        BearerMiddleware {
            calls: ApiCalls::new(source),
            retry_on_401: true,
        }
    }

    /// Turns the retry on 401 off (the cached token is still dropped on a 401, and a DPoP nonce
    /// the API sends is still remembered for the next request).
    pub fn without_retry(mut self) -> Self {
        self.retry_on_401 = false;
        self
    }

    fn authorize(&self, request: &mut Request, token: &Token) -> reqwest_middleware::Result<()> {
        let auth = self
            .calls
            .authorize(token, request.method().as_str(), request.url().as_str())
            .map_err(reqwest_middleware::Error::middleware)?;
        auth.apply_to(request.headers_mut())
            .map_err(reqwest_middleware::Error::middleware)?;
        Ok(())
    }

    /// Reads the answer (a nonce to remember, a refused token to drop) and says whether to retry.
    fn answered(&self, token: &Token, url: &str, response: &Response) -> Retry {
        let headers = response.headers();
        self.calls.answered(
            token,
            url,
            response.status().as_u16(),
            headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            headers.get("dpop-nonce").and_then(|v| v.to_str().ok()),
        )
    }
}

#[async_trait::async_trait]
impl Middleware for BearerMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let source = self.calls.source();
        let token = source
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let url = request.url().as_str().to_owned();
        let retry = if self.retry_on_401 {
            request.try_clone()
        } else {
            None
        };
        self.authorize(&mut request, &token)?;
        let response = next.clone().run(request, extensions).await?;
        let decision = self.answered(&token, &url, &response);
        let Some(mut retry) = retry else {
            return Ok(response);
        };
        let token = match decision {
            Retry::No => return Ok(response),
            Retry::WithNonce => token,
            Retry::WithNewToken => {
                tracing::debug!("API answered 401; retrying once with a fresh access token");
                source
                    .token()
                    .await
                    .map_err(reqwest_middleware::Error::middleware)?
            }
        };
        self.authorize(&mut retry, &token)?;
        let response = next.run(retry, extensions).await?;
        // There is no second retry; only a nonce it carries is kept for the next request.
        self.calls.remember_nonce(
            &token,
            &url,
            response
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok()),
        );
        Ok(response)
    }
}
