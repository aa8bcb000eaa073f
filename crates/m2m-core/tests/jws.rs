//! Compact JWS: our tokens verified by independent implementations for every algorithm
//! (`jsonwebtoken` on RustCrypto for RS*/PS*/ES256/ES384/EdDSA, the `openssl` CLI for ES512) and
//! theirs verified by us; the strict parser's refusals; tampering always gives `BadSignature`.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use m2m_core::Error;
use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::UnixTime;
use m2m_core::jws::{
    EncodedHeader, UnverifiedJws, base64url_decode, base64url_encode, sign_compact,
};
use m2m_core::key::{PrivateKey, PublicKey};
use m2m_core::signer::{KeySigner, Signer};
use serde_json::{Map, Value, json};

const TOKEN_URL: &str = "https://int.api.service.nhs.uk/oauth2/token";
const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

struct Keys {
    rsa: Arc<PrivateKey>,
    rsa_other: Arc<PrivateKey>,
    p256: Arc<PrivateKey>,
    p384: Arc<PrivateKey>,
    p521: Arc<PrivateKey>,
    ed: Arc<PrivateKey>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use m2m_testkit::keys;
        Keys {
            rsa: keys::rsa2048(),
            rsa_other: keys::rsa2048_other(),
            p256: keys::p256(),
            p384: keys::p384(),
            p521: keys::p521(),
            ed: keys::ed25519(),
        }
    })
}

fn key_for(alg: Algorithm) -> &'static Arc<PrivateKey> {
    let k = keys();
    match alg {
        Algorithm::Es256 => &k.p256,
        Algorithm::Es384 => &k.p384,
        Algorithm::Es512 => &k.p521,
        Algorithm::EdDsa => &k.ed,
        _ => &k.rsa,
    }
}

fn signer(alg: Algorithm, kid: Option<&str>) -> KeySigner {
    KeySigner::new(key_for(alg).clone(), alg, kid.map(str::to_owned)).expect("signer")
}

/// Every algorithm `jsonwebtoken` implements (all of ours but ES512).
fn jsonwebtoken_algs() -> impl Iterator<Item = (Algorithm, jsonwebtoken::Algorithm)> {
    use jsonwebtoken::Algorithm as J;
    [
        (Algorithm::Rs256, J::RS256),
        (Algorithm::Rs384, J::RS384),
        (Algorithm::Rs512, J::RS512),
        (Algorithm::Ps256, J::PS256),
        (Algorithm::Ps384, J::PS384),
        (Algorithm::Ps512, J::PS512),
        (Algorithm::Es256, J::ES256),
        (Algorithm::Es384, J::ES384),
        (Algorithm::EdDsa, J::EdDSA),
    ]
    .into_iter()
}

fn decoding_key(public: &PublicKey) -> jsonwebtoken::DecodingKey {
    let jwk = public.to_jwk();
    let m = |v: &Option<String>| v.clone().expect("member");
    match jwk.kty.as_str() {
        "RSA" => jsonwebtoken::DecodingKey::from_rsa_components(&m(&jwk.n), &m(&jwk.e)),
        "EC" => jsonwebtoken::DecodingKey::from_ec_components(&m(&jwk.x), &m(&jwk.y)),
        _ => jsonwebtoken::DecodingKey::from_ed_components(&m(&jwk.x)),
    }
    .expect("decoding key")
}

fn encoding_key(key: &PrivateKey, alg: Algorithm) -> jsonwebtoken::EncodingKey {
    let pem = key.to_pkcs8_pem().expect("pkcs8");
    match alg {
        Algorithm::Es256 | Algorithm::Es384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
        }
        Algorithm::EdDsa => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("encoding key")
}

fn validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    v
}

#[test]
fn jsonwebtoken_verifies_our_assertions_for_every_algorithm() {
    for (alg, jalg) in jsonwebtoken_algs() {
        let builder = AssertionBuilder::new(
            Arc::new(signer(alg, Some("kid-1"))),
            "client-1",
            Audience::TokenUrl(TOKEN_URL.to_owned()),
        );
        let assertion = builder.build(NOW).expect("build");
        let data = jsonwebtoken::decode::<Value>(
            assertion.as_str(),
            &decoding_key(key_for(alg).public_key()),
            &validation(jalg),
        )
        .unwrap_or_else(|e| panic!("jsonwebtoken refused our {alg}: {e:?}"));
        assert_eq!(data.header.alg, jalg);
        assert_eq!(data.header.kid.as_deref(), Some("kid-1"));
        assert_eq!(data.claims["iss"], "client-1");
        assert_eq!(data.claims["aud"], TOKEN_URL);
        assert_eq!(data.claims["jti"], assertion.jti.as_str());
        // A different key of the same kind is refused by them too.
        if alg.is_rsa() {
            let wrong = decoding_key(keys().rsa_other.public_key());
            assert!(
                jsonwebtoken::decode::<Value>(assertion.as_str(), &wrong, &validation(jalg))
                    .is_err()
            );
        }
    }
}

#[test]
fn we_verify_jsonwebtoken_tokens_for_every_algorithm() {
    for (alg, jalg) in jsonwebtoken_algs() {
        let key = key_for(alg);
        let mut header = jsonwebtoken::Header::new(jalg);
        header.kid = Some("theirs".to_owned());
        let claims = json!({"iss": "c", "sub": "c", "aud": TOKEN_URL, "jti": "j", "exp": 1});
        let token = jsonwebtoken::encode(&header, &claims, &encoding_key(key, alg))
            .unwrap_or_else(|e| panic!("jsonwebtoken could not sign {alg}: {e:?}"));
        let jws = UnverifiedJws::parse(&token).expect("parse");
        assert_eq!(jws.alg(), Some(alg.name()));
        assert_eq!(jws.kid(), Some("theirs"));
        assert_eq!(Value::Object(jws.claims().expect("claims")), claims);
        jws.verify(key.public_key(), alg)
            .unwrap_or_else(|e| panic!("we refused jsonwebtoken's {alg}: {e}"));
        if alg.is_rsa() {
            assert!(matches!(
                jws.verify(keys().rsa_other.public_key(), alg),
                Err(Error::BadSignature)
            ));
            // Same key, other RSA algorithm: refused (no algorithm confusion).
            let other = if alg == Algorithm::Rs256 {
                Algorithm::Ps256
            } else {
                Algorithm::Rs256
            };
            assert!(matches!(
                jws.verify(key.public_key(), other),
                Err(Error::BadSignature)
            ));
        }
    }
}

#[test]
fn es512_cross_checked_with_openssl() {
    let key = key_for(Algorithm::Es512);
    let public_pem = support::openssl_public_pem(key.to_pkcs8_pem().expect("pkcs8").as_bytes());
    let builder = AssertionBuilder::new(
        Arc::new(signer(Algorithm::Es512, Some("p521"))),
        "client-1",
        Audience::TokenUrl(TOKEN_URL.to_owned()),
    );
    let assertion = builder.build(NOW).expect("build");
    let jws = UnverifiedJws::parse(assertion.as_str()).expect("parse");
    assert_eq!(jws.signature().len(), 132, "ES512 is 2 x 66 bytes");
    support::openssl_verify(
        &public_pem,
        Algorithm::Es512,
        jws.signing_input().as_bytes(),
        jws.signature(),
    )
    .expect("openssl verifies our ES512 (r||s converted to DER)");
    // And an openssl-made ES512 signature, converted to r||s, verifies with us.
    let input = jws.signing_input().to_owned();
    let pem = key.to_pkcs8_pem().expect("pkcs8");
    let theirs = support::openssl_sign(pem.as_bytes(), Algorithm::Es512, input.as_bytes());
    let token = format!("{input}.{}", base64url_encode(&theirs));
    UnverifiedJws::parse(&token)
        .expect("parse")
        .verify(key.public_key(), Algorithm::Es512)
        .expect("we verify openssl's ES512");
}

#[test]
fn ecdsa_der_conversion_round_trips() {
    for alg in [Algorithm::Es256, Algorithm::Es384, Algorithm::Es512] {
        for _ in 0..20 {
            let sig = key_for(alg).sign(alg, b"x").expect("sign");
            let der = support::ecdsa_fixed_to_der(&sig);
            assert_eq!(
                support::ecdsa_der_to_fixed(&der, support::ec_coord_len(alg)),
                sig
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sign_compact.
// ---------------------------------------------------------------------------------------------

#[test]
fn sign_compact_takes_alg_from_the_signer_and_kid_unless_set() {
    let s = signer(Algorithm::EdDsa, Some("signer-kid"));
    let mut header = Map::new();
    header.insert("alg".into(), "none".into());
    header.insert("typ".into(), "JWT".into());
    let claims: Map<String, Value> = json!({"a": 1}).as_object().cloned().expect("object");
    let token = sign_compact(&header, &claims, &s).expect("sign");
    let jws = UnverifiedJws::parse(&token).expect("parse");
    assert_eq!(
        jws.alg(),
        Some("EdDSA"),
        "the signer's alg wins over the header's"
    );
    assert_eq!(jws.kid(), Some("signer-kid"));
    assert_eq!(jws.typ(), Some("JWT"));
    jws.verify(key_for(Algorithm::EdDsa).public_key(), Algorithm::EdDsa)
        .expect("verify");

    header.insert("kid".into(), "header-kid".into());
    let token = sign_compact(&header, &claims, &s).expect("sign");
    assert_eq!(
        UnverifiedJws::parse(&token).expect("parse").kid(),
        Some("header-kid")
    );

    let no_kid = signer(Algorithm::EdDsa, None);
    assert_eq!(no_kid.key_id(), None);
    let token = sign_compact(&Map::new(), &claims, &no_kid).expect("sign");
    let jws = UnverifiedJws::parse(&token).expect("parse");
    assert_eq!(jws.kid(), None);
    assert_eq!(jws.header().len(), 1);
}

#[test]
fn an_encoded_header_signs_structs_and_maps_like_sign_compact() {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        n: u64,
    }
    for alg in [Algorithm::Es256, Algorithm::Rs512, Algorithm::EdDsa] {
        let s = signer(alg, Some("k1"));
        let mut header = Map::new();
        header.insert("typ".into(), "at+jwt".into());
        let encoded = EncodedHeader::new(&header, &s).expect("header");
        for _ in 0..2 {
            let token = encoded.sign(&Claims { iss: "me", n: 7 }, &s).expect("sign");
            let jws = UnverifiedJws::parse(&token).expect("parse");
            let names: Vec<&str> = jws.header().keys().map(String::as_str).collect();
            assert_eq!(names, ["typ", "alg", "kid"], "{alg:?}");
            assert_eq!(jws.alg(), Some(alg.name()));
            jws.verify(key_for(alg).public_key(), alg).expect("verify");
            assert_eq!(
                jws.claims().expect("claims"),
                json!({"iss": "me", "n": 7})
                    .as_object()
                    .cloned()
                    .expect("object")
            );
        }
        // The same header and a map give the token sign_compact gives, up to the signature.
        let claims = json!({"iss": "me"}).as_object().cloned().expect("object");
        let a = encoded.sign(&claims, &s).expect("sign");
        let b = sign_compact(&header, &claims, &s).expect("sign");
        assert_eq!(
            a.rsplit_once('.').map(|x| x.0),
            b.rsplit_once('.').map(|x| x.0)
        );
    }
}

#[test]
fn an_encoded_header_refuses_another_algorithm_and_non_object_claims() {
    let es = signer(Algorithm::Es256, Some("k"));
    let encoded = EncodedHeader::new(&Map::new(), &es).expect("header");
    // A header saying ES256 over an EdDSA signature would be a token that lies about itself.
    assert!(matches!(
        encoded.sign(&json!({"a": 1}), &signer(Algorithm::EdDsa, Some("k"))),
        Err(Error::Misuse(_))
    ));
    for not_an_object in [json!([1]), json!("claims"), json!(7), Value::Null] {
        assert!(
            matches!(encoded.sign(&not_an_object, &es), Err(Error::Misuse(_))),
            "{not_an_object}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Strict parsing.
// ---------------------------------------------------------------------------------------------

fn b64(s: &str) -> String {
    base64url_encode(s.as_bytes())
}

fn valid_token() -> String {
    let claims = json!({"iss": "c"}).as_object().cloned().expect("object");
    sign_compact(&Map::new(), &claims, &signer(Algorithm::EdDsa, Some("k"))).expect("sign")
}

fn malformed(token: &str) -> &'static str {
    match UnverifiedJws::parse(token) {
        Err(Error::MalformedJws(why)) => why,
        Err(other) => panic!("{token:?}: expected MalformedJws, got {other}"),
        Ok(_) => panic!("{token:?}: parsed, but must be refused"),
    }
}

#[test]
fn parse_accepts_the_valid_token() {
    let token = valid_token();
    let jws = UnverifiedJws::parse(&token).expect("valid");
    assert_eq!(jws.payload(), br#"{"iss":"c"}"#);
    assert_eq!(
        format!(
            "{}.{}",
            jws.signing_input(),
            base64url_encode(jws.signature())
        ),
        token
    );
}

#[test]
fn parse_refuses_wrong_part_counts() {
    let token = valid_token();
    let parts: Vec<&str> = token.split('.').collect();
    assert!(malformed(&format!("{}.{}", parts[0], parts[1])).contains("three"));
    assert!(malformed(&format!("{token}.{}", parts[2])).contains("three"));
    assert!(malformed(&format!("{token}.")).contains("three"));
    assert!(malformed(parts[0]).contains("three"));
    assert!(malformed("").contains("three"));
    assert_eq!(
        malformed(&format!(".{}.{}", parts[1], parts[2])),
        "empty header"
    );
    malformed("..");
}

#[test]
fn parse_refuses_padding_and_standard_alphabet() {
    let token = valid_token();
    let parts: Vec<&str> = token.split('.').collect();
    for i in 0..3 {
        let mut p = parts.clone();
        let padded = format!("{}=", p[i]);
        p[i] = &padded;
        malformed(&p.join("."));
        let mut p = parts.clone();
        let padded = format!("{}==", p[i]);
        p[i] = &padded;
        malformed(&p.join("."));
    }
    // 0xfb 0xff is "-_8" in base64url and "+/8" in standard base64.
    assert_eq!(base64url_encode([0xfb, 0xff]), "-_8");
    let ok = format!("{}.{}.-_8", parts[0], parts[1]);
    assert_eq!(
        UnverifiedJws::parse(&ok).expect("url-safe").signature(),
        [0xfb, 0xff]
    );
    assert_eq!(
        malformed(&format!("{}.{}.+/8", parts[0], parts[1])),
        "signature is not base64url"
    );
    assert_eq!(
        malformed(&format!("{}.{}.+_8", parts[0], parts[1])),
        "signature is not base64url"
    );
    let std_payload = parts[1].replace('-', "+").replace('_', "/");
    if std_payload != parts[1] {
        malformed(&format!("{}.{std_payload}.{}", parts[0], parts[2]));
    }
    // Non-canonical trailing bits ("e31" decodes to "{}" too): refused, so one token has one encoding.
    assert_eq!(base64url_decode("e30").as_deref(), Some(&b"{}"[..]));
    assert_eq!(base64url_decode("e31"), None);
    assert_eq!(
        malformed(&format!("e31.{}.{}", parts[1], parts[2])),
        "header is not base64url"
    );
    // Whitespace and non-ASCII.
    malformed(&format!("{} .{}.{}", parts[0], parts[1], parts[2]));
    malformed(&format!("{}.{}\n.{}", parts[0], parts[1], parts[2]));
    malformed(&format!("{}.{}.{}é", parts[0], parts[1], parts[2]));
}

#[test]
fn parse_refuses_headers_that_are_not_one_json_object() {
    let token = valid_token();
    let rest = token.split_once('.').expect("dot").1;
    for header in [
        "[1,2]",
        "\"str\"",
        "null",
        "42",
        "not json",
        "{",
        "{}}",
        "{\"alg\":\"EdDSA\"} x",
    ] {
        assert_eq!(
            malformed(&format!("{}.{rest}", b64(header))),
            "header is not a JSON object",
            "{header}"
        );
    }
    for dup in [
        r#"{"alg":"EdDSA","alg":"none"}"#,
        r#"{"kid":"a","alg":"EdDSA","kid":"b"}"#,
    ] {
        assert_eq!(
            malformed(&format!("{}.{rest}", b64(dup))),
            "header is not a JSON object",
            "{dup}"
        );
    }
    // A non-object or duplicated payload parses as a JWS but is refused as claims.
    let parts: Vec<&str> = token.split('.').collect();
    for payload in ["[]", r#"{"iss":"a","iss":"b"}"#, "hello"] {
        let jws = UnverifiedJws::parse(&format!("{}.{}.{}", parts[0], b64(payload), parts[2]))
            .expect("payload is opaque to parse");
        assert!(
            matches!(jws.claims(), Err(Error::MalformedJws(_))),
            "{payload}"
        );
    }
}

#[test]
fn parse_refuses_oversized_tokens() {
    let token = valid_token();
    let parts: Vec<&str> = token.split('.').collect();
    let big = b64(&format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024)));
    assert_eq!(
        malformed(&format!("{}.{big}.{}", parts[0], parts[2])),
        "longer than 64 KiB"
    );
    assert_eq!(
        malformed(&"a".repeat(m2m_core::jws::MAX_COMPACT_LEN + 1)),
        "longer than 64 KiB"
    );
}

#[test]
fn empty_signature_never_verifies() {
    let token = valid_token();
    let (input, _) = token.rsplit_once('.').expect("dot");
    // An unsigned token parses (so the validator can say precisely why it refuses it) ...
    let jws = UnverifiedJws::parse(&format!("{input}.")).expect("parses");
    assert!(jws.signature().is_empty());
    // ... but it never verifies, whatever the key and algorithm.
    for alg in Algorithm::ALL {
        assert!(
            matches!(
                jws.verify(key_for(alg).public_key(), alg),
                Err(Error::BadSignature)
            ),
            "{alg}"
        );
    }
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"iss":"c"}"#));
    assert_eq!(
        UnverifiedJws::parse(&none).expect("parses").alg(),
        Some("none")
    );
}

// ---------------------------------------------------------------------------------------------
// Tampering.
// ---------------------------------------------------------------------------------------------

#[test]
fn tampering_gives_bad_signature_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let builder = AssertionBuilder::new(
            Arc::new(signer(alg, Some("k"))),
            "client-1",
            Audience::TokenUrl(TOKEN_URL.to_owned()),
        );
        let token = builder.build(NOW).expect("build").into_string();
        let public = key_for(alg).public_key();
        let verify = |t: &str| UnverifiedJws::parse(t).expect("parse").verify(public, alg);
        verify(&token).expect("untouched token verifies");
        let parts: Vec<&str> = token.split('.').collect();

        let claims = r#"{"iss":"attacker","sub":"attacker","aud":"x","jti":"j","iat":1,"exp":2}"#;
        let payload = format!("{}.{}.{}", parts[0], b64(claims), parts[2]);
        assert!(
            matches!(verify(&payload), Err(Error::BadSignature)),
            "{alg}: payload"
        );

        let header = format!(r#"{{"alg":"{}","typ":"JWT","kid":"other"}}"#, alg.name());
        let header = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
        assert!(
            matches!(verify(&header), Err(Error::BadSignature)),
            "{alg}: header"
        );

        let mut sig = base64url_decode(parts[2]).expect("sig");
        for i in [0, sig.len() / 2, sig.len() - 1] {
            let mut flipped = sig.clone();
            flipped[i] ^= 0x01;
            let t = format!("{}.{}.{}", parts[0], parts[1], base64url_encode(&flipped));
            assert!(
                matches!(verify(&t), Err(Error::BadSignature)),
                "{alg}: signature byte {i}"
            );
        }
        sig.pop();
        let t = format!("{}.{}.{}", parts[0], parts[1], base64url_encode(&sig));
        assert!(
            matches!(verify(&t), Err(Error::BadSignature)),
            "{alg}: short signature"
        );
        sig.extend([0, 0]);
        let t = format!("{}.{}.{}", parts[0], parts[1], base64url_encode(&sig));
        assert!(
            matches!(verify(&t), Err(Error::BadSignature)),
            "{alg}: long signature"
        );
    }
}
