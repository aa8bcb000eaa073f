//! The DPoP proof validator (RFC 9449 §4.3), for the token endpoint and resource servers. Pure:
//! the caller passes the proof, the request as the client addressed it and the time; it gets back
//! the key's thumbprint (to bind a token with `cnf.jkt`, or to compare with one) and the proof's
//! `jti` (to record in its replay store until [`VerifiedProof::replay_until`]).
//!
//! Check order, first failure wins (RFC 9449 §4.3): size + syntax → required header members and
//! claims → `typ` → `alg` → `jwk` usable and fitting `alg` → signature → no private members in
//! `jwk` → `htm` → `htu` (after RFC 3986 normalisation) → `nonce` (when the server asks for
//! one) → `iat` window → `ath` (when an access token comes with the proof) → key bound to the
//! token (`cnf.jkt`, when the caller gives it). One [`DpopReason`] per rule.
//!
//! What this validator does not do, because it is I/O or HTTP: counting `DPoP` headers (more than
//! one is `invalid_dpop_proof`), the replay store, and issuing nonces.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{htu, rules};
use crate::alg::Algorithm;
use crate::clock::UnixTime;
use crate::dpop::ath;
use crate::error::Error;
use crate::jwk::Jwk;
use crate::jws::UnverifiedJws;
use crate::key::PublicKey;
use crate::wire::{DPOP_TYP, ERROR_INVALID_DPOP_PROOF, ERROR_USE_DPOP_NONCE};

/// Longest proof accepted, in bytes: an RSA-4096 proof with a nonce and `ath` is about 2 KiB, and
/// the bound limits the work an unauthenticated caller can cause.
pub const MAX_PROOF_LEN: usize = 8192;
/// Longest `jti` accepted, in bytes: it is stored by the replay store.
pub const MAX_JTI_LEN: usize = 256;
/// How old a proof may be by default (its `iat` at most this far in the past).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// How far in the future a proof's `iat` may be by default (the client's clock running fast).
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(60);
/// The widest window [`DpopConfig::set_iat_window`] accepts in the past: a longer one keeps
/// captured proofs usable longer (only `dangerous_iat_window` goes beyond).
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(600);
/// The widest window [`DpopConfig::set_iat_window`] accepts in the future.
pub const MAX_FUTURE_LIMIT: Duration = Duration::from_secs(300);

/// Configuration of [`DpopValidator`]: accepted algorithms and the `iat` window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopConfig {
    algorithms: Vec<Algorithm>,
    max_age: Duration,
    max_future: Duration,
}

impl Default for DpopConfig {
    /// Every asymmetric algorithm m2m supports (`none` and HMAC do not exist in [`Algorithm`]),
    /// `iat` from 5 minutes ago to 60 s ahead.
    fn default() -> Self {
        DpopConfig {
            algorithms: Algorithm::ALL.to_vec(),
            max_age: DEFAULT_MAX_AGE,
            max_future: DEFAULT_MAX_FUTURE,
        }
    }
}

impl DpopConfig {
    /// The defaults (see [`DpopConfig::default`]).
    pub fn new() -> Self {
        DpopConfig::default()
    }

    /// Restricts the accepted algorithms (what the server publishes as
    /// `dpop_signing_alg_values_supported`).
    pub fn set_algorithms(&mut self, algorithms: &[Algorithm]) -> &mut Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Accepts `iat` from `max_age` ago to `max_future` ahead; refuses more than
    /// [`MAX_AGE_LIMIT`] / [`MAX_FUTURE_LIMIT`].
    pub fn set_iat_window(
        &mut self,
        max_age: Duration,
        max_future: Duration,
    ) -> Result<&mut Self, Error> {
        if max_age > MAX_AGE_LIMIT || max_future > MAX_FUTURE_LIMIT {
            return Err(Error::Config(format!(
                "a DPoP iat window of {} s back and {} s ahead is above {} s / {} s; use \
                 dangerous_iat_window to allow it",
                max_age.as_secs(),
                max_future.as_secs(),
                MAX_AGE_LIMIT.as_secs(),
                MAX_FUTURE_LIMIT.as_secs()
            )));
        }
        self.max_age = max_age;
        self.max_future = max_future;
        Ok(self)
    }

    /// Any `iat` window: a captured proof stays usable for `max_age`, and the replay store must
    /// keep its `jti` that long.
    pub fn dangerous_iat_window(&mut self, max_age: Duration, max_future: Duration) -> &mut Self {
        self.max_age = max_age;
        self.max_future = max_future;
        self
    }

    /// The accepted algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
    /// How old a proof may be.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }
    /// How far ahead a proof's `iat` may be.
    pub fn max_future(&self) -> Duration {
        self.max_future
    }
}

/// The request a proof arrived with, as the client addressed it (behind a proxy: the external
/// URL, not the one the proxy forwarded to).
#[derive(Clone, Copy)]
pub struct DpopRequest<'a> {
    htm: &'a str,
    htu: &'a str,
    nonces: &'a [&'a str],
    access_token: Option<&'a str>,
    bound_jkt: Option<&'a str>,
}

impl fmt::Debug for DpopRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopRequest")
            .field("htm", &self.htm)
            .field("htu", &self.htu)
            .field("nonces", &self.nonces)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .field("bound_jkt", &self.bound_jkt)
            .finish()
    }
}

impl<'a> DpopRequest<'a> {
    /// A request with `method` to `uri` (its query and fragment are ignored).
    pub fn new(method: &'a str, uri: &'a str) -> Self {
        DpopRequest {
            htm: method,
            htu: uri,
            nonces: &[],
            access_token: None,
            bound_jkt: None,
        }
    }

    /// The nonces the server accepts now (e.g. the current and the previous window of a rotating
    /// nonce); the proof must carry one of them. Empty (the default): no nonce is required.
    pub fn nonces(mut self, nonces: &'a [&'a str]) -> Self {
        self.nonces = nonces;
        self
    }

    /// The access token the proof came with (a resource request): the proof must carry its `ath`.
    pub fn access_token(mut self, access_token: &'a str) -> Self {
        self.access_token = Some(access_token);
        self
    }

    /// The thumbprint the access token is bound to (`cnf.jkt`): the proof's key must have it.
    pub fn bound_to(mut self, jkt: &'a str) -> Self {
        self.bound_jkt = Some(jkt);
        self
    }
}

/// A proof that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key: `cnf.jkt` for a token bound to it.
    pub jkt: String,
    /// The proof's `jti`, for the replay store (single use per key: store it with [`Self::jkt`]).
    pub jti: String,
    /// The proof's `iat`.
    pub iat: UnixTime,
    /// Until when the proof would be accepted: keep its `jti` in the replay store until then.
    pub replay_until: UnixTime,
    /// The algorithm it was signed with.
    pub alg: Algorithm,
    /// The proof's public key.
    pub key: PublicKey,
}

/// Which rule refused a proof, one per step of the check order.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DpopReason {
    /// Longer than [`MAX_PROOF_LEN`].
    TooLarge,
    /// Not a compact JWS with a JSON-object header and claims.
    Malformed,
    /// A required header member (`typ`, `alg`, `jwk`) or claim (`jti`, `htm`, `htu`, `iat`) is
    /// missing or of the wrong JSON type.
    ClaimMissing,
    /// `jti` is empty or longer than [`MAX_JTI_LEN`].
    JtiInvalid,
    /// `typ` is not `dpop+jwt`.
    TypInvalid,
    /// `alg` is `none`, HMAC, unknown or not accepted.
    AlgRefused,
    /// `jwk` is not a public key m2m can use.
    JwkInvalid,
    /// `jwk` is a key that `alg` cannot be used with (or it names another `alg`).
    JwkAlgMismatch,
    /// The signature does not verify with `jwk`.
    BadSignature,
    /// `jwk` carries private key members.
    JwkPrivate,
    /// `htm` is not the request's method.
    HtmMismatch,
    /// `htu` is not the request's URI (after normalisation), or is not an http(s) URI.
    HtuMismatch,
    /// The server requires a nonce and the proof has none.
    NonceMissing,
    /// The proof's `nonce` is not one the server accepts now.
    NonceMismatch,
    /// `iat` is older than the window allows.
    IatTooOld,
    /// `iat` is further in the future than the window allows.
    IatFuture,
    /// An access token came with the proof and the proof has no `ath`.
    AthMissing,
    /// `ath` is not the hash of the access token sent with the proof.
    AthMismatch,
    /// The proof's key is not the one the access token is bound to (`cnf.jkt`).
    KeyNotBound,
}

impl DpopReason {
    /// The snake_case name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DpopReason::TooLarge => "too_large",
            DpopReason::Malformed => "malformed",
            DpopReason::ClaimMissing => "claim_missing",
            DpopReason::JtiInvalid => "jti_invalid",
            DpopReason::TypInvalid => "typ_invalid",
            DpopReason::AlgRefused => "alg_refused",
            DpopReason::JwkInvalid => "jwk_invalid",
            DpopReason::JwkAlgMismatch => "jwk_alg_mismatch",
            DpopReason::BadSignature => "bad_signature",
            DpopReason::JwkPrivate => "jwk_private",
            DpopReason::HtmMismatch => "htm_mismatch",
            DpopReason::HtuMismatch => "htu_mismatch",
            DpopReason::NonceMissing => "nonce_missing",
            DpopReason::NonceMismatch => "nonce_mismatch",
            DpopReason::IatTooOld => "iat_too_old",
            DpopReason::IatFuture => "iat_future",
            DpopReason::AthMissing => "ath_missing",
            DpopReason::AthMismatch => "ath_mismatch",
            DpopReason::KeyNotBound => "key_not_bound",
        }
    }

    /// The OAuth `error` this refusal is sent as: `use_dpop_nonce` for the nonce rules (the
    /// answer carries a fresh `DPoP-Nonce`), `invalid_token` for a token bound to another key,
    /// `invalid_dpop_proof` otherwise (RFC 9449 §5, §7.1, §8, §9).
    pub fn error_code(self) -> &'static str {
        match self {
            DpopReason::NonceMissing | DpopReason::NonceMismatch => ERROR_USE_DPOP_NONCE,
            DpopReason::KeyNotBound => "invalid_token",
            _ => ERROR_INVALID_DPOP_PROOF,
        }
    }
}

/// A refused proof: the rule and a description that never contains the proof or a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopRejection {
    /// Which rule refused.
    pub reason: DpopReason,
    /// What was wrong, for the log and the `error_description`.
    pub description: Cow<'static, str>,
}

impl DpopRejection {
    /// The OAuth `error` (see [`DpopReason::error_code`]).
    pub fn error_code(&self) -> &'static str {
        self.reason.error_code()
    }
}

impl fmt::Display for DpopRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.error_code(),
            self.description,
            self.reason.as_str()
        )
    }
}

impl std::error::Error for DpopRejection {}

type Refused<T> = Result<T, DpopRejection>;

fn refuse<T>(reason: DpopReason, description: impl Into<Cow<'static, str>>) -> Refused<T> {
    Err(DpopRejection {
        reason,
        description: description.into(),
    })
}

/// The members every proof must have, read once (step 3 of the order).
struct Required<'p> {
    typ: &'p str,
    alg: &'p str,
    jwk: &'p Value,
    jti: &'p str,
    htm: &'p str,
    htu: &'p str,
    iat: f64,
}

/// The validator. Cheap to clone; one per server or resource.
#[derive(Clone, Debug, Default)]
pub struct DpopValidator {
    config: DpopConfig,
}

impl DpopValidator {
    /// A validator with this configuration.
    pub fn new(config: DpopConfig) -> Self {
        DpopValidator { config }
    }

    /// The configuration.
    pub fn config(&self) -> &DpopConfig {
        &self.config
    }

    /// Validates `proof` (the `DPoP` header's value) for `request` at `now`, in the module's
    /// check order.
    pub fn validate(
        &self,
        proof: &str,
        request: &DpopRequest<'_>,
        now: UnixTime,
    ) -> Refused<VerifiedProof> {
        let (jws, claims) = rule_syntax(proof)?;
        let required = rule_required(jws.header(), &claims)?;
        rule_typ(required.typ)?;
        let alg = self.rule_alg(required.alg)?;
        let (jwk, key) = rule_jwk(required.jwk, alg)?;
        if jws.verify(&key, alg).is_err() {
            return refuse(
                DpopReason::BadSignature,
                "DPoP proof signature does not verify with its jwk",
            );
        }
        rule_public_jwk(&jwk)?;
        rule_htm(required.htm, request.htm)?;
        rule_htu(required.htu, request.htu)?;
        rule_nonce(&claims, request.nonces)?;
        let iat = self.rule_iat(required.iat, now)?;
        rule_ath(&claims, request.access_token)?;
        let jkt = key.thumbprint();
        rule_bound(&jkt, request.bound_jkt)?;
        Ok(VerifiedProof {
            jkt,
            jti: required.jti.to_owned(),
            iat: rules::to_unix_time(iat),
            replay_until: rules::to_unix_time(iat).add(self.config.max_age),
            alg,
            key,
        })
    }

    fn rule_alg(&self, alg: &str) -> Refused<Algorithm> {
        match Algorithm::from_name(alg) {
            Some(alg) if self.config.algorithms.contains(&alg) => Ok(alg),
            _ => refuse(
                DpopReason::AlgRefused,
                format!(
                    "DPoP proof 'alg' {:?} is not accepted (none and HMAC never are; accepted: {})",
                    alg.chars().take(32).collect::<String>(),
                    self.config
                        .algorithms
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    fn rule_iat(&self, iat: f64, now: UnixTime) -> Refused<f64> {
        let now = rules::now_secs(now);
        if iat < now - self.config.max_age.as_secs_f64() {
            return refuse(
                DpopReason::IatTooOld,
                format!(
                    "DPoP proof 'iat' is more than {} s in the past (make a fresh proof for every \
                     request, and check the client's clock)",
                    self.config.max_age.as_secs()
                ),
            );
        }
        if iat > now + self.config.max_future.as_secs_f64() {
            return refuse(
                DpopReason::IatFuture,
                format!(
                    "DPoP proof 'iat' is more than {} s in the future (the client's clock is fast)",
                    self.config.max_future.as_secs()
                ),
            );
        }
        Ok(iat)
    }
}

fn rule_syntax(proof: &str) -> Refused<(UnverifiedJws, Map<String, Value>)> {
    if proof.len() > MAX_PROOF_LEN {
        return refuse(
            DpopReason::TooLarge,
            format!("DPoP proof is longer than {MAX_PROOF_LEN} bytes"),
        );
    }
    let malformed = || DpopRejection {
        reason: DpopReason::Malformed,
        description: "DPoP proof is not a compact JWS with a JSON-object header and claims".into(),
    };
    let jws = UnverifiedJws::parse(proof).map_err(|_| malformed())?;
    let claims = jws.claims().map_err(|_| malformed())?;
    Ok((jws, claims))
}

fn rule_required<'p>(
    header: &'p Map<String, Value>,
    claims: &'p Map<String, Value>,
) -> Refused<Required<'p>> {
    let missing = |what: &str, name: &str, kind: &str| DpopRejection {
        reason: DpopReason::ClaimMissing,
        description: format!("DPoP proof {what} '{name}' is missing or not {kind} (RFC 9449 §4.2)")
            .into(),
    };
    let header_str = |name: &'static str| {
        header
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| missing("header", name, "a string"))
    };
    let claim_str = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| missing("claim", name, "a string"))
    };
    let typ = header_str("typ")?;
    let alg = header_str("alg")?;
    let Some(jwk @ Value::Object(_)) = header.get("jwk") else {
        return Err(missing("header", "jwk", "a JSON object"));
    };
    let jti = claim_str("jti")?;
    let htm = claim_str("htm")?;
    let htu = claim_str("htu")?;
    let Some(iat) = claims.get("iat").and_then(rules::numeric_date) else {
        return Err(missing("claim", "iat", "a NumericDate"));
    };
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return refuse(
            DpopReason::JtiInvalid,
            format!("DPoP proof 'jti' must be 1 to {MAX_JTI_LEN} bytes long"),
        );
    }
    Ok(Required {
        typ,
        alg,
        jwk,
        jti,
        htm,
        htu,
        iat,
    })
}

fn rule_typ(typ: &str) -> Refused<()> {
    // RFC 7515 §4.1.9: media types compare case-insensitively, `application/` optional.
    let typ = typ.to_ascii_lowercase();
    if typ.strip_prefix("application/").unwrap_or(&typ) == DPOP_TYP {
        return Ok(());
    }
    refuse(
        DpopReason::TypInvalid,
        "DPoP proof header 'typ' must be \"dpop+jwt\"",
    )
}

/// The header's `jwk` and the public key it holds. Private members are ignored here (the key is
/// read from its public part) and refused by [`rule_public_jwk`] after the signature, in the
/// RFC's order.
fn rule_jwk(value: &Value, alg: Algorithm) -> Refused<(Jwk, PublicKey)> {
    let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
        return refuse(
            DpopReason::JwkInvalid,
            "DPoP proof 'jwk' is not a JWK (RFC 7517)",
        );
    };
    // A JWK's own `alg` is binding (RFC 7517 §4.4); checked before the key is read, which
    // refuses the same contradiction with a less precise error.
    if let Some(jwk_alg) = jwk.alg.as_deref().filter(|a| *a != alg.name()) {
        return refuse(
            DpopReason::JwkAlgMismatch,
            format!(
                "DPoP proof 'alg' is {alg} but its jwk is for {:?}",
                jwk_alg.chars().take(32).collect::<String>()
            ),
        );
    }
    let key = match PublicKey::from_jwk(&jwk.to_public()) {
        Ok(key) => key,
        Err(e) => {
            return refuse(
                DpopReason::JwkInvalid,
                format!("DPoP proof 'jwk' is not a usable public key: {e}"),
            );
        }
    };
    if !key.kind().fits(alg) {
        return refuse(
            DpopReason::JwkAlgMismatch,
            format!(
                "DPoP proof 'alg' {alg} cannot be used with its jwk (a {} key)",
                key.kind()
            ),
        );
    }
    Ok((jwk, key))
}

fn rule_public_jwk(jwk: &Jwk) -> Refused<()> {
    let members = jwk.private_members();
    if members.is_empty() {
        return Ok(());
    }
    refuse(
        DpopReason::JwkPrivate,
        format!(
            "DPoP proof 'jwk' carries private key members ({}): the proof must carry the public \
             key only, and this private key must now be considered leaked",
            members.join(", ")
        ),
    )
}

fn rule_htm(htm: &str, method: &str) -> Refused<()> {
    // HTTP methods are case-sensitive (RFC 9110 §9.1).
    if htm == method {
        return Ok(());
    }
    refuse(
        DpopReason::HtmMismatch,
        format!(
            "DPoP proof 'htm' {:?} is not the request's method {method}",
            htm.chars().take(16).collect::<String>()
        ),
    )
}

fn rule_htu(htu: &str, uri: &str) -> Refused<()> {
    match (htu::normalize(htu), htu::normalize(uri)) {
        (Some(proof), Some(request)) if proof == request => Ok(()),
        (None, _) => refuse(
            DpopReason::HtuMismatch,
            "DPoP proof 'htu' is not an absolute http(s) URI",
        ),
        (_, Some(request)) => refuse(
            DpopReason::HtuMismatch,
            format!("DPoP proof 'htu' is not the request's URI {request}"),
        ),
        (_, None) => refuse(
            DpopReason::HtuMismatch,
            "the request URI to compare 'htu' with is not an absolute http(s) URI (server \
             configuration: set the external URL)",
        ),
    }
}

fn rule_nonce(claims: &Map<String, Value>, nonces: &[&str]) -> Refused<()> {
    if nonces.is_empty() {
        return Ok(());
    }
    match claims.get("nonce") {
        None => refuse(
            DpopReason::NonceMissing,
            "DPoP proof has no 'nonce' and this server requires one (use the DPoP-Nonce header)",
        ),
        Some(Value::String(nonce)) if nonces.contains(&nonce.as_str()) => Ok(()),
        Some(_) => refuse(
            DpopReason::NonceMismatch,
            "DPoP proof 'nonce' is not current (use the latest DPoP-Nonce header)",
        ),
    }
}

fn rule_ath(claims: &Map<String, Value>, access_token: Option<&str>) -> Refused<()> {
    let Some(token) = access_token else {
        return Ok(());
    };
    match claims.get("ath") {
        None => refuse(
            DpopReason::AthMissing,
            "DPoP proof has no 'ath' but comes with an access token",
        ),
        Some(Value::String(hash)) if *hash == ath(token) => Ok(()),
        Some(_) => refuse(
            DpopReason::AthMismatch,
            "DPoP proof 'ath' is not the hash of the access token sent with it",
        ),
    }
}

fn rule_bound(jkt: &str, bound: Option<&str>) -> Refused<()> {
    match bound {
        Some(bound) if bound != jkt => refuse(
            DpopReason::KeyNotBound,
            "the access token is bound to another key than the DPoP proof's ('cnf.jkt')",
        ),
        _ => Ok(()),
    }
}
