//! `client_secret_jwt` (OIDC Core §9): the HMAC algorithms HS256/384/512 with RFC 7518 §3.2's
//! key-length rule, HMAC signing and constant-time verification on aws-lc-rs, and the
//! [`SecretJwtBuilder`] that signs client assertions with a client secret.
//!
//! HMAC is kept apart from [`crate::alg::Algorithm`] on purpose: `Algorithm` is what
//! `private_key_jwt` and access tokens accept, and HMAC must never slip in there (a public key
//! used as an HMAC secret is the classic algorithm-confusion attack).

use std::fmt;
use std::time::Duration;

use aws_lc_rs::hmac;
use serde_json::{Map, Value};

use crate::assertion::{Assertion, Audience, DEFAULT_LIFETIME, check_lifetime, standard_claims};
use crate::clock::UnixTime;
use crate::error::Error;
use crate::secret::ClientSecret;

/// An HMAC JWS algorithm (RFC 7518 §3.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HmacAlg {
    /// HMAC with SHA-256 (the `client_secret_jwt` default).
    #[default]
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl HmacAlg {
    /// Every HMAC algorithm, in the order metadata lists them.
    pub const ALL: [HmacAlg; 3] = [HmacAlg::Hs256, HmacAlg::Hs384, HmacAlg::Hs512];

    /// The JOSE name (`HS256`, …).
    pub fn name(self) -> &'static str {
        match self {
            HmacAlg::Hs256 => "HS256",
            HmacAlg::Hs384 => "HS384",
            HmacAlg::Hs512 => "HS512",
        }
    }

    /// The algorithm with this exact JOSE name.
    pub fn from_name(name: &str) -> Option<HmacAlg> {
        HmacAlg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Shortest secret allowed: the hash output size (RFC 7518 §3.2: "a key of the same size as
    /// the hash output … or larger MUST be used").
    pub fn min_secret_len(self) -> usize {
        match self {
            HmacAlg::Hs256 => 32,
            HmacAlg::Hs384 => 48,
            HmacAlg::Hs512 => 64,
        }
    }

    fn aws(self) -> hmac::Algorithm {
        match self {
            HmacAlg::Hs256 => hmac::HMAC_SHA256,
            HmacAlg::Hs384 => hmac::HMAC_SHA384,
            HmacAlg::Hs512 => hmac::HMAC_SHA512,
        }
    }

    /// Refuses a secret shorter than [`min_secret_len`](Self::min_secret_len).
    pub fn check_secret(self, secret: &ClientSecret) -> Result<(), Error> {
        if secret.len() < self.min_secret_len() {
            return Err(Error::Config(format!(
                "the client secret is {} bytes, shorter than the {} bytes {} requires (RFC 7518 §3.2); \
                 ask the server for a longer secret or use a shorter hash",
                secret.len(),
                self.min_secret_len(),
                self.name()
            )));
        }
        Ok(())
    }

    /// The HMAC of `msg` under `secret`. Refuses a too-short secret.
    pub fn sign(self, secret: &ClientSecret, msg: &[u8]) -> Result<Vec<u8>, Error> {
        self.check_secret(secret)?;
        let key = hmac::Key::new(self.aws(), secret.expose());
        Ok(hmac::sign(&key, msg).as_ref().to_vec())
    }

    /// Whether `tag` is the HMAC of `msg` under `secret`, compared in constant time by
    /// aws-lc-rs. A too-short secret never verifies.
    pub fn verify(self, secret: &ClientSecret, msg: &[u8], tag: &[u8]) -> bool {
        if self.check_secret(secret).is_err() {
            return false;
        }
        let key = hmac::Key::new(self.aws(), secret.expose());
        hmac::verify(&key, msg, tag).is_ok()
    }
}

impl fmt::Display for HmacAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HmacAlg {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HmacAlg::from_name(s).ok_or_else(|| {
            Error::UnsupportedAlgorithm(format!(
                "{s} (client_secret_jwt takes HS256, HS384 or HS512)"
            ))
        })
    }
}

/// Builds `client_secret_jwt` assertions: the same claims as
/// [`AssertionBuilder`](crate::assertion::AssertionBuilder), MACed with the client secret.
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct SecretJwtBuilder {
    secret: ClientSecret,
    alg: HmacAlg,
    client_id: String,
    audience: Audience,
    typ: String,
    lifetime: Duration,
}

impl fmt::Debug for SecretJwtBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretJwtBuilder")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("alg", &self.alg)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl SecretJwtBuilder {
    /// A builder; refuses a secret shorter than the algorithm's hash output.
    pub fn new(
        secret: ClientSecret,
        alg: HmacAlg,
        client_id: impl Into<String>,
        audience: Audience,
    ) -> Result<SecretJwtBuilder, Error> {
        alg.check_secret(&secret)?;
        let typ = audience.default_typ().to_owned();
        Ok(SecretJwtBuilder {
            secret,
            alg,
            client_id: client_id.into(),
            audience,
            typ,
            lifetime: DEFAULT_LIFETIME,
        })
    }

    /// Sets the lifetime (`exp - iat`): 1 s to 300 s.
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, Error> {
        check_lifetime(lifetime)?;
        self.lifetime = lifetime;
        Ok(self)
    }

    /// The client id (`iss` and `sub`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The `aud`.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// The HMAC algorithm.
    pub fn alg(&self) -> HmacAlg {
        self.alg
    }

    /// Signs a new assertion issued at `now`, with a fresh random `jti`.
    pub fn build(&self, now: UnixTime) -> Result<Assertion, Error> {
        let (claims, jti, iat, exp) = standard_claims(
            &self.client_id,
            self.audience.value(),
            self.lifetime,
            false,
            &Map::new(),
            now,
        );
        let mut header = Map::new();
        header.insert("alg".to_owned(), Value::String(self.alg.name().to_owned()));
        header.insert("typ".to_owned(), Value::String(self.typ.clone()));
        let header = serde_json::to_vec(&header).map_err(|_| Error::Misuse("header"))?;
        let claims = serde_json::to_vec(&claims).map_err(|_| Error::Misuse("claims"))?;
        let mut token = crate::b64::encode(header);
        token.push('.');
        crate::b64::encode_into(claims, &mut token);
        let tag = self.alg.sign(&self.secret, token.as_bytes())?;
        token.push('.');
        crate::b64::encode_into(tag, &mut token);
        Ok(Assertion::from_parts(token, jti, iat, exp))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret(n: usize) -> ClientSecret {
        ClientSecret::new(vec![b'k'; n]).unwrap()
    }

    #[test]
    fn key_length_rule_per_algorithm() {
        for alg in HmacAlg::ALL {
            let min = alg.min_secret_len();
            assert!(alg.check_secret(&secret(min - 1)).is_err(), "{alg}");
            assert!(alg.check_secret(&secret(min)).is_ok(), "{alg}");
            assert!(!alg.verify(&secret(min - 1), b"m", &[0; 64]));
        }
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        for alg in HmacAlg::ALL {
            let s = secret(64);
            let tag = alg.sign(&s, b"msg").unwrap();
            assert!(alg.verify(&s, b"msg", &tag));
            assert!(!alg.verify(&s, b"msG", &tag));
            assert!(!alg.verify(&secret(65), b"msg", &tag));
        }
    }

    #[test]
    fn builder_debug_hides_the_secret() {
        let b = SecretJwtBuilder::new(
            ClientSecret::new(b"0123456789abcdef0123456789abcdef-secret".to_vec()).unwrap(),
            HmacAlg::Hs256,
            "c",
            Audience::Issuer("https://as".into()),
        )
        .unwrap();
        assert!(!format!("{b:?}").contains("0123456789"));
    }
}
