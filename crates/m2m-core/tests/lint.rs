//! `lint`: every rule at once, per profile, with descriptions and fix hints; never panics.

mod support;

use m2m_core::alg::Algorithm;
use m2m_core::validate::{
    Finding, LintContext, LintProfile, NhsConfig, NhsValidator, Reason, RfcConfig, RfcValidator,
    lint, nhs::messages as msg,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use support::validate::{NOW_SECS, Sig, encode, keys, now, obj};

const TOKEN_URL: &str = "https://int.api.service.nhs.uk/oauth2/token";
const ISSUER: &str = "https://as.example.com";

fn nhs_ctx() -> LintContext<'static> {
    LintContext {
        profile: LintProfile::Nhs,
        token_url: Some(TOKEN_URL),
        issuer: None,
        now: now(),
    }
}

fn rfc_ctx() -> LintContext<'static> {
    LintContext {
        profile: LintProfile::Rfc,
        token_url: None,
        issuer: Some(ISSUER),
        now: now(),
    }
}

fn nhs_good() -> (Map<String, Value>, Map<String, Value>) {
    (
        obj(json!({"alg": "RS512", "typ": "JWT", "kid": "test-1"})),
        obj(
            json!({"iss": "key", "sub": "key", "jti": "j-1", "aud": TOKEN_URL, "exp": NOW_SECS + 300}),
        ),
    )
}

fn reasons(findings: &[Finding]) -> Vec<Reason> {
    findings.iter().map(|f| f.reason).collect()
}

fn lint_nhs(header: &Map<String, Value>, claims: &Map<String, Value>) -> Vec<Finding> {
    lint(
        &encode(header, claims, Sig::Key(&keys().rsa1, Algorithm::Rs512)),
        &nhs_ctx(),
    )
}

#[test]
fn clean_tokens_have_no_findings() {
    let (h, c) = nhs_good();
    assert_eq!(lint_nhs(&h, &c), vec![]);
    let h = obj(json!({"alg": "ES256", "typ": "client-authentication+jwt", "kid": "ec"}));
    let c = obj(
        json!({"iss": "c", "sub": "c", "aud": ISSUER, "jti": "j", "iat": NOW_SECS, "exp": NOW_SECS + 60}),
    );
    let t = encode(&h, &c, Sig::Key(&keys().ec, Algorithm::Es256));
    assert_eq!(lint(&t, &rfc_ctx()), vec![]);
}

/// One row per NHS header/claim rule: the rule fires alone, with the exact NHS description.
#[test]
fn nhs_rule_table() {
    type Tweak = fn(&mut Map<String, Value>, &mut Map<String, Value>);
    let rows: Vec<(&str, Tweak, Reason, &str)> = vec![
        (
            "alg",
            |h, _| drop(h.insert("alg".into(), json!("RS256"))),
            Reason::AlgRefused,
            msg::ALG,
        ),
        (
            "expired",
            |_, c| drop(c.insert("exp".into(), json!(NOW_SECS - 20))),
            Reason::Expired,
            msg::EXPIRED,
        ),
        (
            "kid_missing",
            |h, _| drop(h.remove("kid")),
            Reason::KidMissing,
            msg::KID_MISSING,
        ),
        (
            "typ",
            |h, _| drop(h.remove("typ")),
            Reason::TypInvalid,
            msg::TYP,
        ),
        (
            "exp_missing",
            |_, c| drop(c.remove("exp")),
            Reason::ExpMissing,
            msg::EXP_MISSING,
        ),
        (
            "exp_invalid",
            |_, c| drop(c.insert("exp".into(), json!((NOW_SECS + 60).to_string()))),
            Reason::ExpInvalid,
            msg::EXP_NOT_INTEGER,
        ),
        (
            "iss_sub",
            |_, c| drop(c.insert("iss".into(), json!("other"))),
            Reason::IssSubInvalid,
            msg::ISS_SUB,
        ),
        (
            "jti_missing",
            |_, c| drop(c.remove("jti")),
            Reason::JtiMissing,
            msg::JTI_MISSING,
        ),
        (
            "jti_invalid",
            |_, c| drop(c.insert("jti".into(), json!(7))),
            Reason::JtiInvalid,
            msg::JTI_INVALID,
        ),
        (
            "exp_too_far",
            |_, c| drop(c.insert("exp".into(), json!(NOW_SECS + 360))),
            Reason::ExpTooFar,
            msg::EXP_TOO_FAR,
        ),
        (
            "aud",
            |_, c| drop(c.insert("aud".into(), json!("https://int.api.service.nhs.uk/oauth2"))),
            Reason::AudInvalid,
            msg::AUD,
        ),
        (
            "nbf_future",
            |_, c| drop(c.insert("nbf".into(), json!(NOW_SECS + 60))),
            Reason::NbfFuture,
            msg::UNKNOWN_ERROR,
        ),
    ];
    for (rule, tweak, reason, description) in rows {
        let (mut h, mut c) = nhs_good();
        tweak(&mut h, &mut c);
        let findings = lint_nhs(&h, &c);
        assert_eq!(reasons(&findings), vec![reason], "{rule}: {findings:?}");
        assert_eq!(findings[0].rule, reason.as_str());
        assert!(
            findings[0].message.starts_with(description),
            "{rule}: {}",
            findings[0].message
        );
        assert!(
            findings[0].message.contains("Fix: "),
            "{rule}: {}",
            findings[0].message
        );
    }
}

#[test]
fn nhs_reports_every_finding_without_short_circuit() {
    let h = obj(json!({"alg": "RS256"}));
    let c = obj(
        json!({"iss": "a", "sub": "b", "jti": 5, "exp": (NOW_SECS - 20).to_string(), "aud": "https://x"}),
    );
    let t = encode(&h, &c, Sig::Key(&keys().rsa1, Algorithm::Rs256));
    let got = reasons(&lint(&t, &nhs_ctx()));
    assert_eq!(
        got,
        vec![
            Reason::AlgRefused,
            Reason::Expired,
            Reason::KidMissing,
            Reason::TypInvalid,
            Reason::ExpInvalid,
            Reason::IssSubInvalid,
            Reason::JtiInvalid,
            Reason::AudInvalid,
        ]
    );
}

#[test]
fn nhs_without_token_url_skips_aud() {
    let (h, mut c) = nhs_good();
    c.remove("aud");
    let t = encode(&h, &c, Sig::Key(&keys().rsa1, Algorithm::Rs512));
    let ctx = LintContext {
        token_url: None,
        ..nhs_ctx()
    };
    assert_eq!(lint(&t, &ctx), vec![]);
}

#[test]
fn rfc_reports_every_finding() {
    let h = obj(json!({"alg": "HS256", "typ": "at+jwt", "crit": ["x"]}));
    let c = obj(
        json!({"iss": "a", "sub": "b", "aud": [ISSUER, "https://other"], "exp": NOW_SECS + 4000,
                       "iat": NOW_SECS + 100, "nbf": "soon", "jti": ""}),
    );
    let t = encode(&h, &c, Sig::Hs256(b"k"));
    let got = reasons(&lint(&t, &rfc_ctx()));
    assert_eq!(
        got,
        vec![
            Reason::AlgRefused,
            Reason::CritRefused,
            Reason::TypInvalid,
            Reason::KidMissing,
            Reason::IssSubInvalid,
            Reason::AudInvalid,
            Reason::ExpTooFar,
            Reason::IatFuture,
            Reason::NbfInvalid,
            Reason::JtiInvalid,
        ]
    );
}

#[test]
fn rfc_with_only_a_token_url_checks_aud_against_it() {
    let url = "https://as.example.com/token";
    let h = obj(json!({"alg": "RS256", "kid": "k"}));
    let c = obj(json!({"iss": "c", "sub": "c", "aud": url, "jti": "j", "exp": NOW_SECS + 60}));
    let t = encode(&h, &c, Sig::Key(&keys().rsa1, Algorithm::Rs256));
    let ctx = LintContext {
        token_url: Some(url),
        issuer: None,
        ..rfc_ctx()
    };
    assert_eq!(lint(&t, &ctx), vec![]);
    let got = lint(&t, &rfc_ctx());
    assert_eq!(reasons(&got), vec![Reason::AudInvalid]);
    assert!(got[0].message.contains(ISSUER));
}

#[test]
fn malformed_tokens_give_one_finding() {
    for profile in [LintProfile::Nhs, LintProfile::Rfc] {
        let ctx = LintContext {
            profile,
            ..nhs_ctx()
        };
        for token in [
            "",
            "invalid",
            "a.b",
            "a.b.c.d",
            "eyJhbGciOiJSUzUxMiJ9.bm90IGpzb24.c2ln",
        ] {
            let got = lint(token, &ctx);
            assert_eq!(
                reasons(&got),
                vec![Reason::Malformed],
                "{profile:?} {token:?}"
            );
        }
    }
    let nhs = lint("invalid", &nhs_ctx());
    assert!(nhs[0].message.starts_with(msg::MALFORMED));
}

#[test]
fn oversized_rfc_token_is_reported_and_still_linted() {
    let h = obj(json!({"alg": "RS256", "kid": "k"}));
    let c = obj(
        json!({"iss": "c", "sub": "c", "aud": ISSUER, "jti": "j", "exp": NOW_SECS + 60, "pad": "x".repeat(9000)}),
    );
    let t = encode(&h, &c, Sig::Key(&keys().rsa1, Algorithm::Rs256));
    assert_eq!(
        reasons(&lint(&t, &rfc_ctx())),
        vec![Reason::AssertionTooLarge]
    );
}

proptest! {
    #[test]
    fn lint_never_panics_on_arbitrary_text(token in ".{0,300}", nhs in any::<bool>()) {
        let profile = if nhs { LintProfile::Nhs } else { LintProfile::Rfc };
        let _ = lint(&token, &LintContext { profile, ..nhs_ctx() });
    }

    #[test]
    fn lint_never_panics_on_arbitrary_json(
        header in arb_json(), claims in arb_json(), nhs in any::<bool>(),
    ) {
        let profile = if nhs { LintProfile::Nhs } else { LintProfile::Rfc };
        let h = m2m_core::jws::base64url_encode(header.to_string());
        let c = m2m_core::jws::base64url_encode(claims.to_string());
        let token = format!("{h}.{c}.c2ln");
        let _ = lint(&token, &LintContext { profile, issuer: Some(ISSUER), ..nhs_ctx() });
        // The validators' prechecks run the same rules and must not panic either.
        let form = support::validate::form(&token);
        let _ = NhsValidator::new(NhsConfig::new(TOKEN_URL)).precheck(&form, now());
        let _ = RfcValidator::new(RfcConfig::new(ISSUER, TOKEN_URL)).precheck(&form);
    }
}

/// JSON objects whose members are the claim/header names the rules read, with values of any type.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(Value::from(NOW_SECS.to_string())),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop::collection::vec(inner, 0..3).prop_map(Value::Array)
    });
    let names = prop::sample::select(vec![
        "alg", "typ", "kid", "crit", "iss", "sub", "aud", "exp", "iat", "nbf", "jti",
    ]);
    prop::collection::vec((names, value), 0..10).prop_map(|members| {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    })
}

/// The `aud` fix names what this lint expected: an INT assertion linted for prod is told prod's
/// token URL and environment, never a fixed INT example (which would be the mistake itself).
#[test]
fn aud_fix_names_the_environment_linted_against() {
    const PROD: &str = "https://api.service.nhs.uk/oauth2/token";
    let (h, c) = nhs_good(); // aud = INT's token URL
    let ctx = LintContext {
        token_url: Some(PROD),
        ..nhs_ctx()
    };
    let findings = lint(
        &encode(&h, &c, Sig::Key(&keys().rsa1, Algorithm::Rs512)),
        &ctx,
    );
    assert_eq!(reasons(&findings), vec![Reason::AudInvalid]);
    let m = &findings[0].message;
    assert!(
        m.contains(&format!("\"{PROD}\"")) && m.contains("prod"),
        "{m}"
    );
    assert!(!m.contains("int.api"), "{m}");

    let local = "http://127.0.0.1:9000/oauth2/token";
    let ctx = LintContext {
        token_url: Some(local),
        ..nhs_ctx()
    };
    let m = &lint(
        &encode(&h, &c, Sig::Key(&keys().rsa1, Algorithm::Rs512)),
        &ctx,
    )[0]
    .message;
    assert!(m.contains(local) && !m.contains("int.api"), "{m}");

    let h = obj(json!({"alg": "ES256", "typ": "client-authentication+jwt", "kid": "ec"}));
    let c = obj(
        json!({"iss": "c", "sub": "c", "aud": "https://elsewhere", "jti": "j", "iat": NOW_SECS, "exp": NOW_SECS + 60}),
    );
    let findings = lint(
        &encode(&h, &c, Sig::Key(&keys().ec, Algorithm::Es256)),
        &rfc_ctx(),
    );
    let m = &findings
        .iter()
        .find(|f| f.reason == Reason::AudInvalid)
        .expect("an aud finding")
        .message;
    assert!(m.contains(&format!("\"{ISSUER}\"")), "{m}");
}
