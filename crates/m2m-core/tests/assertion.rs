//! The client-assertion builder: header `{alg, typ, kid}` in NHS's order, `iss = sub = client_id`,
//! `aud` per [`Audience`], UUIDv4 `jti` fresh on every build, `iat = now`, `exp = now + 60` by
//! default, the 300 s lifetime cap and its `dangerous_` override, and the RFC 10070 `typ`.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use m2m_core::Error;
use m2m_core::alg::Algorithm;
use m2m_core::assertion::{
    AssertionBuilder, Audience, CLIENT_ASSERTION_TYPE, TYP_CLIENT_AUTH, new_jti,
};
use m2m_core::clock::{Clock, ManualClock, UnixTime};
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::PrivateKey;
use m2m_core::nhs::Environment;
use m2m_core::signer::KeySigner;
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

fn rsa() -> &'static Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    KEY.get_or_init(m2m_testkit::keys::rsa2048)
}

fn ed() -> &'static Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    KEY.get_or_init(m2m_testkit::keys::ed25519)
}

fn nhs_builder() -> AssertionBuilder {
    let signer =
        KeySigner::new(rsa().clone(), Algorithm::Rs512, Some("int-1".into())).expect("signer");
    AssertionBuilder::new(
        Arc::new(signer),
        "my-api-key",
        Audience::TokenUrl(Environment::Int.token_url().to_owned()),
    )
}

fn ed_builder(audience: Audience) -> AssertionBuilder {
    let signer = KeySigner::new(ed().clone(), Algorithm::EdDsa, None).expect("signer");
    AssertionBuilder::new(Arc::new(signer), "client", audience)
}

fn decode(token: &str) -> (UnverifiedJws, serde_json::Map<String, Value>) {
    let jws = UnverifiedJws::parse(token).expect("parse");
    let claims = jws.claims().expect("claims");
    (jws, claims)
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn nhs_assertion_header_and_claims() {
    let assertion = nhs_builder().build(NOW).expect("build");
    let (jws, claims) = decode(assertion.as_str());
    let header: Vec<(&str, &Value)> = jws.header().iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(
        header,
        [
            ("alg", &json!("RS512")),
            ("typ", &json!("JWT")),
            ("kid", &json!("int-1"))
        ],
        "header members and their order (NHS's samples write alg, typ, kid)"
    );
    let names: Vec<&str> = claims.keys().map(String::as_str).collect();
    assert_eq!(names, ["iss", "sub", "aud", "jti", "iat", "exp"]);
    assert_eq!(claims["iss"], "my-api-key");
    assert_eq!(claims["sub"], "my-api-key");
    assert_eq!(claims["aud"], "https://int.api.service.nhs.uk/oauth2/token");
    assert_eq!(claims["iat"], 1_700_000_000u64);
    assert_eq!(claims["exp"], 1_700_000_060u64);
    let jti = claims["jti"].as_str().expect("jti string");
    assert!(is_uuid_v4(jti), "{jti}");
    assert_eq!(assertion.jti, jti);
    assert_eq!(
        (assertion.iat, assertion.exp),
        (1_700_000_000, 1_700_000_060)
    );
    jws.verify(rsa().public_key(), Algorithm::Rs512)
        .expect("signature");
    assert_eq!(
        CLIENT_ASSERTION_TYPE,
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
}

#[test]
fn iat_is_now_in_whole_seconds() {
    let clock = ManualClock::new(UnixTime::from_millis(1_700_000_000_999));
    let builder = ed_builder(Audience::TokenUrl("https://as.example/token".into()));
    let a = builder.build(clock.now()).expect("build");
    assert_eq!((a.iat, a.exp), (1_700_000_000, 1_700_000_060));
    clock.advance(Duration::from_secs(3600));
    let b = builder.build(clock.now()).expect("build");
    assert_eq!((b.iat, b.exp), (1_700_003_600, 1_700_003_660));
    let (_, claims) = decode(b.as_str());
    assert_eq!(claims["iat"], b.iat);
}

#[test]
fn audience_variants() {
    for (audience, typ) in [
        (Audience::TokenUrl("https://as.example/token".into()), "JWT"),
        (
            Audience::Issuer("https://as.example".into()),
            TYP_CLIENT_AUTH,
        ),
        (Audience::Explicit("urn:example:aud".into()), "JWT"),
    ] {
        let expected = audience.value().to_owned();
        assert_eq!(audience.default_typ(), typ);
        let a = ed_builder(audience).build(NOW).expect("build");
        let (jws, claims) = decode(a.as_str());
        assert_eq!(claims["aud"], expected.as_str(), "aud is a single string");
        assert_eq!(jws.typ(), Some(typ));
        assert_eq!(jws.kid(), None, "no kid when the signer has none");
        assert_eq!(jws.header().keys().collect::<Vec<_>>(), ["alg", "typ"]);
    }
    assert_eq!(TYP_CLIENT_AUTH, "client-authentication+jwt");
}

#[test]
fn typ_override_nbf_and_extra_claims() {
    let builder = ed_builder(Audience::Issuer("https://as.example".into()))
        .typ("JWT")
        .with_nbf(true)
        .claim("purpose", json!("test"))
        .claim("iss", json!("attacker"))
        .claim("exp", json!(9_999_999_999u64));
    let a = builder.build(NOW).expect("build");
    let (jws, claims) = decode(a.as_str());
    assert_eq!(jws.typ(), Some("JWT"));
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["purpose"], "test");
    assert_eq!(
        claims["iss"], "client",
        "extra claims cannot override registered ones"
    );
    assert_eq!(claims["exp"], 1_700_000_060u64);
    assert_eq!(builder.client_id(), "client");
    assert_eq!(
        builder.audience(),
        &Audience::Issuer("https://as.example".into())
    );
}

#[test]
fn jti_is_fresh_uuid_v4_across_10000_builds() {
    let builder = ed_builder(Audience::TokenUrl("https://as.example/token".into()));
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let a = builder.build(NOW).expect("build");
        assert!(is_uuid_v4(&a.jti), "{}", a.jti);
        assert!(seen.insert(a.jti), "duplicate jti");
    }
    // The helper on its own too.
    let mut more = HashSet::new();
    for _ in 0..10_000 {
        assert!(more.insert(new_jti()));
    }
    assert!(seen.is_disjoint(&more));
}

#[test]
fn lifetime_limits() {
    let b = ed_builder(Audience::TokenUrl("https://as.example/token".into()));
    for ok in [1, 59, 60, 299, 300] {
        let a = b
            .clone()
            .lifetime(Duration::from_secs(ok))
            .expect("allowed")
            .build(NOW)
            .expect("build");
        assert_eq!(a.exp - a.iat, ok);
    }
    let err = b
        .clone()
        .lifetime(Duration::from_secs(301))
        .expect_err("301 s refused");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("300")),
        "{err}"
    );
    assert!(err.to_string().contains("dangerous_lifetime"));
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(3600),
        Duration::MAX,
    ] {
        assert!(
            matches!(b.clone().lifetime(bad), Err(Error::Config(_))),
            "{bad:?}"
        );
    }
    let a = b
        .clone()
        .dangerous_lifetime(Duration::from_secs(3600))
        .build(NOW)
        .expect("build");
    assert_eq!(a.exp - a.iat, 3600);
    let a = b
        .clone()
        .dangerous_lifetime(Duration::ZERO)
        .build(NOW)
        .expect("build");
    assert_eq!(a.exp - a.iat, 1, "at least 1 s");
}

#[test]
fn absurd_times_do_not_panic() {
    let b = ed_builder(Audience::TokenUrl("https://as.example/token".into()));
    let a = b
        .clone()
        .dangerous_lifetime(Duration::MAX)
        .build(NOW)
        .expect("build");
    assert_eq!(a.exp, u64::MAX, "exp saturates instead of overflowing");
    let a = b.build(UnixTime::from_millis(u64::MAX)).expect("build");
    assert!(a.exp >= a.iat);
    let (_, claims) = decode(a.as_str());
    assert_eq!(claims["exp"], a.exp);
}

#[test]
fn builder_is_reusable_and_each_build_verifies() {
    let b = nhs_builder();
    let first = b.build(NOW).expect("build");
    let second = b.build(NOW).expect("build");
    assert_ne!(first.jti, second.jti);
    assert_ne!(first.as_str(), second.as_str());
    for a in [first, second] {
        decode(a.as_str())
            .0
            .verify(rsa().public_key(), Algorithm::Rs512)
            .expect("verify");
    }
}
