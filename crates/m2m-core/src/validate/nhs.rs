//! The NHS England token-endpoint emulation profile: the proxy's check order
//! (docs/nhs-token-endpoint.md), its status codes and its exact error strings (§2.2),
//! with each header/claim check a small function the linter runs too.
//!
//! A public module so that the exact strings are named `validate::nhs::messages::…`.

use std::fmt;

use serde_json::{Map, Value};

use super::Verified;
use super::form::{self, Duplicates, TokenForm};
use super::rejection::{Reason, Rejection};
use super::rules::{self, Parsed};
use crate::alg::Algorithm;
use crate::clock::UnixTime;
use crate::ids::{ClientId, KeyEntry};
use crate::wire::{CLIENT_ASSERTION_TYPE, GRANT_CLIENT_CREDENTIALS};

/// The exact `error_description` strings of the NHS token endpoint (docs/nhs-token-endpoint.md
/// §2.2), so the server, the tests and the client's hint table share one spelling.
pub mod messages {
    /// Row 1 (415).
    pub const CONTENT_TYPE: &str = "Content-Type header must be application/x-www-form-urlencoded";
    /// Row 3.
    pub const GRANT_TYPE_MISSING: &str = "grant_type is missing";
    /// Row 4 (`unsupported_grant_type`).
    pub const GRANT_TYPE_INVALID: &str = "grant_type is invalid";
    /// Rows 5, 6.
    pub const ASSERTION_TYPE: &str = "Missing or invalid client_assertion_type - must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'";
    /// Row 7.
    pub const ASSERTION_MISSING: &str = "Missing client_assertion";
    /// Row 8.
    pub const MALFORMED: &str = "Malformed JWT in client_assertion";
    /// Rows 9–17.
    pub const ALG: &str = "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'";
    /// Row 18.
    pub const KID_MISSING: &str = "Missing 'kid' header in client_assertion JWT";
    /// Row 19 (401).
    pub const KID_UNKNOWN: &str =
        "Invalid 'kid' header in client_assertion JWT - no matching public key";
    /// Rows 20, 21.
    pub const TYP: &str = "Invalid 'typ' header in client_assertion JWT - must be 'JWT'";
    /// Row 23 (401).
    pub const ISS_SUB_UNKNOWN: &str = "Invalid 'iss'/'sub' claims in client_assertion JWT";
    /// Rows 24–27.
    pub const ISS_SUB: &str = "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT";
    /// Row 28.
    pub const JTI_INVALID: &str = "Invalid 'jti' claim in client_assertion JWT - must be a unique string value such as a GUID";
    /// Rows 29, 30.
    pub const JTI_MISSING: &str = "Missing 'jti' claim in client_assertion JWT";
    /// Row 31.
    pub const JTI_REPLAYED: &str = "Non-unique 'jti' claim in client_assertion JWT";
    /// Rows 32, 33 (401).
    pub const AUD: &str = "Missing or invalid 'aud' claim in client_assertion JWT";
    /// Row 34.
    pub const EXP_NOT_INTEGER: &str =
        "Invalid 'exp' claim in client_assertion JWT - must be an integer";
    /// Row 35.
    pub const EXPIRED: &str = "Invalid 'exp' claim in client_assertion JWT - JWT has expired";
    /// Row 36.
    pub const EXP_TOO_FAR: &str =
        "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future";
    /// Row 38.
    pub const EXP_MISSING: &str = "Missing 'exp' claim in client_assertion JWT";
    /// Row 39 (403 `public_key error`).
    pub const NO_PUBLIC_KEY: &str = "You need to register a public key to use this authentication method - please contact support to configure";
    /// Row 40 (403 `public_key error`).
    pub const JWKS_UNREACHABLE: &str =
        "The JWKS endpoint, for your client_assertion can't be reached";
    /// Rows 41, 47 (401 `public_key error`).
    pub const BAD_SIGNATURE: &str = "JWT signature verification failed";
    /// Row 42 (401 `unauthorized_client`).
    pub const UNAUTHORIZED_CLIENT: &str = "you have tried to request authorization but your application is not configured to use this authorization grant type";
    /// Row 46 (Apigee's default fault).
    pub const UNKNOWN_ERROR: &str = "An unknown error occurred processing this request. Contact us for assistance diagnosing this issue: https://digital.nhs.uk/developer/help-and-support quoting Message ID";
}

/// NHS's non-standard `error` value for key problems (with a space).
pub const PUBLIC_KEY_ERROR: &str = "public_key error";

/// `exp - now` may be at most this many seconds (the guide's 5 minutes plus the proxy's 10 s slack).
pub const NHS_MAX_EXP_AHEAD_SECS: f64 = 310.0;
/// Apigee VerifyJWT's `TimeAllowance` for `nbf`/`iat`.
pub const NHS_TIME_ALLOWANCE_SECS: f64 = 10.0;

/// Configuration of the NHS emulation profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NhsConfig {
    /// The emulator's externally visible token URL: the only accepted `aud`.
    pub token_url: String,
}

impl NhsConfig {
    /// A configuration for this token URL.
    pub fn new(token_url: impl Into<String>) -> Self {
        NhsConfig {
            token_url: token_url.into(),
        }
    }
}

/// An assertion that passed NHS steps 3–6.9 and was evaluated for 6.11; the caller does the
/// replay step (6.10/7) and the key steps.
pub struct NhsPending {
    parsed: Parsed,
    sub: String,
    jti: String,
    exp: f64,
    now: UnixTime,
    far_future: bool,
}

impl NhsPending {
    /// `sub` (as JavaScript would stringify it): the app to look up, and half the replay key.
    pub fn sub(&self) -> &str {
        &self.sub
    }
    /// `jti`: the other half of the replay key.
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// `exp`.
    pub fn exp(&self) -> UnixTime {
        rules::to_unix_time(self.exp)
    }
    /// The `kid` header as NHS would look it up, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.parsed.header_str("kid")
    }
    /// The `aud` claim as sent, for a server's log when NHS's fixed "Missing or invalid 'aud'"
    /// string is all the wire may say: the log gives expected against actual.
    pub fn aud(&self) -> Option<&Value> {
        self.parsed.claims.get("aud")
    }
    /// Whether step 6.11 fails (`exp - now > 310`). NHS checks replay (6.10) first, so the caller
    /// must consult its replay store before returning [`NhsPending::far_future_rejection`].
    pub fn far_future(&self) -> bool {
        self.far_future
    }
    /// Step 6.11's rejection.
    pub fn far_future_rejection(&self) -> Rejection {
        nhs_400(Reason::ExpTooFar, messages::EXP_TOO_FAR)
    }
}

impl fmt::Debug for NhsPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NhsPending")
            .field("sub", &self.sub)
            .field("jti", &self.jti)
            .field("kid", &self.kid())
            .field("far_future", &self.far_future)
            .finish_non_exhaustive()
    }
}

/// The NHS-profile validator.
#[derive(Clone, Debug)]
pub struct NhsValidator {
    config: NhsConfig,
}

fn nhs_400(reason: Reason, description: &'static str) -> Rejection {
    Rejection::new(400, "invalid_request", description, reason)
}

impl NhsValidator {
    /// A validator with this configuration.
    pub fn new(config: NhsConfig) -> Self {
        NhsValidator { config }
    }

    /// The configuration.
    pub fn config(&self) -> &NhsConfig {
        &self.config
    }

    /// Step 2 and the body: `Content-Type` must be exactly `application/x-www-form-urlencoded`
    /// (the proxy compares with `!=`, so a `;charset` suffix is refused too), else 415. The query
    /// string is not read (Apigee takes form parameters from the body only), a repeated parameter
    /// keeps its first value, and decoding is lenient, as Apigee's is.
    pub fn parse_form(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<TokenForm, Rejection> {
        if content_type.map(str::trim) != Some(form::FORM_MEDIA_TYPE) {
            return Err(Rejection::new(
                415,
                "invalid_request",
                messages::CONTENT_TYPE,
                Reason::MediaType,
            ));
        }
        let pairs = form::decode_pairs(body, true).unwrap_or_default();
        Ok(form::collect(pairs, Duplicates::FirstWins).unwrap_or_default())
    }

    /// Steps 3–6.9 and 6.11 evaluated without the store: returns `NhsPending` whose `far_future`
    /// flag says whether step 6.11 fails; the caller then does step 6.10/7 against its replay store:
    ///   far_future  → if store.contains(sub,jti) { Err(non_unique_jti()) } else { Err(pending.far_future_rejection()) }
    ///   otherwise   → if !store.insert_if_absent(sub,jti,30 days) { Err(non_unique_jti()) }
    pub fn precheck(&self, form: &TokenForm, now: UnixTime) -> Result<NhsPending, Rejection> {
        self.rule_grant_type(form.grant_type.as_deref())?;
        self.rule_assertion_type(form.client_assertion_type.as_deref())?;
        let parsed = self.rule_decode(form.client_assertion.as_deref())?;
        let (header, claims) = (parsed.header(), &parsed.claims);
        for rule in HEADER_CLAIM_RULES {
            if let Some(rejection) = rule(header, claims, now) {
                return Err(rejection);
            }
        }
        // The rules above guarantee: exp a number, sub truthy and == iss, jti a non-empty string.
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .unwrap_or_default();
        let sub = claims
            .get("sub")
            .map(rules::js_to_string)
            .unwrap_or_default();
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let far_future = rule_exp_too_far(header, claims, now).is_some();
        Ok(NhsPending {
            parsed,
            sub,
            jti,
            exp,
            now,
            far_future,
        })
    }

    /// Step 6.10: the `jti` was seen before for this `sub`.
    pub fn non_unique_jti(&self) -> Rejection {
        nhs_400(Reason::Replayed, messages::JTI_REPLAYED)
    }

    /// Step 8: no app with this API key (in this environment).
    pub fn unknown_app(&self) -> Rejection {
        Rejection::new(
            401,
            "invalid_request",
            messages::ISS_SUB_UNKNOWN,
            Reason::UnknownClient,
        )
    }

    /// Step 10: the app has no `jwks-resource-url`.
    pub fn no_public_key(&self) -> Rejection {
        Rejection::new(
            403,
            PUBLIC_KEY_ERROR,
            messages::NO_PUBLIC_KEY,
            Reason::NoKeys,
        )
    }

    /// Step 11: the JWKS URL has no path or cannot be fetched.
    pub fn jwks_unreachable(&self) -> Rejection {
        Rejection::new(
            403,
            PUBLIC_KEY_ERROR,
            messages::JWKS_UNREACHABLE,
            Reason::JwksUnavailable,
        )
    }

    /// Step 13: the app's products carry no application-restricted scope.
    pub fn unauthorized_client(&self) -> Rejection {
        Rejection::new(
            401,
            "unauthorized_client",
            messages::UNAUTHORIZED_CLIENT,
            Reason::Unauthorized,
        )
    }

    /// Apigee's default fault body, for failures without a dedicated NHS rule
    /// (docs/nhs-token-endpoint.md row 46; status inferred).
    pub fn unknown_error(&self, reason: Reason) -> Rejection {
        Rejection::new(401, "unknown_error", messages::UNKNOWN_ERROR, reason)
    }

    /// Step 12 (Apigee VerifyJWT): kid → signature (RS512) → `aud` == token URL → `exp` and
    /// `nbf`/`iat` with the 10 s allowance (docs/nhs-token-endpoint.md row 46, inferred).
    pub fn verify(&self, pending: &NhsPending, keys: &[KeyEntry]) -> Result<Verified, Rejection> {
        let parsed = &pending.parsed;
        let key = self.rule_key(parsed.header(), keys)?;
        // A key published with another `alg` does not verify RS512 (its `alg` is binding).
        let verified =
            key.allows(Algorithm::Rs512) && parsed.jws.verify(&key.key, Algorithm::Rs512).is_ok();
        if !verified {
            return Err(Rejection::new(
                401,
                PUBLIC_KEY_ERROR,
                messages::BAD_SIGNATURE,
                Reason::BadSignature,
            ));
        }
        if let Some(rejection) = self.rule_aud(&parsed.claims) {
            return Err(rejection);
        }
        if let Some(rejection) = self.rule_time_allowance(&parsed.claims, pending.now) {
            return Err(rejection);
        }
        Ok(Verified {
            client_id: ClientId::from(pending.sub.as_str()),
            jti: pending.jti.clone(),
            exp: pending.exp(),
            // The proxy strips `scope` before the flow; it has no effect.
            scope: None,
        })
    }

    // ---- rules; the header/claim ones are in HEADER_CLAIM_RULES, shared with `lint` ----

    fn rule_grant_type(&self, grant_type: Option<&str>) -> Result<(), Rejection> {
        match grant_type {
            None => Err(nhs_400(
                Reason::GrantTypeMissing,
                messages::GRANT_TYPE_MISSING,
            )),
            Some(GRANT_CLIENT_CREDENTIALS) => Ok(()),
            Some(_) => Err(Rejection::new(
                400,
                "unsupported_grant_type",
                messages::GRANT_TYPE_INVALID,
                Reason::GrantTypeUnsupported,
            )),
        }
    }

    fn rule_assertion_type(&self, assertion_type: Option<&str>) -> Result<(), Rejection> {
        if assertion_type == Some(CLIENT_ASSERTION_TYPE) {
            Ok(())
        } else {
            Err(nhs_400(
                Reason::AssertionTypeInvalid,
                messages::ASSERTION_TYPE,
            ))
        }
    }

    pub(crate) fn rule_decode(&self, assertion: Option<&str>) -> Result<Parsed, Rejection> {
        let Some(assertion) = assertion else {
            return Err(nhs_400(
                Reason::AssertionMissing,
                messages::ASSERTION_MISSING,
            ));
        };
        Parsed::parse(assertion).ok_or_else(|| nhs_400(Reason::Malformed, messages::MALFORMED))
    }

    fn rule_key<'k>(
        &self,
        header: &Map<String, Value>,
        keys: &'k [KeyEntry],
    ) -> Result<&'k KeyEntry, Rejection> {
        // Precheck guarantees a truthy kid; Apigee matches it as a string.
        let kid = header.get("kid").map(rules::js_to_string);
        keys.iter()
            .find(|e| e.kid.is_some() && e.kid.as_deref() == kid.as_deref())
            .ok_or_else(|| {
                Rejection::new(
                    401,
                    "invalid_request",
                    messages::KID_UNKNOWN,
                    Reason::UnknownKid,
                )
            })
    }

    /// VerifyJWT's `Audience = proxy.url`: the exact token URL, character for character.
    pub(crate) fn rule_aud(&self, claims: &Map<String, Value>) -> Option<Rejection> {
        let ok = claims.get("aud").and_then(Value::as_str) == Some(self.config.token_url.as_str());
        (!ok).then(|| Rejection::new(401, "invalid_request", messages::AUD, Reason::AudInvalid))
    }

    /// VerifyJWT's `TimeAllowance 10s` on `nbf` and `iat` (no dedicated NHS message: row 46).
    pub(crate) fn rule_time_allowance(
        &self,
        claims: &Map<String, Value>,
        now: UnixTime,
    ) -> Option<Rejection> {
        // VerifyJWT checks `exp` too, with the same allowance. Step 6.2 (`new Date() > new
        // Date(exp*1000)`) lets through an `exp` outside the JS Date range (`-1e13`, `-1e300`);
        // without this such an assertion would never expire here, while NHS refuses it.
        if let Some(exp) = claims.get("exp").and_then(rules::numeric_date)
            && exp <= rules::now_secs(now) - NHS_TIME_ALLOWANCE_SECS
        {
            return Some(self.unknown_error(Reason::Expired));
        }
        let limit = rules::now_secs(now) + NHS_TIME_ALLOWANCE_SECS;
        for (name, reason_invalid, reason_future) in [
            ("nbf", Reason::NbfInvalid, Reason::NbfFuture),
            ("iat", Reason::IatInvalid, Reason::IatFuture),
        ] {
            if let Some(value) = claims.get(name) {
                match rules::numeric_date(value) {
                    None => return Some(self.unknown_error(reason_invalid)),
                    Some(t) if t > limit => return Some(self.unknown_error(reason_future)),
                    Some(_) => {}
                }
            }
        }
        None
    }
}

/// One of the proxy's header/claim checks (step 6) on (header, claims, now): `Some` when it fails.
pub(crate) type NhsCheck =
    fn(&Map<String, Value>, &Map<String, Value>, UnixTime) -> Option<Rejection>;

/// Steps 6.1–6.9 in the proxy's order (6.10 needs the store, 6.11 is [`rule_exp_too_far`]).
/// Each rule fires only on its own defect, so the linter can run them all.
pub(crate) const HEADER_CLAIM_RULES: [NhsCheck; 9] = [
    rule_alg,
    rule_expired,
    rule_kid,
    rule_typ,
    rule_exp_missing,
    rule_exp_type,
    rule_iss_sub,
    rule_jti_missing,
    rule_jti_type,
];

/// 6.1 `alg != "RS512"` (missing included: the "Missing 'alg'" text is unreachable in the proxy).
fn rule_alg(header: &Map<String, Value>, _: &Map<String, Value>, _: UnixTime) -> Option<Rejection> {
    (header.get("alg").and_then(Value::as_str) != Some("RS512"))
        .then(|| nhs_400(Reason::AlgRefused, messages::ALG))
}

/// 6.2 `new Date() > new Date(exp * 1000)`: JavaScript coerces `exp` (a numeric string counts),
/// and there is no leeway. A missing `exp` gives NaN, which compares false.
fn rule_expired(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    now: UnixTime,
) -> Option<Rejection> {
    let exp_ms = rules::js_to_number(claims.get("exp")) * 1000.0;
    // JavaScript `Date` is invalid (NaN) beyond ±8.64e15 ms.
    let valid_date = exp_ms.is_finite() && exp_ms.abs() <= 8.64e15;
    (valid_date && (now.as_millis() as f64) > exp_ms)
        .then(|| nhs_400(Reason::Expired, messages::EXPIRED))
}

/// 6.3 `!kid`.
fn rule_kid(header: &Map<String, Value>, _: &Map<String, Value>, _: UnixTime) -> Option<Rejection> {
    (!rules::js_truthy(header.get("kid")))
        .then(|| nhs_400(Reason::KidMissing, messages::KID_MISSING))
}

/// 6.4 `typeof typ != "string" || typ.toLowerCase() != "jwt"`: `typ` is required.
fn rule_typ(header: &Map<String, Value>, _: &Map<String, Value>, _: UnixTime) -> Option<Rejection> {
    (!rules::typ_ok_nhs(header.get("typ"))).then(|| nhs_400(Reason::TypInvalid, messages::TYP))
}

/// 6.5 `!exp`.
fn rule_exp_missing(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    _: UnixTime,
) -> Option<Rejection> {
    (!rules::js_truthy(claims.get("exp")))
        .then(|| nhs_400(Reason::ExpMissing, messages::EXP_MISSING))
}

/// 6.6 `typeof exp != "number"` (a float passes). Skipped when 6.5 already fires.
fn rule_exp_type(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    _: UnixTime,
) -> Option<Rejection> {
    let exp = claims.get("exp");
    (rules::js_truthy(exp) && !exp.is_some_and(Value::is_number))
        .then(|| nhs_400(Reason::ExpInvalid, messages::EXP_NOT_INTEGER))
}

/// 6.7 `!iss || iss != sub` (JavaScript loose equality).
fn rule_iss_sub(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    _: UnixTime,
) -> Option<Rejection> {
    let (iss, sub) = (claims.get("iss"), claims.get("sub"));
    (!rules::js_truthy(iss) || !rules::js_loose_eq(iss, sub))
        .then(|| nhs_400(Reason::IssSubInvalid, messages::ISS_SUB))
}

/// 6.8 `!jti` (missing or empty string).
fn rule_jti_missing(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    _: UnixTime,
) -> Option<Rejection> {
    (!rules::js_truthy(claims.get("jti")))
        .then(|| nhs_400(Reason::JtiMissing, messages::JTI_MISSING))
}

/// 6.9 `typeof jti != "string"`. Skipped when 6.8 already fires.
fn rule_jti_type(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    _: UnixTime,
) -> Option<Rejection> {
    let jti = claims.get("jti");
    (rules::js_truthy(jti) && !jti.is_some_and(Value::is_string))
        .then(|| nhs_400(Reason::JtiInvalid, messages::JTI_INVALID))
}

/// 6.11 `seconds_remaining > 310`, only meaningful once 6.6 established `exp` is a number.
pub(crate) fn rule_exp_too_far(
    _: &Map<String, Value>,
    claims: &Map<String, Value>,
    now: UnixTime,
) -> Option<Rejection> {
    let exp = claims.get("exp").and_then(rules::numeric_date)?;
    (exp - rules::now_secs(now) > NHS_MAX_EXP_AHEAD_SECS)
        .then(|| nhs_400(Reason::ExpTooFar, messages::EXP_TOO_FAR))
}
