//! RFC 6750 §3 responses: the `WWW-Authenticate: Bearer …` challenge for a [`Refusal`], with
//! `realm` and the RFC 9728 `resource_metadata` URL that tells a client where to get a token.
//!
//! No token → 401 with the challenge and no error code; a bad token → 401 `invalid_token`; a
//! missing scope → 403 `insufficient_scope` with `scope`; a malformed request → 400
//! `invalid_request`. The body is a short JSON object with the same `error` and
//! `error_description`.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use m2m_core::validate::BearerError;

use crate::error::Refusal;

/// The challenge parameters of one protected resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    realm: Option<String>,
    resource_metadata: Option<String>,
}

impl Challenge {
    /// A challenge without parameters.
    pub fn new() -> Self {
        Challenge::default()
    }
    /// The `realm`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }
    /// The RFC 9728 metadata URL (`resource_metadata`).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The `WWW-Authenticate` value for `refusal`; `scope` names the scopes a 403 needed.
    pub fn header_value(&self, refusal: &Refusal, scope: &[&str]) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(realm) = &self.realm {
            params.push(("realm", realm.clone()));
        }
        if let Some(url) = &self.resource_metadata {
            params.push(("resource_metadata", url.clone()));
        }
        if let Some(error) = refusal.bearer_error() {
            params.push(("error", error.code().to_owned()));
            params.push(("error_description", refusal.description().into_owned()));
            if error == BearerError::InsufficientScope && !scope.is_empty() {
                params.push(("scope", scope.join(" ")));
            }
        }
        let params: Vec<String> = params
            .into_iter()
            .map(|(k, v)| format!("{k}=\"{}\"", quoted(&v)))
            .collect();
        if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }

    /// The whole response for `refusal`.
    pub fn response(&self, refusal: &Refusal, scope: &[&str]) -> Response<Body> {
        let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let body = match refusal.bearer_error() {
            Some(e) => serde_json::json!({
                "error": e.code(),
                "error_description": refusal.description(),
            })
            .to_string(),
            None => r#"{"error":"unauthorized","error_description":"an access token is required"}"#
                .to_owned(),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(value) = HeaderValue::from_str(&self.header_value(refusal, scope)) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// A value fit for an RFC 7230 quoted-string: `"` and `\` escaped, anything outside printable
/// ASCII replaced (RFC 6750 §3 limits `error_description` to it).
fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::validate::AccessTokenReason;

    #[test]
    fn challenges_follow_rfc_6750() {
        let c = Challenge::new()
            .realm("api")
            .resource_metadata("https://api.example/.well-known/oauth-protected-resource");
        assert_eq!(
            c.header_value(&Refusal::NoToken, &[]),
            "Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\""
        );
        let bad = Refusal::token(AccessTokenReason::Expired, "access token has \"expired\"");
        let v = c.header_value(&bad, &[]);
        assert!(v.contains("error=\"invalid_token\""), "{v}");
        assert!(
            v.contains(r#"error_description="access token has \"expired\"""#),
            "{v}"
        );
        let scope = Refusal::token(AccessTokenReason::InsufficientScope, "lacks");
        let v = c.header_value(&scope, &["read", "write"]);
        assert!(
            v.contains("error=\"insufficient_scope\"") && v.contains("scope=\"read write\""),
            "{v}"
        );
        assert_eq!(c.response(&scope, &["read"]).status(), 403);
        assert_eq!(
            c.response(&Refusal::InvalidRequest("two tokens".into()), &[])
                .status(),
            400
        );
        assert_eq!(c.response(&Refusal::NoToken, &[]).status(), 401);
    }
}
