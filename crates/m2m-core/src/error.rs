//! The one error type of m2m-core. Messages say what is wrong and how to fix it, and never
//! contain key material, signatures or tokens (tested in `tests/secrets.rs`).

use crate::alg::Algorithm;
use crate::key::KeyKind;

/// Everything that can go wrong in m2m-core.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key could not be read: the message says which format was recognised and what failed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A public key (or public-only JWK) was given where a private key is needed.
    #[error(
        "this is a public key, but signing needs the private key (the file you registered with the \
         server holds the public half; pass the private key file here)"
    )]
    PublicKeyGiven,
    /// The key is encrypted and no passphrase was provided.
    #[error("the key is encrypted: set M2M_KEY_PASSPHRASE or run interactively to be prompted")]
    PassphraseRequired,
    /// The passphrase did not decrypt the key.
    #[error("could not decrypt the key: wrong passphrase or corrupt file")]
    WrongPassphrase,
    /// The key uses an encryption scheme we do not implement.
    #[error(
        "unsupported key encryption: {0} (re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)"
    )]
    UnsupportedKeyEncryption(String),
    /// RSA keys below 2048 bits are refused (NIST SP 800-131A; NHS uses 4096).
    #[error("RSA key is {bits} bits; at least 2048 bits are required (NHS recommends 4096)")]
    RsaKeyTooSmall {
        /// The modulus size found.
        bits: usize,
    },
    /// The requested algorithm cannot be used with this key.
    #[error("algorithm {alg} does not fit a {kind} key (use {suggested} for this key)")]
    AlgorithmMismatch {
        /// The algorithm asked for.
        alg: Algorithm,
        /// The key it was asked for.
        kind: KeyKind,
        /// What the key supports by default.
        suggested: Algorithm,
    },
    /// An `alg` name that m2m does not support (including `none` and HMAC, deliberately).
    #[error(
        "unsupported JWS algorithm \"{0}\" (supported: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)"
    )]
    UnsupportedAlgorithm(String),
    /// A JWKS does not contain the requested `kid`.
    #[error("no key with kid \"{kid}\" in the JWKS (it has: {available})")]
    KidNotFound {
        /// The kid asked for.
        kid: String,
        /// The kids present, comma-separated.
        available: String,
    },
    /// A JWKS holds several keys and no `kid` was given to choose one.
    #[error("the JWKS holds {0} keys: pass --kid to choose one")]
    KidRequired(usize),
    /// JWK/JWKS JSON that is not valid.
    #[error("invalid JWK: {0}")]
    InvalidJwk(String),
    /// A JWK with private members where only public keys are allowed.
    #[error(
        "the JWK{} contains private key members ({members}); a public JWKS must never carry them",
        kid.as_deref().map(|k| format!(" \"{k}\"")).unwrap_or_default()
    )]
    PrivateMembersInPublicJwk {
        /// The JWK's kid, if any.
        kid: Option<String>,
        /// Which private members were found.
        members: String,
    },
    /// A compact JWS that cannot be parsed.
    #[error("malformed JWT: {0}")]
    MalformedJws(&'static str),
    /// The signature does not verify under the given key and algorithm.
    #[error("signature verification failed")]
    BadSignature,
    /// The crypto library refused to sign (should not happen with a valid key).
    #[error("signing failed")]
    SigningFailed,
    /// The API was used in a way that cannot work (a programming error in the caller, not bad
    /// input): e.g. a signer whose algorithm is not the header's, or claims that are not a JSON
    /// object.
    #[error("misuse: {0}")]
    Misuse(&'static str),
    /// Key generation failed in the crypto library.
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    /// A configuration value is out of range (e.g. an assertion lifetime above 300 s).
    #[error("{0}")]
    Config(String),
}
