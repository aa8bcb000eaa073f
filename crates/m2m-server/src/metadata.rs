//! `GET /.well-known/oauth-authorization-server` (RFC 8414; for an issuer with a path also at
//! the §3.1 path-inserted location) and `GET /.well-known/jwks.json`
//! (the server's public keys, for resource servers verifying access tokens).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use m2m_core::alg::Algorithm;
use serde_json::json;

use crate::config::Profile;
use crate::paths::{AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, METADATA_PATH};
use crate::registry::{AuthMethod, Registry};
use crate::response::ordered;
use crate::state::AppState;

/// RFC 8414 metadata. What it says about client authentication is derived from the registry
/// (see [`auth_methods`] and [`signing_algs`]), so it cannot drift from what is enforced.
///
/// The NHS emulation publishes none, like NHS: metadata names an issuer, and a client that finds
/// it (`m2m token --token-url` looks at the token URL's origin) rightly signs `aud` = issuer —
/// which NHS, wanting the token URL, refuses.
pub(crate) async fn authorization_server(State(state): State<Arc<AppState>>) -> Response {
    if state.config.profile == Profile::Nhs {
        return StatusCode::NOT_FOUND.into_response();
    }
    let registry = state.registry.current();
    let methods = auth_methods(&registry);
    let algs = signing_algs(state.config.profile, &registry);
    let issuer = &state.issuer;
    let body = ordered(&[
        ("issuer", json!(issuer)),
        // RFC 8414 lets a client-credentials-only server omit it, but widely used clients (the
        // MCP Python SDK 2.3.0) refuse metadata without one; it refuses every request.
        (
            "authorization_endpoint",
            json!(format!("{issuer}{AUTHORIZE_PATH}")),
        ),
        ("token_endpoint", json!(state.token_url)),
        ("jwks_uri", json!(format!("{issuer}{JWKS_PATH}"))),
        (
            "introspection_endpoint",
            json!(format!("{issuer}{INTROSPECT_PATH}")),
        ),
        ("grant_types_supported", json!(grant_types(&registry))),
        ("token_endpoint_auth_methods_supported", json!(methods)),
        (
            "token_endpoint_auth_signing_alg_values_supported",
            json!(algs),
        ),
        // Introspection authenticates callers through the same `client_auth` as the token
        // endpoint, so it accepts the same methods and algorithms.
        (
            "introspection_endpoint_auth_methods_supported",
            json!(methods),
        ),
        (
            "introspection_endpoint_auth_signing_alg_values_supported",
            json!(algs),
        ),
        ("response_types_supported", json!([])),
        // RFC 9449 §5.1: the algorithms the token endpoint's DPoP validator accepts.
        (
            "dpop_signing_alg_values_supported",
            json!(
                state
                    .dpop
                    .validator
                    .config()
                    .algorithms()
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
            ),
        ),
    ]);
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}

/// The grants: client credentials, and the RFC 7523 jwt-bearer grant once an issuer is trusted.
fn grant_types(registry: &Registry) -> Vec<&'static str> {
    let mut grants = vec![m2m_core::wire::GRANT_CLIENT_CREDENTIALS];
    if !registry.trusts().is_empty() {
        grants.push(m2m_core::wire::GRANT_JWT_BEARER);
    }
    grants
}

/// RFC 8414 §3.1: for an issuer with a path (`https://host/tenant`), the metadata also lives at
/// the path-inserted location `/.well-known/oauth-authorization-server/tenant`. Any other path
/// under the well-known prefix is 404.
pub(crate) async fn authorization_server_path_inserted(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Response {
    let suffix = uri.path().strip_prefix(METADATA_PATH).unwrap_or_default();
    match issuer_path(&state.issuer) {
        Some(path) if path == suffix => authorization_server(State(state)).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The issuer identifier's path (`/tenant`, as sent on the wire: percent-encoded), or `None`
/// when it has none. The issuer has no trailing `/` (the server removed it).
fn issuer_path(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    let path = url.path().trim_end_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// The methods registered clients authenticate with, in [`AuthMethod::ALL`] order. An empty
/// registry lists the default method: it is what the server supports, and what a client added
/// later without an `auth_method` gets.
fn auth_methods(registry: &Registry) -> Vec<&'static str> {
    let clients = registry.clients();
    let methods: Vec<&'static str> = AuthMethod::ALL
        .into_iter()
        .filter(|m| clients.iter().any(|c| c.auth_method == *m))
        .map(AuthMethod::name)
        .collect();
    if methods.is_empty() {
        vec![AuthMethod::default().name()]
    } else {
        methods
    }
}

/// The assertion algorithms: the union of what registered clients are pinned to (HMAC ones for
/// `client_secret_jwt` clients included), sorted by name (nhs: RS512 only, the one NHS
/// accepts). An empty registry lists every asymmetric algorithm the validator accepts: any of
/// them can be registered.
fn signing_algs(profile: Profile, registry: &Registry) -> Vec<&'static str> {
    if profile == Profile::Nhs {
        return vec![Algorithm::Rs512.name()];
    }
    let mut algs: Vec<Algorithm> = Vec::new();
    for client in registry.clients() {
        for alg in &client.algs {
            if !algs.contains(alg) {
                algs.push(*alg);
            }
        }
    }
    let clients = registry.clients();
    let asymmetric_clients = clients
        .iter()
        .any(|c| c.auth_method == AuthMethod::PrivateKeyJwt);
    if algs.is_empty() && (clients.is_empty() || asymmetric_clients) {
        algs = Algorithm::ALL.to_vec();
    }
    let mut names: Vec<&'static str> = algs.iter().map(|a| a.name()).collect();
    // client_secret_jwt clients' HMAC algorithms: listed only when such a client is registered,
    // so a server without one never advertises HMAC.
    for client in &clients {
        for alg in &client.hmac_algs {
            if !names.contains(&alg.name()) {
                names.push(alg.name());
            }
        }
    }
    names.sort_unstable();
    names
}

/// The server's public keys (current and previous).
pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::CONTENT_TYPE, "application/jwk-set+json"),
        ],
        serde_json::to_string(&state.tokens.keys().jwks())
            .unwrap_or_else(|_| "{\"keys\":[]}".to_owned()),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    fn registry(text: &str) -> Registry {
        Registry::parse(text, Path::new("clients.toml")).unwrap()
    }

    const TWO_CLIENTS: &str = r#"
[[client]]
id = "a"
jwks_uri = "https://a.example/jwks.json"
algs = ["RS512", "ES256"]

[[client]]
id = "b"
auth_method = "private_key_jwt"
jwks_uri = "https://b.example/jwks.json"
algs = ["PS256", "RS512"]
"#;

    #[test]
    fn issuer_path_is_the_path_of_an_issuer_that_has_one() {
        assert_eq!(issuer_path("https://as.example"), None);
        assert_eq!(issuer_path("https://as.example/"), None);
        assert_eq!(
            issuer_path("https://as.example/tenant/a").as_deref(),
            Some("/tenant/a")
        );
    }

    #[test]
    fn auth_methods_are_those_of_registered_clients() {
        assert_eq!(auth_methods(&registry(TWO_CLIENTS)), ["private_key_jwt"]);
    }

    #[test]
    fn secret_clients_add_their_methods_and_hmac_algs() {
        let v = m2m_core::secret::SecretVerifier::of(b"x").to_hex();
        let text = format!(
            "{TWO_CLIENTS}\n[[client]]\nid = \"c\"\nauth_method = \"client_secret_basic\"\nsecret_verifiers = [{{ sha256 = \"{v}\" }}]\n\n[[client]]\nid = \"d\"\nauth_method = \"client_secret_jwt\"\nalgs = [\"HS384\"]\n"
        );
        let r = registry(&text);
        assert_eq!(
            auth_methods(&r),
            [
                "private_key_jwt",
                "client_secret_basic",
                "client_secret_jwt"
            ]
        );
        assert!(signing_algs(Profile::Rfc, &r).contains(&"HS384"));
        assert!(!signing_algs(Profile::Rfc, &registry(TWO_CLIENTS)).contains(&"HS256"));
    }

    #[test]
    fn empty_registry_lists_the_default_auth_method() {
        assert_eq!(auth_methods(&registry("")), ["private_key_jwt"]);
    }

    #[test]
    fn signing_algs_are_the_union_of_pinned_algs() {
        assert_eq!(
            signing_algs(Profile::Rfc, &registry(TWO_CLIENTS)),
            ["ES256", "PS256", "RS512"]
        );
        assert_eq!(
            signing_algs(Profile::Nhs, &registry(TWO_CLIENTS)),
            ["RS512"]
        );
        let all: Vec<&str> = {
            let mut all: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            all.sort_unstable();
            all
        };
        assert_eq!(signing_algs(Profile::Rfc, &registry("")), all);
    }
}
