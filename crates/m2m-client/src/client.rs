//! [`TokenClient`]: one call that signs a fresh assertion, POSTs the token request and retries
//! what can succeed on retry; and its builder, which refuses incomplete configurations.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use m2m_core::assertion::{AssertionBuilder, Audience, CLIENT_ASSERTION_TYPE};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::nhs::Environment;
use m2m_core::signer::Signer;

use crate::discovery::AuthServerMetadata;
use crate::error::{ConfigError, Error};
use crate::profile::Profile;
use crate::reqwest_transport::{ReqwestTransport, TransportConfig};
use crate::response::{ResponseParts, TokenResponse, parse_response};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::token_url::{TokenUrl, UrlPolicy};
use crate::transport::{FormPost, TokenTransport};

/// Form fields the client sets itself; extra parameters may not replace them.
const RESERVED_PARAMS: [&str; 3] = ["grant_type", "client_assertion_type", "client_assertion"];

/// Gets access tokens with the client-credentials grant and a signed client assertion.
///
/// Cheap to clone: everything is shared behind an `Arc`.
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

struct Inner {
    token_url: TokenUrl,
    profile: Profile,
    assertions: AssertionBuilder,
    params: Vec<(String, String)>,
    retry: RetryPolicy,
    transport: Arc<dyn TokenTransport>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("TokenClient")
            .field("token_url", &i.token_url.as_str())
            .field("profile", &i.profile)
            .field("client_id", &i.assertions.client_id())
            .field("audience", i.assertions.audience())
            .field(
                "params",
                &i.params.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("retry", &i.retry)
            .field("transport", &i.transport)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// Starts a configuration.
    pub fn builder() -> TokenClientBuilder {
        TokenClientBuilder::default()
    }

    /// Gets a token, retrying network errors, timeouts, 5xx and 429 as the retry policy allows.
    /// Every attempt carries a freshly signed assertion with a new `jti`.
    pub async fn fetch(&self) -> Result<TokenResponse, Error> {
        let retry = self.inner.retry;
        let mut attempt = 1;
        loop {
            let error = match self.fetch_once().await {
                Ok(token) => return Ok(token),
                Err(e) => e,
            };
            match retry.decide(attempt, &error, rand::random::<f64>()) {
                RetryDecision::GiveUp => {
                    tracing::debug!(attempt, error = %error, "token request failed; not retrying");
                    return Err(error);
                }
                RetryDecision::RetryAfter(delay) => {
                    tracing::warn!(
                        attempt,
                        max_attempts = retry.attempts(),
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %error,
                        "token request failed; retrying with a fresh assertion"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Sends exactly one token request (no retries), with a fresh assertion.
    pub async fn fetch_once(&self) -> Result<TokenResponse, Error> {
        let inner = &self.inner;
        let assertion = inner
            .assertions
            .build(inner.clock.now())
            .map_err(Error::Assertion)?;
        let request = FormPost {
            url: inner.token_url.url().clone(),
            body: form_body(assertion.as_str(), &inner.params),
        };
        tracing::debug!(token_url = %inner.token_url, jti = %assertion.jti, "sending token request");
        let response = inner.transport.post_form(&request).await?;
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(inner.clock.now().as_millis());
        let parts = ResponseParts {
            status: response.status,
            content_type: response.content_type.as_deref(),
            retry_after: response.retry_after.as_deref(),
            location: response.location.as_deref(),
            body: &response.body,
        };
        let result = parse_response(parts, now);
        match &result {
            Ok(token) => tracing::debug!(
                status = response.status,
                expires_in = token.expires_in().map(|d| d.as_secs()),
                "token received"
            ),
            Err(e) => {
                tracing::debug!(status = response.status, error = %e, "token request refused")
            }
        }
        result
    }

    /// Where token requests go.
    pub fn token_url(&self) -> &TokenUrl {
        &self.inner.token_url
    }

    /// The profile in force.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// The assertion `aud`, for display and diagnostics.
    pub fn audience(&self) -> &Audience {
        self.inner.assertions.audience()
    }

    /// The client id (`iss` and `sub`).
    pub fn client_id(&self) -> &str {
        self.inner.assertions.client_id()
    }

    /// The assertion builder this client signs with (e.g. to show a sample assertion).
    pub fn assertion_builder(&self) -> &AssertionBuilder {
        &self.inner.assertions
    }

    /// The clock assertions are dated with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }
}

/// The urlencoded token request (RFC 7523 §2.2). A plain function, so the serializer (which is
/// not `Send`) never lives across an `.await`.
fn form_body(assertion: &str, params: &[(String, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
    form.append_pair("client_assertion", assertion);
    for (name, value) in params {
        form.append_pair(name, value);
    }
    form.finish()
}

/// How the token endpoint was given; decides the default audience.
#[derive(Clone, Debug)]
enum Endpoint {
    Url(String),
    Nhs(Environment),
    Discovered(Box<AuthServerMetadata>),
}

/// Configuration of a [`TokenClient`]. Required: an endpoint ([`TokenClientBuilder::token_url`],
/// [`TokenClientBuilder::nhs`] or [`TokenClientBuilder::discovered`]), a client id and a signer.
#[derive(Default)]
pub struct TokenClientBuilder {
    endpoint: Option<Endpoint>,
    profile: Option<Profile>,
    client_id: Option<String>,
    signer: Option<Arc<dyn Signer>>,
    audience: Option<String>,
    lifetime: Option<Duration>,
    params: Vec<(String, String)>,
    retry: RetryPolicy,
    transport_config: TransportConfig,
    transport: Option<Arc<dyn TokenTransport>>,
    clock: Option<Arc<dyn Clock>>,
    url_policy: UrlPolicy,
}

impl fmt::Debug for TokenClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("client_id", &self.client_id)
            .field("signer", &self.signer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenClientBuilder {
    /// The token endpoint URL. `aud` will be this URL; an `api.service.nhs.uk` host selects the
    /// NHS profile.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::Url(url.into()));
        self
    }

    /// An NHS England API platform environment: its token URL, `aud` = that URL, NHS profile.
    pub fn nhs(mut self, environment: Environment) -> Self {
        self.endpoint = Some(Endpoint::Nhs(environment));
        self
    }

    /// Discovered metadata (see [`crate::discover`]): its token endpoint, `aud` = the issuer,
    /// `typ` = `client-authentication+jwt`.
    pub fn discovered(mut self, metadata: AuthServerMetadata) -> Self {
        self.endpoint = Some(Endpoint::Discovered(Box::new(metadata)));
        self
    }

    /// Overrides the profile implied by the endpoint (e.g. NHS rules against an emulator).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The client id: `iss` and `sub` of the assertion (NHS: the app's API key).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Signs the assertions.
    pub fn signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Sets `aud` explicitly, overriding what the endpoint implies.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience = Some(aud.into());
        self
    }

    /// Assertion lifetime (default 60 s, at most 300 s).
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// The `scope` form parameter.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.param("scope", scope)
    }

    /// The `resource` form parameter (RFC 8707).
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// The `audience` form parameter (Auth0 and others; not the assertion's `aud`).
    pub fn audience_param(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
    }

    /// Any other form parameter. The client's own (`grant_type`, `client_assertion*`) are refused
    /// at build time.
    pub fn extra_param(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.param(name, value)
    }

    fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Retry policy (default: 3 attempts, full-jitter backoff 200 ms .. 5 s).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Connect timeout of the default transport (default 10 s; `None`: none).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transport_config.connect_timeout = timeout;
        self
    }

    /// Total per-attempt timeout of the default transport (default 30 s; `None`: none).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transport_config.timeout = timeout;
        self
    }

    /// `User-Agent` of the default transport.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.transport_config.user_agent = user_agent.into();
        self
    }

    /// Sends requests through `transport` instead of the default reqwest one (timeouts and user
    /// agent set on this builder then do not apply).
    pub fn transport(mut self, transport: Arc<dyn TokenTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The clock that dates assertions (default: system time).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Allows plain http to non-loopback hosts. The assertion and token then travel in clear text:
    /// only for closed test networks.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.url_policy = self.url_policy.dangerous_allow_insecure_http();
        self
    }

    /// Checks the configuration and builds the client. Nothing is sent.
    pub fn build(self) -> Result<TokenClient, Error> {
        let endpoint = self.endpoint.ok_or(ConfigError::Missing(
            "token endpoint (set token_url, an NHS environment or discovered metadata)",
        ))?;
        let client_id = self
            .client_id
            .filter(|c| !c.is_empty())
            .ok_or(ConfigError::Missing("client id"))?;
        let signer = self
            .signer
            .ok_or(ConfigError::Missing("signer (the private key)"))?;
        let (token_url, implied_profile, default_audience) = match endpoint {
            Endpoint::Url(url) => {
                let url = TokenUrl::parse_with(&url, self.url_policy)?;
                let aud = Audience::TokenUrl(url.as_str().to_owned());
                (url.clone(), Profile::for_token_url(&url), aud)
            }
            Endpoint::Nhs(env) => {
                let url = TokenUrl::parse(env.token_url())?;
                let aud = Audience::TokenUrl(url.as_str().to_owned());
                (url, Profile::Nhs, aud)
            }
            Endpoint::Discovered(m) => {
                let url = m.token_endpoint().clone();
                let aud = Audience::Issuer(m.issuer().to_owned());
                (url.clone(), Profile::for_token_url(&url), aud)
            }
        };
        let profile = self.profile.unwrap_or(implied_profile);
        let audience = match self.audience {
            Some(aud) if aud.is_empty() => {
                return Err(ConfigError::Missing("audience (it is empty)").into());
            }
            Some(aud) => Audience::Explicit(aud),
            None => default_audience,
        };
        profile.check_signer(signer.as_ref())?;
        if let Some((name, _)) = self
            .params
            .iter()
            .find(|(n, _)| RESERVED_PARAMS.contains(&n.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "form parameter {name} is set by the client and cannot be overridden"
            ))
            .into());
        }
        let mut assertions = AssertionBuilder::new(signer, client_id, audience);
        if let Some(lifetime) = self.lifetime {
            assertions = assertions
                .lifetime(lifetime)
                .map_err(|e| ConfigError::Invalid(format!("assertion lifetime: {e}")))?;
        }
        let transport: Arc<dyn TokenTransport> = match self.transport {
            Some(t) => t,
            None => Arc::new(ReqwestTransport::new(&self.transport_config)?),
        };
        Ok(TokenClient {
            inner: Arc::new(Inner {
                token_url,
                profile,
                assertions,
                params: self.params,
                retry: self.retry,
                transport,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            }),
        })
    }
}
