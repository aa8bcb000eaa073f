//! `m2m decode`: shows a JWT's header and claims with human-readable times, and with `--lint`
//! every rule a token endpoint would refuse the assertion for (m2m_core::validate::lint).

use std::io::Read as _;

use m2m_core::clock::{Clock as _, SystemClock, UnixTime};
use m2m_core::jws::UnverifiedJws;
use m2m_core::nhs::Environment;
use m2m_core::validate::{Finding, LintContext, LintProfile, lint};
use serde_json::{Map, Value, json};

use crate::cli::{DecodeArgs, LintArg};
use crate::commands::print_result;
use crate::config_file::load_profile;
use crate::exit::{CliError, CliResult};
use crate::times;

/// Claims holding NumericDate values (RFC 7519 §4.1.4-6, OIDC `auth_time`).
const TIME_CLAIMS: [&str; 4] = ["iat", "nbf", "exp", "auth_time"];

/// Runs `m2m decode`.
pub(crate) fn run(args: &DecodeArgs) -> CliResult {
    let token = read_token(&args.jwt)?;
    let now = SystemClock.now();
    let decoded = decoded_value(&token, now)?;
    if !args.json {
        print_result(&pretty(&decoded)?)?;
    }

    let Some(profile) = args.lint else {
        return Ok(());
    };
    let config = load_profile(args.profile.as_deref())?;
    let env = args
        .env
        .as_deref()
        .or(if args.token_url.is_none() {
            config.env.as_deref()
        } else {
            None
        })
        .map(str::parse::<Environment>)
        .transpose()?;
    let token_url = args
        .token_url
        .clone()
        .or_else(|| env.map(|e| e.token_url().to_owned()))
        .or(config.token_url);
    let issuer = args.issuer.clone().or(config.issuer);
    let (lint_profile, name) = match profile {
        LintArg::Nhs => (LintProfile::Nhs, "nhs"),
        LintArg::Rfc => (LintProfile::Rfc, "rfc"),
    };
    if token_url.is_none() && issuer.is_none() {
        eprintln!("note: no --token-url/--env/--issuer given, so the aud rule is not checked");
    }
    let ctx = LintContext {
        profile: lint_profile,
        token_url: token_url.as_deref(),
        issuer: issuer.as_deref(),
        now,
    };
    let findings = lint(&token, &ctx);
    if args.json {
        print_result(&pretty(&with_lint(decoded, name, &findings))?)?;
    }
    if findings.is_empty() {
        eprintln!(
            "lint ({name}): no problems found (the signature, client and jti are not checked)"
        );
        return Ok(());
    }
    if !args.json {
        for f in &findings {
            eprintln!("{}: {}", f.rule, f.message);
        }
    }
    Err(CliError::findings(format!(
        "the assertion breaks {} {name} rule{}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    )))
}

/// Header, claims and human-readable times of `token` as pretty JSON (also used by `m2m demo`).
pub(crate) fn decoded_text(token: &str, now: UnixTime) -> CliResult<String> {
    pretty(&decoded_value(token, now)?)
}

/// `decoded` with a `lint` member: `{profile, ok, findings: [{rule, message}]}` (`decode --json`).
fn with_lint(mut decoded: Value, profile: &str, findings: &[Finding]) -> Value {
    let findings: Vec<Value> = findings
        .iter()
        .map(|f| json!({"rule": f.rule, "message": f.message}))
        .collect();
    if let Value::Object(map) = &mut decoded {
        map.insert(
            "lint".to_owned(),
            json!({"profile": profile, "ok": findings.is_empty(), "findings": findings}),
        );
    }
    decoded
}

fn pretty(value: &Value) -> CliResult<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::local(format!("cannot encode JSON: {e}")))
}

/// Header, claims and human-readable times of `token`.
fn decoded_value(token: &str, now: UnixTime) -> CliResult<Value> {
    let jws = UnverifiedJws::parse(token).map_err(|e| {
        CliError::usage(format!("{e}"))
            .with_hint("pass the whole JWT: three base64url parts separated by dots")
    })?;
    let claims = jws
        .claims()
        .map_err(|e| CliError::usage(format!("the JWT payload is not a JSON object: {e}")))?;
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    Ok(json!({
        "header": Value::Object(jws.header().clone()),
        "claims": Value::Object(claims.clone()),
        "_times": Value::Object(human_times(&claims, now_secs)),
    }))
}

/// The token argument, or stdin for `-` (also `m2m verify`'s input).
pub(crate) fn read_token(arg: &str) -> CliResult<String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| CliError::usage(format!("cannot read the JWT from stdin: {e}")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::usage("no JWT given (argument or stdin)"));
    }
    Ok(token.to_owned())
}

fn human_times(claims: &Map<String, Value>, now: i64) -> Map<String, Value> {
    let mut out = Map::new();
    for name in TIME_CLAIMS {
        if let Some(secs) = claims.get(name).and_then(Value::as_i64) {
            out.insert(name.to_owned(), Value::String(times::describe(secs, now)));
        }
    }
    if let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) {
        out.insert(
            "lifetime".to_owned(),
            Value::String(format!("{}s", exp - iat)),
        );
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        out.insert("expired".to_owned(), Value::Bool(exp <= now));
    }
    out
}
