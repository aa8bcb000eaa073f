//! No secret leaks through formatting: `Debug`/`Display` of keys, private JWKs, assertions,
//! builders, signers, parsed tokens and every error a bad key produces never contain the PEM
//! body, a base64url private member, the signature or the token. Checked against fragments of
//! real secret material (openssl-generated keys, RFC example private JWKs, real signatures).

mod support;

use std::sync::Arc;

use m2m_core::Error;
use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::UnixTime;
use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::{PrivateKey, PublicKey};
use m2m_core::signer::KeySigner;
use support::{PASS, assert_no_secret, fixture, pem_body};

/// RFC 8037 A.1 and RFC 7515 A.3 private keys: real, published key material.
const ED_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed",
 "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
 "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;

const KEY_FILES: [&str; 6] = [
    "rsa-pkcs1.pem",
    "rsa-pkcs8.pem",
    "p256.pem",
    "p521.pem",
    "ed25519.pem",
    "rsa-aes256.pem",
];

fn private_members(jwk: &Jwk) -> Vec<String> {
    [&jwk.d, &jwk.p, &jwk.q, &jwk.dp, &jwk.dq, &jwk.qi]
        .into_iter()
        .flatten()
        .map(|v| v.as_str().to_owned())
        .collect()
}

fn check_formatting<T: std::fmt::Debug>(what: &str, value: &T, secrets: &[&str]) {
    assert_no_secret(what, &format!("{value:?}"), secrets);
    assert_no_secret(what, &format!("{value:#?}"), secrets);
}

fn check_error(what: &str, err: &Error, secrets: &[&str]) {
    assert_no_secret(what, &err.to_string(), secrets);
    check_formatting(what, err, secrets);
}

#[test]
fn private_key_debug_shows_no_key_material() {
    for name in KEY_FILES {
        let body = pem_body(fixture(name));
        let key = PrivateKey::from_bytes(fixture(name), None, Some(PASS.as_bytes())).expect("load");
        check_formatting(name, &key, &[&body]);
        // Nor does the PKCS#8 export (which *is* the secret) appear in Debug.
        let pkcs8 = key.to_pkcs8_pem().expect("export");
        let exported = pem_body(pkcs8.as_bytes());
        check_formatting(name, &key, &[&exported]);
        let signer = KeySigner::new(
            Arc::new(key),
            PrivateKey::from_bytes(fixture(name), None, Some(PASS.as_bytes()))
                .expect("load")
                .kind()
                .default_alg(),
            Some("kid".into()),
        )
        .expect("signer");
        check_formatting(name, &signer, &[&body, &exported]);
    }
    for text in [ED_JWK, EC_JWK] {
        let jwk = Jwk::from_slice(text.as_bytes()).expect("jwk");
        let key = PrivateKey::from_jwk(&jwk).expect("key");
        let secrets = private_members(&jwk);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        check_formatting("jwk key", &key, &secrets);
    }
}

#[test]
fn private_jwk_debug_is_redacted() {
    for text in [ED_JWK, EC_JWK] {
        let jwk = Jwk::from_slice(text.as_bytes()).expect("jwk");
        let secrets = private_members(&jwk);
        assert!(!secrets.is_empty());
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let debug = format!("{jwk:?}");
        check_formatting("Jwk", &jwk, &secrets);
        assert!(debug.contains("redacted"), "{debug}");
        let jwks = Jwks {
            keys: vec![jwk.clone(), jwk.to_public()],
        };
        check_formatting("Jwks", &jwks, &secrets);
        // The error for a private JWK where a public one is expected names members, not values.
        let err = PublicKey::from_jwk(&jwk).expect_err("refused");
        check_error("PrivateMembersInPublicJwk", &err, &secrets);
        let err = jwks.ensure_public().expect_err("refused");
        check_error("Jwks::ensure_public", &err, &secrets);
    }
}

#[test]
fn assertion_builder_signer_and_parsed_token_do_not_show_the_token() {
    let key = Arc::new(PrivateKey::from_bytes(fixture("rsa-pkcs8.pem"), None, None).expect("key"));
    let body = pem_body(fixture("rsa-pkcs8.pem"));
    let signer = KeySigner::new(key, Algorithm::Rs512, Some("kid-1".into())).expect("signer");
    let builder = AssertionBuilder::new(
        Arc::new(signer),
        "client",
        Audience::TokenUrl("https://int.api.service.nhs.uk/oauth2/token".into()),
    );
    let assertion = builder
        .build(UnixTime::from_secs(1_700_000_000))
        .expect("build");
    let token = assertion.as_str();
    let signature = token.rsplit('.').next().expect("signature");
    let secrets = [token, signature, body.as_str()];
    check_formatting("Assertion", &assertion, &secrets);
    assert!(
        format!("{assertion:?}").contains(&assertion.jti),
        "Debug keeps the jti for logs"
    );
    check_formatting("AssertionBuilder", &builder, &secrets);
    let jws = UnverifiedJws::parse(token).expect("parse");
    check_formatting("UnverifiedJws", &jws, &[signature]);
    // Errors about a (tampered) token never echo it.
    let tampered = format!("{}.{}x", &token[..token.len() - 10], "A");
    let err = UnverifiedJws::parse(&tampered).and_then(|j| {
        j.verify(
            PrivateKey::from_bytes(fixture("rsa-pkcs8.pem"), None, None)
                .expect("k")
                .public_key(),
            Algorithm::Rs512,
        )
    });
    if let Err(err) = err {
        check_error("tampered token", &err, &[signature]);
    }
    let err = UnverifiedJws::parse(&format!("{token}.{signature}")).expect_err("4 parts");
    check_error("four parts", &err, &[signature]);
}

#[test]
fn errors_from_bad_keys_never_contain_key_material() {
    let mut cases: Vec<(String, Vec<u8>, Option<&str>, String)> = Vec::new();
    for name in KEY_FILES {
        let pem = std::str::from_utf8(fixture(name)).expect("utf8");
        let body = pem_body(pem.as_bytes());
        // Truncated without END line.
        cases.push((
            format!("{name} truncated"),
            pem[..pem.len() * 2 / 3].into(),
            Some(PASS),
            body.clone(),
        ));
        // BEGIN/END intact, body lines dropped.
        let lines: Vec<&str> = pem.lines().collect();
        let mut cut: Vec<&str> = lines[..lines.len() / 2].to_vec();
        cut.push(lines[lines.len() - 1]);
        cases.push((
            format!("{name} cut"),
            cut.join("\n").into(),
            Some(PASS),
            body.clone(),
        ));
        // One body character changed (keeps valid base64, corrupts the DER).
        let mut flipped = pem.to_owned();
        let at = pem.find('\n').expect("newline") + 40;
        let c = if &pem[at..=at] == "A" { "B" } else { "A" };
        flipped.replace_range(at..=at, c);
        cases.push((
            format!("{name} flipped"),
            flipped.into(),
            Some(PASS),
            body.clone(),
        ));
    }
    let body = pem_body(fixture("rsa-aes256.pem"));
    cases.push((
        "no passphrase".into(),
        fixture("rsa-aes256.pem").into(),
        None,
        body.clone(),
    ));
    cases.push((
        "wrong passphrase".into(),
        fixture("rsa-aes256.pem").into(),
        Some("nope"),
        body,
    ));
    for name in [
        "rsa1024-pkcs1.pem",
        "rsa1024-pkcs8.pem",
        "rsa-legacy-enc.pem",
        "rsa-pub.pem",
    ] {
        cases.push((
            name.into(),
            fixture(name).into(),
            Some(PASS),
            pem_body(fixture(name)),
        ));
    }
    let der = fixture("rsa-pkcs8.der");
    let der_text = m2m_core::jws::base64url_encode(der);
    let mut bad_der = der.to_vec();
    bad_der[300] ^= 0xff;
    cases.push(("corrupt DER".into(), bad_der, None, der_text.clone()));
    cases.push((
        "truncated DER".into(),
        der[..der.len() - 7].to_vec(),
        None,
        der_text,
    ));
    // JWKs whose private member is wrong or malformed.
    let d = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    for (what, text) in [
        (
            "EC d mismatch",
            EC_JWK.replace(d, "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LA"),
        ),
        ("EC d padded", EC_JWK.replace(d, &format!("{d}="))),
        ("EC d short", EC_JWK.replace(d, &d[..30])),
        ("EC JSON broken", EC_JWK.replace("\"kid\"", "kid")),
        ("EC JSON truncated", EC_JWK[..EC_JWK.len() - 5].to_owned()),
        ("JWKS kid", format!("{{\"keys\":[{EC_JWK},{ED_JWK}]}}")),
    ] {
        cases.push((what.into(), text.into_bytes(), None, d.to_owned()));
    }
    for (what, bytes, pass, secret) in &cases {
        let kid = what.contains("kid").then_some("missing");
        let Err(err) = PrivateKey::from_bytes(bytes, kid, pass.map(str::as_bytes)) else {
            // A changed byte inside an Ed25519 seed is just another valid key.
            assert!(what.contains("flipped"), "{what}: loaded");
            continue;
        };
        check_error(what, &err, &[secret.as_str()]);
        if let Ok(text) = std::str::from_utf8(bytes)
            && text.starts_with("-----")
            && let Err(err) = PublicKey::from_pem(bytes)
        {
            check_error(what, &err, &[secret.as_str()]);
        }
    }
}

#[test]
fn the_leak_check_itself_catches_fragments() {
    let body = pem_body(fixture("p256.pem"));
    let leaky = format!("error near {}", &body[20..33]);
    let caught = std::panic::catch_unwind(|| assert_no_secret("self-test", &leaky, &[&body]));
    assert!(caught.is_err(), "a 13-character fragment must be caught");
    assert_no_secret("self-test", "invalid key: malformed PEM", &[&body]);
}
