//! `m2m jwks`: merge public keys into one JWKS (rotation: new + old), refusing private members;
//! and `m2m jwks check URL`: fetch a hosted JWKS the way a token endpoint would and report what
//! it would dislike.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::key::{KeyKind, PublicKey};
use serde_json::Value;

use crate::cli::{JwksArgs, JwksCommand};
use crate::commands::{print_result, runtime};
use crate::exit::{CliError, CliResult};
use crate::keyfile;

/// How long `jwks check` waits, like a token endpoint fetching a client's `jwks_uri`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS body accepted (m2m serve refuses larger ones too).
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Runs `m2m jwks` or `m2m jwks check`.
pub(crate) fn run(args: &JwksArgs) -> CliResult {
    match &args.command {
        Some(JwksCommand::Check { url }) => check(url),
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
        let value: Value = serde_json::from_str(text).map_err(|e| {
            CliError::local(format!(
                "{}: not valid JSON (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        let keys = if value.get("keys").is_some() {
            Jwks::from_slice(text.as_bytes()).map_err(located)?.keys
        } else {
            vec![Jwk::from_slice(text.as_bytes()).map_err(located)?]
        };
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

/// One line of the `jwks check` report.
#[derive(Debug)]
enum Level {
    Ok,
    Warning,
    Error,
}

#[derive(Debug, Default)]
struct Report {
    lines: Vec<(Level, String)>,
}

impl Report {
    fn ok(&mut self, m: impl Into<String>) {
        self.lines.push((Level::Ok, m.into()));
    }
    fn warn(&mut self, m: impl Into<String>) {
        self.lines.push((Level::Warning, m.into()));
    }
    fn error(&mut self, m: impl Into<String>) {
        self.lines.push((Level::Error, m.into()));
    }
    fn count(&self, level: fn(&Level) -> bool) -> usize {
        self.lines.iter().filter(|(l, _)| level(l)).count()
    }
    fn render(&self) -> String {
        self.lines
            .iter()
            .map(|(level, m)| {
                let tag = match level {
                    Level::Ok => "ok     ",
                    Level::Warning => "warning",
                    Level::Error => "error  ",
                };
                format!("{tag} {m}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn check(url: &str) -> CliResult {
    let parsed = url::Url::parse(url)
        .map_err(|e| CliError::local(format!("JWKS URL {url:?} is not a valid URL: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err(CliError::local(format!(
                "JWKS URL {url:?} uses plain http to a non-loopback host; token endpoints fetch JWKS over https only"
            )));
        }
        other => {
            return Err(CliError::local(format!(
                "JWKS URL {url:?} has scheme {other:?}; use https"
            )));
        }
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("m2m-jwks-check/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::local(format!("cannot build the HTTP client: {e}")))?;
    let rt = runtime()?;
    let fetched = rt.block_on(async {
        let response = client.get(parsed.clone()).send().await?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, location, content_type, body))
    });
    let (status, location, content_type, body) = fetched.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {}s", FETCH_TIMEOUT.as_secs())
        } else if e.is_connect() {
            format!("cannot connect: {}", m2m_client::error_chain(&e))
        } else {
            m2m_client::error_chain(&e)
        };
        CliError::new(
            crate::exit::Exit::Transport,
            format!("fetching {url} failed: {why}"),
        )
    })?;

    let mut report = Report::default();
    analyse(
        &mut report,
        status.as_u16(),
        location.as_deref(),
        content_type.as_deref(),
        &body,
    );
    let errors = report.count(|l| matches!(l, Level::Error));
    let warnings = report.count(|l| matches!(l, Level::Warning));
    report.lines.push((
        if errors > 0 { Level::Error } else { Level::Ok },
        format!("{errors} error(s), {warnings} warning(s)"),
    ));
    print_result(&report.render())?;
    if errors > 0 {
        return Err(CliError::findings(format!(
            "the JWKS at {url} has {errors} problem(s) a token endpoint would refuse"
        )));
    }
    Ok(())
}

/// The checks of `jwks check`, on a fetched response (pure, so it is testable).
fn analyse(
    r: &mut Report,
    status: u16,
    location: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) {
    if (300..400).contains(&status) {
        r.error(format!(
            "HTTP {status} redirect{}: token endpoints do not follow redirects; publish at the final URL",
            location.map(|l| format!(" to {l}")).unwrap_or_default()
        ));
        return;
    }
    if status != 200 {
        r.error(format!("HTTP {status}: a token endpoint needs 200"));
        return;
    }
    r.ok("HTTP 200");
    match content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }) {
        Some(ct) if ct == "application/json" || ct == "application/jwk-set+json" => {
            r.ok(format!("content-type {ct}"))
        }
        Some(ct) => r.warn(format!(
            "content-type {ct}: expected application/json or application/jwk-set+json"
        )),
        None => r.warn("no content-type: expected application/json"),
    }
    if body.len() > MAX_JWKS_BYTES {
        r.error(format!(
            "body is {} bytes; token endpoints cap JWKS documents (m2m serve: 64 KiB)",
            body.len()
        ));
        return;
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            r.error(format!(
                "body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ));
            return;
        }
    };
    let Some(keys) = value.get("keys").and_then(Value::as_array) else {
        r.error("no \"keys\" array: a JWKS is {\"keys\": [...]}");
        return;
    };
    if keys.is_empty() {
        r.error("\"keys\" is empty");
        return;
    }
    r.ok(format!("{} key(s)", keys.len()));
    let mut kids = HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        check_key(r, i, key, &mut kids);
    }
}

fn check_key(r: &mut Report, i: usize, key: &Value, kids: &mut HashSet<String>) {
    let kid = key.get("kid").and_then(Value::as_str);
    let name = match kid {
        Some(k) => format!("key {} (kid \"{k}\")", i + 1),
        None => format!("key {}", i + 1),
    };
    match kid {
        None | Some("") => r.error(format!(
            "{name}: no kid; token endpoints (NHS among them) select keys by kid"
        )),
        Some(k) if !kids.insert(k.to_owned()) => r.error(format!("{name}: duplicate kid")),
        Some(_) => {}
    }
    let jwk: Jwk = match serde_json::from_value(key.clone()) {
        Ok(j) => j,
        Err(_) => {
            r.error(format!(
                "{name}: not a JWK object (kty missing or a member has the wrong type)"
            ));
            return;
        }
    };
    let private = jwk.private_members();
    if !private.is_empty() {
        r.error(format!(
            "{name}: PRIVATE key members published ({}): this key is compromised; replace it and publish only public members",
            private.join(", ")
        ));
    }
    if let Some(u) = &jwk.use_
        && u != "sig"
    {
        r.error(format!(
            "{name}: use \"{u}\": signature keys need use \"sig\" (or no use)"
        ));
    }
    let public = match PublicKey::from_jwk(&jwk.to_public()) {
        Ok(p) => p,
        Err(e) => {
            r.error(format!("{name}: {e}"));
            return;
        }
    };
    match &jwk.alg {
        None => r.warn(format!(
            "{name}: no alg (NHS expects \"RS512\"; other servers infer it from kty)"
        )),
        Some(a) => match Algorithm::from_name(a) {
            None => r.error(format!(
                "{name}: alg \"{a}\" is not a supported signature algorithm"
            )),
            Some(alg) if !public.kind().fits(alg) => {
                r.error(format!(
                    "{name}: alg {alg} does not fit a {} key",
                    public.kind()
                ));
            }
            Some(_) => {}
        },
    }
    match public.kind() {
        KeyKind::Rsa { bits } if bits < 4096 => {
            r.warn(format!("{name}: RSA-{bits}: NHS requires 4096 bits"))
        }
        kind => r.ok(format!(
            "{name}: {kind}, alg {}",
            jwk.alg.as_deref().unwrap_or("(none)")
        )),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(status: u16, ct: Option<&str>, body: &str) -> Report {
        let mut r = Report::default();
        analyse(&mut r, status, None, ct, body.as_bytes());
        r
    }

    #[test]
    fn status_and_shape() {
        assert_eq!(run(404, None, "").count(|l| matches!(l, Level::Error)), 1);
        assert_eq!(
            run(200, Some("text/html"), "<html>").count(|l| matches!(l, Level::Error)),
            1
        );
        assert!(
            run(200, Some("application/json"), "{}")
                .render()
                .contains("no \"keys\" array")
        );
        let dup = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"},
                              {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}]}"#;
        assert!(
            run(200, Some("application/json"), dup)
                .render()
                .contains("duplicate kid")
        );
    }
}
