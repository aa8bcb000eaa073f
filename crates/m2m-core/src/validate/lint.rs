//! The linter behind `m2m decode --lint`: every rule a token endpoint would apply to an assertion
//! without its signature, registry or replay store — ALL findings, no short-circuit — running the
//! very rule functions the validators use.

use std::borrow::Cow;

use serde_json::Value;

use super::nhs::{self, NhsConfig, NhsValidator};
use super::rejection::{Reason, Rejection};
use super::rfc::{self, AudienceMode, RfcConfig, RfcValidator};
use super::rules::Parsed;
use crate::clock::UnixTime;
use crate::nhs::Environment;

/// Which token endpoint's rules to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintProfile {
    /// The NHS England API platform (exact NHS messages).
    Nhs,
    /// A generic RFC 7523 / RFC 10070 server (m2m's rfc profile with default settings).
    Rfc,
}

/// What the linter checks against.
#[derive(Clone, Copy, Debug)]
pub struct LintContext<'a> {
    /// The rules to apply.
    pub profile: LintProfile,
    /// The token URL the assertion is meant for (NHS: the required `aud`); `None` skips the `aud`
    /// rule unless `issuer` is set.
    pub token_url: Option<&'a str>,
    /// The issuer identifier (rfc profile: the required `aud`).
    pub issuer: Option<&'a str>,
    /// The time to judge `exp`/`iat`/`nbf` against.
    pub now: UnixTime,
}

/// One rule the token fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule's name (the [`Reason`] as snake_case).
    pub rule: &'static str,
    /// The endpoint's error description, followed by how to fix it.
    pub message: String,
    /// The machine-readable reason.
    pub reason: Reason,
}

/// Runs every rule of `ctx.profile` on `token` and returns all findings (empty: nothing a token
/// endpoint would refuse before checking the signature and the registry). Never panics.
pub fn lint(token: &str, ctx: &LintContext<'_>) -> Vec<Finding> {
    let token = token.trim();
    let mut out = Vec::new();
    let mut push = |r: Rejection| {
        let hint = hint(r.reason, ctx);
        let message = if hint.is_empty() {
            r.description.into_owned()
        } else {
            format!("{}. Fix: {hint}", r.description)
        };
        out.push(Finding {
            rule: r.reason.as_str(),
            message,
            reason: r.reason,
        });
    };
    match ctx.profile {
        LintProfile::Rfc => lint_rfc(token, ctx, &mut push),
        LintProfile::Nhs => lint_nhs(token, ctx, &mut push),
    }
    out
}

fn lint_rfc(token: &str, ctx: &LintContext<'_>, push: &mut dyn FnMut(Rejection)) {
    let (issuer, token_url) = match (ctx.issuer, ctx.token_url) {
        (Some(issuer), url) => (Some(issuer), url.unwrap_or_default()),
        // Only a token URL: judge `aud` against it, as a legacy server would.
        (None, Some(url)) => (Some(url), url),
        (None, None) => (None, ""),
    };
    let mut config = RfcConfig::new(issuer.unwrap_or_default(), token_url);
    config.set_audience(AudienceMode::Issuer);
    let v = RfcValidator::new(config);
    if let Err(r) = v.rule_size(token) {
        push(r);
    }
    let Some(parsed) = Parsed::parse(token) else {
        return push(Rejection::invalid_request(
            Reason::Malformed,
            rfc::MALFORMED_DESCRIPTION,
        ));
    };
    let (header, claims) = (parsed.header(), &parsed.claims);
    let mut check = |r: Result<(), Rejection>| {
        if let Err(r) = r {
            push(r);
        }
    };
    check(v.rule_alg(header).map(|_| ()));
    check(v.rule_crit(header));
    let sub = v.rule_sub(claims);
    let sub_ok = sub.is_ok();
    check(sub.map(|_| ()));
    check(v.rule_typ(header));
    if !header.contains_key("kid") {
        check(Err(Rejection::invalid_client(
            Reason::KidMissing,
            "assertion header has no 'kid': servers accept that only while the client has exactly one key",
        )));
    }
    if sub_ok {
        let client_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        check(v.rule_iss_sub(claims, client_id));
    }
    if issuer.is_some() {
        check(v.rule_aud(claims));
    }
    check(v.rule_exp(claims, ctx.now).map(|_| ()));
    check(v.rule_iat(claims, ctx.now));
    check(v.rule_nbf(claims, ctx.now));
    check(v.rule_jti(claims).map(|_| ()));
}

fn lint_nhs(token: &str, ctx: &LintContext<'_>, push: &mut dyn FnMut(Rejection)) {
    let v = NhsValidator::new(NhsConfig::new(ctx.token_url.unwrap_or_default()));
    let parsed = match v.rule_decode(Some(token)) {
        Ok(parsed) => parsed,
        Err(r) => return push(r),
    };
    let (header, claims) = (parsed.header(), &parsed.claims);
    for rule in nhs::HEADER_CLAIM_RULES {
        if let Some(r) = rule(header, claims, ctx.now) {
            push(r);
        }
    }
    if let Some(r) = nhs::rule_exp_too_far(header, claims, ctx.now) {
        push(r);
    }
    if ctx.token_url.is_some()
        && let Some(r) = v.rule_aud(claims)
    {
        push(r);
    }
    // VerifyJWT's own `exp` check repeats step 6.2 for every `exp` the JS `Date` can hold; the
    // linter reports a problem once, under the step that finds it first.
    let step_6_2_expired = nhs::HEADER_CLAIM_RULES
        .iter()
        .filter_map(|rule| rule(header, claims, ctx.now))
        .any(|r| r.reason == Reason::Expired);
    if let Some(r) = v.rule_time_allowance(claims, ctx.now)
        && !(step_6_2_expired && r.reason == Reason::Expired)
    {
        push(r);
    }
}

/// How to fix what `reason` complains about. The `aud` fix names the value this context expects
/// (the token URL linted against, with its NHS environment), never a fixed example: an INT URL
/// shown to someone linting for prod would be the very mistake being reported.
fn hint(reason: Reason, ctx: &LintContext<'_>) -> Cow<'static, str> {
    let nhs = ctx.profile == LintProfile::Nhs;
    match reason {
        Reason::AudInvalid => aud_hint(ctx).into(),
        other => static_hint(other, nhs).into(),
    }
}

/// The `aud` fix for `ctx`: the exact value expected, and for NHS which environment it is.
fn aud_hint(ctx: &LintContext<'_>) -> String {
    match ctx.profile {
        LintProfile::Nhs => {
            let url = ctx.token_url.unwrap_or_default();
            let env = Environment::ALL
                .into_iter()
                .find(|e| e.token_url() == url)
                .map(|e| format!(" (the NHS {} environment)", e.name()))
                .unwrap_or_default();
            format!(
                "set 'aud' to the exact token URL you POST to: \"{url}\"{env}; the token URL decides the environment"
            )
        }
        LintProfile::Rfc => match (ctx.issuer, ctx.token_url) {
            (Some(issuer), _) => format!(
                "set 'aud' to the authorization server's issuer identifier \"{issuer}\", a single JSON string (RFC 10070)"
            ),
            (None, Some(url)) => format!(
                "set 'aud' to the token URL \"{url}\" (or lint with --issuer for a server that wants its issuer identifier, RFC 10070)"
            ),
            (None, None) => "set 'aud' to the authorization server's issuer identifier, a single JSON string (RFC 10070)".to_owned(),
        },
    }
}

/// The fixes that do not depend on the context.
fn static_hint(reason: Reason, nhs: bool) -> &'static str {
    match reason {
        Reason::Malformed => {
            "an assertion is header.payload.signature, each part unpadded base64url, header and claims JSON objects"
        }
        Reason::AssertionTooLarge => {
            "keep the assertion small: no certificate chains or bulky custom claims"
        }
        Reason::AlgRefused if nhs => "sign with RS512 and an RSA key (NHS recommends 4096 bits)",
        Reason::AlgRefused => {
            "sign with the client's private key using RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA; \
             none and HS* are never accepted"
        }
        Reason::CritRefused => "remove the 'crit' header",
        Reason::TypInvalid if nhs => "set the header 'typ' to \"JWT\" (NHS requires it)",
        Reason::TypInvalid => {
            "set 'typ' to \"client-authentication+jwt\" (RFC 10070) or \"JWT\", or omit it"
        }
        Reason::KidMissing => {
            "set the header 'kid' to the kid of the public key registered for the client"
        }
        Reason::IssSubInvalid if nhs => {
            "set both 'iss' and 'sub' to the application's API key for this environment"
        }
        Reason::IssSubInvalid => "set both 'iss' and 'sub' to the client id",
        Reason::ExpMissing => "add 'exp' = now + lifetime, in seconds since the epoch",
        Reason::ExpInvalid => {
            "'exp' must be a JSON number of seconds since the epoch, not a string"
        }
        Reason::Expired => "mint a fresh assertion for every request and check the client's clock",
        Reason::ExpTooFar if nhs => {
            "use 'exp' = now + 300 at most (NHS allows 10 s of clock skew), in seconds, not milliseconds"
        }
        Reason::ExpTooFar => {
            "use a short lifetime ('exp' = now + 60 is m2m's default), in seconds, not milliseconds"
        }
        Reason::IatInvalid | Reason::NbfInvalid => {
            "'iat' and 'nbf' must be JSON numbers of seconds since the epoch"
        }
        Reason::IatFuture | Reason::NbfFuture => {
            "the client's clock is ahead: synchronise it (NTP)"
        }
        Reason::JtiMissing => "add a fresh random 'jti' (a UUIDv4 string) to every assertion",
        Reason::JtiInvalid => "'jti' must be a non-empty string (a UUIDv4), at most 256 bytes",
        _ => "",
    }
}
