//! Property tests: the parsers that face untrusted input — compact JWS, JWK/JWKS JSON, private
//! key files and public PEM — never panic on arbitrary bytes, nor on mutations of valid inputs.

mod support;

use std::sync::OnceLock;

use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::{KeySpec, PrivateKey, PublicKey};
use proptest::prelude::*;

struct Inputs {
    token: String,
    rsa_pem: String,
    ec_pem: String,
    ed_der: Vec<u8>,
    encrypted_pem: Vec<u8>,
    public_pem: Vec<u8>,
    public_jwk: Vec<u8>,
    private_jwk: Vec<u8>,
}

/// Valid inputs to mutate, built once (the encrypted key and the SPKI come from openssl).
fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let ed = PrivateKey::generate(KeySpec::Ed25519).expect("ed");
        let ed_pem = ed.to_pkcs8_pem().expect("pem");
        let ed_der = pem::parse(ed_pem.as_bytes())
            .expect("pem")
            .contents()
            .to_vec();
        let signer = m2m_core::signer::KeySigner::new(
            std::sync::Arc::new(ed),
            m2m_core::alg::Algorithm::EdDsa,
            Some("k".into()),
        )
        .expect("signer");
        let token = m2m_core::assertion::AssertionBuilder::new(
            std::sync::Arc::new(signer),
            "client",
            m2m_core::assertion::Audience::TokenUrl("https://as.example/token".into()),
        )
        .build(m2m_core::clock::UnixTime::from_secs(1_700_000_000))
        .expect("build")
        .into_string();
        let ec = PrivateKey::from_bytes(support::fixture("p256.pem"), None, None).expect("ec");
        let mut public_jwk = ec.public_key().to_jwk();
        public_jwk.kid = Some("ec".into());
        Inputs {
            token,
            rsa_pem: String::from_utf8(support::fixture("rsa-pkcs1.pem").to_vec()).expect("utf8"),
            ec_pem: String::from_utf8(support::fixture("p256.pem").to_vec()).expect("utf8"),
            ed_der,
            encrypted_pem: support::fixture("p256-aes128.pem").to_vec(),
            public_pem: support::fixture("rsa-pub.pem").to_vec(),
            public_jwk: serde_json::to_vec(&public_jwk).expect("json"),
            private_jwk: br#"{"kty":"EC","crv":"P-256","kid":"ec",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#
                .to_vec(),
        }
    })
}

/// A mutation: overwrite a few bytes, then maybe truncate or duplicate a slice.
#[derive(Debug, Clone)]
struct Mutation {
    writes: Vec<(usize, u8)>,
    truncate: Option<usize>,
    splice: Option<(usize, usize)>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        prop::option::of(any::<usize>()),
        prop::option::of((any::<usize>(), any::<usize>())),
    )
        .prop_map(|(writes, truncate, splice)| Mutation {
            writes,
            truncate,
            splice,
        })
}

fn apply(input: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = input.to_vec();
    if out.is_empty() {
        return out;
    }
    for (at, byte) in &m.writes {
        let len = out.len();
        out[at % len] = *byte;
    }
    if let Some((from, len)) = m.splice {
        let from = from % out.len();
        let end = (from + len % 64).min(out.len());
        let copy = out[from..end].to_vec();
        out.splice(from..from, copy);
    }
    if let Some(at) = m.truncate {
        out.truncate(at % (out.len() + 1));
    }
    out
}

/// Mutations that stay within an alphabet (so text stays text and often stays "almost valid").
fn apply_text(input: &str, m: &Mutation, alphabet: &[u8]) -> String {
    let mapped = Mutation {
        writes: m
            .writes
            .iter()
            .map(|(at, b)| (*at, alphabet[usize::from(*b) % alphabet.len()]))
            .collect(),
        ..m.clone()
    };
    String::from_utf8_lossy(&apply(input.as_bytes(), &mapped)).into_owned()
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-";
const JSONISH: &[u8] = b"{}[]\":,0123456789.-eEtruefalsn \\xyzkdAQB";

fn exercise_jws(token: &str) {
    if let Ok(jws) = UnverifiedJws::parse(token) {
        let _ = jws.claims();
        let _ = (
            jws.alg(),
            jws.kid(),
            jws.typ(),
            jws.payload(),
            jws.signature(),
        );
        let key = PrivateKey::from_bytes(&inputs().private_jwk, None, None).expect("key");
        let _ = jws.verify(key.public_key(), m2m_core::alg::Algorithm::Es256);
    }
}

fn exercise_private(bytes: &[u8]) {
    for pass in [None, Some(&b"correct horse battery staple"[..])] {
        if let Ok(key) = PrivateKey::from_bytes(bytes, Some("ec"), pass) {
            let _ = key.sign(key.kind().default_alg(), b"msg");
            let _ = key.to_pkcs8_pem();
            let _ = format!("{key:?}");
        }
    }
}

fn exercise_public_pem(bytes: &[u8]) {
    if let Ok(key) = PublicKey::from_pem(bytes) {
        let _ = key.thumbprint();
        let _ = key.verify(key.kind().default_alg(), b"msg", &[0; 64]);
    }
}

fn exercise_jwk_json(bytes: &[u8]) {
    if let Ok(jwk) = Jwk::from_slice(bytes) {
        let _ = format!("{jwk:?}");
        if let Ok(key) = PublicKey::from_jwk(&jwk) {
            let _ = key.thumbprint();
            let _ = key.to_jwk();
        }
        let _ = PrivateKey::from_jwk(&jwk);
    }
    if let Ok(jwks) = Jwks::from_slice(bytes) {
        let _ = jwks.find("ec");
        let _ = jwks.kids();
        let _ = jwks.ensure_public();
    }
    exercise_private(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn jws_parse_never_panics_on_any_string(s in ".{0,400}") {
        exercise_jws(&s);
    }

    #[test]
    fn jws_parse_never_panics_on_base64url_ish_strings(s in "[A-Za-z0-9_=+/.-]{0,300}") {
        exercise_jws(&s);
    }

    #[test]
    fn jws_parse_never_panics_on_mutated_tokens(m in mutation()) {
        exercise_jws(&apply_text(&inputs().token, &m, B64URL));
        exercise_jws(&String::from_utf8_lossy(&apply(inputs().token.as_bytes(), &m)));
    }

    #[test]
    fn jwk_and_jwks_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise_jwk_json(&bytes);
    }

    #[test]
    fn jwk_and_jwks_never_panic_on_mutated_json(m in mutation()) {
        let i = inputs();
        for valid in [&i.public_jwk, &i.private_jwk] {
            let text = String::from_utf8_lossy(valid);
            exercise_jwk_json(apply_text(&text, &m, JSONISH).as_bytes());
            let jwks = format!("{{\"keys\":[{text},{text}]}}");
            exercise_jwk_json(apply_text(&jwks, &m, JSONISH).as_bytes());
            exercise_jwk_json(&apply(valid, &m));
        }
    }

    #[test]
    fn private_key_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise_private(&bytes);
        let mut der = bytes.clone();
        der.insert(0, 0x30);
        exercise_private(&der);
        let mut pem = b"-----BEGIN PRIVATE KEY-----\n".to_vec();
        pem.extend(&bytes);
        exercise_private(&pem);
    }

    #[test]
    fn private_key_never_panics_on_mutated_keys(m in mutation()) {
        let i = inputs();
        exercise_private(apply_text(&i.rsa_pem, &m, B64).as_bytes());
        exercise_private(apply_text(&i.ec_pem, &m, B64).as_bytes());
        exercise_private(&apply(i.ed_der.as_slice(), &m));
        exercise_private(&apply(i.rsa_pem.as_bytes(), &m));
    }

    #[test]
    fn public_pem_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), m in mutation()) {
        exercise_public_pem(&bytes);
        let i = inputs();
        let text = String::from_utf8_lossy(&i.public_pem).into_owned();
        exercise_public_pem(apply_text(&text, &m, B64).as_bytes());
        exercise_public_pem(&apply(&i.public_pem, &m));
        exercise_public_pem(apply_text(&i.ec_pem, &m, B64).as_bytes());
    }
}

proptest! {
    // Each case may run PBKDF2 (2048 iterations): fewer cases.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn encrypted_key_never_panics_when_mutated(m in mutation()) {
        let text = String::from_utf8_lossy(&inputs().encrypted_pem).into_owned();
        exercise_private(apply_text(&text, &m, B64).as_bytes());
    }
}
