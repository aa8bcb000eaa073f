//! Federated workload credentials: a JWT minted by another issuer (a Kubernetes projected
//! service-account token, a SPIFFE JWT-SVID, a GitHub Actions OIDC token) presented as the RFC 7523
//! §2.1 jwt-bearer grant or as a client assertion (RFC 7523 §2.2), checked against one trusted
//! issuer's policy ([`TrustPolicy`]). Pure: the server finds the issuer's keys and the rule that
//! matches the subject, and records the `jti`.
//!
//! The order (docs/federation.md, `### Server: what is checked`): size and shape → `alg`
//! (asymmetric only: `none` and HMAC refused) → `crit` refused → `iss` and `sub` present
//! ([`RfcValidator::precheck_federated`]) → the server looks the issuer up and fetches its keys →
//! key by `kid` → signature ([`RfcValidator::verify_federated_signature`]) → the server picks the
//! trust rule matching `sub` and the claims → `aud` holds one accepted audience → `exp` present and
//! not past → lifetime (`exp` − `iat`, or `exp` − now without `iat`) within the trust's maximum →
//! `iat`/`nbf` not in the future → `jti` (required and recorded once, or optional where the trust
//! allows reuse) ([`RfcValidator::check_federated_claims`]).
//!
//! The key, signature, `iat`/`nbf` and `jti`-shape rules are the client-assertion rules of
//! [`RfcValidator`], run here too (one rule in one place). What differs is deliberate: the issuer
//! is not the subject, `aud` may hold several values (Kubernetes and GitHub let the workload ask
//! for any audience list; one of them must be ours), and the lifetime limit is the trust's (these
//! tokens commonly live up to an hour), not the five minutes of a client's own assertion.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::rejection::{Reason, Rejection};
use super::rfc::RfcValidator;
use super::rules::{self, Parsed};
use crate::alg::Algorithm;
use crate::clock::UnixTime;
use crate::ids::KeyEntry;

/// What one trusted issuer's entry accepts, beyond a valid signature by one of its keys.
#[derive(Clone, Copy, Debug)]
pub struct TrustPolicy<'a> {
    /// The `aud` values accepted (one of the token's `aud` values must be among them).
    pub audiences: &'a [String],
    /// The longest accepted lifetime: `exp` − `iat` (or `exp` − now when there is no `iat`).
    pub max_lifetime: Duration,
    /// Whether a `jti` is required (single use, the default). `false` for issuers that reuse a
    /// token within its lifetime (SPIRE JWT-SVIDs have no `jti`).
    pub jti_required: bool,
}

/// A federated token that passed [`RfcValidator::precheck_federated`]: well-formed, with an
/// asymmetric `alg`, an `iss` and a `sub`. Nothing in it is authenticated yet.
pub struct FederatedPending {
    parsed: Parsed,
    alg: Algorithm,
    iss: String,
    sub: String,
}

impl FederatedPending {
    /// The `iss` claim: which trusted issuer to look up.
    pub fn issuer(&self) -> &str {
        &self.iss
    }
    /// The `sub` claim (not yet authenticated).
    pub fn subject(&self) -> &str {
        &self.sub
    }
    /// The `kid` header, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.parsed.header_str("kid")
    }
    /// The `alg` header.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
}

impl fmt::Debug for FederatedPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token or its signature.
        f.debug_struct("FederatedPending")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A federated token whose signature holds: its claims may now be trusted for rule matching.
pub struct FederatedSigned {
    pending: FederatedPending,
}

impl FederatedSigned {
    /// The `iss` claim.
    pub fn issuer(&self) -> &str {
        &self.pending.iss
    }
    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.pending.sub
    }
    /// Every claim, for the trust's claim rules.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.pending.parsed.claims
    }
}

impl fmt::Debug for FederatedSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedSigned")
            .field("iss", &self.pending.iss)
            .field("sub", &self.pending.sub)
            .finish_non_exhaustive()
    }
}

/// A federated token that passed every check of its trust's policy. The server still records the
/// `jti` (when there is one and the trust wants single use) until `exp` + leeway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedVerified {
    /// The `jti`, when present.
    pub jti: Option<String>,
    /// The `exp`.
    pub exp: UnixTime,
}

impl RfcValidator {
    /// The pre-I/O checks of a federated token: size and shape → `alg` (asymmetric only) → `crit`
    /// → `iss` and `sub` non-empty strings. The rejections are 401 `invalid_client` (the caller
    /// answers `invalid_grant` for the jwt-bearer grant: [`Rejection::into_invalid_grant`]).
    pub fn precheck_federated(&self, token: &str) -> Result<FederatedPending, Rejection> {
        if token.len() > self.config().max_assertion_len() {
            return Err(Rejection::invalid_client(
                Reason::AssertionTooLarge,
                format!(
                    "the assertion is longer than {} bytes",
                    self.config().max_assertion_len()
                ),
            ));
        }
        let parsed = Parsed::parse(token).ok_or_else(|| {
            Rejection::invalid_client(
                Reason::Malformed,
                "the assertion is not a compact JWS (three base64url parts with a JSON header \
                 and JSON claims)",
            )
        })?;
        let alg = self.rule_alg(parsed.header())?;
        self.rule_crit(parsed.header())?;
        let text = |name: &str| match parsed.claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let (Some(iss), Some(sub)) = (text("iss"), text("sub")) else {
            return Err(Rejection::invalid_client(
                Reason::IssSubInvalid,
                "the assertion needs 'iss' and 'sub' as non-empty strings",
            ));
        };
        Ok(FederatedPending {
            parsed,
            alg,
            iss,
            sub,
        })
    }

    /// Key by `kid` (required unless the issuer publishes one key) → signature, with the client
    /// assertion's rules.
    pub fn verify_federated_signature(
        &self,
        pending: FederatedPending,
        keys: &[KeyEntry],
    ) -> Result<FederatedSigned, Rejection> {
        let key = self.rule_key(pending.parsed.header(), keys)?;
        self.rule_signature(&pending.parsed, key, pending.alg)?;
        Ok(FederatedSigned { pending })
    }

    /// The claims under the policy of the trust entry that matched: `aud` → `exp` → lifetime →
    /// `iat`/`nbf` → `jti`.
    pub fn check_federated_claims(
        &self,
        signed: &FederatedSigned,
        policy: &TrustPolicy<'_>,
        now: UnixTime,
    ) -> Result<FederatedVerified, Rejection> {
        let claims = signed.claims();
        rule_federated_aud(claims, policy.audiences)?;
        let exp = self.rule_federated_lifetime(claims, policy.max_lifetime, now)?;
        self.rule_iat(claims, now)?;
        self.rule_nbf(claims, now)?;
        let jti = match claims.get("jti") {
            None if !policy.jti_required => None,
            _ => Some(self.rule_jti(claims)?.to_owned()),
        };
        Ok(FederatedVerified {
            jti,
            exp: rules::to_unix_time(exp),
        })
    }

    /// `exp` present, a number, not past (leeway); then `exp` − `iat` (or − now, without `iat`)
    /// at most `max_lifetime`. A token without `exp` never expires and is always refused.
    fn rule_federated_lifetime(
        &self,
        claims: &Map<String, Value>,
        max_lifetime: Duration,
        now: UnixTime,
    ) -> Result<f64, Rejection> {
        let fail = |reason, d: Cow<'static, str>| Err(Rejection::invalid_client(reason, d));
        let Some(exp) = claims.get("exp") else {
            return fail(
                Reason::ExpMissing,
                "the assertion has no 'exp': tokens that never expire are refused".into(),
            );
        };
        let Some(exp) = rules::numeric_date(exp) else {
            return fail(
                Reason::ExpInvalid,
                "assertion 'exp' must be a NumericDate (a JSON number of seconds since the epoch)"
                    .into(),
            );
        };
        if now >= rules::to_unix_time(exp).add(self.config().leeway()) {
            return fail(
                Reason::Expired,
                "the assertion has expired ('exp' is in the past)".into(),
            );
        }
        let start = match claims.get("iat").and_then(rules::numeric_date) {
            Some(iat) => iat,
            None => rules::now_secs(now),
        };
        let lifetime = exp - start;
        if lifetime > max_lifetime.as_secs_f64() {
            return fail(
                Reason::ExpTooFar,
                format!(
                    "the assertion lives {} s ('exp' - 'iat'), above this issuer's limit of {} s",
                    lifetime.ceil() as i64,
                    max_lifetime.as_secs()
                )
                .into(),
            );
        }
        Ok(exp)
    }
}

/// `aud` (a string or an array of strings) holds at least one accepted audience.
fn rule_federated_aud(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), Rejection> {
    let ok = |s: &str| accepted.iter().any(|a| a == s);
    let found = match claims.get("aud") {
        Some(Value::String(s)) => ok(s),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(ok),
        _ => false,
    };
    if found {
        return Ok(());
    }
    let shown: Vec<String> = accepted.iter().map(|a| format!("{a:?}")).collect();
    Err(Rejection::invalid_client(
        Reason::AudInvalid,
        format!(
            "assertion 'aud' holds none of the audiences this issuer's tokens must name ({})",
            shown.join(", ")
        ),
    ))
}

impl Rejection {
    /// The same refusal as the jwt-bearer grant answers it: 400 `invalid_grant` (RFC 7523 §3.1),
    /// same description and reason. Only 401 `invalid_client` refusals change; others (413, 503,
    /// …) stay as they are.
    pub fn into_invalid_grant(self) -> Rejection {
        if self.error == "invalid_client" {
            Rejection {
                status: 400,
                error: Cow::Borrowed("invalid_grant"),
                ..self
            }
        } else {
            self
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::validate::RfcConfig;
    use serde_json::json;

    fn validator() -> RfcValidator {
        RfcValidator::new(RfcConfig::new(
            "https://as.example",
            "https://as.example/token",
        ))
    }

    fn unsigned(claims: Value) -> String {
        use crate::jws::base64url_encode;
        format!(
            "{}.{}.c2ln",
            base64url_encode(br#"{"alg":"ES256","kid":"k"}"#),
            base64url_encode(claims.to_string().as_bytes())
        )
    }

    fn signed(claims: Value) -> FederatedSigned {
        FederatedSigned {
            pending: validator().precheck_federated(&unsigned(claims)).unwrap(),
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn check(claims: Value, jti_required: bool) -> Result<FederatedVerified, Rejection> {
        let audiences = vec!["https://as.example".to_owned()];
        let policy = TrustPolicy {
            audiences: &audiences,
            max_lifetime: Duration::from_secs(3600),
            jti_required,
        };
        validator().check_federated_claims(&signed(claims), &policy, UnixTime::from_secs(NOW))
    }

    #[test]
    fn precheck_needs_iss_sub_and_an_asymmetric_alg() {
        let v = validator();
        assert_eq!(
            v.precheck_federated("a.b").unwrap_err().reason,
            Reason::Malformed
        );
        let p = v
            .precheck_federated(&unsigned(json!({"iss": "https://i", "sub": "s"})))
            .unwrap();
        assert_eq!(
            (p.issuer(), p.subject(), p.kid()),
            ("https://i", "s", Some("k"))
        );
        assert_eq!(
            v.precheck_federated(&unsigned(json!({"iss": "https://i"})))
                .unwrap_err()
                .reason,
            Reason::IssSubInvalid
        );
        let hmac = format!(
            "{}.{}.c2ln",
            crate::jws::base64url_encode(br#"{"alg":"HS256"}"#),
            crate::jws::base64url_encode(br#"{"iss":"i","sub":"s"}"#)
        );
        assert_eq!(
            v.precheck_federated(&hmac).unwrap_err().reason,
            Reason::AlgRefused
        );
    }

    #[test]
    fn claims_follow_the_trust_policy() {
        let base = |extra: Value| {
            let mut c = json!({"iss": "https://i", "sub": "s", "aud": ["x", "https://as.example"],
                "iat": NOW - 10, "exp": NOW + 600, "jti": "j"});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let ok = check(base(json!({})), true).unwrap();
        assert_eq!(ok.jti.as_deref(), Some("j"));
        let reason = |c, req| check(c, req).unwrap_err().reason;
        assert_eq!(
            reason(base(json!({"aud": "other"})), true),
            Reason::AudInvalid
        );
        assert_eq!(
            reason(base(json!({"exp": NOW + 4000})), true),
            Reason::ExpTooFar
        );
        assert_eq!(
            reason(base(json!({"exp": NOW - 3600})), true),
            Reason::Expired
        );
        let mut no_exp = base(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(reason(no_exp, true), Reason::ExpMissing);
        let mut no_jti = base(json!({}));
        no_jti.as_object_mut().unwrap().remove("jti");
        assert_eq!(reason(no_jti.clone(), true), Reason::JtiMissing);
        assert_eq!(check(no_jti, false).unwrap().jti, None);
        // Without `iat`, the lifetime counts from now.
        let mut no_iat = base(json!({"exp": NOW + 3000}));
        no_iat.as_object_mut().unwrap().remove("iat");
        assert!(check(no_iat, true).is_ok());
    }

    #[test]
    fn invalid_grant_keeps_the_description() {
        let r = Rejection::invalid_client(Reason::AudInvalid, "d").into_invalid_grant();
        assert_eq!(
            (r.status, &*r.error, &*r.description),
            (400, "invalid_grant", "d")
        );
        let r = Rejection::invalid_request(Reason::Other, "d").into_invalid_grant();
        assert_eq!(&*r.error, "invalid_request");
    }
}
