//! Client authentication, the server's one entry point for it ([`authenticate`]): which method
//! the request presents, the client it names, and the checks of the method that client is
//! registered for. The token endpoint (rfc profile) and introspection both call it.
//!
//! A new method (`client_secret_basic`, `tls_client_auth`, …) is a variant of
//! [`AuthMethod`](crate::registry::AuthMethod), a line in [`presented_methods`] and an arm in
//! [`authenticate`]'s dispatch. The NHS profile does not come through here: NHS fixes its own
//! check order, with the replay check before the JWKS and the signature (see `token/nhs.rs`).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use m2m_core::clock::UnixTime;
use m2m_core::validate::{ClientKeys, Pending, Reason, Rejection, TokenForm};

use crate::refusal::{Refusal, charge_rate_limit, rate_limit, store_unavailable};
use crate::registry::{AuthMethod, Client, ClientKeySource};
use crate::state::AppState;
use m2m_core::ids::KeySet;

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
/// the checks of the method the client is registered for. For `private_key_jwt` (the only
/// method today): assertion prechecks → client lookup → keys → verify → the client's rate limit
/// → replay insert-if-absent (until `exp` + leeway). It checks no grant: the token endpoint does
/// that first, and introspection has none.
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
    if presented_methods(headers, form).len() > 1 {
        return Err(Refusal::from(Rejection::invalid_request(
            Reason::Other,
            MORE_THAN_ONE_METHOD,
        )));
    }
    // The one method that exists names its client inside the assertion (`sub`); a method that
    // names it elsewhere (the Basic user name, `client_id`) will read it here.
    let pending = state.rfc.authenticate_client(form)?;
    let sub = pending.subject();
    let Some(client) = state.registry.get(sub) else {
        return Err(Refusal::from(state.rfc.unknown_client()).for_client(sub));
    };
    match client.auth_method {
        AuthMethod::PrivateKeyJwt => private_key_jwt(state, &client, &pending, now).await?,
    }
    Ok(AuthenticatedClient { client })
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
        methods.push("private_key_jwt");
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
    let verified = match state.rfc.verify(pending, &client_keys, now) {
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
