//! The RFC 9068 JWT access-token validator: what a resource server (and m2m-server's own
//! introspection) runs on a token before trusting it. Pure: the caller passes the issuer's
//! [`KeySet`], how the token was presented and the time.
//!
//! Check order, first failure wins (the repository's `docs/protocol.md`, `## Access-token
//! checks`): size + syntax → `alg` allowed → `typ` → `iss` trusted → `kid` → signature →
//! `exp`, `nbf`, `iat` (with leeway) → `aud` contains the expected audience → RFC 9068 required
//! claims (`sub`, `client_id`, `jti`) → sender constraint (`cnf` refused as plain Bearer) →
//! required scopes.
//!
//! Cheap, unauthenticated checks come first so a forged token costs no signature verification;
//! `iss` is checked before the key lookup because the keys belong to an issuer.
//!
//! Refusals are data ([`AccessTokenRejection`]) with a machine reason and the RFC 6750 error it
//! maps to: `invalid_token` (401) for everything about the token, `insufficient_scope` (403) for
//! missing scopes. `invalid_request` (400) belongs to the HTTP layer that extracts the token (two
//! credentials in one request, …); this validator never produces it but names it in
//! [`BearerError`] so that layer can use the same type.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::rules;
use crate::Error;
use crate::alg::Algorithm;
use crate::clock::UnixTime;
use crate::ids::{ClientId, Issuer, KeyEntry, KeySet};
use crate::jws::UnverifiedJws;
use crate::wire::ACCESS_TOKEN_TYP;

/// Longest access token accepted, in bytes (8 KiB: an RSA-4096 token with many scopes fits, and
/// it bounds the work an unauthenticated caller can cause).
pub const MAX_ACCESS_TOKEN_LEN: usize = 8192;
/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_ACCESS_TOKEN_LEEWAY: Duration = Duration::from_secs(30);

/// Which `aud` a token must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ExpectedAudience {
    /// This exact string, as the `aud` string or one member of the `aud` array.
    Exact(String),
    /// Any: only for an authorization server introspecting tokens it issued for every audience.
    AnyForIntrospection,
}

/// Configuration of [`AccessTokenValidator`]. The audience has no default: a resource server
/// that forgot to set it would accept tokens meant for any other service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenConfig {
    issuers: Vec<Issuer>,
    audience: ExpectedAudience,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    accept_jwt_typ: bool,
}

impl AccessTokenConfig {
    /// Tokens from `issuer` (compared as an exact string) for `audience`; every asymmetric
    /// algorithm m2m supports (none and HMAC do not exist in [`Algorithm`]), 30 s leeway,
    /// `typ` must be `at+jwt`.
    pub fn new(issuer: impl Into<Issuer>, audience: impl Into<String>) -> Self {
        AccessTokenConfig::with_audience(issuer.into(), ExpectedAudience::Exact(audience.into()))
    }

    /// Tokens from `issuer` for *any* audience. Only for an authorization server's introspection
    /// endpoint, which answers for every token it issued whoever the token is for (it applies
    /// its own visibility rule afterwards); a resource server must use [`AccessTokenConfig::new`].
    pub fn any_audience_for_introspection(issuer: impl Into<Issuer>) -> Self {
        AccessTokenConfig::with_audience(issuer.into(), ExpectedAudience::AnyForIntrospection)
    }

    fn with_audience(issuer: Issuer, audience: ExpectedAudience) -> Self {
        AccessTokenConfig {
            issuers: vec![issuer],
            audience,
            algorithms: Algorithm::ALL.to_vec(),
            leeway: DEFAULT_ACCESS_TOKEN_LEEWAY,
            accept_jwt_typ: false,
        }
    }

    /// Also trust tokens from `issuer` (all trusted issuers share the key set given to
    /// [`AccessTokenValidator::validate`]; give each issuer its own validator otherwise).
    pub fn add_issuer(&mut self, issuer: impl Into<Issuer>) -> &mut Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Restricts the accepted algorithms (e.g. to the issuer's published `alg`s).
    pub fn set_algorithms(&mut self, algorithms: &[Algorithm]) -> &mut Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The clock-skew allowance; refuses more than [`MAX_LEEWAY`](super::MAX_LEEWAY) (300 s).
    pub fn set_leeway(&mut self, leeway: Duration) -> Result<&mut Self, Error> {
        rules::check_leeway(leeway, "an access-token leeway")?;
        self.leeway = leeway;
        Ok(self)
    }

    /// Any leeway: every token lives that much longer than its issuer said.
    pub fn dangerous_leeway(&mut self, leeway: Duration) -> &mut Self {
        self.leeway = leeway;
        self
    }

    /// Also accept `typ` `JWT` or no `typ`, for issuers that do not follow RFC 9068 §2.1. The
    /// explicit `at+jwt` is what stops an ID token or a client assertion signed by the same
    /// issuer key from being replayed as an access token (RFC 8725 §3.11).
    pub fn dangerous_accept_jwt_typ(&mut self) -> &mut Self {
        self.accept_jwt_typ = true;
        self
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }
    /// The expected audience; `None` for [`AccessTokenConfig::any_audience_for_introspection`].
    pub fn audience(&self) -> Option<&str> {
        match &self.audience {
            ExpectedAudience::Exact(aud) => Some(aud),
            ExpectedAudience::AnyForIntrospection => None,
        }
    }
    /// The accepted algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
    /// The clock-skew allowance.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }
    /// Whether `typ` `JWT` or no `typ` is accepted.
    pub fn accepts_jwt_typ(&self) -> bool {
        self.accept_jwt_typ
    }
}

/// How the token reached the caller, for the sender-constraint rule (RFC 9449 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presentation {
    /// `Authorization: Bearer`: a sender-constrained token (`cnf`) is refused.
    Bearer,
    /// `Authorization: DPoP` with a proof. Verifying the proof and comparing its key with
    /// [`AccessTokenClaims::cnf_jkt`] is the caller's job.
    DpopProof,
    /// Not presented as a credential: an authorization server introspecting it. `cnf` is
    /// reported, not enforced.
    Introspection,
}

/// The verified claims of an access token.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessTokenClaims {
    /// `iss`, one of the trusted issuers.
    pub iss: Issuer,
    /// `sub`.
    pub sub: String,
    /// `client_id`: the client the token was issued to.
    pub client_id: ClientId,
    /// `aud`, as a list (a string `aud` is a one-element list).
    pub aud: Vec<String>,
    /// The space-separated `scope` claim, split.
    pub scopes: Vec<String>,
    /// `exp`.
    pub exp: UnixTime,
    /// `iat`.
    pub iat: UnixTime,
    /// `jti`.
    pub jti: String,
    /// `cnf.jkt` (RFC 9449 §6.1), when the token is bound to a DPoP key.
    pub cnf_jkt: Option<String>,
    /// Every claim, for what the named fields do not cover.
    pub claims: Map<String, Value>,
}

impl AccessTokenClaims {
    /// The last rule of the check order: every scope in `required` is in the token's `scope`.
    /// Separate so that a caller holding already-verified claims (a verified-token cache, a
    /// route with its own scopes) runs the same rule, not a copy of it.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), AccessTokenRejection> {
        if let Some(missing) = required
            .iter()
            .find(|r| !self.scopes.iter().any(|s| s == *r))
        {
            return refuse(
                AccessTokenReason::InsufficientScope,
                format!("access token lacks the required scope {missing:?}"),
            );
        }
        Ok(())
    }

    /// The sender-constraint rule for already-verified claims presented again: a token with
    /// `cnf` is refused as a plain Bearer token.
    pub fn check_presentation(&self, presented: Presentation) -> Result<(), AccessTokenRejection> {
        rule_sender_constraint(&self.claims, presented).map(|_| ())
    }
}

/// A token that passed the checks needing no key ([`AccessTokenValidator::check_unsigned`]):
/// nothing in it is trusted yet. `Debug` shows the header names only, never the token.
pub struct UnsignedAccessToken {
    jws: UnverifiedJws,
    claims: Map<String, Value>,
    alg: Algorithm,
    iss: Issuer,
}

impl UnsignedAccessToken {
    /// The `iss` claim (one of the trusted issuers, not yet authenticated): whose keys to use.
    pub fn issuer(&self) -> &Issuer {
        &self.iss
    }
    /// The header's `kid`, if a string: which key to look for (or fetch).
    pub fn kid(&self) -> Option<&str> {
        self.jws.kid()
    }
    /// The `alg`, already checked against the allow-list.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
}

impl fmt::Debug for UnsignedAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsignedAccessToken")
            .field("iss", &self.iss)
            .field("alg", &self.alg)
            .field("kid", &self.jws.kid())
            .finish_non_exhaustive()
    }
}

/// The RFC 6750 §3.1 error code a refusal maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerError {
    /// 400: the request carrying the token is malformed (the HTTP layer's, never this validator's).
    InvalidRequest,
    /// 401: the token is expired, revoked, malformed or invalid for another reason.
    InvalidToken,
    /// 403: the token lacks a scope the request needs.
    InsufficientScope,
}

impl BearerError {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            BearerError::InvalidRequest => 400,
            BearerError::InvalidToken => 401,
            BearerError::InsufficientScope => 403,
        }
    }
    /// The `error` value of the `WWW-Authenticate` challenge.
    pub fn code(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

/// Which access-token rule refused, one per step of the check order.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessTokenReason {
    /// Longer than [`MAX_ACCESS_TOKEN_LEN`].
    TooLarge,
    /// Not a compact JWS with a JSON header and JSON-object claims.
    Malformed,
    /// `alg` missing, `none`, HMAC, unknown or not configured.
    AlgRefused,
    /// `typ` is not `at+jwt` (or `JWT`/absent under `dangerous_accept_jwt_typ`).
    TypInvalid,
    /// `iss` is not a trusted issuer.
    IssuerUntrusted,
    /// No `kid` and the issuer has several keys (or none).
    KidMissing,
    /// The `kid` matches none of the issuer's keys (the caller may refetch the JWKS once).
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `exp` missing or not a NumericDate.
    ExpInvalid,
    /// `exp` is past.
    Expired,
    /// `nbf` not a NumericDate.
    NbfInvalid,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` missing or not a NumericDate.
    IatInvalid,
    /// `iat` is in the future.
    IatFuture,
    /// `aud` does not contain the expected audience.
    AudienceMismatch,
    /// `sub`, `client_id` or `jti` (required by RFC 9068 §2.2) missing or not a string.
    ClaimMissing,
    /// A sender-constrained token (`cnf`) presented as a plain Bearer token.
    SenderConstrained,
    /// A required scope is missing.
    InsufficientScope,
}

impl AccessTokenReason {
    /// The snake_case name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessTokenReason::TooLarge => "too_large",
            AccessTokenReason::Malformed => "malformed",
            AccessTokenReason::AlgRefused => "alg_refused",
            AccessTokenReason::TypInvalid => "typ_invalid",
            AccessTokenReason::IssuerUntrusted => "issuer_untrusted",
            AccessTokenReason::KidMissing => "kid_missing",
            AccessTokenReason::UnknownKid => "unknown_kid",
            AccessTokenReason::BadSignature => "bad_signature",
            AccessTokenReason::ExpInvalid => "exp_invalid",
            AccessTokenReason::Expired => "expired",
            AccessTokenReason::NbfInvalid => "nbf_invalid",
            AccessTokenReason::NotYetValid => "not_yet_valid",
            AccessTokenReason::IatInvalid => "iat_invalid",
            AccessTokenReason::IatFuture => "iat_future",
            AccessTokenReason::AudienceMismatch => "audience_mismatch",
            AccessTokenReason::ClaimMissing => "claim_missing",
            AccessTokenReason::SenderConstrained => "sender_constrained",
            AccessTokenReason::InsufficientScope => "insufficient_scope",
        }
    }

    /// The RFC 6750 error this reason is sent as.
    pub fn bearer_error(self) -> BearerError {
        match self {
            AccessTokenReason::InsufficientScope => BearerError::InsufficientScope,
            _ => BearerError::InvalidToken,
        }
    }
}

/// A refused access token: the rule and a description that never contains the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenRejection {
    /// Which rule refused.
    pub reason: AccessTokenReason,
    /// What was wrong, for the log and (unless the server is opaque) the `error_description`.
    pub description: Cow<'static, str>,
}

impl AccessTokenRejection {
    fn new(reason: AccessTokenReason, description: impl Into<Cow<'static, str>>) -> Self {
        AccessTokenRejection {
            reason,
            description: description.into(),
        }
    }
    /// The RFC 6750 error.
    pub fn bearer_error(&self) -> BearerError {
        self.reason.bearer_error()
    }
    /// The HTTP status (401 or 403).
    pub fn status(&self) -> u16 {
        self.bearer_error().status()
    }
}

impl fmt::Display for AccessTokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            self.status(),
            self.bearer_error().code(),
            self.description,
            self.reason.as_str()
        )
    }
}

impl std::error::Error for AccessTokenRejection {}

/// The validator. Cheap to clone; one per (issuer, audience).
#[derive(Clone, Debug)]
pub struct AccessTokenValidator {
    config: AccessTokenConfig,
}

type Refused<T> = Result<T, AccessTokenRejection>;

fn refuse<T>(reason: AccessTokenReason, description: impl Into<Cow<'static, str>>) -> Refused<T> {
    Err(AccessTokenRejection::new(reason, description))
}

impl AccessTokenValidator {
    /// A validator with this configuration.
    pub fn new(config: AccessTokenConfig) -> Self {
        AccessTokenValidator { config }
    }

    /// The configuration.
    pub fn config(&self) -> &AccessTokenConfig {
        &self.config
    }

    /// Validates `token` against the issuer's `keys` at `now`, in the module's check order.
    /// `required_scopes` must all be in the token's `scope` claim.
    pub fn validate(
        &self,
        token: &str,
        keys: &KeySet,
        presented: Presentation,
        required_scopes: &[&str],
        now: UnixTime,
    ) -> Refused<AccessTokenClaims> {
        let unsigned = self.check_unsigned(token)?;
        self.check_signed(unsigned, keys, presented, required_scopes, now)
    }

    /// The checks that need no key (size and syntax, `alg`, `typ`, `iss`), so a caller that
    /// fetches keys per issuer learns which issuer and `kid` to fetch for only after a forged or
    /// foreign token has been refused for free. Finish with [`AccessTokenValidator::check_signed`].
    pub fn check_unsigned(&self, token: &str) -> Refused<UnsignedAccessToken> {
        let (jws, claims) = self.rule_syntax(token)?;
        let alg = self.rule_alg(jws.header())?;
        self.rule_typ(jws.header())?;
        let iss = self.rule_iss(&claims)?;
        Ok(UnsignedAccessToken {
            jws,
            claims,
            alg,
            iss,
        })
    }

    /// The rest of the check order, from `kid` on, for a token that passed
    /// [`AccessTokenValidator::check_unsigned`], against its issuer's `keys`.
    pub fn check_signed(
        &self,
        unsigned: UnsignedAccessToken,
        keys: &KeySet,
        presented: Presentation,
        required_scopes: &[&str],
        now: UnixTime,
    ) -> Refused<AccessTokenClaims> {
        let UnsignedAccessToken {
            jws,
            claims,
            alg,
            iss,
        } = unsigned;
        let key = self.rule_kid(jws.header(), keys)?;
        // A key's published `alg` is binding (RFC 7517 §4.4).
        if !key.allows(alg) || jws.verify(&key.key, alg).is_err() {
            return refuse(
                AccessTokenReason::BadSignature,
                "access token signature verification failed",
            );
        }
        let exp = self.rule_exp(&claims, now)?;
        self.rule_nbf(&claims, now)?;
        let iat = self.rule_iat(&claims, now)?;
        let aud = self.rule_aud(&claims)?;
        let (sub, client_id, jti) = rule_required_claims(&claims)?;
        let cnf_jkt = rule_sender_constraint(&claims, presented)?;
        let scopes = scope_list(&claims);
        let claims = AccessTokenClaims {
            iss,
            sub,
            client_id,
            aud,
            scopes,
            exp,
            iat,
            jti,
            cnf_jkt,
            claims,
        };
        claims.require_scopes(required_scopes)?;
        Ok(claims)
    }

    fn rule_syntax(&self, token: &str) -> Refused<(UnverifiedJws, Map<String, Value>)> {
        if token.len() > MAX_ACCESS_TOKEN_LEN {
            return refuse(
                AccessTokenReason::TooLarge,
                format!("access token is longer than {MAX_ACCESS_TOKEN_LEN} bytes"),
            );
        }
        let malformed = || {
            AccessTokenRejection::new(
                AccessTokenReason::Malformed,
                "access token is not a compact JWS with a JSON header and JSON-object claims",
            )
        };
        let jws = UnverifiedJws::parse(token).map_err(|_| malformed())?;
        let claims = jws.claims().map_err(|_| malformed())?;
        Ok((jws, claims))
    }

    fn rule_alg(&self, header: &Map<String, Value>) -> Refused<Algorithm> {
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name);
        match alg {
            Some(alg) if self.config.algorithms.contains(&alg) => Ok(alg),
            _ => refuse(
                AccessTokenReason::AlgRefused,
                "access token 'alg' is missing, not asymmetric, or not accepted for this issuer",
            ),
        }
    }

    fn rule_typ(&self, header: &Map<String, Value>) -> Refused<()> {
        let ok = match header.get("typ") {
            None => self.config.accept_jwt_typ,
            Some(Value::String(typ)) => {
                // RFC 7515 §4.1.9: media types compare case-insensitively, `application/` optional.
                let typ = typ.to_ascii_lowercase();
                let typ = typ.strip_prefix("application/").unwrap_or(&typ);
                typ == ACCESS_TOKEN_TYP || (self.config.accept_jwt_typ && typ == "jwt")
            }
            Some(_) => false,
        };
        if ok {
            return Ok(());
        }
        refuse(
            AccessTokenReason::TypInvalid,
            "access token header 'typ' must be \"at+jwt\" (RFC 9068)",
        )
    }

    fn rule_iss(&self, claims: &Map<String, Value>) -> Refused<Issuer> {
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if self.config.issuers.iter().any(|t| t == iss) => Ok(Issuer::from(iss)),
            _ => refuse(
                AccessTokenReason::IssuerUntrusted,
                "access token 'iss' is not a trusted issuer",
            ),
        }
    }

    fn rule_kid<'k>(&self, header: &Map<String, Value>, keys: &'k KeySet) -> Refused<&'k KeyEntry> {
        match header.get("kid") {
            None => match keys.as_slice() {
                [only] => Ok(only),
                _ => refuse(
                    AccessTokenReason::KidMissing,
                    "access token header has no 'kid' and the issuer does not have exactly one key",
                ),
            },
            Some(kid) => kid.as_str().and_then(|kid| keys.by_kid(kid)).map_or_else(
                || {
                    refuse(
                        AccessTokenReason::UnknownKid,
                        "access token 'kid' matches no key of the issuer",
                    )
                },
                Ok,
            ),
        }
    }

    fn rule_exp(&self, claims: &Map<String, Value>, now: UnixTime) -> Refused<UnixTime> {
        let Some(exp) = claims.get("exp").and_then(rules::numeric_date) else {
            return refuse(
                AccessTokenReason::ExpInvalid,
                "access token 'exp' is missing or not a NumericDate",
            );
        };
        // RFC 7519 §4.1.4: the current time must be before `exp`.
        if rules::now_secs(now) >= exp + self.config.leeway.as_secs_f64() {
            return refuse(AccessTokenReason::Expired, "access token has expired");
        }
        Ok(rules::to_unix_time(exp))
    }

    fn rule_nbf(&self, claims: &Map<String, Value>, now: UnixTime) -> Refused<()> {
        let Some(nbf) = claims.get("nbf") else {
            return Ok(());
        };
        let Some(nbf) = rules::numeric_date(nbf) else {
            return refuse(
                AccessTokenReason::NbfInvalid,
                "access token 'nbf' is not a NumericDate",
            );
        };
        if nbf > rules::now_secs(now) + self.config.leeway.as_secs_f64() {
            return refuse(
                AccessTokenReason::NotYetValid,
                "access token is not valid yet ('nbf' is in the future)",
            );
        }
        Ok(())
    }

    fn rule_iat(&self, claims: &Map<String, Value>, now: UnixTime) -> Refused<UnixTime> {
        let Some(iat) = claims.get("iat").and_then(rules::numeric_date) else {
            return refuse(
                AccessTokenReason::IatInvalid,
                "access token 'iat' is missing or not a NumericDate (RFC 9068 requires it)",
            );
        };
        if iat > rules::now_secs(now) + self.config.leeway.as_secs_f64() {
            return refuse(
                AccessTokenReason::IatFuture,
                "access token 'iat' is in the future",
            );
        }
        Ok(rules::to_unix_time(iat))
    }

    fn rule_aud(&self, claims: &Map<String, Value>) -> Refused<Vec<String>> {
        let aud: Vec<String> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let ok = match &self.config.audience {
            ExpectedAudience::Exact(expected) => aud.iter().any(|a| a == expected),
            ExpectedAudience::AnyForIntrospection => !aud.is_empty(),
        };
        if ok {
            return Ok(aud);
        }
        refuse(
            AccessTokenReason::AudienceMismatch,
            "access token 'aud' does not contain this resource's audience",
        )
    }
}

fn rule_required_claims(claims: &Map<String, Value>) -> Refused<(String, ClientId, String)> {
    let get = |name: &'static str| -> Refused<String> {
        match claims.get(name).and_then(Value::as_str) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => refuse(
                AccessTokenReason::ClaimMissing,
                format!("access token '{name}' is missing or not a string (RFC 9068 §2.2)"),
            ),
        }
    };
    Ok((get("sub")?, ClientId::from(get("client_id")?), get("jti")?))
}

fn rule_sender_constraint(
    claims: &Map<String, Value>,
    presented: Presentation,
) -> Refused<Option<String>> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    if presented == Presentation::Bearer {
        return refuse(
            AccessTokenReason::SenderConstrained,
            "access token is sender-constrained ('cnf') and cannot be used as a Bearer token",
        );
    }
    Ok(cnf.get("jkt").and_then(Value::as_str).map(str::to_owned))
}

/// The space-separated `scope` claim, split.
fn scope_list(claims: &Map<String, Value>) -> Vec<String> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
