//! RFC 6750 §3 and RFC 9449 §7.1 responses: the `WWW-Authenticate: Bearer …` and/or
//! `WWW-Authenticate: DPoP algs="…"` challenges for a [`Refusal`], with `realm` and the RFC 9728
//! `resource_metadata` URL that tells a client where to get a token.
//!
//! No token → 401 with the challenge and no error code; a bad token → 401 `invalid_token`; a bad
//! proof → 401 `invalid_dpop_proof`; a missing scope → 403 `insufficient_scope` with `scope`; a
//! malformed request → 400 `invalid_request`; a replay store that cannot answer → 503. The body
//! is a short JSON object with the same `error` and `error_description`.
//!
//! Which challenges: one per scheme the resource accepts (DPoP mode `bearer`: Bearer; `allowed`:
//! both; `required`: DPoP). The `error` goes on the challenge of the scheme the request used
//! (a proof refusal, or a Bearer token where DPoP is required, on the DPoP one).

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use m2m_core::alg::Algorithm;
use m2m_core::validate::BearerError;

use crate::dpop::{DpopMode, Scheme};
use crate::error::Refusal;

/// The challenge parameters of one protected resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    realm: Option<String>,
    resource_metadata: Option<String>,
    mode: DpopMode,
    /// The DPoP challenge's `algs` (space-separated), when the mode accepts DPoP.
    algs: String,
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
    /// Which schemes are challenged (the DPoP mode) and the proof algorithms accepted (`algs`).
    pub fn dpop(mut self, mode: DpopMode, algs: &[Algorithm]) -> Self {
        self.mode = mode;
        self.algs = algs.iter().map(|a| a.name()).collect::<Vec<_>>().join(" ");
        self
    }

    /// The schemes challenged, in header order.
    fn schemes(&self) -> &'static [Scheme] {
        match self.mode {
            DpopMode::Bearer => &[Scheme::Bearer],
            DpopMode::Allowed => &[Scheme::Bearer, Scheme::Dpop],
            DpopMode::Required => &[Scheme::Dpop],
        }
    }

    /// Which challenge carries the refusal's `error`: DPoP for DPoP refusals, else the scheme
    /// the request used if it is challenged, else the first challenged.
    fn error_scheme(&self, refusal: &Refusal, used: Option<Scheme>) -> Scheme {
        let schemes = self.schemes();
        let wanted = match refusal {
            Refusal::Proof(_) | Refusal::DpopRequired => Some(Scheme::Dpop),
            _ => used,
        };
        match wanted {
            Some(s) if schemes.contains(&s) => s,
            _ => schemes[0],
        }
    }

    /// The `WWW-Authenticate` values for `refusal` of a request that used scheme `used`, one per
    /// challenged scheme; `scope` names the scopes a 403 needed.
    pub fn header_values(
        &self,
        refusal: &Refusal,
        scope: &[&str],
        used: Option<Scheme>,
    ) -> Vec<String> {
        let target = self.error_scheme(refusal, used);
        self.schemes()
            .iter()
            .map(|&scheme| {
                let mut params: Vec<(&str, String)> = Vec::new();
                if let Some(realm) = &self.realm {
                    params.push(("realm", realm.clone()));
                }
                if let Some(url) = &self.resource_metadata {
                    params.push(("resource_metadata", url.clone()));
                }
                if scheme == Scheme::Dpop {
                    params.push(("algs", self.algs.clone()));
                }
                if let (true, Some(code)) = (scheme == target, refusal.error_code()) {
                    params.push(("error", code.to_owned()));
                    params.push(("error_description", refusal.description().into_owned()));
                    if refusal.bearer_error() == Some(BearerError::InsufficientScope)
                        && !scope.is_empty()
                    {
                        params.push(("scope", scope.join(" ")));
                    }
                }
                let name = match scheme {
                    Scheme::Bearer => "Bearer",
                    Scheme::Dpop => "DPoP",
                };
                let params: Vec<String> = params
                    .into_iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", quoted(&v)))
                    .collect();
                if params.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name} {}", params.join(", "))
                }
            })
            .collect()
    }

    /// The `WWW-Authenticate` value for `refusal` (every challenge, comma-joined), as for a
    /// request that used no scheme or Bearer.
    pub fn header_value(&self, refusal: &Refusal, scope: &[&str]) -> String {
        self.header_values(refusal, scope, None).join(", ")
    }

    /// The whole response for `refusal`.
    pub fn response(&self, refusal: &Refusal, scope: &[&str]) -> Response<Body> {
        self.response_to(refusal, scope, None)
    }

    /// The whole response for `refusal` of a request that used scheme `used`.
    pub fn response_to(
        &self,
        refusal: &Refusal,
        scope: &[&str],
        used: Option<Scheme>,
    ) -> Response<Body> {
        let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let body = match refusal.error_code() {
            Some(code) => serde_json::json!({
                "error": code,
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
        // A 503 is no challenge: the credentials may be fine, the server cannot decide now.
        if status != StatusCode::SERVICE_UNAVAILABLE {
            for value in self.header_values(refusal, scope, used) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.append(header::WWW_AUTHENTICATE, value);
                }
            }
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

    #[test]
    fn dpop_challenges_follow_rfc_9449() {
        use m2m_core::validate::{DpopReason, DpopRejection};
        let algs = [Algorithm::Es256, Algorithm::EdDsa];
        let allowed = Challenge::new().dpop(DpopMode::Allowed, &algs);
        assert_eq!(
            allowed.header_values(&Refusal::NoToken, &[], None),
            ["Bearer", "DPoP algs=\"ES256 EdDSA\""]
        );
        let proof = Refusal::Proof(DpopRejection {
            reason: DpopReason::HtuMismatch,
            description: "wrong htu".into(),
        });
        let v = allowed.header_values(&proof, &[], Some(Scheme::Dpop));
        assert_eq!(v[0], "Bearer");
        assert_eq!(
            v[1],
            "DPoP algs=\"ES256 EdDSA\", error=\"invalid_dpop_proof\", error_description=\"wrong htu\""
        );
        // A bound token sent as Bearer: the error on the Bearer challenge, DPoP offered.
        let bound = Refusal::token(AccessTokenReason::SenderConstrained, "bound");
        let v = allowed.header_values(&bound, &[], Some(Scheme::Bearer));
        assert!(v[0].starts_with("Bearer error=\"invalid_token\""), "{v:?}");
        assert_eq!(v[1], "DPoP algs=\"ES256 EdDSA\"");
        let required = Challenge::new().dpop(DpopMode::Required, &algs);
        let v = required.header_values(&Refusal::DpopRequired, &[], Some(Scheme::Bearer));
        assert_eq!(v.len(), 1);
        assert!(
            v[0].starts_with("DPoP algs=") && v[0].contains("error=\"invalid_token\""),
            "{v:?}"
        );
        let r = required.response_to(&proof, &[], Some(Scheme::Dpop));
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers().get_all(header::WWW_AUTHENTICATE).iter().count(),
            1
        );
        let r = allowed.response_to(&Refusal::NoToken, &[], None);
        assert_eq!(
            r.headers().get_all(header::WWW_AUTHENTICATE).iter().count(),
            2
        );
        let r = allowed.response_to(&Refusal::ReplayUnavailable("down".into()), &[], None);
        assert_eq!(r.status(), 503);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
