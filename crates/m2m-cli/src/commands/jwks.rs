//! `m2m jwks`: merge public keys into one JWKS (rotation: new + old), refusing private members;
//! and `m2m jwks check URL`: fetch a hosted JWKS the way a token endpoint would and report what
//! it would dislike.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::key::{KeyKind, PublicKey};
use m2m_discovery::check::{Level, Report, check_jwks_url};
use m2m_discovery::{Error as DiscoveryError, HttpClient, UrlPolicy};

use crate::cli::{JwksArgs, JwksCommand};
use crate::commands::{print_result, runtime};
use crate::exit::{CliError, CliResult};
use crate::keyfile;

/// How long `jwks check` waits, like a token endpoint fetching a client's `jwks_uri`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `m2m jwks` or `m2m jwks check`.
pub(crate) fn run(args: &JwksArgs) -> CliResult {
    match &args.command {
        Some(JwksCommand::Check { url, json }) => check(url, *json),
        None => merge(args),
    }
}

fn merge(args: &JwksArgs) -> CliResult {
    if args.inputs.is_empty() {
        return Err(CliError::usage(
            "no input: pass public keys (PEM), private keys (PEM), JWK or JWKS files, or `check URL`",
        ));
    }
    let mut kids = args.kid.iter();
    let mut out = Jwks::default();
    for path in &args.inputs {
        for jwk in read_input(path, &mut kids, args.alg)? {
            out.keys.push(jwk);
        }
    }
    if kids.next().is_some() {
        return Err(CliError::usage(
            "more --kid values than PEM inputs (a --kid names a PEM key; JWKs keep their own kid)",
        ));
    }
    let mut seen = HashSet::new();
    for jwk in &out.keys {
        let kid = jwk.kid.as_deref().unwrap_or_default();
        if !seen.insert(kid.to_owned()) {
            return Err(CliError::local(format!(
                "duplicate kid \"{kid}\": token endpoints pick the key by kid, so each must be unique"
            ))
            .with_hint("give the new key another kid (m2m keygen --kid …, or --kid for a PEM input)"));
        }
    }
    out.ensure_public()?;
    let text = serde_json::to_string_pretty(&out)
        .map_err(|e| CliError::local(format!("cannot encode the JWKS: {e}")))?;
    print_result(&text)
}

/// The public JWKs in a JWKS, JWK or PEM file (for `m2m clients add --jwks`).
pub(crate) fn public_jwks_from_file(path: &Path) -> CliResult<Vec<Jwk>> {
    read_input(path, &mut std::iter::empty(), None)
}

/// The public JWKs from one input file.
fn read_input<'a>(
    path: &Path,
    kids: &mut impl Iterator<Item = &'a String>,
    alg: Option<Algorithm>,
) -> CliResult<Vec<Jwk>> {
    let bytes = zeroize::Zeroizing::new(keyfile::read_file(path, "file")?);
    let text = std::str::from_utf8(&bytes)
        .map(str::trim_start)
        .unwrap_or_default();
    let located = |e: m2m_core::Error| CliError::local(format!("{}: {e}", path.display()));
    if text.starts_with('{') {
        // One JWK or a JWKS: the same sniff the key loader uses (m2m_core::jwk).
        let (jwks, _) = Jwks::from_jwk_or_jwks(text.as_bytes()).map_err(located)?;
        let keys = jwks.keys;
        for jwk in &keys {
            jwk.ensure_public().map_err(|e| {
                CliError::local(format!("{}: {e}", path.display()))
                    .with_hint("refusing to publish a private key: pass the public JWKS (KID.jwks.json), not the private key")
            })?;
            // Parse the key so a broken member is found here, not by the token endpoint.
            PublicKey::from_jwk(jwk).map_err(located)?;
            if jwk.kid.as_deref().is_none_or(str::is_empty) {
                return Err(CliError::local(format!(
                    "{}: a JWK has no kid; token endpoints (NHS among them) select keys by kid",
                    path.display()
                )));
            }
        }
        return Ok(keys);
    }
    if text.starts_with("-----BEGIN") {
        let public = if text.contains("PRIVATE KEY-----") {
            keyfile::load_private_key(path, None)?.public_key().clone()
        } else {
            PublicKey::from_pem(text.as_bytes()).map_err(located)?
        };
        let mut jwk = public.to_jwk();
        jwk.kid = Some(kids.next().cloned().unwrap_or_else(|| public.thumbprint()));
        let alg = match alg {
            Some(a) => {
                public.kind().check(a).map_err(located)?;
                a
            }
            None => default_alg(public.kind()),
        };
        jwk.alg = Some(alg.name().to_owned());
        jwk.use_ = Some("sig".to_owned());
        return Ok(vec![jwk]);
    }
    Err(CliError::local(format!(
        "{}: not a PEM key, JWK or JWKS",
        path.display()
    )))
}

/// RSA keys get RS512 (what `m2m keygen` writes, and what NHS requires); others their curve's.
fn default_alg(kind: KeyKind) -> Algorithm {
    match kind {
        KeyKind::Rsa { .. } => Algorithm::Rs512,
        other => other.default_alg(),
    }
}

/// `m2m jwks check URL`: m2m-discovery fetches and analyses (the same URL policy, redirect
/// refusal and size cap as `m2m serve`'s JWKS fetcher); this prints the report and picks the
/// exit code.
fn check(url: &str, json: bool) -> CliResult {
    let parsed = url::Url::parse(url)
        .map_err(|e| CliError::local(format!("JWKS URL {url:?} is not a valid URL: {e}")))?;
    let policy = UrlPolicy::new();
    policy.check(&parsed).map_err(|e| match e {
        DiscoveryError::InsecureHttp { .. } => CliError::local(format!(
            "JWKS URL {url:?} uses plain http to a non-loopback host; token endpoints fetch JWKS over https only"
        )),
        other => CliError::local(format!("JWKS URL {url:?} refused: {other}")),
    })?;
    let http = HttpClient::with_user_agent(
        FETCH_TIMEOUT,
        concat!("m2m-jwks-check/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(|e| CliError::local(e.to_string()))?;
    let rt = runtime()?;
    let report = rt
        .block_on(check_jwks_url(&http, &parsed, &policy))
        .map_err(|e| CliError::new(crate::exit::Exit::Transport, e.to_string()))?;
    if json {
        let text = serde_json::to_string_pretty(&report_json(url, &report))
            .map_err(|e| CliError::local(format!("cannot encode JSON: {e}")))?;
        print_result(&text)?;
    } else {
        print_result(&render(&report))?;
    }
    if report.errors() > 0 {
        return Err(CliError::findings(format!(
            "the JWKS at {url} has {} problem(s) a token endpoint would refuse",
            report.errors()
        )));
    }
    Ok(())
}

/// The report as JSON (`jwks check --json`): `{url, ok, errors, warnings, findings: [{level,
/// message}], summary}`.
fn report_json(url: &str, report: &Report) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = report
        .findings()
        .iter()
        .map(|f| serde_json::json!({"level": level_name(f.level), "message": f.message}))
        .collect();
    serde_json::json!({
        "url": url,
        "ok": report.errors() == 0,
        "errors": report.errors(),
        "warnings": report.warnings(),
        "findings": findings,
        "summary": report.summary(),
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Warning => "warning",
        Level::Error => "error",
    }
}

/// The report, one finding a line with its level, then the summary (an error line when any
/// finding is an error).
fn render(report: &Report) -> String {
    let tag = |level: Level| match level {
        Level::Ok => "ok     ",
        Level::Warning => "warning",
        Level::Error => "error  ",
    };
    let summary_level = if report.errors() > 0 {
        Level::Error
    } else {
        Level::Ok
    };
    report
        .findings()
        .iter()
        .map(|f| (f.level, f.message.as_str()))
        .chain(std::iter::once((summary_level, report.summary().as_str())))
        .map(|(level, m)| format!("{} {m}", tag(level)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use m2m_discovery::check::{Response, analyse};

    use super::*;

    fn run(status: u16, ct: Option<&str>, body: &str) -> Report {
        analyse(&Response {
            status,
            location: None,
            content_type: ct,
            body: body.as_bytes(),
            too_large: false,
        })
    }

    #[test]
    fn status_and_shape() {
        assert_eq!(run(404, None, "").errors(), 1);
        assert_eq!(run(200, Some("text/html"), "<html>").errors(), 1);
        assert!(render(&run(200, Some("application/json"), "{}")).contains("no \"keys\" array"));
        let dup = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"},
                              {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}]}"#;
        let shown = render(&run(200, Some("application/json"), dup));
        assert!(shown.contains("duplicate kid"), "{shown}");
        assert!(
            shown.ends_with("error   1 error(s), 2 warning(s)"),
            "{shown}"
        );
    }
}
