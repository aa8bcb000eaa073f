//! DPoP proofs (RFC 9449): the builder's output, the validator's rules one table row each (in the
//! check order of `validate::dpop`), and a cross-check with an independent JOSE implementation
//! (`jsonwebtoken` on RustCrypto) in both directions for ES256, RS256, PS256 and EdDSA.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput, ath};
use m2m_core::jws::{UnverifiedJws, base64url_decode, base64url_encode};
use m2m_core::key::PrivateKey;
use m2m_core::validate::{DpopConfig, DpopReason, DpopRequest, DpopValidator};
use m2m_testkit::keys;
use serde_json::{Map, Value, json};

const URL: &str = "https://as.example/oauth2/token";
const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);
const TOKEN: &str = "an-access-token";

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

/// A proof with exactly this header and these claims, signed by `key` under `alg` (which need not
/// be the header's: forged proofs are the point).
fn forge(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &PrivateKey,
    alg: Algorithm,
) -> String {
    let input = format!(
        "{}.{}",
        base64url_encode(serde_json::to_vec(header).expect("header")),
        base64url_encode(serde_json::to_vec(claims).expect("claims"))
    );
    let sig = key.sign(alg, input.as_bytes()).expect("sign");
    format!("{input}.{}", base64url_encode(sig))
}

fn jwk_of(key: &PrivateKey) -> Value {
    serde_json::to_value(key.public_key().to_jwk()).expect("jwk")
}

/// The header and claims of a valid ES256 proof for `POST URL` at `NOW`.
fn valid_parts() -> (Map<String, Value>, Map<String, Value>) {
    let header = obj(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk_of(&keys::p256())}));
    let claims = obj(json!({
        "jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": URL, "iat": NOW.as_secs(),
    }));
    (header, claims)
}

/// One rule's row: how to spoil a valid proof, the request it is checked against, and the
/// expected refusal (`None`: accepted).
struct Row {
    name: &'static str,
    proof: String,
    request: DpopRequest<'static>,
    config: DpopConfig,
    expect: Option<DpopReason>,
}

fn row(
    name: &'static str,
    edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
    expect: Option<DpopReason>,
) -> Row {
    let (mut header, mut claims) = valid_parts();
    edit(&mut header, &mut claims);
    Row {
        name,
        proof: forge(&header, &claims, &keys::p256(), Algorithm::Es256),
        request: DpopRequest::new("POST", URL),
        config: DpopConfig::default(),
        expect,
    }
}

impl Row {
    fn request(mut self, request: DpopRequest<'static>) -> Row {
        self.request = request;
        self
    }
    fn config(mut self, config: DpopConfig) -> Row {
        self.config = config;
        self
    }
    fn proof(mut self, proof: String) -> Row {
        self.proof = proof;
        self
    }
}

fn rows() -> Vec<Row> {
    use DpopReason as R;
    let p256 = keys::p256();
    let (header, claims) = valid_parts();
    let private_jwk = private_jwk_of(&p256);
    let unsigned = |header: Value| {
        format!(
            "{}.{}.{}",
            base64url_encode(header.to_string()),
            base64url_encode(Value::Object(claims.clone()).to_string()),
            base64url_encode(b"sig")
        )
    };
    let es256_only = {
        let mut c = DpopConfig::default();
        c.set_algorithms(&[Algorithm::Es256]);
        c
    };
    let mut rsa_header = header.clone();
    rsa_header.insert("alg".into(), json!("RS256"));
    vec![
        row("valid", |_, _| {}, None),
        row("too_large", |_, _| {}, Some(R::TooLarge)).proof("a".repeat(9000)),
        row("malformed", |_, _| {}, Some(R::Malformed)).proof("not.a-jws".into()),
        row("malformed_claims", |_, _| {}, Some(R::Malformed)).proof(format!(
            "{}.{}.{}",
            base64url_encode(Value::Object(header.clone()).to_string()),
            base64url_encode("[1]"),
            base64url_encode("s")
        )),
        row(
            "missing_typ",
            |h, _| drop(h.remove("typ")),
            Some(R::ClaimMissing),
        ),
        row(
            "missing_alg",
            |h, _| drop(h.remove("alg")),
            Some(R::ClaimMissing),
        ),
        row(
            "missing_jwk",
            |h, _| drop(h.remove("jwk")),
            Some(R::ClaimMissing),
        ),
        row(
            "jwk_not_object",
            |h, _| drop(h.insert("jwk".into(), json!("k"))),
            Some(R::ClaimMissing),
        ),
        row(
            "missing_jti",
            |_, c| drop(c.remove("jti")),
            Some(R::ClaimMissing),
        ),
        row(
            "missing_htm",
            |_, c| drop(c.remove("htm")),
            Some(R::ClaimMissing),
        ),
        row(
            "missing_htu",
            |_, c| drop(c.remove("htu")),
            Some(R::ClaimMissing),
        ),
        row(
            "missing_iat",
            |_, c| drop(c.remove("iat")),
            Some(R::ClaimMissing),
        ),
        row(
            "iat_string",
            |_, c| drop(c.insert("iat".into(), json!("1700000000"))),
            Some(R::ClaimMissing),
        ),
        row(
            "jti_empty",
            |_, c| drop(c.insert("jti".into(), json!(""))),
            Some(R::JtiInvalid),
        ),
        row(
            "jti_too_long",
            |_, c| drop(c.insert("jti".into(), json!("j".repeat(257)))),
            Some(R::JtiInvalid),
        ),
        row(
            "typ_jwt",
            |h, _| drop(h.insert("typ".into(), json!("JWT"))),
            Some(R::TypInvalid),
        ),
        row(
            "typ_media_type_form",
            |h, _| drop(h.insert("typ".into(), json!("application/DPoP+JWT"))),
            None,
        ),
        row("alg_none", |_, _| {}, Some(R::AlgRefused)).proof(unsigned(
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk_of(&p256)}),
        )),
        row("alg_hmac", |_, _| {}, Some(R::AlgRefused)).proof(unsigned(
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        )),
        row("alg_unsupported", |_, _| {}, Some(R::AlgRefused)).proof(unsigned(
            json!({"typ": "dpop+jwt", "alg": "ES256K", "jwk": jwk_of(&p256)}),
        )),
        row("alg_not_configured", |_, _| {}, Some(R::AlgRefused))
            .proof(forge(
                &rsa_header_with(&keys::rsa2048()),
                &claims,
                &keys::rsa2048(),
                Algorithm::Rs256,
            ))
            .config(es256_only),
        row(
            "jwk_symmetric",
            |h, _| drop(h.insert("jwk".into(), json!({"kty": "oct", "k": "c2VjcmV0"}))),
            Some(R::JwkInvalid),
        ),
        row(
            "jwk_broken_point",
            |h, _| {
                drop(h.insert(
                    "jwk".into(),
                    json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}),
                ))
            },
            Some(R::JwkInvalid),
        ),
        row("jwk_wrong_key_type", |_, _| {}, Some(R::JwkAlgMismatch)).proof(forge(
            &rsa_header,
            &claims,
            &p256,
            Algorithm::Es256,
        )),
        row(
            "jwk_names_other_alg",
            |h, _| {
                let mut jwk = jwk_of(&keys::p256());
                jwk["alg"] = json!("ES384");
                h.insert("jwk".into(), jwk);
            },
            Some(R::JwkAlgMismatch),
        ),
        row("bad_signature", |_, _| {}, Some(R::BadSignature)).proof(forge(
            &header,
            &claims,
            &PrivateKey::generate(m2m_core::key::KeySpec::P256).expect("key"),
            Algorithm::Es256,
        )),
        row(
            "jwk_private",
            |h, _| drop(h.insert("jwk".into(), private_jwk.clone())),
            Some(R::JwkPrivate),
        ),
        row(
            "htm_other_method",
            |_, c| drop(c.insert("htm".into(), json!("GET"))),
            Some(R::HtmMismatch),
        ),
        row(
            "htm_lower_case",
            |_, c| drop(c.insert("htm".into(), json!("post"))),
            Some(R::HtmMismatch),
        ),
        row(
            "htu_other_path",
            |_, c| drop(c.insert("htu".into(), json!("https://as.example/other"))),
            Some(R::HtuMismatch),
        ),
        row(
            "htu_other_host",
            |_, c| drop(c.insert("htu".into(), json!("https://evil.example/oauth2/token"))),
            Some(R::HtuMismatch),
        ),
        row(
            "htu_not_http",
            |_, c| drop(c.insert("htu".into(), json!("urn:x"))),
            Some(R::HtuMismatch),
        ),
        row(
            "htu_normalised",
            |_, c| {
                c.insert(
                    "htu".into(),
                    json!("HTTPS://AS.Example:443/a/../oauth2/%74oken#f"),
                );
            },
            None,
        ),
        row("htu_query_ignored", |_, _| {}, None).request(DpopRequest::new(
            "POST",
            "https://as.example/oauth2/token?x=1",
        )),
        row("nonce_missing", |_, _| {}, Some(R::NonceMissing))
            .request(DpopRequest::new("POST", URL).nonces(&["n-2", "n-1"])),
        row(
            "nonce_mismatch",
            |_, c| drop(c.insert("nonce".into(), json!("n-0"))),
            Some(R::NonceMismatch),
        )
        .request(DpopRequest::new("POST", URL).nonces(&["n-2", "n-1"])),
        row(
            "nonce_previous_window",
            |_, c| drop(c.insert("nonce".into(), json!("n-1"))),
            None,
        )
        .request(DpopRequest::new("POST", URL).nonces(&["n-2", "n-1"])),
        row(
            "nonce_not_required",
            |_, c| drop(c.insert("nonce".into(), json!("stale"))),
            None,
        ),
        row(
            "iat_too_old",
            |_, c| drop(c.insert("iat".into(), json!(NOW.as_secs() - 301))),
            Some(R::IatTooOld),
        ),
        row(
            "iat_oldest_accepted",
            |_, c| drop(c.insert("iat".into(), json!(NOW.as_secs() - 300))),
            None,
        ),
        row(
            "iat_future",
            |_, c| drop(c.insert("iat".into(), json!(NOW.as_secs() + 61))),
            Some(R::IatFuture),
        ),
        row(
            "iat_latest_accepted",
            |_, c| drop(c.insert("iat".into(), json!(NOW.as_secs() + 60))),
            None,
        ),
        row("ath_missing", |_, _| {}, Some(R::AthMissing))
            .request(DpopRequest::new("POST", URL).access_token(TOKEN)),
        row(
            "ath_mismatch",
            |_, c| drop(c.insert("ath".into(), json!(ath("another-token")))),
            Some(R::AthMismatch),
        )
        .request(DpopRequest::new("POST", URL).access_token(TOKEN)),
        row(
            "ath_matches",
            |_, c| drop(c.insert("ath".into(), json!(ath(TOKEN)))),
            None,
        )
        .request(DpopRequest::new("POST", URL).access_token(TOKEN)),
        row("key_not_bound", |_, _| {}, Some(R::KeyNotBound))
            .request(DpopRequest::new("POST", URL).bound_to("another-thumbprint")),
    ]
}

fn rsa_header_with(key: &PrivateKey) -> Map<String, Value> {
    obj(json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk_of(key)}))
}

/// The key's public JWK plus a private member `d`: any private member must be refused, and the
/// signature (made with the real key) does not depend on its value.
fn private_jwk_of(key: &PrivateKey) -> Value {
    let mut jwk = jwk_of(key);
    jwk["d"] = json!(base64url_encode([7u8; 32]));
    jwk
}

#[test]
fn every_rule_refuses_with_its_own_reason() {
    let rows = rows();
    let mut reasons = HashSet::new();
    for row in &rows {
        let result = DpopValidator::new(row.config.clone()).validate(&row.proof, &row.request, NOW);
        match (row.expect, result) {
            (None, Ok(_)) => {}
            (Some(expected), Err(rejection)) => {
                assert_eq!(rejection.reason, expected, "{}: {rejection}", row.name);
                assert!(!rejection.description.is_empty());
                reasons.insert(expected);
            }
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", row.name),
        }
    }
    // Every rule has a row.
    assert_eq!(reasons.len(), 19, "{reasons:?}");
}

#[test]
fn error_codes_follow_rfc_9449() {
    assert_eq!(DpopReason::NonceMissing.error_code(), "use_dpop_nonce");
    assert_eq!(DpopReason::NonceMismatch.error_code(), "use_dpop_nonce");
    assert_eq!(DpopReason::KeyNotBound.error_code(), "invalid_token");
    assert_eq!(DpopReason::AthMismatch.error_code(), "invalid_dpop_proof");
    assert_eq!(DpopReason::AlgRefused.error_code(), "invalid_dpop_proof");
}

#[test]
fn messages_never_contain_the_proof_or_the_token() {
    for row in rows() {
        if let Err(rejection) =
            DpopValidator::new(row.config.clone()).validate(&row.proof, &row.request, NOW)
        {
            let text = rejection.to_string();
            assert!(!text.contains(TOKEN), "{}: {text}", row.name);
            if let Some(sig) = row.proof.rsplit('.').next().filter(|s| s.len() > 8) {
                assert!(!text.contains(sig), "{}: {text}", row.name);
            }
        }
    }
}

#[test]
fn the_iat_window_is_configurable_within_limits() {
    let mut config = DpopConfig::default();
    assert_eq!(config.max_age(), Duration::from_secs(300));
    assert_eq!(config.max_future(), Duration::from_secs(60));
    config
        .set_iat_window(Duration::from_secs(30), Duration::from_secs(5))
        .expect("in range");
    let builder = ProofBuilder::new(keys::p256()).expect("builder");
    let proof = builder
        .build(
            &ProofInput::new("POST", URL),
            NOW.saturating_sub(Duration::from_secs(31)),
        )
        .expect("proof");
    let refused = DpopValidator::new(config.clone())
        .validate(proof.as_str(), &DpopRequest::new("POST", URL), NOW)
        .expect_err("too old for a 30 s window");
    assert_eq!(refused.reason, DpopReason::IatTooOld);
    assert!(
        config
            .set_iat_window(Duration::from_secs(601), Duration::ZERO)
            .is_err()
    );
    assert!(
        config
            .set_iat_window(Duration::ZERO, Duration::from_secs(301))
            .is_err()
    );
    config.dangerous_iat_window(Duration::from_secs(3600), Duration::ZERO);
    assert_eq!(config.max_age(), Duration::from_secs(3600));
}

#[test]
fn built_proofs_have_the_rfc_9449_shape_and_validate_for_every_algorithm() {
    let cases = [
        (keys::p256(), Algorithm::Es256),
        (keys::p384(), Algorithm::Es384),
        (keys::p521(), Algorithm::Es512),
        (keys::ed25519(), Algorithm::EdDsa),
        (keys::rsa2048(), Algorithm::Rs256),
        (keys::rsa2048(), Algorithm::Ps256),
    ];
    for (key, alg) in cases {
        let builder = ProofBuilder::with_algorithm(key.clone(), alg).expect("builder");
        assert_eq!(builder.algorithm(), alg);
        assert_eq!(builder.thumbprint(), key.public_key().thumbprint());
        let input = ProofInput::new("GET", "https://api.example/v1/things?page=2#top")
            .nonce(Some("n-1"))
            .access_token(TOKEN);
        let proof = builder.build(&input, NOW).expect("proof");
        let jws = UnverifiedJws::parse(proof.as_str()).expect("parse");
        let header = jws.header();
        assert_eq!(header.get("typ"), Some(&json!("dpop+jwt")), "{alg}");
        assert_eq!(header.get("alg"), Some(&json!(alg.name())));
        assert!(header.get("kid").is_none());
        let jwk = header.get("jwk").expect("jwk");
        assert_eq!(jwk, &jwk_of(&key));
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(private).is_none(), "{alg}: {private}");
        }
        let claims = jws.claims().expect("claims");
        assert_eq!(claims["htm"], json!("GET"));
        assert_eq!(claims["htu"], json!("https://api.example/v1/things"));
        assert_eq!(claims["iat"], json!(NOW.as_secs()));
        assert_eq!(claims["nonce"], json!("n-1"));
        assert_eq!(claims["ath"], json!(ath(TOKEN)));
        let jti = claims["jti"].as_str().expect("jti");
        assert_eq!(jti, proof.jti());
        assert!(
            base64url_decode(jti).expect("b64").len() >= 16,
            "128 random bits"
        );
        let verified = DpopValidator::default()
            .validate(
                proof.as_str(),
                &DpopRequest::new("GET", "https://api.example/v1/things")
                    .nonces(&["n-1"])
                    .access_token(TOKEN)
                    .bound_to(builder.thumbprint()),
                NOW,
            )
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.jkt, builder.thumbprint());
        assert_eq!(verified.jti, jti);
        assert_eq!(verified.alg, alg);
        assert_eq!(verified.iat, NOW);
        assert_eq!(verified.replay_until, NOW.add(Duration::from_secs(300)));
    }
}

#[test]
fn every_proof_has_a_fresh_jti_and_no_ath_or_nonce_unless_asked() {
    let builder = ProofBuilder::new(keys::p256()).expect("builder");
    assert_eq!(builder.algorithm(), Algorithm::Es256);
    let mut seen = HashSet::new();
    for _ in 0..64 {
        let proof = builder
            .build(&ProofInput::new("POST", URL), NOW)
            .expect("proof");
        assert!(seen.insert(proof.jti().to_owned()));
        let claims = UnverifiedJws::parse(proof.as_str())
            .expect("parse")
            .claims()
            .expect("claims");
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
    }
    let proof = builder
        .build(&ProofInput::new("POST", URL), NOW)
        .expect("proof");
    let debug = format!("{proof:?} {builder:?}");
    assert!(!debug.contains(proof.as_str()), "{debug}");
    assert!(builder.build(&ProofInput::new("", URL), NOW).is_err());
}

#[test]
fn an_algorithm_that_does_not_fit_the_key_is_refused_by_the_builder() {
    assert!(ProofBuilder::with_algorithm(keys::p256(), Algorithm::Rs256).is_err());
    assert!(ProofBuilder::with_algorithm(keys::p256(), Algorithm::Es384).is_err());
    assert!(ProofBuilder::with_algorithm(keys::ed25519(), Algorithm::Es256).is_err());
}

// --- cross-check with jsonwebtoken ---

fn jsonwebtoken_cases() -> Vec<(Arc<PrivateKey>, Algorithm, jsonwebtoken::Algorithm)> {
    use jsonwebtoken::Algorithm as J;
    vec![
        (keys::p256(), Algorithm::Es256, J::ES256),
        (keys::rsa2048(), Algorithm::Rs256, J::RS256),
        (keys::rsa2048(), Algorithm::Ps256, J::PS256),
        (keys::ed25519(), Algorithm::EdDsa, J::EdDSA),
    ]
}

fn no_claim_checks(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    v
}

#[test]
fn jsonwebtoken_verifies_our_proofs_with_the_embedded_jwk() {
    for (key, alg, jalg) in jsonwebtoken_cases() {
        let builder = ProofBuilder::with_algorithm(key, alg).expect("builder");
        let proof = builder
            .build(&ProofInput::new("POST", URL).access_token(TOKEN), NOW)
            .expect("proof");
        let header = jsonwebtoken::decode_header(proof.as_str()).expect("their header parse");
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = header.jwk.expect("embedded jwk");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("their jwk");
        let data = jsonwebtoken::decode::<Value>(proof.as_str(), &decoding, &no_claim_checks(jalg))
            .unwrap_or_else(|e| panic!("jsonwebtoken refused our {alg} proof: {e:?}"));
        assert_eq!(data.claims["htu"], json!(URL));
        assert_eq!(data.claims["ath"], json!(ath(TOKEN)));
    }
}

#[test]
fn we_validate_proofs_signed_by_jsonwebtoken() {
    for (key, alg, jalg) in jsonwebtoken_cases() {
        let pem = key.to_pkcs8_pem().expect("pem");
        let encoding = match alg {
            Algorithm::Es256 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDsa => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("their key");
        let mut header = jsonwebtoken::Header::new(jalg);
        header.typ = Some("dpop+jwt".to_owned());
        header.jwk = Some(serde_json::from_value(jwk_of(&key)).expect("their jwk"));
        let claims = json!({
            "jti": "their-jti-0123456789", "htm": "GET", "htu": "https://api.example/r",
            "iat": NOW.as_secs(), "ath": ath(TOKEN), "nonce": "n",
        });
        let proof = jsonwebtoken::encode(&header, &claims, &encoding).expect("their proof");
        let verified = DpopValidator::default()
            .validate(
                &proof,
                &DpopRequest::new("GET", "https://API.example:443/r")
                    .nonces(&["n"])
                    .access_token(TOKEN)
                    .bound_to(&key.public_key().thumbprint()),
                NOW,
            )
            .unwrap_or_else(|e| panic!("we refused their {alg} proof: {e}"));
        assert_eq!(verified.jti, "their-jti-0123456789");
        assert_eq!(verified.alg, alg);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[ -~]{0,24}".prop_map(Value::from),
            prop::sample::select(vec![
                "dpop+jwt", "ES256", "EdDSA", "RS256", "none", "HS256", "POST", URL, "EC", "P-256",
                "OKP"
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "typ", "alg", "jwk", "kty", "crv", "x", "y", "n", "e", "d", "jti", "htm",
                        "htu", "iat", "ath", "nonce"
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = DpopValidator::default().validate(&text, &DpopRequest::new("POST", URL).nonces(&["n"]).access_token(TOKEN), NOW);
        }

        #[test]
        fn arbitrary_headers_and_claims_never_panic(header in json_value(), claims in json_value(), sig in prop::collection::vec(any::<u8>(), 0..80)) {
            let proof = format!(
                "{}.{}.{}",
                base64url_encode(header.to_string()),
                base64url_encode(claims.to_string()),
                base64url_encode(sig)
            );
            let _ = DpopValidator::default().validate(&proof, &DpopRequest::new("POST", URL).access_token(TOKEN).bound_to("x"), NOW);
        }

        #[test]
        fn arbitrary_request_uris_never_panic(uri in "\\PC{0,80}", htu in "(https?://)?[a-zA-Z0-9.:/%?#@\\[\\]-]{0,40}") {
            let (header, mut claims) = valid_parts();
            claims.insert("htu".into(), json!(htu));
            let proof = forge(&header, &claims, &keys::p256(), Algorithm::Es256);
            let _ = DpopValidator::default().validate(&proof, &DpopRequest::new("POST", &uri), NOW);
        }
    }
}
