//! Fuzzes the assertion validator end to end: `RfcValidator::precheck` + `verify` against a fixed
//! client with three fixed keys, `NhsValidator::precheck` + `verify`, and `lint` (both profiles),
//! on arbitrary forms, arbitrary assertions, and assertions the target signs itself over
//! fuzzer-chosen headers and claims (so the rules after the signature check are reached too).
//!
//! No panic, and no `Ok` for garbage: whenever a validator accepts, an independent oracle
//! re-checks the signature with aws-lc-rs directly and the claims with serde_json, and the target
//! aborts if either disagrees. Refusal texts and lint findings never echo the signature.
//!
//! Input: byte 0 = mode. Bits 0–1: 0 = the rest is a form body; 1 = the rest is an assertion;
//! 2/3 = sign: the rest is `header-json \n claims-json`, signed with the key/alg of bits 2–4.
//! Bit 5: send `client_id=fuzz-client`; bit 6: opaque errors; bit 7: legacy token-URL audience.
#![no_main]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use m2m_core::alg::Algorithm;
use m2m_core::jws::sign_compact;
use m2m_core::validate::{
    AudienceMode, ClientKeys, FORM_MEDIA_TYPE, GRANT_CLIENT_CREDENTIALS, JWT_BEARER_ASSERTION_TYPE,
    LintContext, LintProfile, NhsConfig, NhsValidator, Rejection, RfcConfig, RfcValidator,
    TokenForm, lint, parse_token_form,
};
use m2m_fuzz::{
    ALLOWED_ALGS, CLIENT_ID, ISSUER, KEYS, NOW_SECS, REGISTERED, TOKEN_URL, now,
    signature_really_verifies, split_lines,
};
use serde_json::{Map, Value};

/// Which fixed key signs under which algorithm in sign mode (RS384 is deliberately not pinned).
const SIGNERS: [(usize, Algorithm); 8] = [
    (0, Algorithm::EdDsa),
    (1, Algorithm::Es256),
    (2, Algorithm::Rs512),
    (2, Algorithm::Ps256),
    (2, Algorithm::Rs256),
    (2, Algorithm::Rs384),
    (0, Algorithm::EdDsa),
    (1, Algorithm::Es256),
];

fn object(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The token's header and claims, decoded here without m2m-core.
fn decode(token: &str) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let mut parts = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let p = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    match (
        serde_json::from_slice(&h).ok()?,
        serde_json::from_slice(&p).ok()?,
    ) {
        (Value::Object(h), Value::Object(p)) => Some((h, p)),
        _ => None,
    }
}

fn secs(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|f| f.is_finite())
}

/// The signature segment must not be echoed in any refusal or finding. Only a segment that could
/// not come from elsewhere counts: 32+ base64url characters (longer than any word of the fixed
/// messages), at most once in the raw input, and absent from the decoded header and claims.
fn assert_no_signature(input: &str, token: &str, text: &str, what: &str) {
    let Some((head, sig)) = token.rsplit_once('.') else {
        return;
    };
    let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if sig.len() < 32 || !sig.chars().all(b64url) || head.contains(sig) {
        return;
    }
    if input.matches(sig).count() > 1 || !text.contains(sig) {
        return;
    }
    if let Some((h, c)) = decode(token) {
        if format!("{h:?}{c:?}").contains(sig) {
            return;
        }
    }
    panic!("{what} echoes the assertion signature");
}

fn check_rejection(input: &str, token: Option<&str>, r: &Rejection) {
    assert!((400..600).contains(&r.status), "bad status {r:?}");
    let _ = (r.reason.as_str(), r.to_string());
    if let Some(t) = token {
        assert_no_signature(input, t, &r.description, "a refusal");
    }
}

fn rfc_oracle(token: &str, audience: AudienceMode, verified_jti: &str) {
    let (header, claims) = decode(token).expect("an accepted assertion decodes");
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .expect("accepted without alg");
    let parsed = Algorithm::from_name(alg).expect("accepted an unknown alg");
    assert!(
        ALLOWED_ALGS.contains(&parsed),
        "accepted unpinned alg {alg}"
    );
    assert!(
        signature_really_verifies(token, alg),
        "RfcValidator accepted a signature that none of the client's keys made"
    );
    let id = Some(&Value::String(CLIENT_ID.to_owned()));
    assert!(
        claims.get("iss") == id && claims.get("sub") == id,
        "accepted foreign iss/sub"
    );
    let aud_ok = |s: &str| {
        s == ISSUER || (audience == AudienceMode::DangerousLegacyTokenUrl && s == TOKEN_URL)
    };
    let aud_ok = match claims.get("aud") {
        Some(Value::String(s)) => aud_ok(s),
        Some(Value::Array(a)) if audience != AudienceMode::IssuerStringOnly => {
            matches!(a.as_slice(), [Value::String(s)] if aud_ok(s))
        }
        _ => false,
    };
    assert!(aud_ok, "accepted a foreign aud");
    let now = NOW_SECS as f64;
    let exp = secs(claims.get("exp")).expect("accepted without a numeric exp");
    assert!(now < exp + 10.0 && exp <= now + 310.0, "accepted exp {exp}");
    for name in ["iat", "nbf"] {
        if let Some(v) = claims.get(name) {
            let t = secs(Some(v)).expect("accepted a non-numeric time claim");
            assert!(t <= now + 10.0, "accepted {name} in the future");
        }
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .expect("accepted without jti");
    assert!(!jti.is_empty() && jti.len() <= 256 && jti == verified_jti);
}

fn run_rfc(input: &str, form: &TokenForm, mode: u8) {
    let mut config = RfcConfig::new(ISSUER, TOKEN_URL);
    config.opaque_errors = mode & 0x40 != 0;
    if mode & 0x80 != 0 {
        config.audience = AudienceMode::DangerousLegacyTokenUrl;
    }
    let audience = config.audience;
    let validator = RfcValidator::new(config);
    let token = form.client_assertion.as_deref();
    let pending = match validator.precheck(form) {
        Ok(p) => p,
        Err(r) => return check_rejection(input, token, &r),
    };
    let _ = (
        pending.subject(),
        pending.kid(),
        pending.form_client_id(),
        format!("{pending:?}"),
    );
    let client = ClientKeys {
        client_id: CLIENT_ID,
        allowed_algs: &ALLOWED_ALGS,
        keys: &REGISTERED,
    };
    match validator.verify(&pending, &client, now()) {
        Ok(v) => {
            let token = token.expect("accepted without an assertion");
            rfc_oracle(token, audience, &v.jti);
            assert_eq!(v.client_id, CLIENT_ID);
            if audience == AudienceMode::Issuer {
                let ctx = LintContext {
                    profile: LintProfile::Rfc,
                    token_url: Some(TOKEN_URL),
                    issuer: Some(ISSUER),
                    now: now(),
                };
                let findings = lint(token, &ctx);
                assert!(
                    findings.is_empty(),
                    "verify accepted what lint refuses: {findings:?}"
                );
            }
        }
        Err(r) => check_rejection(input, token, &r),
    }
    // One registered key, none matching: must refuse whatever the kid says.
    let single = [(None, KEYS[0].public().clone())];
    let lone = ClientKeys {
        client_id: CLIENT_ID,
        allowed_algs: &[Algorithm::EdDsa],
        keys: &single,
    };
    if validator.verify(&pending, &lone, now()).is_ok() {
        let token = token.expect("accepted without an assertion");
        assert!(
            signature_really_verifies(token, "EdDSA"),
            "lone-key client accepted garbage"
        );
    }
}

fn run_nhs(input: &str, form: &TokenForm) {
    let validator = NhsValidator::new(NhsConfig::new(TOKEN_URL));
    let token = form.client_assertion.as_deref();
    let pending = match validator.precheck(form, now()) {
        Ok(p) => p,
        Err(r) => return check_rejection(input, token, &r),
    };
    assert!(!pending.jti().is_empty() && !pending.sub().is_empty());
    let _ = (pending.exp(), pending.far_future(), format!("{pending:?}"));
    if pending.far_future() {
        check_rejection(input, token, &pending.far_future_rejection());
    }
    match validator.verify(&pending, &REGISTERED) {
        Ok(v) => {
            let token = token.expect("accepted without an assertion");
            let (header, claims) = decode(token).expect("an accepted assertion decodes");
            assert_eq!(header.get("alg").and_then(Value::as_str), Some("RS512"));
            assert!(
                signature_really_verifies(token, "RS512"),
                "NhsValidator accepted a signature that none of the keys made"
            );
            assert_eq!(claims.get("aud").and_then(Value::as_str), Some(TOKEN_URL));
            assert_eq!(v.jti, pending.jti());
        }
        Err(r) => check_rejection(input, token, &r),
    }
}

fn run_lint(input: &str, token: &str) {
    for profile in [LintProfile::Nhs, LintProfile::Rfc] {
        let ctx = LintContext {
            profile,
            token_url: Some(TOKEN_URL),
            issuer: Some(ISSUER),
            now: now(),
        };
        for f in lint(token, &ctx) {
            assert_no_signature(input, token, &f.message, "a lint finding");
        }
    }
}

fn form_for(token: String, mode: u8) -> TokenForm {
    TokenForm {
        grant_type: Some(GRANT_CLIENT_CREDENTIALS.to_owned()),
        client_assertion_type: Some(JWT_BEARER_ASSERTION_TYPE.to_owned()),
        client_assertion: Some(token),
        client_id: (mode & 0x20 != 0).then(|| CLIENT_ID.to_owned()),
        ..TokenForm::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = String::from_utf8_lossy(rest);
    match mode & 3 {
        0 => {
            if let Ok(form) = parse_token_form(Some(FORM_MEDIA_TYPE), None, rest, false) {
                run_rfc(&input, &form, mode);
            }
            let nhs = NhsValidator::new(NhsConfig::new(TOKEN_URL));
            if let Ok(form) = nhs.parse_form(Some(FORM_MEDIA_TYPE), rest) {
                run_nhs(&input, &form);
                if let Some(t) = form.client_assertion.as_deref() {
                    run_lint(&input, t);
                }
            }
        }
        1 => {
            let token = String::from_utf8_lossy(rest).into_owned();
            run_lint(&input, &token);
            let form = form_for(token, mode);
            run_rfc(&input, &form, mode);
            run_nhs(&input, &form);
        }
        _ => {
            let (lines, claims) = split_lines(rest, 1);
            let header = object(lines[0].as_deref().unwrap_or("").as_bytes());
            let claims = object(claims);
            let (key, alg) = SIGNERS[usize::from(mode >> 2 & 7)];
            let Some(signer) = KEYS[key].signer(alg) else {
                return;
            };
            let Ok(token) = sign_compact(&header, &claims, &signer) else {
                return;
            };
            run_lint(&input, &token);
            let form = form_for(token, mode);
            run_rfc(&input, &form, mode);
            run_nhs(&input, &form);
        }
    }
    let _ = Duration::ZERO;
});
