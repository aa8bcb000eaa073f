//! `GET /.well-known/oauth-authorization-server` (RFC 8414) and `GET /.well-known/jwks.json`
//! (the server's public keys, for resource servers verifying access tokens).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use m2m_core::alg::Algorithm;
use serde_json::json;

use crate::app::AppState;
use crate::config::Profile;
use crate::response::ordered;

/// RFC 8414 metadata. The assertion algorithms listed are the union of what registered clients
/// may use (nhs: RS512 only).
pub(crate) async fn authorization_server(State(state): State<Arc<AppState>>) -> Response {
    let algs: Vec<&str> = match state.config.profile {
        Profile::Nhs => vec![Algorithm::Rs512.name()],
        Profile::Rfc => {
            let mut algs: Vec<Algorithm> = Vec::new();
            for client in state.registry.clients() {
                for alg in &client.algs {
                    if !algs.contains(alg) {
                        algs.push(*alg);
                    }
                }
            }
            if algs.is_empty() {
                algs = Algorithm::ALL.to_vec();
            }
            algs.sort_by_key(|a| a.name());
            algs.iter().map(|a| a.name()).collect()
        }
    };
    let issuer = &state.issuer;
    let body = ordered(&[
        ("issuer", json!(issuer)),
        ("token_endpoint", json!(state.token_url)),
        ("jwks_uri", json!(format!("{issuer}/.well-known/jwks.json"))),
        (
            "introspection_endpoint",
            json!(format!("{issuer}/oauth2/introspect")),
        ),
        ("grant_types_supported", json!(["client_credentials"])),
        (
            "token_endpoint_auth_methods_supported",
            json!(["private_key_jwt"]),
        ),
        (
            "token_endpoint_auth_signing_alg_values_supported",
            json!(algs),
        ),
        (
            "introspection_endpoint_auth_methods_supported",
            json!(["private_key_jwt"]),
        ),
        (
            "introspection_endpoint_auth_signing_alg_values_supported",
            json!(algs),
        ),
        ("response_types_supported", json!([])),
    ]);
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
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
