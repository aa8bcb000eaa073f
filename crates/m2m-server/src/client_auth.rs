//! Client authentication, the server's one entry point for it ([`authenticate`]): which method
//! the request presents, the client it names, and the checks of the method that client is
//! registered for. The token endpoint (rfc profile) and introspection both call it.
//!
//! A new method (`tls_client_auth`, …) is a variant of
//! [`AuthMethod`](crate::registry::AuthMethod), a line in [`presented_methods`] and an arm in
//! [`authenticate`]'s dispatch. The NHS profile does not come through here: NHS fixes its own
//! check order, with the replay check before the JWKS and the signature (see `token/nhs.rs`).
//!
//! A client assertion whose `iss` is a trusted workload issuer (`[[trust]]`, not a registered
//! client) is a federated client assertion: `trust/verify.rs` checks it and its rule names the
//! client ([`federated_client`]).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use m2m_core::clock::UnixTime;
use m2m_core::secret::{ClientSecret, SecretVerifier};
use m2m_core::validate::{
    ClientKeys, ClientSecrets, Pending, Reason, Rejection, SecretJwtPending, TokenForm, Verified,
    assertion_is_hmac,
};
use zeroize::Zeroizing;

use crate::refusal::{Refusal, charge_rate_limit, rate_limit, store_unavailable};
use crate::registry::{AuthMethod, Client, ClientKeySource, live};
use crate::state::AppState;
use crate::trust::TrustGrant;
use crate::trust::verify::{record_jti, trusted_issuer_of, verify_token};
use m2m_core::ids::KeySet;
use m2m_core::wire::CLIENT_ASSERTION_TYPE;

/// What RFC 6749 §2.3 forbids: a request authenticating in more than one way at once.
pub(crate) const MORE_THAN_ONE_METHOD: &str = "more than one client authentication method: \
     send exactly one of an Authorization: Basic header, a client_secret or a client_assertion";

/// A client that proved who it is in this request.
#[derive(Debug)]
pub(crate) struct AuthenticatedClient {
    /// The registered client.
    pub(crate) client: Arc<Client>,
}

/// Authenticates the request's client: exactly one method presented → the client it names →
/// the method it is registered for → that method's checks.
///
/// - `private_key_jwt`: assertion prechecks → client lookup → keys → verify → the client's rate
///   limit → replay insert-if-absent (until `exp` + leeway).
/// - `client_secret_jwt` (an HMAC-signed assertion): the same, with the HMAC under the client's
///   secrets in place of the signature.
/// - `client_secret_basic` / `client_secret_post`: Basic header decoded (else 401) → client
///   lookup → method → secret against the stored verifiers in constant time → rate limit. An
///   unknown client is compared against a dummy verifier and answered exactly like a wrong
///   secret, so the two cannot be told apart on the wire or by timing.
///
/// It checks no grant: the token endpoint does that first, and introspection has none.
///
/// The rate limit sits between the signature and the replay insert, so a client over its limit
/// neither writes the store nor burns its `jti` (the same assertion works once the bucket has
/// refilled); a failed verification of a known client takes a token from its bucket too
/// (docs/security.md, F5).
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenForm,
    now: UnixTime,
) -> Result<AuthenticatedClient, Refusal> {
    let presented = presented_methods(headers, form);
    if presented.len() > 1 {
        let refusal = Refusal::from(Rejection::invalid_request(
            Reason::Other,
            MORE_THAN_ONE_METHOD,
        ));
        return Err(refusal.with_basic_challenge(presented.contains(&"client_secret_basic")));
    }
    match presented.first().copied() {
        Some("client_secret_basic") => {
            let (id, secret) = match basic_credentials(headers) {
                Some(credentials) => credentials,
                None => {
                    return Err(Refusal::from(Rejection::invalid_client(
                        Reason::BasicMalformed,
                        "the Authorization: Basic header does not decode to client_id:client_secret \
                         (base64 of the form-encoded id and secret joined by ':', RFC 6749 §2.3.1)",
                    ))
                    .with_basic_challenge(true));
                }
            };
            if form.client_id.as_deref().is_some_and(|c| c != id) {
                return Err(Refusal::from(Rejection::invalid_client(
                    Reason::ClientIdMismatch,
                    "the client_id parameter does not match the Authorization: Basic user name",
                ))
                .with_basic_challenge(true));
            }
            let client = secret_client(
                state,
                &id,
                secret.as_bytes(),
                AuthMethod::ClientSecretBasic,
                now,
            )
            .map_err(|r| r.with_basic_challenge(true))?;
            Ok(AuthenticatedClient { client })
        }
        Some("client_secret_post") => {
            let Some(id) = form.client_id.as_deref() else {
                return Err(Refusal::from(Rejection::invalid_request(
                    Reason::Other,
                    "client_secret_post needs the client_id parameter next to client_secret",
                )));
            };
            let secret = form
                .extra
                .iter()
                .find(|(name, _)| name == "client_secret")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            let client = secret_client(
                state,
                id,
                secret.as_bytes(),
                AuthMethod::ClientSecretPost,
                now,
            )?;
            Ok(AuthenticatedClient { client })
        }
        _ if assertion_is_hmac(form) => {
            let pending = state.rfc.precheck_secret_jwt(form)?;
            let sub = pending.subject();
            let Some(client) = state.registry.get(sub) else {
                return Err(Refusal::from(state.rfc.unknown_client()).for_client(sub));
            };
            if client.auth_method != AuthMethod::ClientSecretJwt {
                charge_rate_limit(state, &client, now);
                return Err(method_not_registered(&client, "client_secret_jwt"));
            }
            client_secret_jwt(state, &client, &pending, now).await?;
            Ok(AuthenticatedClient { client })
        }
        _ if form.client_assertion_type.as_deref() == Some(CLIENT_ASSERTION_TYPE)
            && form
                .client_assertion
                .as_deref()
                .is_some_and(|a| trusted_issuer_of(state, &state.registry.current(), a)) =>
        {
            federated_client(state, form, now).await
        }
        _ => {
            // The assertion names its client inside (`sub`).
            let pending = state.rfc.authenticate_client(form)?;
            let sub = pending.subject();
            let Some(client) = state.registry.get(sub) else {
                return Err(Refusal::from(state.rfc.unknown_client()).for_client(sub));
            };
            if client.auth_method != AuthMethod::PrivateKeyJwt {
                charge_rate_limit(state, &client, now);
                return Err(method_not_registered(&client, "private_key_jwt"));
            }
            private_key_jwt(state, &client, &pending, now).await?;
            Ok(AuthenticatedClient { client })
        }
    }
}

/// A federated client assertion (RFC 7523 §2.2 with another issuer's token: Kubernetes, SPIFFE,
/// GitHub Actions): the token's checks (`trust/verify.rs`) → its rule must map to a registered
/// client (equal to the `client_id` parameter when sent) → that client's rate limit → the `jti`
/// record. Refusals are 401 `invalid_client`.
async fn federated_client(
    state: &AppState,
    form: &TokenForm,
    now: UnixTime,
) -> Result<AuthenticatedClient, Refusal> {
    let registry = state.registry.current();
    let token = form.client_assertion.as_deref().unwrap_or_default();
    let matched = verify_token(state, &registry, token, now).await?;
    let TrustGrant::Client(id) = &matched.trust.grant else {
        return Err(Refusal::from(Rejection::invalid_client(
            Reason::NoTrustRule,
            "the matching [[trust]] rule grants scopes, not a client: present this token with \
             the jwt-bearer grant, or map the rule to a client_id",
        )));
    };
    if form.client_id.as_deref().is_some_and(|c| c != id) {
        return Err(Refusal::from(Rejection::invalid_client(
            Reason::ClientIdMismatch,
            "the client_id parameter is not the client the assertion's trust rule maps to",
        )));
    }
    let Some(client) = registry.get(id) else {
        return Err(Refusal::from(state.rfc.unknown_client()).for_client(id));
    };
    rate_limit(state, &client, now)?;
    record_jti(state, &matched, now)
        .await
        .map_err(|r| r.for_client(id))?;
    Ok(AuthenticatedClient { client })
}

/// What both secret methods answer for a wrong secret and for an unknown client alike (only the
/// log's reason differs).
const SECRET_FAILURE: &str = "client authentication failed: unknown client or wrong secret";

/// 401 for a request using a method other than the client's registered one.
fn method_not_registered(client: &Client, presented: &str) -> Refusal {
    Refusal::from(Rejection::invalid_client(
        Reason::MethodNotRegistered,
        format!(
            "the client is not registered for {presented} (token_endpoint_auth_method is {})",
            client.auth_method
        ),
    ))
    .for_client(&client.id)
}

/// `client_secret_basic` / `client_secret_post` after the id and secret are read: lookup →
/// method → verifiers (constant time; a dummy one for an unknown client) → rate limit.
fn secret_client(
    state: &AppState,
    id: &str,
    secret: &[u8],
    presented: AuthMethod,
    now: UnixTime,
) -> Result<Arc<Client>, Refusal> {
    let Some(client) = state.registry.get(id) else {
        // Same work as a wrong secret: hash and compare against a verifier nobody holds.
        let _ = SecretVerifier::dummy().matches(secret);
        return Err(Refusal::from(Rejection::invalid_client(
            Reason::UnknownClient,
            SECRET_FAILURE,
        ))
        .for_client(id));
    };
    if client.auth_method != presented {
        charge_rate_limit(state, &client, now);
        return Err(method_not_registered(&client, presented.name()));
    }
    let candidate = SecretVerifier::of(secret);
    let mut ok = false;
    // Every live verifier is compared (no early exit), each in constant time.
    for stored in client
        .secret_verifiers
        .iter()
        .filter(|v| live(v.expires, now))
    {
        ok |= stored.verifier.matches_verifier(&candidate);
    }
    if !ok {
        charge_rate_limit(state, &client, now);
        return Err(Refusal::from(Rejection::invalid_client(
            Reason::SecretMismatch,
            SECRET_FAILURE,
        ))
        .for_client(&client.id));
    }
    rate_limit(state, &client, now)?;
    Ok(client)
}

/// The `Authorization: Basic` credentials: base64 → `id:secret` → each
/// `application/x-www-form-urlencoded`-decoded (RFC 6749 §2.3.1). `None` when any step fails.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, Zeroizing<String>)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let encoded = value
        .get(6..)
        .filter(|_| value[..6].eq_ignore_ascii_case(b"basic "))?;
    let encoded = std::str::from_utf8(encoded).ok()?.trim();
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?,
    );
    let colon = decoded.iter().position(|b| *b == b':')?;
    let id = form_decode(&decoded[..colon])?;
    let secret = Zeroizing::new(form_decode(&decoded[colon + 1..])?);
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one value (`+` is a space, `%XX` a byte),
/// strict: a bad escape or non-UTF-8 result is `None`.
fn form_decode(raw: &[u8]) -> Option<String> {
    let mut out = Zeroizing::new(Vec::with_capacity(raw.len()));
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out.to_vec()).ok()
}

/// Which client-authentication methods the request presents, by their RFC 7591 names. Pure.
pub(crate) fn presented_methods(headers: &HeaderMap, form: &TokenForm) -> Vec<&'static str> {
    let mut methods = Vec::new();
    let basic = headers.get_all(header::AUTHORIZATION).iter().any(|v| {
        v.as_bytes()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"basic "))
    });
    if basic {
        methods.push("client_secret_basic");
    }
    if form.extra.iter().any(|(name, _)| name == "client_secret") {
        methods.push("client_secret_post");
    }
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        methods.push(if assertion_is_hmac(form) {
            "client_secret_jwt"
        } else {
            "private_key_jwt"
        });
    }
    methods
}

/// `private_key_jwt` (RFC 7523 §2.2) for a found client: its keys → the validator's checks →
/// the `jti` recorded until `exp` + leeway.
async fn private_key_jwt(
    state: &AppState,
    client: &Client,
    pending: &Pending,
    now: UnixTime,
) -> Result<(), Refusal> {
    let keys = match client_keys(state, client, pending.kid()).await {
        Ok(keys) => keys,
        Err(KeysProblem::NoKeys) => {
            return Err(Refusal::from(Rejection::invalid_client(
                Reason::NoKeys,
                "the client has no registered public keys",
            ))
            .for_client(&client.id));
        }
        Err(KeysProblem::Unreachable) => {
            return Err(Refusal::from(state.rfc.jwks_unavailable()).for_client(&client.id));
        }
    };
    let client_keys = ClientKeys {
        client_id: &client.id,
        allowed_algs: &client.algs,
        keys: keys.as_slice(),
    };
    let verified = state.rfc.verify(pending, &client_keys, now);
    record_assertion(state, client, verified, now).await
}

/// `client_secret_jwt` for a found client registered for it: the HMAC under one of its live
/// secrets and the claims (the validator's order) → rate limit → the `jti` recorded until `exp`
/// + leeway, exactly as for `private_key_jwt`.
async fn client_secret_jwt(
    state: &AppState,
    client: &Client,
    pending: &SecretJwtPending,
    now: UnixTime,
) -> Result<(), Refusal> {
    let secrets: Vec<ClientSecret> = client
        .hmac_secrets
        .iter()
        .filter(|s| live(s.expires, now))
        .map(|s| s.secret.clone())
        .collect();
    let client_secrets = ClientSecrets {
        client_id: &client.id,
        allowed_algs: &client.hmac_algs,
        secrets: &secrets,
    };
    let verified = state.rfc.verify_secret_jwt(pending, &client_secrets, now);
    record_assertion(state, client, verified, now).await
}

/// What follows an assertion's verification, for both assertion methods: a failure is charged to
/// the client's rate limit and refused; a success passes the rate limit, then its `jti` is
/// recorded until `exp` + leeway (a replay is refused, a store failure is a 503).
async fn record_assertion(
    state: &AppState,
    client: &Client,
    verified: Result<Verified, Rejection>,
    now: UnixTime,
) -> Result<(), Refusal> {
    let verified = match verified {
        Ok(verified) => verified,
        Err(rejection) => {
            // A failed authentication counts against the client's rate limit.
            charge_rate_limit(state, client, now);
            return Err(Refusal::from(rejection).for_client(&client.id));
        }
    };
    rate_limit(state, client, now)?;
    let until = verified.exp.add(state.rfc.config().leeway());
    match state
        .replay
        .insert_if_absent(&client.id, &verified.jti, until, now)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::from(state.rfc.replayed()).for_client(&client.id)),
        Err(e) => Err(store_unavailable(state, &e).for_client(&client.id)),
    }
}

/// Why a client's verification keys are not available.
pub(crate) enum KeysProblem {
    /// The client has no keys registered.
    NoKeys,
    /// Its `jwks_uri` could not be fetched (and no usable cached set exists).
    Unreachable,
}

/// The client's verification keys: registered ones, or its `jwks_uri`'s (cached; `kid` may
/// trigger one refetch). Shared with the NHS flow, which answers the problems its own way.
pub(crate) async fn client_keys(
    state: &AppState,
    client: &Client,
    kid: Option<&str>,
) -> Result<KeySet, KeysProblem> {
    match &client.keys {
        ClientKeySource::Static(keys) => Ok(keys.clone()),
        ClientKeySource::Unregistered => Err(KeysProblem::NoKeys),
        ClientKeySource::Remote(url) => state.fetcher.keys(url, kid).await.map_err(|e| {
            state.metrics.jwks_fetch_error();
            tracing::warn!(client = %client.id, jwks_uri = %url, error = %e, "client JWKS unavailable");
            KeysProblem::Unreachable
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn form(pairs: &[(&str, &str)]) -> TokenForm {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        m2m_core::validate::parse_token_form(
            Some("application/x-www-form-urlencoded"),
            None,
            body.join("&").as_bytes(),
            false,
        )
        .unwrap()
    }

    fn basic() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("basic Y2xpZW50OnNlY3JldA=="),
        );
        headers
    }

    #[test]
    fn presented_methods_counts_each_way_of_authenticating() {
        let assertion = [
            ("client_assertion_type", "x"),
            ("client_assertion", "a.b.c"),
        ];
        let none = HeaderMap::new();
        assert!(
            presented_methods(&none, &form(&[("grant_type", "client_credentials")])).is_empty()
        );
        assert_eq!(
            presented_methods(&none, &form(&assertion)),
            ["private_key_jwt"]
        );
        assert_eq!(
            presented_methods(&basic(), &form(&[])),
            ["client_secret_basic"]
        );
        assert_eq!(
            presented_methods(&basic(), &form(&assertion)),
            ["client_secret_basic", "private_key_jwt"]
        );
        assert_eq!(
            presented_methods(&basic(), &form(&[("client_secret", "s")])),
            ["client_secret_basic", "client_secret_post"]
        );
        assert_eq!(
            presented_methods(&none, &form(&[("client_secret", "s"), assertion[1]])),
            ["client_secret_post", "private_key_jwt"]
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert_eq!(
            presented_methods(&bearer, &form(&assertion)),
            ["private_key_jwt"],
            "a Bearer header is not client authentication"
        );
    }
}
