//! The generic (RFC 7523 / RFC 10070) profile: configuration, the validator in the order of
//! `docs/protocol.md` (`## Client assertion checks (rfc profile)`), and its rules, each a small
//! function the linter runs too.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Verified;
use super::form::TokenForm;
use super::rejection::{Reason, Rejection};
use super::rules::{self, Parsed};
use crate::Error;
use crate::alg::Algorithm;
use crate::clock::UnixTime;
use crate::ids::{ClientId, KeyEntry};
use crate::wire::{self, CLIENT_ASSERTION_TYPE, GRANT_CLIENT_CREDENTIALS};

/// Why a client assertion that does not parse is refused.
pub(crate) const MALFORMED_DESCRIPTION: &str = "client_assertion is not a compact JWS (three base64url parts with a JSON header and JSON claims)";

/// Which `aud` values the server accepts (RFC 10070 §3: the issuer identifier as the sole value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AudienceMode {
    /// The issuer identifier, as a string or a one-element array (RFC 10070 default).
    #[default]
    Issuer,
    /// The issuer identifier as a JSON string only; arrays are refused.
    IssuerStringOnly,
    /// Also the token endpoint URL — what many pre-RFC 10070 clients send. Dangerous because a
    /// token URL is easier for an attacker to make a client sign for (audience injection).
    DangerousLegacyTokenUrl,
}

/// Longest assertion accepted by default, in bytes (8 KiB: generous for RSA-4096, bounds parsing
/// work). Raising it is `dangerous_`.
pub const DEFAULT_MAX_ASSERTION_LEN: usize = 8192;
/// Longest `jti` accepted by default, in bytes (bounds the replay store's keys). Raising it is
/// `dangerous_`.
pub const DEFAULT_MAX_JTI_LEN: usize = 256;
/// The largest clock-skew allowance accepted without `dangerous_leeway`: more than the whole
/// assertion lifetime would make `exp` meaningless.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Configuration of the rfc profile. Build it with [`RfcConfig::new`]; the fields are private so
/// that every setting that weakens a check goes through a `dangerous_` setter, and the safe
/// setters refuse values beyond the safe range with [`Error::Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RfcConfig {
    issuer: String,
    token_url: String,
    audience: AudienceMode,
    max_lifetime: Duration,
    leeway: Duration,
    max_assertion_len: usize,
    max_jti_len: usize,
}

impl RfcConfig {
    /// Defaults: [`AudienceMode::Issuer`], 300 s max lifetime
    /// ([`wire::MAX_ASSERTION_LIFETIME`]), 10 s leeway, 8 KiB assertions, 256-byte `jti`.
    pub fn new(issuer: impl Into<String>, token_url: impl Into<String>) -> Self {
        RfcConfig {
            issuer: issuer.into(),
            token_url: token_url.into(),
            audience: AudienceMode::Issuer,
            max_lifetime: wire::MAX_ASSERTION_LIFETIME,
            leeway: Duration::from_secs(10),
            max_assertion_len: DEFAULT_MAX_ASSERTION_LEN,
            max_jti_len: DEFAULT_MAX_JTI_LEN,
        }
    }

    /// This server's issuer identifier (RFC 8414), the `aud` clients must use.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// This server's externally visible token endpoint URL.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }
    /// Which audiences are accepted.
    pub fn audience(&self) -> AudienceMode {
        self.audience
    }
    /// How far ahead `exp` may be.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }
    /// Clock-skew allowance for `exp`, `iat`, `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }
    /// Longest assertion accepted, in bytes.
    pub fn max_assertion_len(&self) -> usize {
        self.max_assertion_len
    }
    /// Longest `jti` accepted, in bytes.
    pub fn max_jti_len(&self) -> usize {
        self.max_jti_len
    }

    /// Which audiences are accepted (the weakening mode is itself named
    /// [`AudienceMode::DangerousLegacyTokenUrl`]).
    pub fn set_audience(&mut self, audience: AudienceMode) -> &mut Self {
        self.audience = audience;
        self
    }
    /// How far ahead `exp` may be; refuses more than [`wire::MAX_ASSERTION_LIFETIME`] (300 s).
    pub fn set_max_lifetime(&mut self, max_lifetime: Duration) -> Result<&mut Self, Error> {
        if max_lifetime > wire::MAX_ASSERTION_LIFETIME {
            return Err(Error::Config(format!(
                "a maximum assertion lifetime of {} s is above {} s; use dangerous_max_lifetime to allow it",
                max_lifetime.as_secs(),
                wire::MAX_ASSERTION_LIFETIME.as_secs()
            )));
        }
        self.max_lifetime = max_lifetime;
        Ok(self)
    }
    /// Any maximum lifetime: a long-lived assertion is a long-lived credential if it leaks.
    pub fn dangerous_max_lifetime(&mut self, max_lifetime: Duration) -> &mut Self {
        self.max_lifetime = max_lifetime;
        self
    }
    /// The clock-skew allowance; refuses more than [`MAX_LEEWAY`] (300 s).
    pub fn set_leeway(&mut self, leeway: Duration) -> Result<&mut Self, Error> {
        rules::check_leeway(leeway, "a leeway")?;
        self.leeway = leeway;
        Ok(self)
    }
    /// Any leeway: it extends every assertion's life and accepts clocks that far off.
    pub fn dangerous_leeway(&mut self, leeway: Duration) -> &mut Self {
        self.leeway = leeway;
        self
    }
    /// The longest assertion; refuses more than [`DEFAULT_MAX_ASSERTION_LEN`] (lowering is safe).
    pub fn set_max_assertion_len(&mut self, len: usize) -> Result<&mut Self, Error> {
        if len > DEFAULT_MAX_ASSERTION_LEN {
            return Err(Error::Config(format!(
                "a maximum assertion length of {len} bytes is above {DEFAULT_MAX_ASSERTION_LEN}; use dangerous_max_assertion_len to allow it"
            )));
        }
        self.max_assertion_len = len;
        Ok(self)
    }
    /// Any assertion length: more parsing work per unauthenticated request.
    pub fn dangerous_max_assertion_len(&mut self, len: usize) -> &mut Self {
        self.max_assertion_len = len;
        self
    }
    /// The longest `jti`; refuses more than [`DEFAULT_MAX_JTI_LEN`] (lowering is safe).
    pub fn set_max_jti_len(&mut self, len: usize) -> Result<&mut Self, Error> {
        if len > DEFAULT_MAX_JTI_LEN {
            return Err(Error::Config(format!(
                "a maximum jti length of {len} bytes is above {DEFAULT_MAX_JTI_LEN}; use dangerous_max_jti_len to allow it"
            )));
        }
        self.max_jti_len = len;
        Ok(self)
    }
    /// Any `jti` length: bigger replay-store keys, chosen by unauthenticated callers.
    pub fn dangerous_max_jti_len(&mut self, len: usize) -> &mut Self {
        self.max_jti_len = len;
        self
    }
}

/// What the registry knows about a client, for verification.
#[derive(Clone, Copy, Debug)]
pub struct ClientKeys<'a> {
    /// The registered client id (`iss` and `sub` must equal it).
    pub client_id: &'a str,
    /// The algorithms pinned for this client.
    pub allowed_algs: &'a [Algorithm],
    /// The client's public keys with their `kid`s (a [`crate::ids::KeySet`] derefs to this via
    /// [`crate::ids::KeySet::as_slice`]).
    pub keys: &'a [KeyEntry],
}

/// An assertion that passed [`RfcValidator::precheck`]: well-formed, signed with an acceptable
/// algorithm, and naming a client. Nothing in it is authenticated yet.
pub struct Pending {
    parsed: Parsed,
    alg: Algorithm,
    sub: String,
    form_client_id: Option<String>,
    scope: Option<String>,
}

impl Pending {
    /// The `sub` claim: the client id to look the client up by (a `Pending` exists only for an
    /// assertion with a non-empty string `sub`).
    pub fn subject(&self) -> &str {
        &self.sub
    }
    /// The `kid` header, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.parsed.header_str("kid")
    }
    /// The `client_id` form parameter, if sent (already checked to equal `sub`).
    pub fn form_client_id(&self) -> Option<&str> {
        self.form_client_id.as_deref()
    }
    /// The `alg` header.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
    /// The requested `scope`, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token or its signature.
        f.debug_struct("Pending")
            .field("sub", &self.sub)
            .field("alg", &self.alg)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// The rfc-profile validator: the order of `docs/protocol.md`, first failing check wins, split
/// where the server must do I/O (client lookup, JWKS fetch, replay store).
#[derive(Clone, Debug)]
pub struct RfcValidator {
    config: RfcConfig,
}

impl RfcValidator {
    /// A validator with this configuration.
    pub fn new(config: RfcConfig) -> Self {
        RfcValidator { config }
    }

    /// The configuration.
    pub fn config(&self) -> &RfcConfig {
        &self.config
    }

    /// The token endpoint's pre-I/O checks: [`check_grant`](Self::check_grant) then
    /// [`authenticate_client`](Self::authenticate_client). Returns the parsed assertion and the
    /// `sub` to look the client up by.
    pub fn precheck(&self, form: &TokenForm) -> Result<Pending, Rejection> {
        self.check_grant(form)?;
        self.authenticate_client(form)
    }

    /// The grant: `grant_type` present and `client_credentials`. Token endpoint only — other
    /// endpoints that authenticate clients (introspection) have no grant.
    pub fn check_grant(&self, form: &TokenForm) -> Result<(), Rejection> {
        self.rule_grant_type(form.grant_type.as_deref())
    }

    /// The pre-I/O half of client authentication, for any endpoint that takes a
    /// `private_key_jwt` assertion: client_assertion_type → size/shape → header (none/HMAC/unknown
    /// alg refused, crit refused) → `sub` present → `client_id` form field equals `sub`.
    pub fn authenticate_client(&self, form: &TokenForm) -> Result<Pending, Rejection> {
        self.rule_assertion_type(form.client_assertion_type.as_deref())?;
        let parsed = self.rule_shape(form.client_assertion.as_deref())?;
        let alg = self.rule_alg(parsed.header())?;
        self.rule_crit(parsed.header())?;
        let sub = self.rule_sub(&parsed.claims)?.to_owned();
        self.rule_client_id(form.client_id.as_deref(), &sub)?;
        Ok(Pending {
            parsed,
            alg,
            sub,
            form_client_id: form.client_id.clone(),
            scope: form.scope.clone(),
        })
    }

    /// After the client is found: alg pinned → typ → key by kid → signature → iss=sub=client →
    /// aud → exp → iat/nbf → jti shape.
    pub fn verify(
        &self,
        pending: &Pending,
        client: &ClientKeys<'_>,
        now: UnixTime,
    ) -> Result<Verified, Rejection> {
        let parsed = &pending.parsed;
        self.rule_alg_pinned(pending.alg, client.allowed_algs)?;
        self.rule_typ(parsed.header())?;
        let key = self.rule_key(parsed.header(), client.keys)?;
        self.rule_signature(parsed, key, pending.alg)?;
        self.rule_claims(&parsed.claims, client.client_id, &pending.scope, now)
    }

    /// No registered client matches `sub`: 401 `invalid_client`.
    pub fn unknown_client(&self) -> Rejection {
        self.auth_failure(
            Reason::UnknownClient,
            "unknown client: no registered client matches the assertion 'sub'",
        )
    }

    /// The client's `jwks_uri` could not be fetched: 401 `invalid_client` (the client cannot be
    /// authenticated; the log says why).
    pub fn jwks_unavailable(&self) -> Rejection {
        self.auth_failure(
            Reason::JwksUnavailable,
            "the client's JWKS could not be retrieved",
        )
    }

    /// The `(client_id, jti)` pair was seen before: 401 `invalid_client`.
    pub fn replayed(&self) -> Rejection {
        self.auth_failure(
            Reason::Replayed,
            "assertion 'jti' was already used: every request needs a fresh assertion",
        )
    }

    /// A 401 `invalid_client`. Always the precise description: a server that wants opaque
    /// errors replaces it at the HTTP layer, after logging it (m2m-server's `response.rs`).
    fn auth_failure(&self, reason: Reason, description: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection::invalid_client(reason, description)
    }

    // ---- rules, in `docs/protocol.md` order; each is shared with `lint` ----

    pub(crate) fn rule_grant_type(&self, grant_type: Option<&str>) -> Result<(), Rejection> {
        match grant_type {
            None => Err(Rejection::invalid_request(
                Reason::GrantTypeMissing,
                "grant_type is missing",
            )),
            Some(GRANT_CLIENT_CREDENTIALS) => Ok(()),
            Some(_) => Err(Rejection::unsupported_grant_type(
                "grant_type must be client_credentials",
            )),
        }
    }

    pub(crate) fn rule_assertion_type(
        &self,
        assertion_type: Option<&str>,
    ) -> Result<(), Rejection> {
        if assertion_type == Some(CLIENT_ASSERTION_TYPE) {
            Ok(())
        } else {
            Err(Rejection::invalid_request(
                Reason::AssertionTypeInvalid,
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ))
        }
    }

    pub(crate) fn rule_size(&self, assertion: &str) -> Result<(), Rejection> {
        if assertion.len() > self.config.max_assertion_len {
            return Err(Rejection::invalid_request(
                Reason::AssertionTooLarge,
                format!(
                    "client_assertion is longer than {} bytes",
                    self.config.max_assertion_len
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn rule_shape(&self, assertion: Option<&str>) -> Result<Parsed, Rejection> {
        let Some(assertion) = assertion else {
            return Err(Rejection::invalid_request(
                Reason::AssertionMissing,
                "client_assertion is missing",
            ));
        };
        self.rule_size(assertion)?;
        Parsed::parse(assertion)
            .ok_or_else(|| Rejection::invalid_request(Reason::Malformed, MALFORMED_DESCRIPTION))
    }

    pub(crate) fn rule_alg(&self, header: &Map<String, Value>) -> Result<Algorithm, Rejection> {
        let refuse = |d: Cow<'static, str>| Err(self.auth_failure(Reason::AlgRefused, d));
        match header.get("alg") {
            None => refuse("assertion header has no 'alg'".into()),
            Some(Value::String(name)) => {
                if let Some(alg) = Algorithm::from_name(name) {
                    return Ok(alg);
                }
                if name.eq_ignore_ascii_case("none") {
                    refuse("assertion 'alg' \"none\" is refused: the assertion must be signed with the client's private key".into())
                } else if matches!(name.as_str(), "HS256" | "HS384" | "HS512") {
                    refuse(format!(
                        "assertion 'alg' {name} is refused: HMAC is not private_key_jwt; use an asymmetric algorithm"
                    )
                    .into())
                } else {
                    refuse(
                        "assertion 'alg' is not supported (supported: RS256/384/512, PS256/384/512, \
                         ES256/384/512, EdDSA)"
                            .into(),
                    )
                }
            }
            Some(_) => refuse("assertion 'alg' must be a string".into()),
        }
    }

    pub(crate) fn rule_crit(&self, header: &Map<String, Value>) -> Result<(), Rejection> {
        if header.contains_key("crit") {
            return Err(self.auth_failure(
                Reason::CritRefused,
                "assertion header 'crit' is not supported: no critical extensions are understood",
            ));
        }
        Ok(())
    }

    pub(crate) fn rule_sub<'c>(
        &self,
        claims: &'c Map<String, Value>,
    ) -> Result<&'c str, Rejection> {
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => Ok(sub),
            _ => Err(self.auth_failure(
                Reason::IssSubInvalid,
                "assertion 'sub' is missing or not a string: it must be the client id",
            )),
        }
    }

    pub(crate) fn rule_client_id(
        &self,
        form_client_id: Option<&str>,
        sub: &str,
    ) -> Result<(), Rejection> {
        match form_client_id {
            Some(id) if id != sub => Err(self.auth_failure(
                Reason::ClientIdMismatch,
                "the client_id parameter does not match the assertion 'sub'",
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn rule_alg_pinned(
        &self,
        alg: Algorithm,
        allowed: &[Algorithm],
    ) -> Result<(), Rejection> {
        if allowed.contains(&alg) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
        Err(self.auth_failure(
            Reason::AlgNotAllowed,
            format!(
                "assertion 'alg' {alg} is not allowed for this client (allowed: {})",
                names.join(", ")
            ),
        ))
    }

    pub(crate) fn rule_typ(&self, header: &Map<String, Value>) -> Result<(), Rejection> {
        if rules::typ_ok_rfc(header.get("typ")) {
            return Ok(());
        }
        Err(self.auth_failure(
            Reason::TypInvalid,
            "assertion header 'typ' must be absent, \"JWT\" or \"client-authentication+jwt\"",
        ))
    }

    pub(crate) fn rule_key<'k>(
        &self,
        header: &Map<String, Value>,
        keys: &'k [KeyEntry],
    ) -> Result<&'k KeyEntry, Rejection> {
        match header.get("kid") {
            None => match keys {
                [] => {
                    Err(self.auth_failure(Reason::NoKeys, "no keys are registered for this client"))
                }
                [entry] => Ok(entry),
                _ => Err(self.auth_failure(
                    Reason::KidMissing,
                    format!(
                        "assertion header has no 'kid' and the client has {} keys: set 'kid'",
                        keys.len()
                    ),
                )),
            },
            Some(kid) => {
                let kid = kid.as_str();
                keys.iter()
                    .find(|e| kid.is_some() && e.kid.as_deref() == kid)
                    .ok_or_else(|| {
                        self.auth_failure(
                            Reason::UnknownKid,
                            "assertion 'kid' matches no key registered for this client",
                        )
                    })
            }
        }
    }

    pub(crate) fn rule_signature(
        &self,
        parsed: &Parsed,
        key: &KeyEntry,
        alg: Algorithm,
    ) -> Result<(), Rejection> {
        if let Some(published) = key.alg.filter(|_| !key.allows(alg)) {
            return Err(self.auth_failure(
                Reason::BadSignature,
                format!(
                    "assertion 'alg' {alg} is not the 'alg' {published} published with its key"
                ),
            ));
        }
        parsed.jws.verify(&key.key, alg).map_err(|_| {
            self.auth_failure(
                Reason::BadSignature,
                "assertion signature verification failed",
            )
        })
    }

    /// The claim checks every signed or MACed client assertion gets once its signature holds, in
    /// docs/protocol.md's order: iss=sub=client → aud → exp → iat/nbf → jti shape. Shared by
    /// `private_key_jwt` ([`RfcValidator::verify`]) and `client_secret_jwt`.
    pub(crate) fn rule_claims(
        &self,
        claims: &Map<String, Value>,
        client_id: &str,
        scope: &Option<String>,
        now: UnixTime,
    ) -> Result<Verified, Rejection> {
        self.rule_iss_sub(claims, client_id)?;
        self.rule_aud(claims)?;
        let exp = self.rule_exp(claims, now)?;
        self.rule_iat(claims, now)?;
        self.rule_nbf(claims, now)?;
        let jti = self.rule_jti(claims)?;
        Ok(Verified {
            client_id: ClientId::from(client_id),
            jti: jti.to_owned(),
            exp: rules::to_unix_time(exp),
            scope: scope.clone(),
        })
    }

    pub(crate) fn rule_iss_sub(
        &self,
        claims: &Map<String, Value>,
        client_id: &str,
    ) -> Result<(), Rejection> {
        let iss = claims.get("iss").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        if iss == Some(client_id) && sub == Some(client_id) {
            return Ok(());
        }
        Err(self.auth_failure(
            Reason::IssSubInvalid,
            "assertion 'iss' and 'sub' must both be the client id",
        ))
    }

    pub(crate) fn rule_aud(&self, claims: &Map<String, Value>) -> Result<(), Rejection> {
        let cfg = &self.config;
        let accepts = |s: &str| {
            s == cfg.issuer
                || (cfg.audience == AudienceMode::DangerousLegacyTokenUrl && s == cfg.token_url)
        };
        let ok = match claims.get("aud") {
            Some(Value::String(s)) => accepts(s),
            Some(Value::Array(items)) if cfg.audience != AudienceMode::IssuerStringOnly => {
                matches!(items.as_slice(), [Value::String(s)] if accepts(s))
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let description = match (cfg.audience, claims.get("aud")) {
            (AudienceMode::IssuerStringOnly, Some(Value::Array(_))) => format!(
                "assertion 'aud' must be a JSON string (not an array): the issuer identifier \"{}\"",
                cfg.issuer
            ),
            (_, Some(Value::Array(items))) if items.len() > 1 => format!(
                "assertion 'aud' must have a single value, the issuer identifier \"{}\"",
                cfg.issuer
            ),
            (AudienceMode::DangerousLegacyTokenUrl, _) => format!(
                "assertion 'aud' must be the issuer identifier \"{}\" or the token endpoint URL \"{}\"",
                cfg.issuer, cfg.token_url
            ),
            _ => format!(
                "assertion 'aud' must be the issuer identifier \"{}\"",
                cfg.issuer
            ),
        };
        // Expected against actual: the actual value is what a newcomer needs to see which rule
        // their client followed (e.g. the token URL). It is the authenticated client's own claim
        // (checked after the signature), JSON-escaped and capped.
        let description = format!("{description}; got {}", shown_aud(claims.get("aud")));
        Err(self.auth_failure(Reason::AudInvalid, description))
    }

    pub(crate) fn rule_exp(
        &self,
        claims: &Map<String, Value>,
        now: UnixTime,
    ) -> Result<f64, Rejection> {
        let Some(exp) = claims.get("exp") else {
            return Err(self.auth_failure(Reason::ExpMissing, "assertion has no 'exp' claim"));
        };
        let Some(exp) = rules::numeric_date(exp) else {
            return Err(self.auth_failure(
                Reason::ExpInvalid,
                "assertion 'exp' must be a NumericDate (a JSON number of seconds since the epoch)",
            ));
        };
        // RFC 7519 §4.1.4: the current time must be before `exp`. In whole milliseconds, with
        // `exp` rounded as the replay store's expiry is (`exp` + leeway), so the store remembers
        // the `jti` for every millisecond this accepts it.
        if now >= rules::to_unix_time(exp).add(self.config.leeway) {
            return Err(self.auth_failure(
                Reason::Expired,
                "assertion has expired ('exp' is in the past)",
            ));
        }
        let now = rules::now_secs(now);
        let leeway = self.config.leeway.as_secs_f64();
        if exp > now + self.config.max_lifetime.as_secs_f64() + leeway {
            return Err(self.auth_failure(
                Reason::ExpTooFar,
                format!(
                    "assertion 'exp' is more than {} s in the future (the maximum assertion lifetime)",
                    self.config.max_lifetime.as_secs()
                ),
            ));
        }
        Ok(exp)
    }

    pub(crate) fn rule_iat(
        &self,
        claims: &Map<String, Value>,
        now: UnixTime,
    ) -> Result<(), Rejection> {
        self.rule_not_future(claims, "iat", now, Reason::IatInvalid, Reason::IatFuture)
    }

    pub(crate) fn rule_nbf(
        &self,
        claims: &Map<String, Value>,
        now: UnixTime,
    ) -> Result<(), Rejection> {
        self.rule_not_future(claims, "nbf", now, Reason::NbfInvalid, Reason::NbfFuture)
    }

    fn rule_not_future(
        &self,
        claims: &Map<String, Value>,
        name: &'static str,
        now: UnixTime,
        invalid: Reason,
        future: Reason,
    ) -> Result<(), Rejection> {
        let Some(value) = claims.get(name) else {
            return Ok(());
        };
        let Some(t) = rules::numeric_date(value) else {
            return Err(self.auth_failure(
                invalid,
                format!("assertion '{name}' must be a NumericDate (a JSON number of seconds since the epoch)"),
            ));
        };
        if t > rules::now_secs(now) + self.config.leeway.as_secs_f64() {
            return Err(self.auth_failure(
                future,
                format!("assertion '{name}' is in the future (check the client's clock)"),
            ));
        }
        Ok(())
    }

    pub(crate) fn rule_jti<'c>(
        &self,
        claims: &'c Map<String, Value>,
    ) -> Result<&'c str, Rejection> {
        let invalid = |d: Cow<'static, str>| Err(self.auth_failure(Reason::JtiInvalid, d));
        match claims.get("jti") {
            None => Err(self.auth_failure(Reason::JtiMissing, "assertion has no 'jti' claim")),
            Some(Value::String(jti)) if jti.is_empty() => {
                invalid("assertion 'jti' must not be empty".into())
            }
            Some(Value::String(jti)) if jti.len() > self.config.max_jti_len => invalid(
                format!(
                    "assertion 'jti' is longer than {} bytes",
                    self.config.max_jti_len
                )
                .into(),
            ),
            Some(Value::String(jti)) => Ok(jti),
            Some(_) => invalid("assertion 'jti' must be a string".into()),
        }
    }
}

/// The assertion's `aud` as an `aud` refusal shows it: JSON (so quotes and control characters are
/// escaped), at most 200 characters.
fn shown_aud(aud: Option<&Value>) -> String {
    const MAX: usize = 200;
    let Some(aud) = aud else {
        return "no 'aud'".to_owned();
    };
    let text = aud.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
