//! The NHS emulation profile: every T/P row of docs/nhs-token-endpoint.md §2.2, exact status,
//! `error` and `error_description`, in the §2.1 order, driven through the same flow the server runs.

mod support;

use std::collections::HashSet;

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::ids::KeyEntry;
use m2m_core::validate::{
    NhsConfig, NhsValidator, Reason, Rejection, Verified, nhs::messages as msg,
};
use serde_json::{Map, Value, json};
use support::validate::{
    NOW_SECS, Sig, assert_no_token_in, encode, keys, now, obj, public_key_bytes,
};

const TOKEN_URL: &str = "https://int.api.service.nhs.uk/oauth2/token";
const API_KEY: &str = "Ab3dEfGhIjKlMnOpQrStUvWxYz012345";
const FORM_CT: &str = "application/x-www-form-urlencoded";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the registered app has, as the server would find it.
#[derive(Clone)]
enum AppKeys {
    NoJwksUrl,
    Unreachable,
    Jwks(Vec<KeyEntry>),
}

/// The server's NHS flow around the pure validator: form → precheck → replay → app → JWKS → verify.
struct Emulator {
    v: NhsValidator,
    store: HashSet<(String, String)>,
    app: AppKeys,
}

impl Emulator {
    fn new() -> Emulator {
        Emulator {
            v: NhsValidator::new(NhsConfig::new(TOKEN_URL)),
            store: HashSet::new(),
            app: AppKeys::Jwks(vec![KeyEntry::new(
                Some("test-1".into()),
                keys().rsa1.public_key().clone(),
            )]),
        }
    }

    fn post(
        &mut self,
        content_type: Option<&str>,
        body: &str,
        now: UnixTime,
    ) -> Result<Verified, Rejection> {
        let form = self.v.parse_form(content_type, body.as_bytes())?;
        let pending = self.v.precheck(&form, now)?;
        let key = (pending.sub().to_owned(), pending.jti().to_owned());
        if pending.far_future() {
            return Err(if self.store.contains(&key) {
                self.v.non_unique_jti()
            } else {
                pending.far_future_rejection()
            });
        }
        if !self.store.insert(key) {
            return Err(self.v.non_unique_jti());
        }
        if pending.sub() != API_KEY {
            return Err(self.v.unknown_app());
        }
        match &self.app {
            AppKeys::NoJwksUrl => Err(self.v.no_public_key()),
            AppKeys::Unreachable => Err(self.v.jwks_unreachable()),
            AppKeys::Jwks(keys) => self.v.verify(&pending, keys),
        }
    }
}

fn body(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
    )
}

struct Setup {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    sig: Sig<'static>,
    content_type: Option<&'static str>,
    /// Replaces the whole body (`{}` is replaced by the assertion).
    body: Option<&'static str>,
    emu: Emulator,
}

impl Setup {
    fn good() -> Setup {
        Setup {
            header: obj(json!({"alg": "RS512", "typ": "JWT", "kid": "test-1"})),
            claims: obj(json!({
                "iss": API_KEY, "sub": API_KEY, "jti": "0b3c5a52-6f0e-4d4c-9d1b-3c9c3d1d7e11",
                "aud": TOKEN_URL, "exp": NOW_SECS + 300,
            })),
            sig: Sig::Key(&keys().rsa1, Algorithm::Rs512),
            content_type: Some(FORM_CT),
            body: None,
            emu: Emulator::new(),
        }
    }

    fn token(&self) -> String {
        encode(&self.header, &self.claims, self.sig)
    }

    fn run(&mut self) -> (String, Result<Verified, Rejection>) {
        let token = self.token();
        let body = match self.body {
            Some(b) => b.replace("{}", &token),
            None => body(&token),
        };
        let result = self.emu.post(self.content_type, &body, now());
        (token, result)
    }
}

fn set(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.insert(k.into(), v);
}

struct Row {
    rule: &'static str,
    tweak: fn(&mut Setup),
    expect: Option<(u16, &'static str, &'static str)>,
}

const IR: &str = "invalid_request";
const PK: &str = "public_key error";

fn hs(s: &mut Setup, alg: &str) {
    set(&mut s.header, "alg", json!(alg));
    s.claims = obj(json!({"some": "payload"}));
    static SECRET: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    s.sig = Sig::Hs256(SECRET.get_or_init(|| public_key_bytes(keys().rsa1.public_key())));
}

fn rsa_alg(s: &mut Setup, alg: Algorithm) {
    set(&mut s.header, "alg", json!(alg.name()));
    s.sig = Sig::Key(&keys().rsa1, alg);
}

fn rows() -> Vec<Row> {
    let r = |rule, tweak, expect| Row {
        rule,
        tweak,
        expect,
    };
    vec![
        r("row 43: valid assertion", |_| {}, None),
        r(
            "row 1: JSON content type",
            |s| s.content_type = Some("application/json"),
            Some((415, IR, msg::CONTENT_TYPE)),
        ),
        r(
            "row 1: no content type (params in the query string)",
            |s| {
                s.content_type = None;
                s.body = Some("");
            },
            Some((415, IR, msg::CONTENT_TYPE)),
        ),
        r(
            "row 1 (I): charset suffix refused",
            |s| s.content_type = Some("application/x-www-form-urlencoded; charset=UTF-8"),
            Some((415, IR, msg::CONTENT_TYPE)),
        ),
        r(
            "row 3: grant_type missing",
            |s| s.body = Some("client_assertion_type=x&client_assertion={}"),
            Some((400, IR, msg::GRANT_TYPE_MISSING)),
        ),
        r(
            "row 4: grant_type invalid",
            |s| s.body = Some("grant_type=invalid&client_assertion={}"),
            Some((400, "unsupported_grant_type", msg::GRANT_TYPE_INVALID)),
        ),
        r(
            "row 5: client_assertion_type missing",
            |s| s.body = Some("grant_type=client_credentials&client_assertion={}"),
            Some((400, IR, msg::ASSERTION_TYPE)),
        ),
        r(
            "row 6: client_assertion_type invalid",
            |s| {
                s.body = Some(
                    "grant_type=client_credentials&client_assertion_type=invalid&client_assertion={}",
                )
            },
            Some((400, IR, msg::ASSERTION_TYPE)),
        ),
        r(
            "row 7: client_assertion missing",
            |s| {
                s.body = Some(
                    "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
                )
            },
            Some((400, IR, msg::ASSERTION_MISSING)),
        ),
        r(
            "row 8: client_assertion not a JWT",
            |s| {
                s.body = Some(
                    "grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=invalid",
                )
            },
            Some((400, IR, msg::MALFORMED)),
        ),
        r(
            "row 9: alg RS256",
            |s| rsa_alg(s, Algorithm::Rs256),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 10: alg RS384",
            |s| rsa_alg(s, Algorithm::Rs384),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 11: alg PS256",
            |s| rsa_alg(s, Algorithm::Ps256),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 12: alg PS384",
            |s| rsa_alg(s, Algorithm::Ps384),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 13: alg PS512",
            |s| rsa_alg(s, Algorithm::Ps512),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 14: alg HS256 with garbage claims",
            |s| hs(s, "HS256"),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 15: alg HS384",
            |s| hs(s, "HS384"),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 16: alg HS512",
            |s| hs(s, "HS512"),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 17: alg missing",
            |s| drop(s.header.remove("alg")),
            Some((400, IR, msg::ALG)),
        ),
        r(
            "alg none",
            |s| {
                set(&mut s.header, "alg", json!("none"));
                s.sig = Sig::Empty;
            },
            Some((400, IR, msg::ALG)),
        ),
        r(
            "row 18: kid missing",
            |s| drop(s.header.remove("kid")),
            Some((400, IR, msg::KID_MISSING)),
        ),
        r(
            "row 18: kid empty",
            |s| set(&mut s.header, "kid", json!("")),
            Some((400, IR, msg::KID_MISSING)),
        ),
        r(
            "row 19: kid not in the app JWKS",
            |s| set(&mut s.header, "kid", json!("test-2")),
            Some((401, IR, msg::KID_UNKNOWN)),
        ),
        r(
            "row 20: typ invalid",
            |s| set(&mut s.header, "typ", json!("invalid")),
            Some((400, IR, msg::TYP)),
        ),
        r(
            "row 21: typ absent",
            |s| drop(s.header.remove("typ")),
            Some((400, IR, msg::TYP)),
        ),
        r(
            "row 22: typ jwt lower case accepted",
            |s| set(&mut s.header, "typ", json!("jwt")),
            None,
        ),
        r(
            "row 23: unknown API key",
            |s| {
                set(&mut s.claims, "iss", json!("unknown"));
                set(&mut s.claims, "sub", json!("unknown"));
            },
            Some((401, IR, msg::ISS_SUB_UNKNOWN)),
        ),
        r(
            "row 24: sub differs from iss",
            |s| set(&mut s.claims, "sub", json!("invalid")),
            Some((400, IR, msg::ISS_SUB)),
        ),
        r(
            "row 25: sub missing",
            |s| drop(s.claims.remove("sub")),
            Some((400, IR, msg::ISS_SUB)),
        ),
        r(
            "row 26: iss differs from sub",
            |s| set(&mut s.claims, "iss", json!("invalid")),
            Some((400, IR, msg::ISS_SUB)),
        ),
        r(
            "row 27: iss missing",
            |s| drop(s.claims.remove("iss")),
            Some((400, IR, msg::ISS_SUB)),
        ),
        r(
            "row 28: jti an integer",
            |s| set(&mut s.claims, "jti", json!(1234567890)),
            Some((400, IR, msg::JTI_INVALID)),
        ),
        r(
            "row 29: jti missing",
            |s| drop(s.claims.remove("jti")),
            Some((400, IR, msg::JTI_MISSING)),
        ),
        r(
            "row 30: jti empty string",
            |s| set(&mut s.claims, "jti", json!("")),
            Some((400, IR, msg::JTI_MISSING)),
        ),
        r(
            "row 32: aud wrong",
            |s| {
                set(
                    &mut s.claims,
                    "aud",
                    json!("https://int.api.service.nhs.uk/oauth2"),
                )
            },
            Some((401, IR, msg::AUD)),
        ),
        r(
            "row 32: aud with trailing slash",
            |s| set(&mut s.claims, "aud", json!(format!("{TOKEN_URL}/"))),
            Some((401, IR, msg::AUD)),
        ),
        r(
            "row 33: aud missing",
            |s| drop(s.claims.remove("aud")),
            Some((401, IR, msg::AUD)),
        ),
        r(
            "row 34: exp a numeric string in the future",
            |s| set(&mut s.claims, "exp", json!((NOW_SECS + 300).to_string())),
            Some((400, IR, msg::EXP_NOT_INTEGER)),
        ),
        r(
            "row 35: exp 20 s in the past",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 20)),
            Some((400, IR, msg::EXPIRED)),
        ),
        r(
            "row 35: zero leeway on expiry",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS - 1)),
            Some((400, IR, msg::EXPIRED)),
        ),
        r(
            "exp equal to now accepted",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS)),
            None,
        ),
        r(
            "row 36: exp now + 360",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS + 360)),
            Some((400, IR, msg::EXP_TOO_FAR)),
        ),
        r(
            "row 36: exp now + 311",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS + 311)),
            Some((400, IR, msg::EXP_TOO_FAR)),
        ),
        r(
            "row 37: exp now + 305 accepted",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS + 305)),
            None,
        ),
        r(
            "exp now + 310 accepted",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS + 310)),
            None,
        ),
        r(
            "exp as a float passes the type check",
            |s| set(&mut s.claims, "exp", json!(NOW_SECS as f64 + 100.5)),
            None,
        ),
        r(
            "row 38: exp missing",
            |s| drop(s.claims.remove("exp")),
            Some((400, IR, msg::EXP_MISSING)),
        ),
        r(
            "row 39: no registered public key",
            |s| s.emu.app = AppKeys::NoJwksUrl,
            Some((403, PK, msg::NO_PUBLIC_KEY)),
        ),
        r(
            "row 40: JWKS endpoint unreachable",
            |s| s.emu.app = AppKeys::Unreachable,
            Some((403, PK, msg::JWKS_UNREACHABLE)),
        ),
        r(
            "row 41: JWKS has the kid with a different key",
            |s| {
                s.emu.app = AppKeys::Jwks(vec![KeyEntry::new(
                    Some("test-1".into()),
                    keys().rsa2.public_key().clone(),
                )])
            },
            Some((401, PK, msg::BAD_SIGNATURE)),
        ),
        r(
            "row 47: header RS512, signed RS256",
            |s| s.sig = Sig::Key(&keys().rsa1, Algorithm::Rs256),
            Some((401, PK, msg::BAD_SIGNATURE)),
        ),
        r(
            "row 47: tampered payload",
            |s| s.sig = Sig::Tampered(&keys().rsa1, Algorithm::Rs512),
            Some((401, PK, msg::BAD_SIGNATURE)),
        ),
        r(
            "row 46 (I): nbf beyond the 10 s allowance",
            |s| set(&mut s.claims, "nbf", json!(NOW_SECS + 11)),
            Some((401, "unknown_error", msg::UNKNOWN_ERROR)),
        ),
        r(
            "row 46 (I): exp before the JS Date range refused by VerifyJWT (-1e13)",
            |s| set(&mut s.claims, "exp", json!(-1e13)),
            Some((401, "unknown_error", msg::UNKNOWN_ERROR)),
        ),
        r(
            "row 46 (I): exp far before the JS Date range refused by VerifyJWT (-1e300)",
            |s| set(&mut s.claims, "exp", json!(-1e300)),
            Some((401, "unknown_error", msg::UNKNOWN_ERROR)),
        ),
        r(
            "iat and nbf within the allowance accepted",
            |s| {
                set(&mut s.claims, "iat", json!(NOW_SECS + 10));
                set(&mut s.claims, "nbf", json!(NOW_SECS));
            },
            None,
        ),
        r(
            "jku header ignored",
            |s| set(&mut s.header, "jku", json!("https://attacker.example/jwks")),
            None,
        ),
        r(
            "client_id and scope fields ignored",
            |s| {
                s.body = Some(
                    "grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion={}&client_id=other&scope=x",
                )
            },
            None,
        ),
        // ---- order quirks (§2.1 "consequences worth testing") ----
        r(
            "order: expired without kid gives the expired error",
            |s| {
                s.header.remove("kid");
                set(&mut s.claims, "exp", json!(NOW_SECS - 20));
            },
            Some((400, IR, msg::EXPIRED)),
        ),
        r(
            "order: exp numeric string in the past gives expired",
            |s| set(&mut s.claims, "exp", json!((NOW_SECS - 20).to_string())),
            Some((400, IR, msg::EXPIRED)),
        ),
        r(
            "order: alg before expired",
            |s| {
                rsa_alg(s, Algorithm::Rs256);
                set(&mut s.claims, "exp", json!(NOW_SECS - 20));
            },
            Some((400, IR, msg::ALG)),
        ),
        r(
            "order: kid before typ",
            |s| {
                s.header.remove("kid");
                s.header.remove("typ");
            },
            Some((400, IR, msg::KID_MISSING)),
        ),
        r(
            "order: typ before exp missing",
            |s| {
                s.header.remove("typ");
                s.claims.remove("exp");
            },
            Some((400, IR, msg::TYP)),
        ),
        r(
            "order: iss/sub before jti",
            |s| {
                s.claims.remove("sub");
                s.claims.remove("jti");
            },
            Some((400, IR, msg::ISS_SUB)),
        ),
        r(
            "order: jti type before far future",
            |s| {
                set(&mut s.claims, "jti", json!(5));
                set(&mut s.claims, "exp", json!(NOW_SECS + 1000));
            },
            Some((400, IR, msg::JTI_INVALID)),
        ),
        r(
            "order: kid lookup before signature",
            |s| {
                set(&mut s.header, "kid", json!("test-2"));
                s.sig = Sig::Tampered(&keys().rsa1, Algorithm::Rs512);
            },
            Some((401, IR, msg::KID_UNKNOWN)),
        ),
        r(
            "order: signature before aud",
            |s| {
                set(&mut s.claims, "aud", json!("https://wrong.example"));
                s.sig = Sig::Tampered(&keys().rsa1, Algorithm::Rs512);
            },
            Some((401, PK, msg::BAD_SIGNATURE)),
        ),
        r(
            "order: unknown app before JWKS",
            |s| {
                set(&mut s.claims, "iss", json!("unknown"));
                set(&mut s.claims, "sub", json!("unknown"));
                s.emu.app = AppKeys::NoJwksUrl;
            },
            Some((401, IR, msg::ISS_SUB_UNKNOWN)),
        ),
    ]
}

#[test]
fn nhs_reference_table() {
    let mut failures = Vec::new();
    for row in rows() {
        let mut setup = Setup::good();
        (row.tweak)(&mut setup);
        let (token, result) = setup.run();
        match (&result, row.expect) {
            (Ok(v), None) => assert_eq!(v.client_id, API_KEY, "{}", row.rule),
            (Err(rej), Some((status, error, description))) => {
                if (rej.status, rej.error.as_ref(), rej.description.as_ref())
                    != (status, error, description)
                {
                    failures.push(format!(
                        "{}: expected {status} {error} {description:?}, got {rej}",
                        row.rule
                    ));
                }
                assert_no_token_in(&rej.description, &token);
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
fn exact_strings_match_the_reference() {
    // Character for character, from docs/nhs-token-endpoint.md §2.2 (independent of the constants
    // above).
    let table = [
        (
            msg::CONTENT_TYPE,
            "Content-Type header must be application/x-www-form-urlencoded",
        ),
        (
            msg::ASSERTION_TYPE,
            "Missing or invalid client_assertion_type - must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
        ),
        (
            msg::ALG,
            "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
        ),
        (
            msg::KID_UNKNOWN,
            "Invalid 'kid' header in client_assertion JWT - no matching public key",
        ),
        (
            msg::ISS_SUB,
            "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT",
        ),
        (
            msg::JTI_REPLAYED,
            "Non-unique 'jti' claim in client_assertion JWT",
        ),
        (
            msg::EXP_TOO_FAR,
            "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future",
        ),
        (
            msg::JWKS_UNREACHABLE,
            "The JWKS endpoint, for your client_assertion can't be reached",
        ),
        (
            msg::NO_PUBLIC_KEY,
            "You need to register a public key to use this authentication method - please contact support to configure",
        ),
    ];
    for (ours, reference) in table {
        assert_eq!(ours, reference);
    }
    let v = NhsValidator::new(NhsConfig::new(TOKEN_URL));
    let r = v.unauthorized_client();
    assert_eq!((r.status, r.error.as_ref()), (401, "unauthorized_client"));
    assert_eq!(
        r.description,
        "you have tried to request authorization but your application is not configured to use this authorization grant type"
    );
}

#[test]
fn row_31_replayed_jti() {
    let mut setup = Setup::good();
    let (_, first) = setup.run();
    first.expect("first request succeeds");
    let (_, second) = setup.run();
    let rej = second.expect_err("replay refused");
    assert_eq!(
        (
            rej.status,
            rej.error.as_ref(),
            rej.description.as_ref(),
            rej.reason
        ),
        (400, IR, msg::JTI_REPLAYED, Reason::Replayed)
    );
}

#[test]
fn same_jti_under_another_sub_is_not_a_replay() {
    let mut setup = Setup::good();
    setup.run().1.expect("first");
    set(&mut setup.claims, "iss", json!("other-app"));
    set(&mut setup.claims, "sub", json!("other-app"));
    let rej = setup.run().1.expect_err("unknown app");
    assert_eq!(rej.description, msg::ISS_SUB_UNKNOWN);
}

#[test]
fn far_future_with_replayed_jti_gives_the_jti_error() {
    let mut setup = Setup::good();
    setup.run().1.expect("first");
    set(&mut setup.claims, "exp", json!(NOW_SECS + 1000));
    assert_eq!(
        setup.run().1.expect_err("refused").description,
        msg::JTI_REPLAYED
    );
}

#[test]
fn jti_is_burnt_by_later_failures_but_not_by_claim_failures() {
    // Fails at aud (after the jti was recorded): a retry with the same jti is a replay.
    let mut setup = Setup::good();
    set(&mut setup.claims, "aud", json!("https://wrong.example"));
    assert_eq!(setup.run().1.expect_err("aud").description, msg::AUD);
    set(&mut setup.claims, "aud", json!(TOKEN_URL));
    assert_eq!(
        setup.run().1.expect_err("burnt").description,
        msg::JTI_REPLAYED
    );

    // Fails at typ (before the jti is recorded): the fixed retry with the same jti succeeds.
    let mut setup = Setup::good();
    setup.header.remove("typ");
    assert_eq!(setup.run().1.expect_err("typ").description, msg::TYP);
    set(&mut setup.header, "typ", json!("JWT"));
    setup.run().1.expect("not burnt");
}

#[test]
fn pending_and_verified_fields() {
    let setup = Setup::good();
    let v = NhsValidator::new(NhsConfig::new(TOKEN_URL));
    let token = setup.token();
    let form = v
        .parse_form(Some(FORM_CT), body(&token).as_bytes())
        .expect("form");
    let pending = v.precheck(&form, now()).expect("precheck");
    assert_eq!(pending.sub(), API_KEY);
    assert_eq!(pending.jti(), "0b3c5a52-6f0e-4d4c-9d1b-3c9c3d1d7e11");
    assert_eq!(pending.exp().as_secs(), NOW_SECS + 300);
    assert_eq!(pending.kid(), Some("test-1"));
    assert!(!pending.far_future());
    assert_no_token_in(&format!("{pending:?}"), &token);
    let keys = vec![KeyEntry::new(
        Some("test-1".into()),
        keys().rsa1.public_key().clone(),
    )];
    let verified = v.verify(&pending, &keys).expect("verified");
    assert_eq!(verified.scope, None);
    assert_eq!(verified.exp, UnixTime::from_secs(NOW_SECS + 300));
}

#[test]
fn percent_encoded_assertion_in_the_body_is_decoded() {
    let mut setup = Setup::good();
    let token = setup.token();
    let encoded: String = token.replace('.', "%2E");
    let body = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={encoded}"
    );
    setup
        .emu
        .post(Some(FORM_CT), &body, now())
        .expect("accepted");
}
