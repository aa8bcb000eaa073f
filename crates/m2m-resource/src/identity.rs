//! Who called: [`Caller`], the verified identity the layer puts in the request's extensions and
//! the axum extractor that hands it to a handler. A reverse proxy wrapping any inner service reads
//! the same extension (`request.extensions().get::<Caller>()`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use m2m_core::validate::AccessTokenClaims;
use serde_json::{Map, Value};

/// The verified caller of a request: a token's claims after every check passed. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    claims: Arc<AccessTokenClaims>,
    /// The thumbprint of the key whose DPoP proof came with this request (= `cnf.jkt`).
    dpop_jkt: Option<Arc<str>>,
}

impl Caller {
    pub(crate) fn new(claims: AccessTokenClaims) -> Self {
        Caller {
            claims: Arc::new(claims),
            dpop_jkt: None,
        }
    }

    /// This caller, having proved possession of the key with thumbprint `jkt` on this request.
    pub(crate) fn with_dpop_jkt(mut self, jkt: &str) -> Self {
        self.dpop_jkt = Some(Arc::from(jkt));
        self
    }

    /// The RFC 7638 thumbprint of the DPoP key the caller proved it holds on this request (the
    /// token's `cnf.jkt`); `None` for a Bearer token.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
    }

    /// The client the token was issued to (`client_id`).
    pub fn client_id(&self) -> &str {
        self.claims.client_id.as_str()
    }
    /// The token's subject (`sub`; for client-credentials tokens usually the client id).
    pub fn sub(&self) -> &str {
        &self.claims.sub
    }
    /// The granted scopes.
    pub fn scopes(&self) -> &[String] {
        &self.claims.scopes
    }
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scopes.iter().any(|s| s == scope)
    }
    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        self.claims.iss.as_str()
    }
    /// The typed verified claims.
    pub fn access_token_claims(&self) -> &AccessTokenClaims {
        &self.claims
    }
    /// Every claim, for what the named accessors do not cover.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims.claims
    }

    #[cfg(test)]
    pub(crate) fn for_tests(client_id: &str, sub: &str, scopes: &[&str]) -> Self {
        use m2m_core::clock::UnixTime;
        Caller::new(AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: sub.to_owned(),
            client_id: client_id.into(),
            aud: vec!["https://api.example".to_owned()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            exp: UnixTime::from_secs(2_000),
            iat: UnixTime::from_secs(1_000),
            jti: "j".to_owned(),
            cnf_jkt: None,
            claims: Map::new(),
        })
    }
}

/// The extractor: a handler taking a [`Caller`] runs only behind
/// [`RequireBearerLayer`](crate::RequireBearerLayer), which has verified the token. Without the
/// layer the route is misconfigured, and the extractor answers 500 rather than serve the handler
/// to an unauthenticated caller.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "this route takes a Caller but is not behind RequireBearerLayer",
        ))
    }
}
