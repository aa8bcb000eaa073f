//! The JWK / JWKS JSON model (RFC 7517), private-member detection, and the members RFC 7638
//! thumbprints are computed over.
//!
//! Private members are held in [`Zeroizing`] strings and never printed by `Debug`: four keys in
//! NHS's public JWKS repository carry private members, and we make that mistake hard to repeat.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::Error;

/// A JSON Web Key. Unknown members are kept so JWKS files round-trip.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use (`sig`).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Curve for `EC` / `OKP` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC x coordinate, or the OKP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private exponent (RSA) or private key (EC/OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<Zeroizing<String>>,
    /// RSA first prime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<Zeroizing<String>>,
    /// RSA second prime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<Zeroizing<String>>,
    /// RSA first CRT exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<Zeroizing<String>>,
    /// RSA second CRT exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<Zeroizing<String>>,
    /// RSA CRT coefficient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<Zeroizing<String>>,
    /// Any other members (`x5c`, `key_ops`, `oth`, …), kept verbatim.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Jwk {
    /// Which private members this JWK carries (empty for a public key): the members only a
    /// private key has (RFC 7518 §6.3.2, §6.2.2, RFC 8037).
    pub fn private_members(&self) -> Vec<&'static str> {
        let mut found = Vec::new();
        // Each name next to its field, so the list cannot drift out of step (RFC 7518 §6.3.2;
        // `oth` has no field of its own and is looked up below).
        let fields = [
            ("d", &self.d),
            ("p", &self.p),
            ("q", &self.q),
            ("dp", &self.dp),
            ("dq", &self.dq),
            ("qi", &self.qi),
        ];
        for (name, value) in fields {
            if value.is_some() {
                found.push(name);
            }
        }
        if self.other.contains_key("oth") {
            found.push("oth");
        }
        found
    }

    /// Whether this JWK carries any private member.
    pub fn has_private_members(&self) -> bool {
        !self.private_members().is_empty()
    }

    /// Fails with a clear error if this JWK carries private members (use where a public key is
    /// expected: registries, `m2m jwks`).
    pub fn ensure_public(&self) -> Result<(), Error> {
        let members = self.private_members();
        if members.is_empty() {
            Ok(())
        } else {
            Err(Error::PrivateMembersInPublicJwk {
                kid: self.kid.clone(),
                members: members.join(", "),
            })
        }
    }

    /// This key without its private members.
    pub fn to_public(&self) -> Jwk {
        let mut other = self.other.clone();
        other.remove("oth");
        Jwk {
            kty: self.kty.clone(),
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            use_: self.use_.clone(),
            crv: self.crv.clone(),
            n: self.n.clone(),
            e: self.e.clone(),
            x: self.x.clone(),
            y: self.y.clone(),
            other,
            ..Jwk::default()
        }
    }

    /// Parses one JWK from JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<Jwk, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidJwk(describe_json_error(&e)))
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Jwk");
        s.field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("crv", &self.crv);
        if self.has_private_members() {
            s.field("private", &"[redacted]");
        }
        s.finish_non_exhaustive()
    }
}

/// A JWK Set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_slice(bytes: &[u8]) -> Result<Jwks, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidJwk(describe_json_error(&e)))
    }

    /// Parses a document that holds either a JWKS (`{"keys": [...]}`) or a single JWK, which is
    /// read as a one-key set. The [`JwkShape`] says which it was: a single JWK without a `kid`
    /// can still be selected by a caller's kid, a set member cannot.
    pub fn from_jwk_or_jwks(bytes: &[u8]) -> Result<(Jwks, JwkShape), Error> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidJwk(describe_json_error(&e)))?;
        if value.get("keys").is_some() {
            Ok((Jwks::from_slice(bytes)?, JwkShape::Set))
        } else {
            let jwk = Jwk::from_slice(bytes)?;
            Ok((Jwks { keys: vec![jwk] }, JwkShape::Single))
        }
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// The kids present, for error messages.
    pub fn kids(&self) -> String {
        let kids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("(no kid)"))
            .collect();
        if kids.is_empty() {
            "no keys".to_owned()
        } else {
            kids.join(", ")
        }
    }

    /// Fails if any key carries private members.
    pub fn ensure_public(&self) -> Result<(), Error> {
        self.keys.iter().try_for_each(Jwk::ensure_public)
    }
}

/// What [`Jwks::from_jwk_or_jwks`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwkShape {
    /// A JWK Set (`{"keys": [...]}`).
    Set,
    /// A single JWK.
    Single,
}

/// serde_json's message without echoing input (which could be key material).
fn describe_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "could not read",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "unexpected JSON structure",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}
