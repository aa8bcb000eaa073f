//! The verifier against the access-token check order, one row per check in order, each row run
//! for RS256, ES256 and EdDSA tokens signed by the independent `jsonwebtoken` crate (and crafted
//! tokens for what it refuses to produce). The rules are m2m-core's; these rows prove the
//! resource verifier reaches every one of them, with its cache in front.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::jws::base64url_encode;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::validate::AccessTokenReason as R;
use m2m_resource::{Refusal, TrustedIssuer, Verifier};
use serde_json::{Map, Value, json};
use support::{AUDIENCE, claims, key_for, keyset, now_secs, sign, sign_with};

const ISSUER: &str = "https://as.example.com";
const ALGS: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

fn verifier(alg: Algorithm) -> Verifier {
    let key = key_for(alg);
    Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&key, "k1")])))
        .build()
        .unwrap()
}

fn with(mut c: Map<String, Value>, k: &str, v: Value) -> Map<String, Value> {
    c.insert(k.to_owned(), v);
    c
}
fn without(mut c: Map<String, Value>, k: &str) -> Map<String, Value> {
    c.remove(k);
    c
}

fn other_key(alg: Algorithm) -> std::sync::Arc<PrivateKey> {
    match alg {
        Algorithm::Es256 => std::sync::Arc::new(PrivateKey::generate(KeySpec::P256).unwrap()),
        Algorithm::EdDsa => std::sync::Arc::new(PrivateKey::generate(KeySpec::Ed25519).unwrap()),
        _ => m2m_testkit::keys::rsa2048_other(),
    }
}

/// A token whose header is exactly `header` (unsigned garbage signature).
fn crafted(header: Value, claims: &Map<String, Value>) -> String {
    format!(
        "{}.{}.{}",
        base64url_encode(header.to_string()),
        base64url_encode(serde_json::to_string(claims).unwrap()),
        base64url_encode(b"sig")
    )
}

struct Row {
    name: &'static str,
    token: String,
    scopes: &'static [&'static str],
    expect: Option<R>,
}

fn rows(alg: Algorithm) -> Vec<Row> {
    let now = now_secs();
    let c = || claims(ISSUER);
    let good = |c: &Map<String, Value>| sign(alg, Some("at+jwt"), Some("k1"), c);
    let row = |name, token, expect| Row {
        name,
        token,
        scopes: &[],
        expect,
    };
    vec![
        row("size", "a".repeat(9000), Some(R::TooLarge)),
        row("syntax", "not.a-jwt".to_owned(), Some(R::Malformed)),
        row(
            "alg_none",
            crafted(json!({"alg":"none","typ":"at+jwt"}), &c()),
            Some(R::AlgRefused),
        ),
        row(
            "alg_hmac",
            crafted(json!({"alg":"HS256","typ":"at+jwt","kid":"k1"}), &c()),
            Some(R::AlgRefused),
        ),
        row(
            "typ_jwt",
            sign(alg, Some("JWT"), Some("k1"), &c()),
            Some(R::TypInvalid),
        ),
        row(
            "typ_missing",
            sign(alg, None, Some("k1"), &c()),
            Some(R::TypInvalid),
        ),
        row(
            "iss_untrusted",
            good(&with(c(), "iss", json!("https://evil.example"))),
            Some(R::IssuerUntrusted),
        ),
        row(
            "iss_not_exact",
            good(&with(c(), "iss", json!("https://as.example.com/"))),
            Some(R::IssuerUntrusted),
        ),
        row(
            "kid_unknown",
            sign(alg, Some("at+jwt"), Some("nope"), &c()),
            Some(R::UnknownKid),
        ),
        row(
            "signature",
            sign_with(&other_key(alg), alg, Some("at+jwt"), Some("k1"), &c()),
            Some(R::BadSignature),
        ),
        row(
            "exp",
            good(&with(
                with(c(), "exp", json!(now - 60)),
                "iat",
                json!(now - 400),
            )),
            Some(R::Expired),
        ),
        row(
            "nbf",
            good(&with(c(), "nbf", json!(now + 120))),
            Some(R::NotYetValid),
        ),
        row(
            "iat",
            good(&with(c(), "iat", json!(now + 120))),
            Some(R::IatFuture),
        ),
        row(
            "aud",
            good(&with(c(), "aud", json!("https://other.example.com"))),
            Some(R::AudienceMismatch),
        ),
        row(
            "required_claims",
            good(&without(c(), "client_id")),
            Some(R::ClaimMissing),
        ),
        row(
            "cnf_as_bearer",
            good(&with(c(), "cnf", json!({"jkt": "abc"}))),
            Some(R::SenderConstrained),
        ),
        Row {
            name: "scope",
            token: good(&c()),
            scopes: &["admin"],
            expect: Some(R::InsufficientScope),
        },
        row("accepted", good(&c()), None),
        row(
            "accepted_aud_array",
            good(&with(c(), "aud", json!(["https://x.example", AUDIENCE]))),
            None,
        ),
        row(
            "accepted_within_leeway",
            good(&with(c(), "exp", json!(now - 10))),
            None,
        ),
    ]
}

#[tokio::test]
async fn one_row_per_check_in_order() {
    for alg in ALGS {
        let v = verifier(alg);
        for row in rows(alg) {
            let got = v.verify(&row.token, row.scopes).await;
            match (row.expect, got) {
                (None, Ok(caller)) => assert_eq!(caller.client_id(), "svc", "{alg:?} {}", row.name),
                (Some(want), Err(Refusal::Token(r))) => {
                    assert_eq!(r.reason, want, "{alg:?} {}: {r}", row.name);
                    assert!(!r.description.contains(&row.token), "{}", row.name);
                }
                (want, got) => panic!("{alg:?} {}: wanted {want:?}, got {got:?}", row.name),
            }
        }
    }
}

#[tokio::test]
async fn the_lenient_typ_setting_is_named_dangerous_and_accepts_jwt() {
    let key = key_for(Algorithm::Es256);
    let v = Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&key, "k1")])))
        .dangerous_accept_jwt_typ()
        .build()
        .unwrap();
    for typ in [
        Some("JWT"),
        None,
        Some("at+jwt"),
        Some("application/at+jwt"),
    ] {
        let t = sign(Algorithm::Es256, typ, Some("k1"), &claims(ISSUER));
        assert!(v.verify(&t, &[]).await.is_ok(), "{typ:?}");
    }
    let id_token_typ = sign(
        Algorithm::Es256,
        Some("id+jwt"),
        Some("k1"),
        &claims(ISSUER),
    );
    assert!(v.verify(&id_token_typ, &[]).await.is_err());
}

#[tokio::test]
async fn the_alg_allow_list_and_leeway_limit_apply() {
    let key = key_for(Algorithm::Rs256);
    let v = Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&key, "k1")])))
        .algorithms(&[Algorithm::Es256])
        .build()
        .unwrap();
    let t = sign(
        Algorithm::Rs256,
        Some("at+jwt"),
        Some("k1"),
        &claims(ISSUER),
    );
    assert_eq!(
        v.verify(&t, &[]).await.unwrap_err().reason(),
        Some(R::AlgRefused)
    );
    assert!(
        Verifier::builder(AUDIENCE)
            .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&key, "k1")])))
            .leeway(Duration::from_secs(301))
            .build()
            .is_err()
    );
    assert!(
        Verifier::builder(AUDIENCE).build().is_err(),
        "an issuer is required"
    );
}

#[tokio::test]
async fn several_issuers_each_with_their_own_keys() {
    let ec = key_for(Algorithm::Es256);
    let ed = key_for(Algorithm::EdDsa);
    let v = Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&ec, "k1")])))
        .issuer(TrustedIssuer::with_keys(
            "https://as2.example",
            keyset(&[(&ed, "k1")]),
        ))
        .build()
        .unwrap();
    let a = sign(
        Algorithm::Es256,
        Some("at+jwt"),
        Some("k1"),
        &claims(ISSUER),
    );
    let b = sign(
        Algorithm::EdDsa,
        Some("at+jwt"),
        Some("k1"),
        &claims("https://as2.example"),
    );
    assert!(v.verify(&a, &[]).await.is_ok());
    assert!(v.verify(&b, &[]).await.is_ok());
    // The second issuer's token signed with the first issuer's key: its keys are not shared.
    let crossed = sign(
        Algorithm::Es256,
        Some("at+jwt"),
        Some("k1"),
        &claims("https://as2.example"),
    );
    assert_eq!(
        v.verify(&crossed, &[]).await.unwrap_err().reason(),
        Some(R::BadSignature)
    );
}

#[tokio::test]
async fn verified_tokens_are_cached_and_scopes_still_apply_per_call() {
    let v = verifier(Algorithm::Es256);
    let t = sign(
        Algorithm::Es256,
        Some("at+jwt"),
        Some("k1"),
        &claims(ISSUER),
    );
    assert!(v.verify(&t, &["read"]).await.is_ok());
    assert_eq!(v.cached_tokens(), 1);
    assert!(v.verify(&t, &["read"]).await.is_ok());
    assert_eq!(v.cached_tokens(), 1);
    let cached_refusal = v.verify(&t, &["admin"]).await.unwrap_err();
    assert_eq!(cached_refusal.reason(), Some(R::InsufficientScope));
    assert_eq!(cached_refusal.status(), 403);
    // Refused tokens are never cached.
    let bad = sign(
        Algorithm::Es256,
        Some("at+jwt"),
        Some("k1"),
        &with(claims(ISSUER), "aud", json!("x")),
    );
    assert!(v.verify(&bad, &[]).await.is_err());
    assert_eq!(v.cached_tokens(), 1);
}
