//! The client's DPoP key (RFC 9449): the key whose proofs bind the client's access tokens to it,
//! and the token endpoint's latest nonce.
//!
//! A [`DpopKey`] is either ephemeral (a P-256 key made for this process: tokens bound to it die
//! with the process, so it needs no storage and cannot leak from disk) or persistent (loaded from
//! a key file: tokens bound to it can be cached on disk, keyed by its thumbprint). The token
//! client asks it for a fresh proof on every attempt (htm `POST`, htu the token URL).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{Proof, ProofBuilder, ProofInput};
use m2m_core::key::{KeySpec, PrivateKey};

use crate::error::{ConfigError, Error};

/// A DPoP key and how it came to be. Cheap to clone (the key is shared).
#[derive(Clone)]
pub struct DpopKey {
    builder: ProofBuilder,
    persistent: bool,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.builder.algorithm())
            .field("jkt", &self.builder.thumbprint())
            .field("persistent", &self.persistent)
            .finish()
    }
}

impl DpopKey {
    /// A new P-256 key (ES256) for this process only.
    pub fn ephemeral() -> Result<Self, Error> {
        let key = PrivateKey::generate(KeySpec::P256).map_err(Error::DpopProof)?;
        let builder = ProofBuilder::new(Arc::new(key)).map_err(Error::DpopProof)?;
        Ok(DpopKey {
            builder,
            persistent: false,
        })
    }

    /// A persistent key: proofs use its JWK `alg` if it has one, else its type's default (ES256
    /// for P-256, EdDSA for Ed25519, RS256 for RSA).
    pub fn from_key(key: Arc<PrivateKey>) -> Result<Self, Error> {
        let builder = ProofBuilder::new(key).map_err(invalid_key)?;
        Ok(DpopKey {
            builder,
            persistent: true,
        })
    }

    /// A persistent key with `alg` (which must fit it, e.g. PS256 for an RSA key).
    pub fn from_key_with_algorithm(key: Arc<PrivateKey>, alg: Algorithm) -> Result<Self, Error> {
        let builder = ProofBuilder::with_algorithm(key, alg).map_err(invalid_key)?;
        Ok(DpopKey {
            builder,
            persistent: true,
        })
    }

    /// A persistent key read from `path`: any format [`PrivateKey::from_bytes`] reads (PEM,
    /// PKCS#8, SEC1, JWK) except encrypted ones, which need a passphrase
    /// ([`DpopKey::from_key`] after loading it yourself).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::Invalid(format!("cannot read the DPoP key {}: {e}", path.display()))
        })?;
        let key = PrivateKey::from_bytes(&bytes, None, None).map_err(|e| {
            ConfigError::Invalid(format!("the DPoP key {} is unusable: {e}", path.display()))
        })?;
        DpopKey::from_key(Arc::new(key))
    }

    /// Proofs from any [`ProofBuilder`] (e.g. over a KMS signer); `persistent` says whether the
    /// key outlives the process.
    pub fn from_builder(builder: ProofBuilder, persistent: bool) -> Self {
        DpopKey {
            builder,
            persistent,
        }
    }

    /// The key's RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to it.
    pub fn thumbprint(&self) -> &str {
        self.builder.thumbprint()
    }

    /// The algorithm proofs are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.builder.algorithm()
    }

    /// Whether the key outlives the process (only then may a token bound to it be cached on disk).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The proof builder.
    pub fn proof_builder(&self) -> &ProofBuilder {
        &self.builder
    }

    /// A fresh proof for `input` at `now`.
    pub fn proof(&self, input: &ProofInput<'_>, now: UnixTime) -> Result<Proof, Error> {
        self.builder.build(input, now).map_err(Error::DpopProof)
    }
}

fn invalid_key(e: m2m_core::Error) -> Error {
    ConfigError::Invalid(format!("DPoP key: {e}")).into()
}

/// The DPoP state of one token client: its key and the token endpoint's latest nonce, which
/// every later proof to that endpoint carries (RFC 9449 §8).
#[derive(Debug)]
pub(crate) struct DpopState {
    pub(crate) key: DpopKey,
    nonce: Mutex<Option<String>>,
}

impl DpopState {
    pub(crate) fn new(key: DpopKey) -> Self {
        DpopState {
            key,
            nonce: Mutex::new(None),
        }
    }

    /// A proof for the token request (`POST` to `token_url`) with the latest nonce.
    pub(crate) fn token_request_proof(
        &self,
        token_url: &str,
        now: UnixTime,
    ) -> Result<Proof, Error> {
        let nonce = self.nonce();
        self.key.proof(
            &ProofInput::new("POST", token_url).nonce(nonce.as_deref()),
            now,
        )
    }

    /// The nonce the endpoint gave last.
    pub(crate) fn nonce(&self) -> Option<String> {
        self.nonce
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers `nonce` for the next proofs; `true` if it differs from the one used so far.
    pub(crate) fn set_nonce(&self, nonce: &str) -> bool {
        let mut slot = self.nonce.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_deref() == Some(nonce) {
            return false;
        }
        *slot = Some(nonce.to_owned());
        true
    }
}
