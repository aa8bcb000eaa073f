//! The token request body: media type, query-string and duplicate checks, and
//! `application/x-www-form-urlencoded` decoding into a [`TokenForm`].

use std::collections::HashSet;
use std::fmt;

use super::rejection::{Reason, Rejection};

pub use crate::wire::FORM_MEDIA_TYPE;

/// A token request body after the HTTP-level checks. Parameters sent with an empty value count as
/// omitted (RFC 6749 §3.1).
///
/// `Debug` shows the assertion only by length and the extra parameters only by name, because the
/// assertion's signature and a stray `client_secret` must never reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// `client_assertion`: the compact JWS.
    pub client_assertion: Option<String>,
    /// `client_id`, which RFC 7523 allows alongside the assertion (must then equal `sub`).
    pub client_id: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// Every other parameter, in body order (e.g. `resource`, `audience`).
    pub extra: Vec<(String, String)>,
}

impl fmt::Debug for TokenForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: Vec<&str> = self.extra.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TokenForm")
            .field("grant_type", &self.grant_type)
            .field("client_assertion_type", &self.client_assertion_type)
            .field(
                "client_assertion",
                &self
                    .client_assertion
                    .as_ref()
                    .map(|a| format!("[redacted, {} bytes]", a.len())),
            )
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("extra_names", &extra)
            .finish()
    }
}

/// Checks the media type (parameters like `;charset=UTF-8` are accepted — common clients send them
/// — unless `strict_media_type`), refuses parameters in the query string and duplicated parameters,
/// and decodes the body. `query` is the raw query string, if the request had one.
///
/// Every refusal is 400 `invalid_request` (RFC 6749 §5.2). Never panics, whatever the input.
pub fn parse_token_form(
    content_type: Option<&str>,
    query: Option<&str>,
    body: &[u8],
    strict_media_type: bool,
) -> Result<TokenForm, Rejection> {
    check_media_type(content_type, strict_media_type)?;
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(Rejection::invalid_request(
            Reason::QueryParams,
            "token request parameters must be sent in the request body, not in the URL query string",
        ));
    }
    let pairs = decode_pairs(body, false).map_err(|()| {
        Rejection::invalid_request(
            Reason::FormInvalid,
            "request body is not valid application/x-www-form-urlencoded UTF-8 \
             (check the percent-encoding)",
        )
    })?;
    collect(pairs, Duplicates::Refuse).map_err(|name| {
        Rejection::invalid_request(
            Reason::DuplicateParam,
            format!(
                "parameter {} is sent more than once (RFC 6749 §3.2)",
                printable_name(&name)
            ),
        )
    })
}

/// The media type rule of the rfc profile: `application/x-www-form-urlencoded`, type and subtype
/// case-insensitive (RFC 9110 §8.3.1); parameters allowed unless `strict`, but a `charset` other
/// than UTF-8 (or its subset US-ASCII) is refused because the body is decoded as UTF-8.
pub(crate) fn check_media_type(content_type: Option<&str>, strict: bool) -> Result<(), Rejection> {
    let refuse = |why: &'static str| Err(Rejection::invalid_request(Reason::MediaType, why));
    let Some(ct) = content_type else {
        return refuse(
            "Content-Type must be application/x-www-form-urlencoded (no Content-Type was sent)",
        );
    };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(FORM_MEDIA_TYPE) {
        return refuse("Content-Type must be application/x-www-form-urlencoded");
    }
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        if strict {
            return refuse(
                "Content-Type must be exactly application/x-www-form-urlencoded, without parameters",
            );
        }
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"');
            if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("us-ascii") {
                return refuse("Content-Type charset must be UTF-8");
            }
        }
    }
    Ok(())
}

/// What to do when a parameter name repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Duplicates {
    /// Refuse the request (RFC 6749 §3.2).
    Refuse,
    /// Keep the first value (what NHS's Apigee `request.formparam` returns).
    FirstWins,
}

/// Splits and percent-decodes a form body (`+` is a space). Strict mode refuses bad `%` escapes and
/// invalid UTF-8; lenient mode keeps a bad `%` literally and replaces invalid UTF-8, as browsers and
/// Apigee do.
pub(crate) fn decode_pairs(body: &[u8], lenient: bool) -> Result<Vec<(String, String)>, ()> {
    let mut out = Vec::new();
    // memchr, not a byte-wise split: the body is ~1 KB, almost all of it the assertion.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'&', body).chain(std::iter::once(body.len()));
    for end in ends {
        let segment = &body[start..end];
        start = end + 1;
        if segment.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', segment) {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &b""[..]),
        };
        out.push((
            percent_decode(name, lenient)?,
            percent_decode(value, lenient)?,
        ));
    }
    Ok(out)
}

fn percent_decode(input: &[u8], lenient: bool) -> Result<String, ()> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut rest = input;
    // Copies the runs between escapes whole: an assertion is ~1 KB of base64url with no escape
    // at all, and a byte-at-a-time push showed up at ~1 % of the token endpoint's CPU.
    while let Some(i) = memchr::memchr2(b'%', b'+', rest) {
        bytes.extend_from_slice(&rest[..i]);
        if rest[i] == b'+' {
            bytes.push(b' ');
            rest = &rest[i + 1..];
            continue;
        }
        let hi = rest.get(i + 1).and_then(|&b| hex_value(b));
        let lo = rest.get(i + 2).and_then(|&b| hex_value(b));
        match (hi, lo) {
            (Some(hi), Some(lo)) => {
                bytes.push(hi << 4 | lo);
                rest = &rest[i + 3..];
            }
            _ if lenient => {
                bytes.push(b'%');
                rest = &rest[i + 1..];
            }
            _ => return Err(()),
        }
    }
    bytes.extend_from_slice(rest);
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) if lenient => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(_) => Err(()),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Sorts decoded pairs into a [`TokenForm`]; `Err(name)` names a refused duplicate.
pub(crate) fn collect(
    pairs: Vec<(String, String)>,
    duplicates: Duplicates,
) -> Result<TokenForm, String> {
    let mut form = TokenForm::default();
    // A set, not a list: a large body with many parameters must not cost quadratic time.
    let mut seen: HashSet<String> = HashSet::new();
    for (name, value) in pairs {
        if seen.contains(&name) {
            match duplicates {
                Duplicates::Refuse => return Err(name),
                Duplicates::FirstWins => continue,
            }
        }
        seen.insert(name.clone());
        // RFC 6749 §3.1: a parameter without a value is treated as omitted.
        let value = (!value.is_empty()).then_some(value);
        let slot = match name.as_str() {
            "grant_type" => &mut form.grant_type,
            "client_assertion_type" => &mut form.client_assertion_type,
            "client_assertion" => &mut form.client_assertion,
            "client_id" => &mut form.client_id,
            "scope" => &mut form.scope,
            _ => {
                form.extra.push((name, value.unwrap_or_default()));
                continue;
            }
        };
        *slot = value;
    }
    Ok(form)
}

/// A parameter name quoted for an error message, or a neutral phrase when it is long or odd
/// (descriptions echo no attacker-chosen bulk).
fn printable_name(name: &str) -> String {
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic()) {
        format!("'{name}'")
    } else {
        "a parameter".to_owned()
    }
}
