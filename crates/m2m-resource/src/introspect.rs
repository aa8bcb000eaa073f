//! Opaque tokens: RFC 7662 introspection. The resource server authenticates to the endpoint as a
//! client (any method m2m-client's [`ClientAuth`] offers), posts `token=…`, and reads the answer
//! into the same [`AccessTokenClaims`] a JWT would give.
//!
//! What counts as success is strict: `active: true`, an `exp` in the future, `iss` (when given)
//! one of the trusted issuers, `aud` containing this resource (an authorization server that
//! answers for every audience would otherwise let a token for another API in), no `cnf` for a
//! Bearer token. Positive answers are cached until min(`exp`, [`POSITIVE_TTL`]); `active: false`
//! is cached as a refusal for [`NEGATIVE_TTL`]; errors are never cached.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use m2m_client::{ClientAuth, FormPost, TokenTransport};
use m2m_core::clock::UnixTime;
use m2m_core::ids::{ClientId, Issuer};
use m2m_core::validate::{AccessTokenClaims, AccessTokenReason};
use serde_json::{Map, Value};
use url::Url;

use crate::error::Refusal;

/// How long a positive introspection answer is trusted at most (a revocation takes effect
/// within this time).
pub const POSITIVE_TTL: Duration = Duration::from_secs(300);
/// How long an `active: false` answer is remembered: short, but a client retrying a dead token
/// in a loop costs one introspection per this interval, not one per request.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Largest introspection answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An RFC 7662 introspection endpoint and how to authenticate to it.
#[derive(Clone)]
pub struct Introspection {
    endpoint: Url,
    auth: ClientAuth,
    transport: Arc<dyn TokenTransport>,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.auth.client_id())
            .finish_non_exhaustive()
    }
}

/// What one introspection said.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Active and acceptable: the claims, and how long to cache them.
    Active(Box<AccessTokenClaims>),
    /// `active: false`, or active but not for us: refused, cacheable for [`NEGATIVE_TTL`].
    Inactive(Refusal),
}

impl Introspection {
    /// Introspect at `endpoint`, authenticating with `auth`, over `transport` (an
    /// [`m2m_client::ReqwestTransport`], which never follows redirects).
    pub fn new(endpoint: Url, auth: ClientAuth, transport: Arc<dyn TokenTransport>) -> Self {
        Introspection {
            endpoint,
            auth,
            transport,
        }
    }

    /// Asks about `token`. `Err` is a failure to get an answer (never cached).
    pub(crate) async fn ask(
        &self,
        token: &str,
        issuers: &[Issuer],
        audience: &str,
        now: UnixTime,
    ) -> Result<Answer, Refusal> {
        let parts = self
            .auth
            .apply(now)
            .map_err(|e| Refusal::Unavailable(format!("introspection client auth: {e}")))?;
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", "access_token");
            for (k, v) in &parts.form {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let request = FormPost {
            url: self.endpoint.clone(),
            headers: parts.headers,
            body,
        };
        let response = self
            .transport
            .post_form(&request)
            .await
            .map_err(|e| Refusal::Unavailable(format!("introspection: {}", e.message)))?;
        if response.status != 200 || response.body.len() > MAX_ANSWER_BYTES {
            return Err(Refusal::Unavailable(format!(
                "introspection endpoint answered {}",
                response.status
            )));
        }
        let answer: Map<String, Value> = serde_json::from_slice(&response.body)
            .map_err(|_| Refusal::Unavailable("introspection answer is not JSON".to_owned()))?;
        Ok(read_answer(answer, issuers, audience, now))
    }
}

fn inactive(description: &'static str) -> Answer {
    Answer::Inactive(Refusal::token(AccessTokenReason::Malformed, description))
}

/// Reads an RFC 7662 §2.2 answer under this module's rules. Pure.
pub(crate) fn read_answer(
    mut answer: Map<String, Value>,
    issuers: &[Issuer],
    audience: &str,
    now: UnixTime,
) -> Answer {
    if answer.get("active") != Some(&Value::Bool(true)) {
        return inactive("the token is not active");
    }
    let Some(exp) = answer.get("exp").and_then(Value::as_u64) else {
        return inactive("the introspection answer has no exp");
    };
    if now.as_secs() >= exp {
        return Answer::Inactive(Refusal::token(
            AccessTokenReason::Expired,
            "access token has expired",
        ));
    }
    let iss = match answer.get("iss").and_then(Value::as_str) {
        Some(iss) if issuers.iter().any(|t| t == iss) => Issuer::from(iss),
        Some(_) => {
            return Answer::Inactive(Refusal::token(
                AccessTokenReason::IssuerUntrusted,
                "access token 'iss' is not a trusted issuer",
            ));
        }
        None => match issuers.first() {
            Some(first) => first.clone(),
            None => return inactive("no trusted issuer"),
        },
    };
    let aud: Vec<String> = match answer.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if !aud.iter().any(|a| a == audience) {
        return Answer::Inactive(Refusal::token(
            AccessTokenReason::AudienceMismatch,
            "access token 'aud' does not contain this resource's audience",
        ));
    }
    if answer.contains_key("cnf") {
        return Answer::Inactive(Refusal::token(
            AccessTokenReason::SenderConstrained,
            "access token is sender-constrained ('cnf') and cannot be used as a Bearer token",
        ));
    }
    let text =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let client_id = text(&answer, "client_id").unwrap_or_default();
    let sub = text(&answer, "sub").unwrap_or_else(|| client_id.clone());
    let scopes = text(&answer, "scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let iat = answer.get("iat").and_then(Value::as_u64).unwrap_or(0);
    let jti = text(&answer, "jti").unwrap_or_default();
    answer.remove("active");
    Answer::Active(Box::new(AccessTokenClaims {
        iss,
        sub,
        client_id: ClientId::from(client_id),
        aud,
        scopes,
        exp: UnixTime::from_secs(exp),
        iat: UnixTime::from_secs(iat),
        jti,
        cnf_jkt: None,
        claims: answer,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Answer {
        let Value::Object(m) = v else { panic!() };
        read_answer(
            m,
            &[Issuer::from("https://as")],
            "https://api",
            UnixTime::from_secs(1_000),
        )
    }

    #[test]
    fn answers_are_read_strictly() {
        let ok = json!({"active":true,"exp":2000,"iss":"https://as","aud":"https://api","client_id":"c","scope":"a b"});
        let Answer::Active(c) = read(ok) else {
            panic!()
        };
        assert_eq!(c.scopes, ["a", "b"]);
        assert_eq!(c.sub, "c");
        for (why, v) in [
            ("inactive", json!({"active":false})),
            (
                "active as a string",
                json!({"active":"true","exp":2000,"aud":"https://api"}),
            ),
            ("no exp", json!({"active":true,"aud":"https://api"})),
            (
                "expired",
                json!({"active":true,"exp":1000,"aud":"https://api"}),
            ),
            (
                "foreign iss",
                json!({"active":true,"exp":2000,"iss":"https://evil","aud":"https://api"}),
            ),
            (
                "other audience",
                json!({"active":true,"exp":2000,"aud":"https://other"}),
            ),
            ("no audience", json!({"active":true,"exp":2000})),
            (
                "cnf",
                json!({"active":true,"exp":2000,"aud":"https://api","cnf":{"jkt":"x"}}),
            ),
        ] {
            assert!(matches!(read(v), Answer::Inactive(_)), "{why}");
        }
    }
}
