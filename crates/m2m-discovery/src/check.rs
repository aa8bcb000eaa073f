//! The analysis behind `m2m jwks check`: fetch a hosted JWKS the way a token endpoint would and
//! list what it would dislike, as data ([`Report`] of [`Finding`]s) for the CLI to print.
//!
//! [`analyse`] is pure; [`check_jwks_url`] fetches under the same policy as the JWKS fetcher
//! (redirects refused, [`MAX_JWKS_BYTES`] cap) and analyses the answer.

use std::collections::HashSet;

use m2m_core::alg::Algorithm;
use m2m_core::jwk::Jwk;
use m2m_core::key::{KeyKind, PublicKey};
use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::http::HttpClient;
use crate::jwks::MAX_JWKS_BYTES;
use crate::policy::UrlPolicy;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// A check passed.
    Ok,
    /// Works with some token endpoints, not all (NHS, mostly).
    Warning,
    /// A token endpoint would refuse it.
    Error,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What was found, and how to fix it.
    pub message: String,
}

/// The findings, in check order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    findings: Vec<Finding>,
}

impl Report {
    /// The findings.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
    /// How many errors.
    pub fn errors(&self) -> usize {
        self.count(Level::Error)
    }
    /// How many warnings.
    pub fn warnings(&self) -> usize {
        self.count(Level::Warning)
    }
    /// "N error(s), M warning(s)".
    pub fn summary(&self) -> String {
        format!("{} error(s), {} warning(s)", self.errors(), self.warnings())
    }
    fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
    fn push(&mut self, level: Level, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            message: message.into(),
        });
    }
    fn ok(&mut self, m: impl Into<String>) {
        self.push(Level::Ok, m);
    }
    fn warn(&mut self, m: impl Into<String>) {
        self.push(Level::Warning, m);
    }
    fn error(&mut self, m: impl Into<String>) {
        self.push(Level::Error, m);
    }
}

/// A fetched JWKS response, as [`analyse`] needs it.
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    /// HTTP status.
    pub status: u16,
    /// `Location`, for a redirect.
    pub location: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The body (empty unless 200).
    pub body: &'a [u8],
    /// Whether the body went past [`MAX_JWKS_BYTES`] and the download was stopped.
    pub too_large: bool,
}

/// Fetches `url` under `policy` (redirects refused, [`MAX_JWKS_BYTES`] cap) and analyses it.
/// Errors are for what prevents an answer at all (policy, connection, timeout); everything about
/// the answer is in the report.
pub async fn check_jwks_url(
    http: &HttpClient,
    url: &Url,
    policy: &UrlPolicy,
) -> Result<Report, Error> {
    let doc = http
        .get_truncating(
            url,
            policy,
            "application/jwk-set+json, application/json",
            MAX_JWKS_BYTES,
        )
        .await?;
    Ok(analyse(&Response {
        status: doc.status,
        location: doc.location.as_deref(),
        content_type: doc.content_type.as_deref(),
        body: &doc.body,
        too_large: doc.truncated,
    }))
}

/// The checks of `jwks check` on a fetched response. Pure.
pub fn analyse(response: &Response<'_>) -> Report {
    let mut r = Report::default();
    let status = response.status;
    if (300..400).contains(&status) {
        r.error(format!(
            "HTTP {status} redirect{}: token endpoints do not follow redirects; publish at the final URL",
            response
                .location
                .map(|l| format!(" to {l}"))
                .unwrap_or_default()
        ));
        return r;
    }
    if status != 200 {
        r.error(format!("HTTP {status}: a token endpoint needs 200"));
        return r;
    }
    r.ok("HTTP 200");
    match response.content_type.map(|c| {
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
    if response.too_large || response.body.len() > MAX_JWKS_BYTES {
        let size = if response.too_large {
            format!("larger than {MAX_JWKS_BYTES}")
        } else {
            response.body.len().to_string()
        };
        r.error(format!(
            "body is {size} bytes; token endpoints cap JWKS documents (m2m serve: 64 KiB)"
        ));
        return r;
    }
    let value: Value = match serde_json::from_slice(response.body) {
        Ok(v) => v,
        Err(e) => {
            r.error(format!(
                "body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ));
            return r;
        }
    };
    let Some(keys) = value.get("keys").and_then(Value::as_array) else {
        r.error("no \"keys\" array: a JWKS is {\"keys\": [...]}");
        return r;
    };
    if keys.is_empty() {
        r.error("\"keys\" is empty");
        return r;
    }
    r.ok(format!("{} key(s)", keys.len()));
    let mut kids = HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        check_key(&mut r, i, key, &mut kids);
    }
    r
}

/// The checks of one key: kid present and unique, a JWK, no private members, `use` `sig`, an
/// `alg` that exists and fits, RSA size.
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

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo""#;

    fn run(status: u16, ct: Option<&str>, body: &str) -> Report {
        analyse(&Response {
            status,
            location: None,
            content_type: ct,
            body: body.as_bytes(),
            too_large: false,
        })
    }

    fn text(r: &Report) -> String {
        r.findings()
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn status_and_shape() {
        assert_eq!(run(404, None, "").errors(), 1);
        assert_eq!(run(200, Some("text/html"), "<html>").errors(), 1);
        assert!(text(&run(200, Some("application/json"), "{}")).contains("no \"keys\" array"));
        let dup = format!(r#"{{"keys":[{ED},"kid":"a"}},{ED},"kid":"a"}}]}}"#);
        assert!(text(&run(200, Some("application/json"), &dup)).contains("duplicate kid"));
    }

    #[test]
    fn redirects_and_oversize_bodies_are_errors() {
        let r = analyse(&Response {
            status: 302,
            location: Some("/elsewhere"),
            content_type: None,
            body: &[],
            too_large: false,
        });
        assert_eq!(r.errors(), 1);
        assert!(text(&r).contains("redirect to /elsewhere"), "{}", text(&r));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        let r = analyse(&Response {
            status: 200,
            location: None,
            content_type: Some("application/json"),
            body: &big,
            too_large: false,
        });
        assert!(text(&r).contains("body is 65537 bytes"), "{}", text(&r));
        let r = analyse(&Response {
            status: 200,
            location: None,
            content_type: Some("application/json"),
            body: &[],
            too_large: true,
        });
        assert!(text(&r).contains("larger than 65536 bytes"), "{}", text(&r));
        assert_eq!(r.errors(), 1);
    }

    #[test]
    fn key_findings() {
        let leaked = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#;
        let r = run(200, Some("application/json"), leaked);
        let t = text(&r);
        assert!(t.contains("no kid"), "{t}");
        assert!(t.contains("PRIVATE key members published (d)"), "{t}");
        assert!(!t.contains("jpsQnn"), "{t}");
        assert_eq!(r.errors(), 2);

        let misfit = format!(r#"{{"keys":[{ED},"kid":"a","alg":"RS512","use":"enc"}}]}}"#);
        let t = text(&run(200, Some("application/jwk-set+json"), &misfit));
        assert!(t.contains("use \"enc\""), "{t}");
        assert!(t.contains("does not fit"), "{t}");

        let fine = format!(r#"{{"keys":[{ED},"kid":"a","alg":"EdDSA"}}]}}"#);
        let r = run(200, Some("application/json; charset=utf-8"), &fine);
        assert_eq!((r.errors(), r.warnings()), (0, 0), "{}", text(&r));
        assert_eq!(r.summary(), "0 error(s), 0 warning(s)");
    }
}
