//! Fixtures for the validator tests: the kit's keys (generated once per test binary), and
//! hand-built assertions (signed for real, unsigned, HMAC-signed, tampered) so every rule can be
//! hit.

use std::sync::{Arc, OnceLock};

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::jws::base64url_encode;
use m2m_core::key::{PrivateKey, PublicKey};
use m2m_core::validate::TokenForm;
use m2m_core::wire::CLIENT_ASSERTION_TYPE;
use m2m_testkit::keys as kit;
use serde_json::{Map, Value, json};

/// The keys the validator tests sign with (from the kit: generated once per test binary).
pub struct Keys {
    pub rsa1: Arc<PrivateKey>,
    pub rsa2: Arc<PrivateKey>,
    pub ec: Arc<PrivateKey>,
    pub ed: Arc<PrivateKey>,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa1: kit::rsa2048(),
        rsa2: kit::rsa2048_other(),
        ec: kit::p256(),
        ed: kit::ed25519(),
    })
}

pub const NOW_SECS: u64 = 1_800_000_000;

pub fn now() -> UnixTime {
    UnixTime::from_secs(NOW_SECS)
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// How the third part of the token is produced.
#[derive(Clone, Copy, Debug)]
pub enum Sig<'a> {
    /// A real signature with this key and algorithm.
    Key(&'a PrivateKey, Algorithm),
    /// An empty signature (`alg: none` style).
    Empty,
    /// HMAC-SHA256 keyed with these bytes (the classic alg-confusion attack uses the public key).
    Hs256(&'a [u8]),
    /// A real signature over a different payload (the payload was tampered with after signing).
    Tampered(&'a PrivateKey, Algorithm),
}

pub fn encode(header: &Map<String, Value>, claims: &Map<String, Value>, sig: Sig<'_>) -> String {
    let h = base64url_encode(serde_json::to_vec(header).expect("header json"));
    let p = base64url_encode(serde_json::to_vec(claims).expect("claims json"));
    let input = format!("{h}.{p}");
    let signature = match sig {
        Sig::Key(key, alg) => key.sign(alg, input.as_bytes()).expect("sign"),
        Sig::Empty => Vec::new(),
        Sig::Hs256(secret) => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            aws_lc_rs::hmac::sign(&key, input.as_bytes())
                .as_ref()
                .to_vec()
        }
        Sig::Tampered(key, alg) => {
            let mut other = claims.clone();
            other.insert("tampered".into(), json!(false));
            let p2 = base64url_encode(serde_json::to_vec(&other).expect("claims json"));
            key.sign(alg, format!("{h}.{p2}").as_bytes()).expect("sign")
        }
    };
    format!("{input}.{}", base64url_encode(signature))
}

/// The public key bytes an attacker would use as an HMAC secret (the JWK JSON as published).
pub fn public_key_bytes(key: &PublicKey) -> Vec<u8> {
    serde_json::to_vec(&key.to_jwk()).expect("jwk json")
}

/// A well-formed client-credentials form carrying `assertion`.
pub fn form(assertion: &str) -> TokenForm {
    TokenForm {
        grant_type: Some("client_credentials".into()),
        client_assertion_type: Some(CLIENT_ASSERTION_TYPE.into()),
        client_assertion: Some(assertion.into()),
        ..TokenForm::default()
    }
}

/// Asserts a refusal description leaks none of the token's parts.
pub fn assert_no_token_in(description: &str, token: &str) {
    for part in token.split('.') {
        if part.len() >= 16 {
            assert!(
                !description.contains(part),
                "description leaks part of the assertion: {description}"
            );
        }
    }
}
