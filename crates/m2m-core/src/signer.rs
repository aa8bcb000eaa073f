//! The signing seam: anything that can produce a JWS signature (a local key, a KMS, an HSM) is a
//! [`Signer`], so the assertion builder never needs to see key material.

use std::fmt;
use std::sync::Arc;

use crate::alg::Algorithm;
use crate::error::Error;
use crate::key::PrivateKey;

/// Produces JWS signatures for one algorithm and key.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The `alg` this signer produces.
    fn algorithm(&self) -> Algorithm;
    /// The `kid` to put in the header, if any.
    fn key_id(&self) -> Option<&str>;
    /// Signs the JWS signing input.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error>;
}

/// A [`Signer`] over a local [`PrivateKey`]; checks at construction that the algorithm fits the
/// key so a misconfiguration fails before anything is sent.
#[derive(Clone, Debug)]
pub struct KeySigner {
    key: Arc<PrivateKey>,
    alg: Algorithm,
    kid: Option<String>,
}

impl KeySigner {
    /// A signer for `key` with `alg`; `kid` goes into every header.
    pub fn new(
        key: Arc<PrivateKey>,
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<KeySigner, Error> {
        key.kind().check(alg)?;
        Ok(KeySigner { key, alg, kid })
    }

    /// The key.
    pub fn key(&self) -> &Arc<PrivateKey> {
        &self.key
    }
}

impl Signer for KeySigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
    fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        self.key.sign(self.alg, msg)
    }
}
