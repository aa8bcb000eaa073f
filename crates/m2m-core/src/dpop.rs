//! The DPoP proof builder (RFC 9449 §4.2): a fresh JWS per HTTP request that proves the client
//! holds the private key its access token is bound to.
//!
//! A proof's header is `{"typ":"dpop+jwt","alg":…,"jwk":<public key>}` (no `kid`: the key travels
//! in the proof itself) and its claims are `jti` (128 random bits, so the server's replay store
//! can refuse a second use), `htm` and `htu` (the request it was made for, the URI without query
//! and fragment), `iat`, and when relevant `nonce` (the server's latest `DPoP-Nonce`) and `ath`
//! (the hash of the access token sent with it, on resource requests).
//!
//! The header is encoded once per key; each proof costs one signature. The validator lives in
//! [`crate::validate::dpop`].

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::b64;
use crate::clock::UnixTime;
use crate::error::Error;
use crate::jws::EncodedHeader;
use crate::key::{PrivateKey, PublicKey};
use crate::signer::{KeySigner, Signer};
use crate::wire::DPOP_TYP;

/// Random bytes in a proof's `jti`: 128 bits, so two proofs never share one by chance.
const JTI_BYTES: usize = 16;

/// `ath` (RFC 9449 §4.2): the unpadded base64url SHA-256 of the access token's ASCII bytes. Written
/// once here for the builder and the validator.
pub fn ath(access_token: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// The part of a URI a proof's `htu` carries: everything before the query and the fragment.
pub fn htu_of(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    &uri[..end]
}

/// What one proof is for: the request's method and URI, and the optional server nonce and access
/// token.
#[derive(Clone, Copy)]
pub struct ProofInput<'a> {
    htm: &'a str,
    htu: &'a str,
    nonce: Option<&'a str>,
    access_token: Option<&'a str>,
}

impl fmt::Debug for ProofInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofInput")
            .field("htm", &self.htm)
            .field("htu", &htu_of(self.htu))
            .field("nonce", &self.nonce)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .finish()
    }
}

impl<'a> ProofInput<'a> {
    /// A proof for `method` (e.g. `POST`) on `uri`; its query and fragment are left out of `htu`.
    pub fn new(method: &'a str, uri: &'a str) -> Self {
        ProofInput {
            htm: method,
            htu: uri,
            nonce: None,
            access_token: None,
        }
    }

    /// The nonce the server sent last in `DPoP-Nonce`, if any.
    pub fn nonce(mut self, nonce: Option<&'a str>) -> Self {
        self.nonce = nonce;
        self
    }

    /// The access token sent with the proof (a resource request): adds `ath`.
    pub fn access_token(mut self, access_token: &'a str) -> Self {
        self.access_token = Some(access_token);
        self
    }
}

/// The claims of one proof, in the order they are written.
#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

/// Signs DPoP proofs with one key. Cheap to clone (the signer and the encoded header are shared).
#[derive(Clone)]
pub struct ProofBuilder {
    signer: Arc<dyn Signer>,
    header: Arc<EncodedHeader>,
    public: PublicKey,
    jkt: Arc<str>,
}

impl fmt::Debug for ProofBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofBuilder")
            .field("alg", &self.signer.algorithm())
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl ProofBuilder {
    /// A builder for `key`, signing with its JWK `alg` if it came with one, else the key type's
    /// default (ES256 for P-256, EdDSA for Ed25519, RS256 for RSA, …).
    pub fn new(key: Arc<PrivateKey>) -> Result<Self, Error> {
        let alg = key.jwk_alg().unwrap_or_else(|| key.kind().default_alg());
        ProofBuilder::with_algorithm(key, alg)
    }

    /// A builder for `key` with `alg`, which must fit the key (e.g. PS256 for an RSA key).
    pub fn with_algorithm(key: Arc<PrivateKey>, alg: Algorithm) -> Result<Self, Error> {
        let public = key.public_key().clone();
        // No kid: the proof carries the key itself.
        let signer = KeySigner::new(key, alg, None)?;
        ProofBuilder::with_signer(Arc::new(signer), public)
    }

    /// A builder over any [`Signer`] (a KMS or HSM key) whose public half is `public`. The
    /// signer's algorithm must fit the key.
    pub fn with_signer(signer: Arc<dyn Signer>, public: PublicKey) -> Result<Self, Error> {
        let alg = signer.algorithm();
        public.kind().check(alg)?;
        let jwk = serde_json::to_value(public.to_jwk()).map_err(|_| Error::SigningFailed)?;
        let mut header = Map::new();
        header.insert("typ".to_owned(), Value::String(DPOP_TYP.to_owned()));
        header.insert("alg".to_owned(), Value::String(alg.name().to_owned()));
        header.insert("jwk".to_owned(), jwk);
        let header = EncodedHeader::encode(&header, alg)?;
        let jkt = public.thumbprint().into();
        Ok(ProofBuilder {
            signer,
            header: Arc::new(header),
            public,
            jkt,
        })
    }

    /// The algorithm proofs are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.signer.algorithm()
    }

    /// The public key proofs carry.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key's RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to it, and a cache key that
    /// holds no key material.
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// Signs a new proof for `input`, issued at `now`, with a fresh random `jti`.
    pub fn build(&self, input: &ProofInput<'_>, now: UnixTime) -> Result<Proof, Error> {
        if input.htm.is_empty() || input.htu.is_empty() {
            return Err(Error::Misuse("a DPoP proof needs a method and a URI"));
        }
        let mut random = [0u8; JTI_BYTES];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| Error::SigningFailed)?;
        let jti = b64::encode(random);
        let claims = Claims {
            jti: &jti,
            htm: input.htm,
            htu: htu_of(input.htu),
            iat: now.as_secs(),
            nonce: input.nonce,
            ath: input.access_token.map(ath),
        };
        let token = self.header.sign(&claims, self.signer.as_ref())?;
        Ok(Proof { token, jti })
    }
}

/// A signed DPoP proof, for the `DPoP` header. `Debug` shows its `jti` only.
#[derive(Clone)]
pub struct Proof {
    token: String,
    jti: String,
}

impl Proof {
    /// The compact JWS, the `DPoP` header's value.
    pub fn as_str(&self) -> &str {
        &self.token
    }
    /// Consumes it into the compact JWS.
    pub fn into_string(self) -> String {
        self.token
    }
    /// Its `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proof")
            .field("jti", &self.jti)
            .field("token", &"[redacted]")
            .finish()
    }
}
