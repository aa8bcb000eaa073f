//! [`TokenClient`]: one call that signs a fresh assertion, POSTs the token request and retries
//! what can succeed on retry; and its builder, which refuses incomplete configurations.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::nhs::Environment;
use m2m_core::signer::Signer;
use m2m_core::wire::{DPOP, ERROR_USE_DPOP_NONCE};

use crate::client_auth::ClientAuth;
use crate::discovery::AuthServerMetadata;
use crate::dpop::{DpopKey, DpopState};
use crate::endpoint::Endpoint;
use crate::error::{ConfigError, Error};
use crate::profile::Profile;
use crate::reqwest_transport::{ReqwestTransport, TransportConfig};
use crate::response::{ResponseParts, TokenResponse, parse_response};
use crate::retry::{RetryDecision, RetryPolicy};
use crate::token_url::{TokenUrl, UrlPolicy};
use crate::transport::{FormPost, TokenTransport, TransportResponse};

/// The form field the client sets itself whatever the authentication method; extra parameters
/// may not replace it (nor the method's own, [`ClientAuth::form_field_names`]).
const GRANT_TYPE: &str = "grant_type";

/// Gets access tokens with the client-credentials grant, authenticated by a [`ClientAuth`]
/// (a signed client assertion by default).
///
/// Cheap to clone: everything is shared behind an `Arc`.
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

struct Inner {
    token_url: TokenUrl,
    profile: Profile,
    auth: ClientAuth,
    params: Vec<(String, String)>,
    retry: RetryPolicy,
    transport: Arc<dyn TokenTransport>,
    clock: Arc<dyn Clock>,
    dpop: Option<DpopState>,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("TokenClient")
            .field("token_url", &i.token_url.as_str())
            .field("profile", &i.profile)
            .field("client_id", &i.auth.client_id())
            .field("auth", &i.auth.method_name())
            .field("audience", &i.auth.audience())
            .field(
                "params",
                &i.params.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("retry", &i.retry)
            .field("transport", &i.transport)
            .field("dpop", &i.dpop.as_ref().map(|d| &d.key))
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// Starts a configuration.
    pub fn builder() -> TokenClientBuilder {
        TokenClientBuilder::default()
    }

    /// Gets a token, retrying network errors, timeouts, 5xx and 429 as the retry policy allows.
    /// Every attempt carries fresh credentials ([`ClientAuth::apply`]): for `private_key_jwt`,
    /// a freshly signed assertion with a new `jti`.
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

    /// Sends one token request (no retries), with fresh credentials. With DPoP, a `400
    /// use_dpop_nonce` answer that carries a `DPoP-Nonce` is followed by exactly one more request
    /// with that nonce in a fresh proof and a fresh client assertion (RFC 9449 §8): the nonce
    /// round is part of one attempt.
    pub async fn fetch_once(&self) -> Result<TokenResponse, Error> {
        let (result, nonce) = self.post_once().await?;
        let Some(dpop) = &self.inner.dpop else {
            return result;
        };
        let Some(nonce) = nonce else {
            return self.check_token_type(result);
        };
        dpop.set_nonce(&nonce);
        if !asks_for_nonce(&result) {
            return self.check_token_type(result);
        }
        tracing::debug!(
            "the token endpoint asked for a DPoP nonce; sending the request again with it"
        );
        let (result, nonce) = self.post_once().await?;
        if let Some(nonce) = nonce {
            dpop.set_nonce(&nonce);
        }
        self.check_token_type(result)
    }

    /// A DPoP request answered with a Bearer token: accepted (the server does not support or
    /// does not want DPoP for this client), and logged, as the token is not bound to the key.
    fn check_token_type(
        &self,
        result: Result<TokenResponse, Error>,
    ) -> Result<TokenResponse, Error> {
        if let Ok(token) = &result
            && !token.token_type_is(DPOP)
        {
            tracing::warn!(
                token_type = token.token_type().unwrap_or("(none)"),
                "asked for a DPoP-bound token, got another type: the token is not bound to the \
                 DPoP key (the server may not support DPoP)"
            );
        }
        result
    }

    /// One POST: the parsed answer, and the `DPoP-Nonce` it carried. A transport failure is the
    /// outer error.
    async fn post_once(&self) -> Result<(Result<TokenResponse, Error>, Option<String>), Error> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let auth = inner.auth.credentials(now).await?;
        let mut headers = auth.headers;
        let mut proof_jti = None;
        if let Some(dpop) = &inner.dpop {
            let proof = dpop.token_request_proof(inner.token_url.as_str(), now)?;
            proof_jti = Some(proof.jti().to_owned());
            headers.push((DPOP.to_owned(), proof.into_string()));
        }
        let request = FormPost {
            url: inner.token_url.url().clone(),
            body: form_body(inner.auth.grant_type(), &auth.form, &inner.params),
            headers,
        };
        tracing::debug!(
            token_url = %inner.token_url,
            auth = inner.auth.method_name(),
            jti = auth.jti.as_deref().unwrap_or(""),
            dpop_jti = proof_jti.as_deref().unwrap_or(""),
            "sending token request"
        );
        let response = inner.transport.post_form(&request).await?;
        let nonce = response.dpop_nonce.clone();
        Ok((self.parse(response), nonce))
    }

    fn parse(&self, response: TransportResponse) -> Result<TokenResponse, Error> {
        let inner = &self.inner;
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

    /// The assertion `aud`, for display and diagnostics (`None` for methods that sign none).
    pub fn audience(&self) -> Option<&Audience> {
        self.inner.auth.audience()
    }

    /// The client id (for `private_key_jwt`: the assertion's `iss` and `sub`).
    pub fn client_id(&self) -> &str {
        self.inner.auth.client_id()
    }

    /// How this client authenticates.
    pub fn client_auth(&self) -> &ClientAuth {
        &self.inner.auth
    }

    /// The assertion builder this client signs with (e.g. to show a sample assertion), for
    /// methods that sign assertions with a private key.
    pub fn assertion_builder(&self) -> Option<&AssertionBuilder> {
        self.inner.auth.assertion_builder()
    }

    /// The clock assertions are dated with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The DPoP key, when token requests carry proofs.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.inner.dpop.as_ref().map(|d| &d.key)
    }

    /// The token endpoint's latest `DPoP-Nonce`, when it sent one.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.inner.dpop.as_ref().and_then(DpopState::nonce)
    }
}

/// Whether the answer is RFC 9449 §8's request for a nonce.
fn asks_for_nonce(result: &Result<TokenResponse, Error>) -> bool {
    matches!(result, Err(Error::ServerRejected(r))
        if r.status == 400 && r.error.as_deref() == Some(ERROR_USE_DPOP_NONCE))
}

/// The urlencoded token request (RFC 6749 §4.4.2, with the authentication's fields, e.g. RFC 7523
/// §2.2; or the RFC 7523 §2.1 grant). A plain function, so the serializer (which is not `Send`)
/// never lives across an `.await`.
fn form_body(
    grant_type: &str,
    auth: &[(&'static str, String)],
    params: &[(String, String)],
) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair(GRANT_TYPE, grant_type);
    for (name, value) in auth {
        form.append_pair(name, value);
    }
    for (name, value) in params {
        form.append_pair(name, value);
    }
    form.finish()
}

/// The endpoint as set on the builder: a URL string is checked at build time, under the
/// builder's URL policy.
#[derive(Clone, Debug)]
enum EndpointSetting {
    Unchecked(String),
    Given(Endpoint),
}

/// Configuration of a [`TokenClient`]. Required: an endpoint ([`TokenClientBuilder::token_url`],
/// [`TokenClientBuilder::nhs`] or [`TokenClientBuilder::discovered`]), a client id and a signer.
#[derive(Default)]
pub struct TokenClientBuilder {
    endpoint: Option<EndpointSetting>,
    profile: Option<Profile>,
    client_id: Option<String>,
    signer: Option<Arc<dyn Signer>>,
    client_auth: Option<ClientAuth>,
    audience: Option<String>,
    lifetime: Option<Duration>,
    params: Vec<(String, String)>,
    retry: RetryPolicy,
    transport_config: TransportConfig,
    transport: Option<Arc<dyn TokenTransport>>,
    clock: Option<Arc<dyn Clock>>,
    url_policy: UrlPolicy,
    dpop: Option<DpopKey>,
}

impl fmt::Debug for TokenClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("client_id", &self.client_id)
            .field("signer", &self.signer)
            .field("client_auth", &self.client_auth)
            .field("audience", &self.audience)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

impl TokenClientBuilder {
    /// The token endpoint URL. `aud` will be this URL; an `api.service.nhs.uk` host selects the
    /// NHS profile.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(EndpointSetting::Unchecked(url.into()));
        self
    }

    /// An NHS England API platform environment: its token URL, `aud` = that URL, NHS profile.
    pub fn nhs(mut self, environment: Environment) -> Self {
        self.endpoint = Some(EndpointSetting::Given(Endpoint::Nhs(environment)));
        self
    }

    /// Discovered metadata (see [`crate::discover`]): its token endpoint, `aud` = the issuer,
    /// `typ` = `client-authentication+jwt`.
    pub fn discovered(mut self, metadata: AuthServerMetadata) -> Self {
        self.endpoint = Some(EndpointSetting::Given(Endpoint::Discovered(Box::new(
            metadata,
        ))));
        self
    }

    /// The endpoint, resolved elsewhere (e.g. by the CLI from its flags).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(EndpointSetting::Given(endpoint));
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

    /// Signs the assertions (`private_key_jwt` with the client id, audience and lifetime set on
    /// this builder).
    pub fn signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Authenticates with `auth`, configured in full, instead of a [`signer`](Self::signer). The
    /// client id, audience and assertion lifetime are then the ones inside `auth`: setting them
    /// here as well is refused at build time (unless the client id is the same).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
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

    /// Any other form parameter. The client's own (`grant_type`, and the authentication's, e.g.
    /// `client_assertion*`) are refused at build time.
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

    /// Sends a DPoP proof made with `key` on every token request (RFC 9449), asking for a token
    /// bound to it. See [`DpopKey`] for ephemeral and persistent keys.
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
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
        let endpoint = match endpoint {
            EndpointSetting::Unchecked(url) => {
                Endpoint::Url(TokenUrl::parse_with(&url, self.url_policy)?)
            }
            EndpointSetting::Given(endpoint) => endpoint,
        };
        let token_url = endpoint.token_url()?;
        let implied_profile = endpoint.implied_profile();
        let default_audience = endpoint.audience();
        let profile = self.profile.unwrap_or(implied_profile);
        let assertion_settings_given = self.audience.is_some() || self.lifetime.is_some();
        let audience = match self.audience {
            Some(aud) if aud.is_empty() => {
                return Err(ConfigError::Missing("audience (it is empty)").into());
            }
            Some(aud) => Audience::Explicit(aud),
            None => default_audience,
        };
        let auth = match (self.client_auth, self.signer) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "both a signer and a client authentication are set; set one".to_owned(),
                )
                .into());
            }
            (Some(auth), None) => {
                if self
                    .client_id
                    .as_deref()
                    .is_some_and(|c| c != auth.client_id())
                {
                    return Err(ConfigError::Invalid(
                        "the client id differs from the one of the client authentication"
                            .to_owned(),
                    )
                    .into());
                }
                if assertion_settings_given {
                    return Err(ConfigError::Invalid(
                        "audience and assertion lifetime are set on the client authentication's \
                         AssertionBuilder, not on the token client builder"
                            .to_owned(),
                    )
                    .into());
                }
                auth
            }
            (None, signer) => {
                let client_id = self
                    .client_id
                    .filter(|c| !c.is_empty())
                    .ok_or(ConfigError::Missing("client id"))?;
                let signer = signer.ok_or(ConfigError::Missing("signer (the private key)"))?;
                let mut assertions = AssertionBuilder::new(signer, client_id, audience);
                if let Some(lifetime) = self.lifetime {
                    assertions = assertions
                        .lifetime(lifetime)
                        .map_err(|e| ConfigError::Invalid(format!("assertion lifetime: {e}")))?;
                }
                ClientAuth::PrivateKeyJwt(assertions)
            }
        };
        if auth.client_id().is_empty() && !auth.client_id_optional() {
            return Err(ConfigError::Missing("client id").into());
        }
        if auth.uses_secret() && profile == Profile::Nhs {
            return Err(ConfigError::Profile(format!(
                "NHS application-restricted access takes a signed JWT only (private_key_jwt): \
                 {} with a client secret is refused; use --key with the private key registered \
                 for the application",
                auth.method_name()
            ))
            .into());
        }
        // The jwt-bearer grant authenticates no client: the methods list does not apply.
        if let Endpoint::Discovered(metadata) = &endpoint
            && auth.grant_type() == m2m_core::wire::GRANT_CLIENT_CREDENTIALS
            && let Some(methods) = metadata.token_endpoint_auth_methods()
            && !methods.iter().any(|m| m == auth.method_name())
        {
            return Err(ConfigError::Invalid(format!(
                "the server's metadata does not list {} in token_endpoint_auth_methods_supported \
                 (it lists: {}); nothing was sent",
                auth.method_name(),
                methods.join(", ")
            ))
            .into());
        }
        if let Some(builder) = auth.assertion_builder()
            && let Some(finding) = profile.check_signer(builder.signer().as_ref()).first()
        {
            return Err(ConfigError::Profile(finding.to_string()).into());
        }
        if let Some((name, _)) = self
            .params
            .iter()
            .find(|(n, _)| n == GRANT_TYPE || auth.form_field_names().contains(&n.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "form parameter {name} is set by the client and cannot be overridden"
            ))
            .into());
        }
        let transport: Arc<dyn TokenTransport> = match self.transport {
            Some(t) => t,
            None => Arc::new(ReqwestTransport::new(&self.transport_config)?),
        };
        Ok(TokenClient {
            inner: Arc::new(Inner {
                token_url,
                profile,
                auth,
                params: self.params,
                retry: self.retry,
                transport,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                dpop: self.dpop.map(DpopState::new),
            }),
        })
    }
}
