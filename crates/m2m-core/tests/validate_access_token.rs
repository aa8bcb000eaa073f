//! The RFC 9068 access-token validator, one table row per rule (named after the rule), with
//! tokens signed by the independent `jsonwebtoken` crate for RS256, ES256 and EdDSA, and
//! hand-crafted ones (unsigned, HMAC, tampered) for what `jsonwebtoken` refuses to produce.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet};
use m2m_core::key::PrivateKey;
use m2m_core::validate::{
    AccessTokenConfig, AccessTokenReason, AccessTokenValidator, BearerError, Presentation,
};
use serde_json::{Map, Value, json};
use support::validate::{
    NOW_SECS, Sig, assert_no_token_in, encode, keys, now, obj, public_key_bytes,
};

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://api.example.com";

/// How a row's token is signed.
#[derive(Clone, Copy)]
enum Signing {
    /// By `jsonwebtoken` with our key for this algorithm.
    Independent(Algorithm),
    /// By our test encoder (any header, even a lying one).
    Crafted(Sig<'static>),
}

struct Setup {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing: Signing,
    raw: Option<String>,
    config: AccessTokenConfig,
    keys: Vec<KeyEntry>,
    presented: Presentation,
    required: &'static [&'static str],
}

fn key_for(alg: Algorithm) -> &'static PrivateKey {
    match alg {
        Algorithm::Es256 => &keys().ec,
        Algorithm::EdDsa => &keys().ed,
        _ => &keys().rsa1,
    }
}

fn jsonwebtoken_sign(
    alg: Algorithm,
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
) -> String {
    let pem = key_for(alg).to_pkcs8_pem().unwrap();
    let (jalg, key) = match alg {
        Algorithm::Es256 => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
        ),
        Algorithm::EdDsa => (
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        ),
        _ => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
        ),
    };
    let mut h = jsonwebtoken::Header::new(jalg);
    h.typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    h.kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &key.unwrap()).unwrap()
}

impl Setup {
    fn good(alg: Algorithm) -> Setup {
        let k = keys();
        Setup {
            header: obj(json!({"alg": alg.name(), "typ": "at+jwt", "kid": "rsa"})),
            claims: obj(json!({
                "iss": ISSUER, "sub": "client-1", "client_id": "client-1", "aud": AUDIENCE,
                "iat": NOW_SECS - 10, "exp": NOW_SECS + 300, "jti": "t-1",
                "scope": "read write",
            })),
            signing: Signing::Independent(alg),
            raw: None,
            config: AccessTokenConfig::new(ISSUER, AUDIENCE),
            keys: vec![
                KeyEntry::new(Some("rsa".into()), k.rsa1.public_key().clone()),
                KeyEntry::new(Some("ec".into()), k.ec.public_key().clone()),
                KeyEntry::new(Some("ed".into()), k.ed.public_key().clone()),
            ],
            presented: Presentation::Bearer,
            required: &["read"],
        }
        .with_kid_for(alg)
    }

    fn with_kid_for(mut self, alg: Algorithm) -> Setup {
        let kid = match alg {
            Algorithm::Es256 => "ec",
            Algorithm::EdDsa => "ed",
            _ => "rsa",
        };
        self.header.insert("kid".into(), json!(kid));
        self
    }

    fn token(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        match self.signing {
            Signing::Independent(alg) => jsonwebtoken_sign(alg, &self.header, &self.claims),
            Signing::Crafted(sig) => encode(&self.header, &self.claims, sig),
        }
    }

    fn run(
        &self,
    ) -> (
        String,
        Result<m2m_core::validate::AccessTokenClaims, m2m_core::validate::AccessTokenRejection>,
    ) {
        let token = self.token();
        let v = AccessTokenValidator::new(self.config.clone());
        let result = v.validate(
            &token,
            &KeySet::new(self.keys.clone()),
            self.presented,
            self.required,
            now(),
        );
        (token, result)
    }
}

fn set(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.insert(k.into(), v);
}

struct Row {
    rule: &'static str,
    tweak: fn(&mut Setup),
    /// `None`: accepted.
    expect: Option<AccessTokenReason>,
}

static HMAC_SECRET: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fn rows() -> Vec<Row> {
    use AccessTokenReason as R;
    let r = |rule, tweak, expect| Row {
        rule,
        tweak,
        expect,
    };
    vec![
        r("valid token is accepted", |_| {}, None),
        r(
            "typ application/at+jwt accepted",
            |s| set(&mut s.header, "typ", json!("application/at+jwt")),
            None,
        ),
        r(
            "aud array containing the audience accepted",
            |s| set(&mut s.claims, "aud", json!(["other", AUDIENCE])),
            None,
        ),
        r(
            "no kid with a single issuer key accepted",
            |s| {
                let kid = s.header.remove("kid");
                s.keys
                    .retain(|e| kid.as_ref().and_then(Value::as_str) == e.kid.as_deref());
            },
            None,
        ),
        r(
            "exp within leeway accepted",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 29)),
            None,
        ),
        r(
            "DPoP-bound token with a DPoP proof accepted",
            |s| {
                set(&mut s.claims, "cnf", json!({"jkt": "thumb"}));
                s.presented = Presentation::DpopProof;
            },
            None,
        ),
        r(
            "typ JWT accepted only under dangerous_accept_jwt_typ",
            |s| {
                set(&mut s.header, "typ", json!("JWT"));
                s.config.dangerous_accept_jwt_typ();
            },
            None,
        ),
        r(
            "any audience for introspection",
            |s| {
                set(&mut s.claims, "aud", json!("https://elsewhere.example"));
                s.config = AccessTokenConfig::any_audience_for_introspection(ISSUER);
            },
            None,
        ),
        // --- one row per rule, in check order ---
        r(
            "size: longer than 8 KiB refused",
            |s| set(&mut s.claims, "pad", json!("x".repeat(9000))),
            Some(R::TooLarge),
        ),
        r(
            "syntax: not a compact JWS refused",
            |s| s.raw = Some("not.a-jws".into()),
            Some(R::Malformed),
        ),
        r(
            "syntax: claims not an object refused",
            |s| {
                s.raw = Some(format!(
                    "{}.{}.",
                    m2m_core::jws::base64url_encode(br#"{"alg":"RS256"}"#),
                    m2m_core::jws::base64url_encode(b"[1]")
                ));
            },
            Some(R::Malformed),
        ),
        r(
            "alg: none refused",
            |s| {
                set(&mut s.header, "alg", json!("none"));
                s.signing = Signing::Crafted(Sig::Empty);
            },
            Some(R::AlgRefused),
        ),
        r(
            "alg: HS256 with the public key as secret refused",
            |s| {
                set(&mut s.header, "alg", json!("HS256"));
                s.signing = Signing::Crafted(Sig::Hs256(
                    HMAC_SECRET.get_or_init(|| public_key_bytes(keys().rsa1.public_key())),
                ));
            },
            Some(R::AlgRefused),
        ),
        r(
            "alg: not configured refused",
            |s| {
                s.config.set_algorithms(&[Algorithm::Ps512]);
            },
            Some(R::AlgRefused),
        ),
        r(
            "typ: JWT refused by default",
            |s| set(&mut s.header, "typ", json!("JWT")),
            Some(R::TypInvalid),
        ),
        r(
            "typ: absent refused by default",
            |s| drop(s.header.remove("typ")),
            Some(R::TypInvalid),
        ),
        r(
            "typ: client-authentication+jwt refused",
            |s| set(&mut s.header, "typ", json!("client-authentication+jwt")),
            Some(R::TypInvalid),
        ),
        r(
            "iss: untrusted issuer refused",
            |s| set(&mut s.claims, "iss", json!("https://evil.example")),
            Some(R::IssuerUntrusted),
        ),
        r(
            "iss: compared exactly (trailing slash refused)",
            |s| set(&mut s.claims, "iss", json!(format!("{ISSUER}/"))),
            Some(R::IssuerUntrusted),
        ),
        r(
            "kid: unknown refused",
            |s| set(&mut s.header, "kid", json!("k9")),
            Some(R::UnknownKid),
        ),
        r(
            "kid: missing with several issuer keys refused",
            |s| drop(s.header.remove("kid")),
            Some(R::KidMissing),
        ),
        r(
            "signature: tampered payload refused",
            |s| s.signing = Signing::Crafted(Sig::Tampered(&keys().rsa1, Algorithm::Rs256)),
            Some(R::BadSignature),
        ),
        r(
            "signature: another key under our kid refused",
            |s| s.signing = Signing::Crafted(Sig::Key(&keys().rsa2, Algorithm::Rs256)),
            Some(R::BadSignature),
        ),
        r(
            "exp: missing refused",
            |s| drop(s.claims.remove("exp")),
            Some(R::ExpInvalid),
        ),
        r(
            "exp: past beyond leeway refused",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 31)),
            Some(R::Expired),
        ),
        r(
            "nbf: not a number refused",
            |s| set(&mut s.claims, "nbf", json!("soon")),
            Some(R::NbfInvalid),
        ),
        r(
            "nbf: future beyond leeway refused",
            |s| set(&mut s.claims, "nbf", json!(NOW_SECS + 31)),
            Some(R::NotYetValid),
        ),
        r(
            "iat: missing refused",
            |s| drop(s.claims.remove("iat")),
            Some(R::IatInvalid),
        ),
        r(
            "iat: future beyond leeway refused",
            |s| set(&mut s.claims, "iat", json!(NOW_SECS + 31)),
            Some(R::IatFuture),
        ),
        r(
            "aud: other audience refused",
            |s| set(&mut s.claims, "aud", json!("https://other.example")),
            Some(R::AudienceMismatch),
        ),
        r(
            "aud: missing refused",
            |s| drop(s.claims.remove("aud")),
            Some(R::AudienceMismatch),
        ),
        r(
            "claims: client_id missing refused",
            |s| drop(s.claims.remove("client_id")),
            Some(R::ClaimMissing),
        ),
        r(
            "claims: sub missing refused",
            |s| drop(s.claims.remove("sub")),
            Some(R::ClaimMissing),
        ),
        r(
            "claims: jti missing refused",
            |s| drop(s.claims.remove("jti")),
            Some(R::ClaimMissing),
        ),
        r(
            "sender constraint: cnf presented as Bearer refused",
            |s| set(&mut s.claims, "cnf", json!({"jkt": "thumb"})),
            Some(R::SenderConstrained),
        ),
        r(
            "scope: required scope missing refused",
            |s| s.required = &["admin"],
            Some(R::InsufficientScope),
        ),
        r(
            "scope: no scope claim refused when one is required",
            |s| drop(s.claims.remove("scope")),
            Some(R::InsufficientScope),
        ),
        // --- order: first failure wins ---
        r(
            "order: alg before typ",
            |s| {
                set(&mut s.header, "alg", json!("none"));
                drop(s.header.remove("typ"));
                s.signing = Signing::Crafted(Sig::Empty);
            },
            Some(R::AlgRefused),
        ),
        r(
            "order: iss before signature",
            |s| {
                set(&mut s.claims, "iss", json!("https://evil.example"));
                s.signing = Signing::Crafted(Sig::Tampered(&keys().rsa1, Algorithm::Rs256));
            },
            Some(R::IssuerUntrusted),
        ),
        r(
            "order: signature before exp",
            |s| {
                set(&mut s.claims, "exp", json!(NOW_SECS - 3600));
                s.signing = Signing::Crafted(Sig::Tampered(&keys().rsa1, Algorithm::Rs256));
            },
            Some(R::BadSignature),
        ),
        r(
            "order: exp before aud",
            |s| {
                set(&mut s.claims, "exp", json!(NOW_SECS - 3600));
                set(&mut s.claims, "aud", json!("https://other.example"));
            },
            Some(R::Expired),
        ),
        r(
            "order: aud before sender constraint",
            |s| {
                set(&mut s.claims, "aud", json!("https://other.example"));
                set(&mut s.claims, "cnf", json!({"jkt": "thumb"}));
            },
            Some(R::AudienceMismatch),
        ),
        r(
            "order: sender constraint before scope",
            |s| {
                set(&mut s.claims, "cnf", json!({"jkt": "thumb"}));
                s.required = &["admin"];
            },
            Some(R::SenderConstrained),
        ),
    ]
}

#[test]
fn access_token_rules_table() {
    for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
        for row in rows() {
            let mut setup = Setup::good(alg);
            (row.tweak)(&mut setup);
            let (token, result) = setup.run();
            match (result, row.expect) {
                (Ok(claims), None) => {
                    assert_eq!(claims.client_id, "client-1", "{alg} {}", row.rule);
                    assert_eq!(claims.iss, ISSUER, "{alg} {}", row.rule);
                }
                (Err(rej), Some(reason)) => {
                    assert_eq!(
                        rej.reason, reason,
                        "{alg} {}: {}",
                        row.rule, rej.description
                    );
                    assert_no_token_in(&rej.description, &token);
                }
                (got, want) => panic!("{alg} {}: expected {want:?}, got {got:?}", row.rule),
            }
        }
    }
}

#[test]
fn verified_claims_carry_every_field() {
    let mut setup = Setup::good(Algorithm::Es256);
    set(&mut setup.claims, "cnf", json!({"jkt": "thumb"}));
    set(&mut setup.claims, "aud", json!([AUDIENCE, "other"]));
    setup.presented = Presentation::DpopProof;
    let claims = setup.run().1.unwrap();
    assert_eq!(claims.sub, "client-1");
    assert_eq!(claims.aud, vec![AUDIENCE.to_owned(), "other".to_owned()]);
    assert_eq!(claims.scopes, vec!["read".to_owned(), "write".to_owned()]);
    assert_eq!(claims.exp.as_secs(), NOW_SECS + 300);
    assert_eq!(claims.iat.as_secs(), NOW_SECS - 10);
    assert_eq!(claims.jti, "t-1");
    assert_eq!(claims.cnf_jkt.as_deref(), Some("thumb"));
    assert_eq!(claims.claims["scope"], "read write");
}

#[test]
fn introspection_reports_cnf_without_enforcing_it() {
    let mut setup = Setup::good(Algorithm::Rs256);
    set(&mut setup.claims, "cnf", json!({"jkt": "thumb"}));
    setup.presented = Presentation::Introspection;
    assert_eq!(setup.run().1.unwrap().cnf_jkt.as_deref(), Some("thumb"));
}

#[test]
fn refusals_map_to_rfc6750_errors() {
    let mut setup = Setup::good(Algorithm::Rs256);
    setup.required = &["admin"];
    let rej = setup.run().1.unwrap_err();
    assert_eq!(
        (rej.status(), rej.bearer_error().code()),
        (403, "insufficient_scope")
    );
    let mut setup = Setup::good(Algorithm::Rs256);
    set(&mut setup.claims, "exp", json!(NOW_SECS - 3600));
    let rej = setup.run().1.unwrap_err();
    assert_eq!(
        (rej.status(), rej.bearer_error().code()),
        (401, "invalid_token")
    );
    assert_eq!(BearerError::InvalidRequest.status(), 400);
    assert_eq!(BearerError::InvalidRequest.code(), "invalid_request");
}

#[test]
fn leeway_defaults_to_30_s_and_above_300_s_needs_dangerous() {
    let mut config = AccessTokenConfig::new(ISSUER, AUDIENCE);
    assert_eq!(config.leeway(), Duration::from_secs(30));
    assert!(config.set_leeway(Duration::from_secs(300)).is_ok());
    assert!(config.set_leeway(Duration::from_secs(301)).is_err());
    assert_eq!(config.leeway(), Duration::from_secs(300));
    config.dangerous_leeway(Duration::from_secs(3600));
    assert_eq!(config.leeway(), Duration::from_secs(3600));
    assert_eq!(config.audience(), Some(AUDIENCE));
    assert!(!config.accepts_jwt_typ());
    assert_eq!(
        AccessTokenConfig::any_audience_for_introspection(ISSUER).audience(),
        None
    );
}

#[test]
fn several_trusted_issuers() {
    let mut setup = Setup::good(Algorithm::EdDsa);
    set(&mut setup.claims, "iss", json!("https://as2.example.com"));
    setup.config.add_issuer("https://as2.example.com");
    assert!(setup.run().1.is_ok());
}

#[test]
fn our_signer_and_jsonwebtoken_agree() {
    // The same claims signed by our own key code are accepted too.
    let setup = Setup::good(Algorithm::Rs256);
    let ours = encode(
        &setup.header,
        &setup.claims,
        Sig::Key(&keys().rsa1, Algorithm::Rs256),
    );
    let v = AccessTokenValidator::new(setup.config.clone());
    let keys = KeySet::new(setup.keys.clone());
    assert!(
        v.validate(&ours, &keys, Presentation::Bearer, &[], now())
            .is_ok()
    );
}
