//! The rfc profile, one table row per rule (docs/protocol.md, "Client assertion checks (rfc
//! profile)"), with real signed assertions.

mod support;

use m2m_core::alg::Algorithm;
use m2m_core::ids::KeyEntry;
use m2m_core::key::PrivateKey;
use m2m_core::validate::{
    AudienceMode, ClientKeys, Reason, Rejection, RfcConfig, RfcValidator, TokenForm, Verified,
};
use serde_json::{Map, Value, json};
use support::validate::{
    NOW_SECS, Sig, assert_no_token_in, encode, form, keys, now, obj, public_key_bytes,
};

const ISSUER: &str = "https://as.example.com";
const TOKEN_URL: &str = "https://as.example.com/oauth2/token";
const CLIENT: &str = "client-1";

/// Everything one row can change.
struct Setup {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    sig: Sig<'static>,
    /// Replaces the signed token in the form (malformed inputs).
    raw: Option<String>,
    form: fn(&mut TokenForm),
    config: RfcConfig,
    keys: Vec<KeyEntry>,
    allowed: Vec<Algorithm>,
}

impl Setup {
    fn good() -> Setup {
        let k = keys();
        Setup {
            header: obj(json!({"alg": "RS256", "typ": "client-authentication+jwt", "kid": "k1"})),
            claims: obj(json!({
                "iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "jti": "7b7c1a1e-2f1d-4f55-9d43-1b1a3a9b9f00",
                "iat": NOW_SECS, "exp": NOW_SECS + 60,
            })),
            sig: Sig::Key(&k.rsa1, Algorithm::Rs256),
            raw: None,
            form: |_| {},
            config: RfcConfig::new(ISSUER, TOKEN_URL),
            keys: vec![
                KeyEntry::new(Some("k1".into()), k.rsa1.public_key().clone()),
                KeyEntry::new(Some("k2".into()), k.rsa2.public_key().clone()),
                KeyEntry::new(Some("ec".into()), k.ec.public_key().clone()),
            ],
            allowed: vec![
                Algorithm::Rs256,
                Algorithm::Ps256,
                Algorithm::Es256,
                Algorithm::EdDsa,
            ],
        }
    }

    fn token(&self) -> String {
        self.raw
            .clone()
            .unwrap_or_else(|| encode(&self.header, &self.claims, self.sig))
    }

    /// The server's flow: precheck → registry lookup by `sub` → verify.
    fn run(&self) -> (String, Result<Verified, Rejection>) {
        let token = self.token();
        let mut f = form(&token);
        (self.form)(&mut f);
        let v = RfcValidator::new(self.config.clone());
        let result = v.precheck(&f).and_then(|pending| {
            if pending.subject() != CLIENT {
                return Err(v.unknown_client());
            }
            let client = ClientKeys {
                client_id: CLIENT,
                allowed_algs: &self.allowed,
                keys: &self.keys,
            };
            v.verify(&pending, &client, now())
        });
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
    expect: Option<(u16, &'static str, Reason)>,
}

const BAD_REQ: &str = "invalid_request";
const BAD_CLIENT: &str = "invalid_client";

fn rows() -> Vec<Row> {
    let r = |rule, tweak, expect| Row {
        rule,
        tweak,
        expect,
    };
    vec![
        r("valid assertion is accepted", |_| {}, None),
        r(
            "typ JWT accepted",
            |s| set(&mut s.header, "typ", json!("JWT")),
            None,
        ),
        r(
            "typ absent accepted",
            |s| drop(s.header.remove("typ")),
            None,
        ),
        r(
            "typ compared case-insensitively with application/ prefix",
            |s| {
                set(
                    &mut s.header,
                    "typ",
                    json!("application/Client-Authentication+JWT"),
                )
            },
            None,
        ),
        r(
            "aud one-element array accepted",
            |s| set(&mut s.claims, "aud", json!([ISSUER])),
            None,
        ),
        r(
            "embedded jwk header ignored",
            |s| {
                set(
                    &mut s.header,
                    "jwk",
                    serde_json::to_value(keys().rsa2.public_key().to_jwk()).expect("jwk"),
                )
            },
            None,
        ),
        r(
            "jku x5u x5c headers ignored",
            |s| {
                set(
                    &mut s.header,
                    "jku",
                    json!("https://attacker.example/jwks.json"),
                );
                set(
                    &mut s.header,
                    "x5u",
                    json!("https://attacker.example/cert.pem"),
                );
                set(&mut s.header, "x5c", json!(["MIIB"]));
            },
            None,
        ),
        r(
            "kid optional when the client has exactly one key",
            |s| {
                s.header.remove("kid");
                s.keys.truncate(1);
            },
            None,
        ),
        r(
            "matching client_id form field accepted",
            |s| s.form = |f| f.client_id = Some(CLIENT.into()),
            None,
        ),
        r(
            "ES256 accepted",
            |s| {
                set(&mut s.header, "alg", json!("ES256"));
                set(&mut s.header, "kid", json!("ec"));
                s.sig = Sig::Key(&keys().ec, Algorithm::Es256);
            },
            None,
        ),
        r(
            "Ed25519 alg name accepted as EdDSA",
            |s| {
                set(&mut s.header, "alg", json!("Ed25519"));
                set(&mut s.header, "kid", json!("ed"));
                s.keys.push(KeyEntry::new(
                    Some("ed".into()),
                    keys().ed.public_key().clone(),
                ));
                s.sig = Sig::Key(&keys().ed, Algorithm::EdDsa);
            },
            None,
        ),
        r(
            "exp within leeway accepted",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 5)),
            None,
        ),
        r(
            "iat within leeway accepted",
            |s| set(&mut s.claims, "iat", json!(NOW_SECS + 10)),
            None,
        ),
        r(
            "nbf in the past accepted",
            |s| set(&mut s.claims, "nbf", json!(NOW_SECS - 1)),
            None,
        ),
        r(
            "fractional exp accepted",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS as f64 + 30.5)),
            None,
        ),
        r(
            "legacy mode accepts the token URL",
            |s| {
                s.config.set_audience(AudienceMode::DangerousLegacyTokenUrl);
                set(&mut s.claims, "aud", json!(TOKEN_URL));
            },
            None,
        ),
        // ---- form ----
        r(
            "grant_type missing",
            |s| s.form = |f| f.grant_type = None,
            Some((400, BAD_REQ, Reason::GrantTypeMissing)),
        ),
        r(
            "grant_type other",
            |s| s.form = |f| f.grant_type = Some("password".into()),
            Some((400, "unsupported_grant_type", Reason::GrantTypeUnsupported)),
        ),
        r(
            "client_assertion_type missing",
            |s| s.form = |f| f.client_assertion_type = None,
            Some((400, BAD_REQ, Reason::AssertionTypeInvalid)),
        ),
        r(
            "client_assertion_type wrong",
            |s| {
                s.form = |f| {
                    f.client_assertion_type =
                        Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into())
                }
            },
            Some((400, BAD_REQ, Reason::AssertionTypeInvalid)),
        ),
        r(
            "client_assertion missing",
            |s| s.form = |f| f.client_assertion = None,
            Some((400, BAD_REQ, Reason::AssertionMissing)),
        ),
        r(
            "assertion over 8 KiB",
            |s| set(&mut s.claims, "pad", json!("x".repeat(8200))),
            Some((400, BAD_REQ, Reason::AssertionTooLarge)),
        ),
        r(
            "malformed: not a JWT",
            |s| s.raw = Some("invalid".into()),
            Some((400, BAD_REQ, Reason::Malformed)),
        ),
        r(
            "malformed: two parts",
            |s| s.raw = Some("eyJhbGciOiJSUzI1NiJ9.e30".into()),
            Some((400, BAD_REQ, Reason::Malformed)),
        ),
        r(
            "malformed: four parts",
            |s| s.raw = Some(format!("{}.x", s.token())),
            Some((400, BAD_REQ, Reason::Malformed)),
        ),
        r(
            "malformed: payload not JSON",
            |s| {
                let t = s.token();
                let parts: Vec<&str> = t.split('.').collect();
                s.raw = Some(format!("{}.bm90IGpzb24.{}", parts[0], parts[2]));
            },
            Some((400, BAD_REQ, Reason::Malformed)),
        ),
        r(
            "malformed: padded base64",
            |s| s.raw = Some(format!("{}=", s.token())),
            Some((400, BAD_REQ, Reason::Malformed)),
        ),
        // ---- header ----
        r(
            "alg none refused",
            |s| {
                set(&mut s.header, "alg", json!("none"));
                s.sig = Sig::Empty;
            },
            Some((401, BAD_CLIENT, Reason::AlgRefused)),
        ),
        r(
            "alg HS256 keyed with the public key refused",
            |s| {
                set(&mut s.header, "alg", json!("HS256"));
                static SECRET: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
                s.sig =
                    Sig::Hs256(SECRET.get_or_init(|| public_key_bytes(keys().rsa1.public_key())));
            },
            Some((401, BAD_CLIENT, Reason::AlgRefused)),
        ),
        r(
            "alg missing refused",
            |s| drop(s.header.remove("alg")),
            Some((401, BAD_CLIENT, Reason::AlgRefused)),
        ),
        r(
            "alg unknown refused",
            |s| set(&mut s.header, "alg", json!("RS1")),
            Some((401, BAD_CLIENT, Reason::AlgRefused)),
        ),
        r(
            "alg wrong case refused",
            |s| set(&mut s.header, "alg", json!("rs256")),
            Some((401, BAD_CLIENT, Reason::AlgRefused)),
        ),
        r(
            "crit header refused",
            |s| {
                set(&mut s.header, "crit", json!(["exp"]));
            },
            Some((401, BAD_CLIENT, Reason::CritRefused)),
        ),
        r(
            "sub missing",
            |s| drop(s.claims.remove("sub")),
            Some((401, BAD_CLIENT, Reason::IssSubInvalid)),
        ),
        r(
            "unknown client",
            |s| {
                set(&mut s.claims, "sub", json!("nobody"));
                set(&mut s.claims, "iss", json!("nobody"));
            },
            Some((401, BAD_CLIENT, Reason::UnknownClient)),
        ),
        r(
            "client_id form field differs from sub",
            |s| s.form = |f| f.client_id = Some("client-2".into()),
            Some((401, BAD_CLIENT, Reason::ClientIdMismatch)),
        ),
        // ---- after lookup ----
        r(
            "alg not registered for the client",
            |s| s.allowed = vec![Algorithm::Es256],
            Some((401, BAD_CLIENT, Reason::AlgNotAllowed)),
        ),
        r(
            "typ other value refused",
            |s| set(&mut s.header, "typ", json!("at+jwt")),
            Some((401, BAD_CLIENT, Reason::TypInvalid)),
        ),
        r(
            "typ not a string refused",
            |s| set(&mut s.header, "typ", json!(1)),
            Some((401, BAD_CLIENT, Reason::TypInvalid)),
        ),
        r(
            "missing kid with two keys",
            |s| drop(s.header.remove("kid")),
            Some((401, BAD_CLIENT, Reason::KidMissing)),
        ),
        r(
            "missing kid with no keys",
            |s| {
                s.header.remove("kid");
                s.keys.clear();
            },
            Some((401, BAD_CLIENT, Reason::NoKeys)),
        ),
        r(
            "unknown kid",
            |s| set(&mut s.header, "kid", json!("k9")),
            Some((401, BAD_CLIENT, Reason::UnknownKid)),
        ),
        r(
            "key not registered under a kid",
            |s| {
                s.keys = vec![KeyEntry::new(None, keys().rsa1.public_key().clone())];
            },
            Some((401, BAD_CLIENT, Reason::UnknownKid)),
        ),
        r(
            "kid of another key: bad signature",
            |s| set(&mut s.header, "kid", json!("k2")),
            Some((401, BAD_CLIENT, Reason::BadSignature)),
        ),
        r(
            "tampered payload",
            |s| s.sig = Sig::Tampered(&keys().rsa1, Algorithm::Rs256),
            Some((401, BAD_CLIENT, Reason::BadSignature)),
        ),
        r(
            "signed RS512 but header says RS256",
            |s| s.sig = Sig::Key(&keys().rsa1, Algorithm::Rs512),
            Some((401, BAD_CLIENT, Reason::BadSignature)),
        ),
        r(
            // I5: a JWK's `alg` is binding; the client's allow-list having RS256 is not enough.
            "RS256 against a key published with alg RS512",
            |s| {
                s.keys[0] = KeyEntry::new(Some("k1".into()), keys().rsa1.public_key().clone())
                    .with_alg(Some(Algorithm::Rs512));
            },
            Some((401, BAD_CLIENT, Reason::BadSignature)),
        ),
        r(
            "RS256 against a key published with alg RS256",
            |s| {
                s.keys[0] = KeyEntry::new(Some("k1".into()), keys().rsa1.public_key().clone())
                    .with_alg(Some(Algorithm::Rs256));
            },
            None,
        ),
        r(
            "RSA alg against an EC key",
            |s| set(&mut s.header, "kid", json!("ec")),
            Some((401, BAD_CLIENT, Reason::BadSignature)),
        ),
        r(
            "iss missing",
            |s| drop(s.claims.remove("iss")),
            Some((401, BAD_CLIENT, Reason::IssSubInvalid)),
        ),
        r(
            "iss differs from sub",
            |s| set(&mut s.claims, "iss", json!("client-2")),
            Some((401, BAD_CLIENT, Reason::IssSubInvalid)),
        ),
        r(
            "aud missing",
            |s| drop(s.claims.remove("aud")),
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud wrong",
            |s| set(&mut s.claims, "aud", json!("https://other.example")),
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud trailing slash is a different value",
            |s| set(&mut s.claims, "aud", json!(format!("{ISSUER}/"))),
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud array with an extra value",
            |s| {
                set(
                    &mut s.claims,
                    "aud",
                    json!([ISSUER, "https://other.example"]),
                )
            },
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud array refused in string-only mode",
            |s| {
                s.config.set_audience(AudienceMode::IssuerStringOnly);
                set(&mut s.claims, "aud", json!([ISSUER]));
            },
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud = token URL refused by default",
            |s| set(&mut s.claims, "aud", json!(TOKEN_URL)),
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud multi-valued refused even in legacy mode",
            |s| {
                s.config.set_audience(AudienceMode::DangerousLegacyTokenUrl);
                set(&mut s.claims, "aud", json!([ISSUER, TOKEN_URL]));
            },
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "aud not a string",
            |s| set(&mut s.claims, "aud", json!(42)),
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
        r(
            "exp missing",
            |s| drop(s.claims.remove("exp")),
            Some((401, BAD_CLIENT, Reason::ExpMissing)),
        ),
        r(
            "exp a string",
            |s| set(&mut s.claims, "exp", json!((NOW_SECS + 60).to_string())),
            Some((401, BAD_CLIENT, Reason::ExpInvalid)),
        ),
        r(
            "exp past beyond leeway",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 11)),
            Some((401, BAD_CLIENT, Reason::Expired)),
        ),
        r(
            "exp exactly at now + leeway is expired",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 10)),
            Some((401, BAD_CLIENT, Reason::Expired)),
        ),
        r(
            "exp too far ahead",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS + 311)),
            Some((401, BAD_CLIENT, Reason::ExpTooFar)),
        ),
        r(
            "exp in milliseconds",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS * 1000)),
            Some((401, BAD_CLIENT, Reason::ExpTooFar)),
        ),
        r(
            "iat in the future",
            |s| set(&mut s.claims, "iat", json!(NOW_SECS + 11)),
            Some((401, BAD_CLIENT, Reason::IatFuture)),
        ),
        r(
            "iat not a number",
            |s| set(&mut s.claims, "iat", json!("now")),
            Some((401, BAD_CLIENT, Reason::IatInvalid)),
        ),
        r(
            "nbf in the future",
            |s| set(&mut s.claims, "nbf", json!(NOW_SECS + 11)),
            Some((401, BAD_CLIENT, Reason::NbfFuture)),
        ),
        r(
            "nbf not a number",
            |s| set(&mut s.claims, "nbf", json!(null)),
            Some((401, BAD_CLIENT, Reason::NbfInvalid)),
        ),
        r(
            "jti missing",
            |s| drop(s.claims.remove("jti")),
            Some((401, BAD_CLIENT, Reason::JtiMissing)),
        ),
        r(
            "jti empty",
            |s| set(&mut s.claims, "jti", json!("")),
            Some((401, BAD_CLIENT, Reason::JtiInvalid)),
        ),
        r(
            "jti not a string",
            |s| set(&mut s.claims, "jti", json!(12345)),
            Some((401, BAD_CLIENT, Reason::JtiInvalid)),
        ),
        r(
            "jti over 256 bytes",
            |s| set(&mut s.claims, "jti", json!("j".repeat(257))),
            Some((401, BAD_CLIENT, Reason::JtiInvalid)),
        ),
        // ---- first failing check wins ----
        r(
            "order: grant_type before everything",
            |s| {
                s.form = |f| f.grant_type = None;
                s.raw = Some("garbage".into());
            },
            Some((400, BAD_REQ, Reason::GrantTypeMissing)),
        ),
        r(
            "order: alg before claims (HS256 with garbage claims)",
            |s| {
                set(&mut s.header, "alg", json!("HS256"));
                s.claims = obj(json!({"some": "payload"}));
                s.sig = Sig::Hs256(b"secret");
            },
            Some((401, BAD_CLIENT, Reason::AlgRefused)),
        ),
        r(
            "order: signature before claims",
            |s| {
                s.claims.remove("exp");
                s.sig = Sig::Tampered(&keys().rsa1, Algorithm::Rs256);
            },
            Some((401, BAD_CLIENT, Reason::BadSignature)),
        ),
        r(
            "order: aud before exp",
            |s| {
                set(&mut s.claims, "aud", json!(TOKEN_URL));
                set(&mut s.claims, "exp", json!(NOW_SECS - 100));
            },
            Some((401, BAD_CLIENT, Reason::AudInvalid)),
        ),
    ]
}

#[test]
fn rfc_rules_table() {
    let mut failures = Vec::new();
    for row in rows() {
        let mut setup = Setup::good();
        (row.tweak)(&mut setup);
        let (token, result) = setup.run();
        match (&result, row.expect) {
            (Ok(v), None) => {
                assert_eq!(v.client_id, CLIENT, "{}", row.rule);
            }
            (Err(rej), Some((status, error, reason))) => {
                if (rej.status, rej.error.as_ref(), rej.reason) != (status, error, reason) {
                    failures.push(format!(
                        "{}: expected {status} {error} {reason:?}, got {rej}",
                        row.rule
                    ));
                }
                assert_no_token_in(&rej.description, &token);
                assert!(!rej.description.is_empty(), "{}", row.rule);
            }
            (got, want) => failures.push(format!("{}: expected {want:?}, got {got:?}", row.rule)),
        }
    }
    assert!(
        failures.is_empty(),
        "failing rows:\n{}",
        failures.join("\n")
    );
}

#[test]
fn verified_carries_client_jti_exp_and_scope() {
    let mut setup = Setup::good();
    setup.form = |f| f.scope = Some("read write".into());
    let (_, result) = setup.run();
    let v = result.expect("accepted");
    assert_eq!(v.client_id, CLIENT);
    assert_eq!(v.jti, "7b7c1a1e-2f1d-4f55-9d43-1b1a3a9b9f00");
    assert_eq!(v.exp.as_secs(), NOW_SECS + 60);
    assert_eq!(v.scope.as_deref(), Some("read write"));
}

#[test]
fn descriptions_are_specific_by_default() {
    let mut setup = Setup::good();
    set(&mut setup.claims, "aud", json!(TOKEN_URL));
    let (_, result) = setup.run();
    let rej = result.expect_err("refused");
    assert_eq!(
        rej.description,
        format!("assertion 'aud' must be the issuer identifier \"{ISSUER}\"; got \"{TOKEN_URL}\"")
    );
}

/// The validator is never opaque: a server hiding reasons does so at its HTTP layer by status
/// (m2m-server's `response.rs`, tested in its `opaque_errors_hide_every_authentication_failure`),
/// so every authentication failure must be a 401 `invalid_client` carrying its precise reason,
/// and form problems must not be 401s.
#[test]
fn authentication_failures_are_401_with_their_precise_reason() {
    for (tweak, reason) in [
        (
            (|s: &mut Setup| set(&mut s.claims, "aud", json!(TOKEN_URL))) as fn(&mut Setup),
            Reason::AudInvalid,
        ),
        (
            |s| set(&mut s.header, "kid", json!("k9")),
            Reason::UnknownKid,
        ),
        (
            |s| set(&mut s.header, "alg", json!("none")),
            Reason::AlgRefused,
        ),
    ] {
        let mut setup = Setup::good();
        tweak(&mut setup);
        let rej = setup.run().1.expect_err("refused");
        assert_eq!(
            (rej.status, rej.error.as_ref(), rej.reason),
            (401, "invalid_client", reason)
        );
        assert_ne!(rej.description, "client authentication failed");
    }
    let mut setup = Setup::good();
    setup.form = |f| f.grant_type = None;
    let rej = setup.run().1.expect_err("refused");
    assert_eq!(
        (rej.status, rej.description.as_ref()),
        (400, "grant_type is missing")
    );
    let v = RfcValidator::new(setup.config.clone());
    assert_eq!(v.unknown_client().status, 401);
    assert_eq!(v.unknown_client().reason, Reason::UnknownClient);
}

/// `check_grant` is the token endpoint's grant rule alone; `authenticate_client` is everything
/// else before I/O and ignores the grant (introspection has none). One row per rule.
#[test]
fn check_grant_and_authenticate_client_split_the_precheck() {
    type Tweak = fn(&mut TokenForm);
    struct SplitRow {
        rule: &'static str,
        tweak: Tweak,
        grant: Option<Reason>,
        client: Option<Reason>,
    }
    let rows = [
        SplitRow {
            rule: "valid form passes both",
            tweak: |_| {},
            grant: None,
            client: None,
        },
        SplitRow {
            rule: "grant_type missing: check_grant only",
            tweak: |f| f.grant_type = None,
            grant: Some(Reason::GrantTypeMissing),
            client: None,
        },
        SplitRow {
            rule: "grant_type other: check_grant only",
            tweak: |f| f.grant_type = Some("password".into()),
            grant: Some(Reason::GrantTypeUnsupported),
            client: None,
        },
        SplitRow {
            rule: "client_assertion_type wrong: authenticate_client only",
            tweak: |f| f.client_assertion_type = Some("jwt".into()),
            grant: None,
            client: Some(Reason::AssertionTypeInvalid),
        },
        SplitRow {
            rule: "client_assertion missing: authenticate_client only",
            tweak: |f| f.client_assertion = None,
            grant: None,
            client: Some(Reason::AssertionMissing),
        },
        SplitRow {
            rule: "client_assertion malformed: authenticate_client only",
            tweak: |f| f.client_assertion = Some("a.b".into()),
            grant: None,
            client: Some(Reason::Malformed),
        },
        SplitRow {
            rule: "client_id differs from sub: authenticate_client only",
            tweak: |f| f.client_id = Some("client-2".into()),
            grant: None,
            client: Some(Reason::ClientIdMismatch),
        },
    ];
    let setup = Setup::good();
    let token = setup.token();
    let v = RfcValidator::new(setup.config.clone());
    for row in rows {
        let mut f = form(&token);
        (row.tweak)(&mut f);
        assert_eq!(
            v.check_grant(&f).err().map(|r| r.reason),
            row.grant,
            "{}",
            row.rule
        );
        let client = v.authenticate_client(&f);
        assert_eq!(
            client.as_ref().err().map(|r| r.reason),
            row.client,
            "{}",
            row.rule
        );
        if let Ok(pending) = client {
            assert_eq!(pending.subject(), CLIENT, "{}", row.rule);
        }
        let first = row.grant.or(row.client);
        assert_eq!(
            v.precheck(&f).err().map(|r| r.reason),
            first,
            "{}",
            row.rule
        );
    }
}

#[test]
fn rfc_config_setters_refuse_weakening_values_without_dangerous() {
    use std::time::Duration;
    let mut c = RfcConfig::new(ISSUER, TOKEN_URL);
    assert_eq!(c.max_lifetime(), m2m_core::wire::MAX_ASSERTION_LIFETIME);
    assert!(c.set_max_lifetime(Duration::from_secs(60)).is_ok());
    assert_eq!(c.max_lifetime(), Duration::from_secs(60));
    assert!(c.set_max_lifetime(Duration::from_secs(300)).is_ok());
    assert!(c.set_max_lifetime(Duration::from_secs(301)).is_err());
    assert_eq!(c.max_lifetime(), Duration::from_secs(300));
    c.dangerous_max_lifetime(Duration::from_secs(3600));
    assert_eq!(c.max_lifetime(), Duration::from_secs(3600));

    assert!(c.set_leeway(Duration::from_secs(300)).is_ok());
    assert!(c.set_leeway(Duration::from_secs(301)).is_err());
    c.dangerous_leeway(Duration::from_secs(900));
    assert_eq!(c.leeway(), Duration::from_secs(900));

    assert!(c.set_max_assertion_len(4096).is_ok());
    assert!(c.set_max_assertion_len(8193).is_err());
    assert_eq!(c.max_assertion_len(), 4096);
    c.dangerous_max_assertion_len(65536);
    assert_eq!(c.max_assertion_len(), 65536);

    assert!(c.set_max_jti_len(64).is_ok());
    assert!(c.set_max_jti_len(257).is_err());
    c.dangerous_max_jti_len(1024);
    assert_eq!(c.max_jti_len(), 1024);

    c.set_audience(AudienceMode::IssuerStringOnly);
    assert_eq!(c.audience(), AudienceMode::IssuerStringOnly);
    assert_eq!((c.issuer(), c.token_url()), (ISSUER, TOKEN_URL));
}

#[test]
fn pending_exposes_lookup_fields_and_debug_hides_the_token() {
    let setup = Setup::good();
    let token = setup.token();
    let mut f = form(&token);
    f.client_id = Some(CLIENT.into());
    let v = RfcValidator::new(setup.config.clone());
    let pending = v.precheck(&f).expect("precheck");
    assert_eq!(pending.subject(), CLIENT);
    assert_eq!(pending.kid(), Some("k1"));
    assert_eq!(pending.form_client_id(), Some(CLIENT));
    assert_eq!(pending.alg(), Algorithm::Rs256);
    let debug = format!("{pending:?} {f:?}");
    assert_no_token_in(&debug, &token);
}

#[test]
fn unknown_kid_lets_the_server_refetch_and_retry() {
    // The server sees Reason::UnknownKid, refetches the JWKS and verifies the same Pending again.
    let mut setup = Setup::good();
    setup.keys.retain(|e| e.kid.as_deref() != Some("k1"));
    let token = setup.token();
    let v = RfcValidator::new(setup.config.clone());
    let pending = v.precheck(&form(&token)).expect("precheck");
    let client = ClientKeys {
        client_id: CLIENT,
        allowed_algs: &setup.allowed,
        keys: &setup.keys,
    };
    assert_eq!(
        v.verify(&pending, &client, now())
            .expect_err("unknown")
            .reason,
        Reason::UnknownKid
    );
    let refreshed: Vec<KeyEntry> = vec![KeyEntry::new(
        Some("k1".into()),
        keys().rsa1.public_key().clone(),
    )];
    let client = ClientKeys {
        keys: &refreshed,
        ..client
    };
    v.verify(&pending, &client, now())
        .expect("accepted after refetch");
}

#[test]
fn rsa_4096_assertion_fits_the_size_limit() {
    // NHS keys are 4096-bit: the signature is 512 bytes; a realistic assertion stays far below 8 KiB.
    let key = m2m_testkit::keys::rsa4096();
    let mut setup = Setup::good();
    setup.header = obj(json!({"alg": "RS512", "typ": "JWT", "kid": "big"}));
    let key: &'static std::sync::Arc<PrivateKey> = Box::leak(Box::new(key));
    setup.sig = Sig::Key(key, Algorithm::Rs512);
    setup.keys = vec![KeyEntry::new(Some("big".into()), key.public_key().clone())];
    setup.allowed = vec![Algorithm::Rs512];
    let (token, result) = setup.run();
    assert!(token.len() < 2048);
    result.expect("accepted");
}

/// F3: whenever the validator accepts, `exp` + leeway as it reports it (the time the server's
/// replay store keeps the `jti` until) is still ahead of `now`. With `exp` floored to the
/// millisecond, `exp = now - 10 + 0.0005` was accepted while the store's expiry was `now` itself:
/// a replay in that millisecond found the store empty.
#[test]
fn the_replay_expiry_covers_every_millisecond_the_validator_accepts() {
    let leeway = RfcConfig::new(ISSUER, TOKEN_URL).leeway();
    let base = NOW_SECS as f64 - 10.0;
    for exp in [
        base + 0.0005,
        base + 0.0001,
        base + 0.0009999,
        base + 0.001,
        base + 0.9995,
        base - 0.0005,
        base,
    ] {
        let mut setup = Setup::good();
        set(&mut setup.claims, "exp", json!(exp));
        let (_, result) = setup.run();
        if let Ok(v) = result {
            assert!(
                v.exp.add(leeway) > now(),
                "exp {exp}: accepted at {now:?} but remembered only until {until:?}",
                now = now(),
                until = v.exp.add(leeway)
            );
        }
    }
    // The boundary case itself is accepted (the fix rounds the store's expiry up; it does not
    // shorten the acceptance window).
    let mut setup = Setup::good();
    set(&mut setup.claims, "exp", json!(base + 0.0005));
    assert!(setup.run().1.is_ok());
}
