//! The RFC 7523 client-assertion builder: header, claims, audience rules and lifetime, with a fresh
//! `jti` on every build so a retry can never be refused as a replay.
//!
//! Why a 60 s default lifetime: an assertion only has to survive one HTTP round trip; the shorter
//! it lives the less a leaked one is worth. NHS accepts at most 300 s (plus 10 s of slack) and
//! applies zero leeway on expiry, so 60 s also tolerates a client clock that is fast by minutes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::error::Error;
use crate::jws::EncodedHeader;
use crate::signer::Signer;

pub use crate::wire::CLIENT_ASSERTION_TYPE;
/// The explicit `typ` RFC 10070 defines for client-authentication JWTs.
pub const TYP_CLIENT_AUTH: &str = "client-authentication+jwt";
/// Default assertion lifetime.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime allowed without a `dangerous_` override (NHS: 5 minutes).
pub const MAX_LIFETIME: Duration = crate::wire::MAX_ASSERTION_LIFETIME;

/// What the assertion's `aud` is, which follows from how the token endpoint was found
/// (docs/protocol.md, "Audience rules").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The exact token URL (NHS, and servers configured by token URL alone).
    TokenUrl(String),
    /// The authorization server's issuer identifier (RFC 8414 discovery; RFC 10070).
    Issuer(String),
    /// A value the user set with `--aud`.
    Explicit(String),
}

impl Audience {
    /// The `aud` string.
    pub fn value(&self) -> &str {
        match self {
            Audience::TokenUrl(s) | Audience::Issuer(s) | Audience::Explicit(s) => s,
        }
    }

    /// The `typ` that goes with it: RFC 10070's explicit type when the audience is the issuer,
    /// otherwise `JWT`, which NHS requires and every other server accepts.
    pub fn default_typ(&self) -> &'static str {
        match self {
            Audience::Issuer(_) => TYP_CLIENT_AUTH,
            _ => "JWT",
        }
    }
}

/// Builds signed client assertions. Cheap to clone (the signer is shared).
#[derive(Clone)]
pub struct AssertionBuilder {
    signer: Arc<dyn Signer>,
    client_id: String,
    audience: Audience,
    typ: String,
    lifetime: Duration,
    nbf: bool,
    extra: Map<String, Value>,
}

impl fmt::Debug for AssertionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionBuilder")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("alg", &self.signer.algorithm())
            .field("kid", &self.signer.key_id())
            .field("typ", &self.typ)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl AssertionBuilder {
    /// A builder for `client_id` (both `iss` and `sub`) and `audience`.
    pub fn new(signer: Arc<dyn Signer>, client_id: impl Into<String>, audience: Audience) -> Self {
        let typ = audience.default_typ().to_owned();
        AssertionBuilder {
            signer,
            client_id: client_id.into(),
            audience,
            typ,
            lifetime: DEFAULT_LIFETIME,
            nbf: false,
            extra: Map::new(),
        }
    }

    /// Sets the lifetime (`exp - iat`): 1 s to 300 s.
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, Error> {
        check_lifetime(lifetime)?;
        self.lifetime = lifetime;
        Ok(self)
    }

    /// Sets any lifetime, above the 300 s maximum included: longer-lived assertions are worth more
    /// to whoever intercepts one, hence the name.
    pub fn dangerous_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// Overrides the `typ` header.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = typ.into();
        self
    }

    /// Adds `nbf` = `iat` (off by default: RFC 7523 does not need it and NHS ignores it).
    pub fn with_nbf(mut self, nbf: bool) -> Self {
        self.nbf = nbf;
        self
    }

    /// Adds an extra claim; the registered claims (`iss`, `sub`, `aud`, `jti`, `iat`, `exp`,
    /// `nbf`) cannot be overridden this way.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    /// The client id (`iss` and `sub`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The audience.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// The signer.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// Signs a new assertion issued at `now`, with a fresh random `jti`.
    pub fn build(&self, now: UnixTime) -> Result<Assertion, Error> {
        let (claims, jti, iat, exp) = self.claims(now);
        // The header (`alg`, `typ`, `kid`) is made by the JWS layer, from the signer itself.
        let signer = self.signer.as_ref();
        let token = EncodedHeader::typed(&self.typ, signer)?.sign(&claims, signer)?;
        Ok(Assertion {
            token,
            jti,
            iat,
            exp,
        })
    }

    /// The claims of a new assertion issued at `now` (fresh `jti`), with its `jti`, `iat` and
    /// `exp`. Shared with the `client_secret_jwt` builder ([`crate::hmac::SecretJwtBuilder`]),
    /// whose assertions carry the same claims.
    pub(crate) fn claims(&self, now: UnixTime) -> (Map<String, Value>, String, u64, u64) {
        standard_claims(
            &self.client_id,
            self.audience.value(),
            self.lifetime,
            self.nbf,
            &self.extra,
            now,
        )
    }
}

/// The assertion-lifetime rule (1 s to 300 s) of every builder.
pub(crate) fn check_lifetime(lifetime: Duration) -> Result<(), Error> {
    if lifetime > MAX_LIFETIME {
        return Err(Error::Config(format!(
            "assertion lifetime {}s is above the 300 s maximum (NHS refuses more than 5 minutes; \
             use dangerous_lifetime to override for other servers)",
            lifetime.as_secs()
        )));
    }
    if lifetime.as_secs() < 1 {
        return Err(Error::Config(
            "assertion lifetime must be at least 1 s".to_owned(),
        ));
    }
    Ok(())
}

/// The RFC 7523 §3 claims every client assertion carries, whatever signs it.
pub(crate) fn standard_claims(
    client_id: &str,
    aud: &str,
    lifetime: Duration,
    nbf: bool,
    extra: &Map<String, Value>,
    now: UnixTime,
) -> (Map<String, Value>, String, u64, u64) {
    let iat = now.as_secs();
    // Saturating: dangerous_lifetime accepts any Duration, and overflow must not panic.
    let exp = iat.saturating_add(lifetime.as_secs());
    let jti = new_jti();
    let mut claims = Map::new();
    claims.insert("iss".to_owned(), Value::String(client_id.to_owned()));
    claims.insert("sub".to_owned(), Value::String(client_id.to_owned()));
    claims.insert("aud".to_owned(), Value::String(aud.to_owned()));
    claims.insert("jti".to_owned(), Value::String(jti.clone()));
    claims.insert("iat".to_owned(), Value::from(iat));
    if nbf {
        claims.insert("nbf".to_owned(), Value::from(iat));
    }
    claims.insert("exp".to_owned(), Value::from(exp));
    for (k, v) in extra {
        claims.entry(k.clone()).or_insert_with(|| v.clone());
    }
    (claims, jti, iat, exp)
}

/// A fresh UUIDv4 (122 random bits from aws-lc-rs's CSPRNG), the `jti` NHS's samples use.
pub fn new_jti() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    // SystemRandom only fails if the OS RNG is broken; then an all-zero jti would be replayed and
    // refused by the server, which is the safe outcome.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Written into one buffer: this runs on every assertion and every issued token.
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// A signed client assertion. `Debug` never shows the token.
#[derive(Clone)]
pub struct Assertion {
    token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `iat` (seconds).
    pub iat: u64,
    /// Its `exp` (seconds).
    pub exp: u64,
}

impl Assertion {
    /// An assertion from its signed token and claims (for the crate's other builders).
    pub(crate) fn from_parts(token: String, jti: String, iat: u64, exp: u64) -> Assertion {
        Assertion {
            token,
            jti,
            iat,
            exp,
        }
    }

    /// The compact JWS, to send as `client_assertion`.
    pub fn as_str(&self) -> &str {
        &self.token
    }
    /// Consumes it into the compact JWS.
    pub fn into_string(self) -> String {
        self.token
    }
}

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assertion")
            .field("jti", &self.jti)
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .field("token", &"[redacted]")
            .finish()
    }
}
