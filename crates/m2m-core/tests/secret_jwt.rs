//! `client_secret_jwt` in core: HS256/384/512 cross-checked both ways against an independent
//! implementation (jsonwebtoken, RustCrypto backend), the key-length rule, and the validator's
//! secret-jwt path, one row per rule.

#![allow(clippy::unwrap_used, missing_docs)]

use m2m_core::assertion::Audience;
use m2m_core::clock::UnixTime;
use m2m_core::hmac::{HmacAlg, SecretJwtBuilder};
use m2m_core::secret::ClientSecret;
use m2m_core::validate::{
    ClientSecrets, Reason, RfcConfig, RfcValidator, TokenForm, assertion_is_hmac, parse_token_form,
};
use m2m_core::wire::CLIENT_ASSERTION_TYPE;

const ISSUER: &str = "https://as.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-x";

fn secret() -> ClientSecret {
    ClientSecret::new(SECRET.to_vec()).unwrap()
}

fn jwt_alg(alg: HmacAlg) -> jsonwebtoken::Algorithm {
    match alg {
        HmacAlg::Hs256 => jsonwebtoken::Algorithm::HS256,
        HmacAlg::Hs384 => jsonwebtoken::Algorithm::HS384,
        HmacAlg::Hs512 => jsonwebtoken::Algorithm::HS512,
    }
}

fn now() -> UnixTime {
    UnixTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

fn form(assertion: &str) -> TokenForm {
    let body = url_encode(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ]);
    parse_token_form(
        Some("application/x-www-form-urlencoded"),
        None,
        body.as_bytes(),
        false,
    )
    .unwrap()
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn our_hmac_assertions_verify_with_jsonwebtoken_and_theirs_with_ours() {
    let validator = RfcValidator::new(RfcConfig::new(ISSUER, format!("{ISSUER}/token")));
    for alg in HmacAlg::ALL {
        // Ours → jsonwebtoken.
        let ours = SecretJwtBuilder::new(secret(), alg, "c1", Audience::Issuer(ISSUER.into()))
            .unwrap()
            .build(now())
            .unwrap();
        let mut v = jsonwebtoken::Validation::new(jwt_alg(alg));
        v.set_audience(&[ISSUER]);
        v.set_issuer(&["c1"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            ours.as_str(),
            &jsonwebtoken::DecodingKey::from_secret(SECRET),
            &v,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "c1");
        // jsonwebtoken → ours.
        let claims = serde_json::json!({
            "iss": "c1", "sub": "c1", "aud": ISSUER, "jti": format!("j-{alg}"),
            "iat": now().as_secs(), "exp": now().as_secs() + 60,
        });
        let theirs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jwt_alg(alg)),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let f = form(&theirs);
        assert!(assertion_is_hmac(&f));
        let pending = validator.precheck_secret_jwt(&f).unwrap();
        assert_eq!(pending.alg(), alg);
        let secrets = [secret()];
        let verified = validator
            .verify_secret_jwt(
                &pending,
                &ClientSecrets {
                    client_id: "c1",
                    allowed_algs: &HmacAlg::ALL,
                    secrets: &secrets,
                },
                now(),
            )
            .unwrap();
        assert_eq!(verified.jti, format!("j-{alg}"));
    }
}

/// (rule, assertion, allowed algs, registered secrets, expected reason)
type Row = (
    &'static str,
    String,
    Vec<HmacAlg>,
    Vec<ClientSecret>,
    Option<Reason>,
);

#[test]
fn secret_jwt_rules_table() {
    let validator = RfcValidator::new(RfcConfig::new(ISSUER, format!("{ISSUER}/token")));
    let good = |alg: HmacAlg, aud: &str| {
        SecretJwtBuilder::new(secret(), alg, "c1", Audience::Issuer(aud.into()))
            .unwrap()
            .build(now())
            .unwrap()
            .into_string()
    };
    let other = ClientSecret::new(vec![b'z'; 64]).unwrap();
    // (rule, assertion, allowed algs, registered secrets, expected reason)
    let rows: Vec<Row> = vec![
        (
            "accepted",
            good(HmacAlg::Hs256, ISSUER),
            vec![HmacAlg::Hs256],
            vec![secret()],
            None,
        ),
        (
            "second secret of a rotation accepted",
            good(HmacAlg::Hs256, ISSUER),
            vec![HmacAlg::Hs256],
            vec![other.clone(), secret()],
            None,
        ),
        (
            "alg not allowed for the client",
            good(HmacAlg::Hs512, ISSUER),
            vec![HmacAlg::Hs256],
            vec![secret()],
            Some(Reason::AlgNotAllowed),
        ),
        (
            "wrong secret",
            good(HmacAlg::Hs256, ISSUER),
            vec![HmacAlg::Hs256],
            vec![other],
            Some(Reason::BadSignature),
        ),
        (
            "aud must be the issuer",
            good(HmacAlg::Hs256, "https://elsewhere.example"),
            vec![HmacAlg::Hs256],
            vec![secret()],
            Some(Reason::AudInvalid),
        ),
        (
            "a too-short registered secret never verifies",
            good(HmacAlg::Hs256, ISSUER),
            vec![HmacAlg::Hs256],
            vec![ClientSecret::new(SECRET[..31].to_vec()).unwrap()],
            Some(Reason::BadSignature),
        ),
    ];
    for (rule, assertion, algs, secrets, expected) in rows {
        let pending = validator.precheck_secret_jwt(&form(&assertion)).unwrap();
        let result = validator.verify_secret_jwt(
            &pending,
            &ClientSecrets {
                client_id: "c1",
                allowed_algs: &algs,
                secrets: &secrets,
            },
            now(),
        );
        match expected {
            None => assert!(result.is_ok(), "{rule}: {result:?}"),
            Some(reason) => {
                let r = result.unwrap_err();
                assert_eq!((r.status, r.reason), (401, reason), "{rule}");
            }
        }
    }
    // The private_key_jwt path still refuses HMAC outright.
    let f = form(&good(HmacAlg::Hs256, ISSUER));
    assert_eq!(
        validator.authenticate_client(&f).unwrap_err().reason,
        Reason::AlgRefused
    );
}

#[test]
fn too_short_secrets_are_refused_when_building() {
    for alg in HmacAlg::ALL {
        let short = ClientSecret::new(vec![b'a'; alg.min_secret_len() - 1]).unwrap();
        let err = SecretJwtBuilder::new(short, alg, "c", Audience::Issuer(ISSUER.into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&alg.min_secret_len().to_string()), "{err}");
        assert!(!err.contains("aaaa"), "{err}");
    }
}
