//! Reading the token endpoint's answer: the success body (RFC 6749 §5.1, with NHS's string-typed
//! numbers) and the error body (§5.2, plus NHS's `message_id`).
//!
//! Pure: takes status, headers and bytes, returns a [`TokenResponse`] or an [`Error`].

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::error::{Error, ErrorResponse};
use crate::hint::hint_for;
use crate::retry::parse_retry_after;

/// Longest `expires_in` believed (10 years); more means a unit mix-up or garbage.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

/// How much of an unparseable body is kept for the error message.
const BODY_PREFIX_LEN: usize = 256;

/// An OAuth access token. Its `Debug` prints `[redacted]` and it has no `Display` (so it cannot
/// end up in a message by accident); read it with [`AccessToken::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(token: impl Into<String>) -> Self {
        AccessToken(token.into())
    }

    /// The token itself, for the `Authorization` header. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// A refresh token (not used by the client-credentials grant, but kept if a server sends one).
/// Redacted and read like [`AccessToken`].
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// A successful token response.
#[derive(Clone)]
pub struct TokenResponse {
    access_token: AccessToken,
    token_type: Option<String>,
    expires_in: Option<Duration>,
    issued_at_ms: Option<u64>,
    scope: Option<String>,
    refresh_token: Option<RefreshToken>,
    extra: Map<String, Value>,
}

/// Unrecognised members are shown by name only: a server may put other credentials there
/// (`id_token`, `refresh_token` under another name), and `Debug` output ends up in logs.
impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: Vec<&str> = self.extra.keys().map(String::as_str).collect();
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token)
            .field("extra", &extra)
            .finish()
    }
}

impl TokenResponse {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// `token_type` as sent (e.g. `Bearer`); compare with [`TokenResponse::token_type_is`].
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// Case-insensitive `token_type` comparison (RFC 6749 §5.1: the value is case-insensitive).
    pub fn token_type_is(&self, expected: &str) -> bool {
        self.token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(expected))
    }

    /// Whether this is a bearer token.
    pub fn is_bearer(&self) -> bool {
        self.token_type_is("Bearer")
    }

    /// `expires_in`, whether it came as a number or a numeric string (NHS sends `"599"`).
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// When the token expires, counted from when the response was received.
    pub fn expires_at(&self, received_at: SystemTime) -> Option<SystemTime> {
        self.expires_in.and_then(|d| received_at.checked_add(d))
    }

    /// NHS `issued_at`: epoch milliseconds (sent as a string; a number is accepted too).
    pub fn issued_at_millis(&self) -> Option<u64> {
        self.issued_at_ms
    }

    /// `scope` granted, if the server said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// `refresh_token`, if the server sent one (the client-credentials grant does not use it).
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// Every other member of the response, verbatim.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// Builds a response from parts (for token caches and tests).
    pub fn new(
        access_token: AccessToken,
        token_type: Option<String>,
        expires_in: Option<Duration>,
    ) -> Self {
        TokenResponse {
            access_token,
            token_type,
            expires_in,
            issued_at_ms: None,
            scope: None,
            refresh_token: None,
            extra: Map::new(),
        }
    }
}

/// The parts of an HTTP response the token client looks at.
#[derive(Clone, Copy, Debug)]
pub struct ResponseParts<'a> {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`, if present.
    pub content_type: Option<&'a str>,
    /// `Retry-After`, if present.
    pub retry_after: Option<&'a str>,
    /// `Location`, if present.
    pub location: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// Turns an HTTP response into a token or an error; `now` resolves a `Retry-After` date.
pub fn parse_response(parts: ResponseParts<'_>, now: SystemTime) -> Result<TokenResponse, Error> {
    if (200..300).contains(&parts.status) {
        parse_success(parts)
    } else {
        Err(parse_failure(parts, now))
    }
}

fn parse_success(parts: ResponseParts<'_>) -> Result<TokenResponse, Error> {
    let status = parts.status;
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(parts.body) else {
        return Err(unparseable(parts, None));
    };
    let invalid = |reason: String| Error::InvalidResponse { status, reason };
    if let Some(member) = duplicated_member(parts.body) {
        return Err(invalid(format!(
            "the `{member}` member appears more than once (parsers disagree on which copy wins)"
        )));
    }
    if map.contains_key("error") {
        return Err(invalid(
            "a success response that also carries an `error` member".to_owned(),
        ));
    }
    let access_token = match map.remove("access_token") {
        Some(Value::String(s)) if !s.bytes().all(is_vschar) => {
            // Never echoed: it is (or poses as) a credential, and the offending byte may be a
            // terminal escape.
            return Err(invalid(
                "access_token has a character outside RFC 6749 VSCHAR (%x20-7E), such as CR, LF \
                 or an escape; it could inject headers or terminal sequences"
                    .to_owned(),
            ));
        }
        Some(Value::String(s)) if !s.is_empty() => AccessToken(s),
        Some(Value::String(_)) => return Err(invalid("access_token is empty".to_owned())),
        Some(_) => return Err(invalid("access_token is not a string".to_owned())),
        None => {
            return Err(Error::MissingAccessToken {
                status,
                members: map.keys().cloned().collect(),
            });
        }
    };
    let token_type = match map.remove("token_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_token_type(&s) => Some(s),
        Some(Value::String(_)) => {
            return Err(invalid(
                "token_type is neither an RFC 6749 type-name (letters, digits, `-`, `.`, `_`) nor \
                 an absolute URI"
                    .to_owned(),
            ));
        }
        Some(_) => return Err(invalid("token_type is not a string".to_owned())),
    };
    let expires_in = match map.remove("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Duration::from_secs(expires_in_secs(&v).map_err(invalid)?)),
    };
    // issued_at is informational; an unreadable one is kept verbatim rather than failing.
    let issued_at_ms = match map.get("issued_at").and_then(read_u64) {
        Some(ms) => {
            map.remove("issued_at");
            Some(ms)
        }
        None => None,
    };
    let scope = match map.remove("scope") {
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            map.insert("scope".to_owned(), other);
            None
        }
        None => None,
    };
    let refresh_token = match map.remove("refresh_token") {
        Some(Value::String(s)) => Some(RefreshToken(s)),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        issued_at_ms,
        scope,
        refresh_token,
        extra: map,
    })
}

/// RFC 6749 App. A.12: `access-token = 1*VSCHAR`, `VSCHAR = %x20-7E`. The token goes into an
/// `Authorization` header and onto a terminal (`m2m token`): CR, LF and escapes must not.
fn is_vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// RFC 6749 App. A.13: `token-type = type-name / URI`, `type-name = 1*name-char`, `name-char =
/// "-" / "." / "_" / DIGIT / ALPHA`. `m2m token --header` prints it before the token.
fn is_token_type(s: &str) -> bool {
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if !s.is_empty() && s.bytes().all(name_char) {
        return true;
    }
    // An absolute URI: no spaces or controls (URIs have none) and a scheme.
    s.bytes().all(|b| is_vschar(b) && b != b' ') && url::Url::parse(s).is_ok()
}

/// The first member this client reads that the body's top-level object holds twice. serde_json
/// keeps the last copy, other parsers (a logging proxy, a WAF) the first: refusing keeps everyone
/// looking at the same token.
fn duplicated_member(body: &[u8]) -> Option<&'static str> {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

    const READ: [&str; 7] = [
        "access_token",
        "token_type",
        "expires_in",
        "issued_at",
        "scope",
        "refresh_token",
        "error",
    ];
    struct FirstDuplicate(Option<&'static str>);
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = FirstDuplicate;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FirstDuplicate, A::Error> {
            let mut seen = [false; READ.len()];
            let mut first = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if let Some(i) = READ.iter().position(|m| *m == key) {
                    if seen[i] && first.is_none() {
                        first = Some(READ[i]);
                    }
                    seen[i] = true;
                }
            }
            Ok(FirstDuplicate(first))
        }
    }
    impl<'de> Deserialize<'de> for FirstDuplicate {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Members)
        }
    }
    serde_json::from_slice::<FirstDuplicate>(body)
        .ok()
        .and_then(|d| d.0)
}

fn expires_in_secs(v: &Value) -> Result<u64, String> {
    let shown = || match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let secs = match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            // A float like 3599.0 is tolerated; fractions are dropped.
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
            _ => None,
        },
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s <= MAX_EXPIRES_IN_SECS => Ok(s),
        Some(_) => Err(format!(
            "expires_in {} is implausibly large (over 10 years)",
            shown()
        )),
        None => Err(format!(
            "expires_in {} is not a non-negative number of seconds",
            shown()
        )),
    }
}

fn read_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_failure(parts: ResponseParts<'_>, now: SystemTime) -> Error {
    if (300..400).contains(&parts.status) {
        return Error::Redirected {
            status: parts.status,
            location: parts.location.map(str::to_owned),
        };
    }
    let retry_after = parts.retry_after.and_then(|v| parse_retry_after(v, now));
    let body = parts.body.trim_ascii();
    let map = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => return unparseable(parts, retry_after),
        }
    };
    let text = |name: &str| match map.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let error = text("error");
    let error_description = text("error_description");
    let hint = hint_for(parts.status, error.as_deref(), error_description.as_deref());
    Error::ServerRejected(Box::new(ErrorResponse {
        status: parts.status,
        error,
        error_description,
        error_uri: text("error_uri"),
        message_id: text("message_id"),
        retry_after,
        hint,
    }))
}

fn unparseable(parts: ResponseParts<'_>, retry_after: Option<Duration>) -> Error {
    let prefix = &parts.body[..parts.body.len().min(BODY_PREFIX_LEN)];
    let mut body_prefix = String::from_utf8_lossy(prefix).into_owned();
    // A broken success body may still hold the token: keep no part of it then.
    if (200..300).contains(&parts.status) && body_prefix.contains("access_token") {
        body_prefix = "[redacted: body mentions access_token]".to_owned();
    }
    Error::UnparseableBody {
        status: parts.status,
        content_type: parts.content_type.map(str::to_owned),
        body_prefix,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::Hint;

    fn parts(status: u16, body: &str) -> ResponseParts<'_> {
        ResponseParts {
            status,
            content_type: Some("application/json"),
            retry_after: None,
            location: None,
            body: body.as_bytes(),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn nhs_success_with_string_numbers() {
        let body = r#"{"access_token":"Sr5PGv19wTEHJdDr2wx2f7IGd0cw","expires_in":"599","token_type":"Bearer","issued_at":"1692835200000"}"#;
        let r = parse_response(parts(200, body), now()).unwrap();
        assert_eq!(r.access_token().secret(), "Sr5PGv19wTEHJdDr2wx2f7IGd0cw");
        assert_eq!(r.expires_in(), Some(Duration::from_secs(599)));
        assert_eq!(r.issued_at_millis(), Some(1_692_835_200_000));
        assert!(r.is_bearer());
        assert!(r.extra().is_empty());
    }

    #[test]
    fn debug_shows_extra_member_names_not_values() {
        let body =
            r#"{"access_token":"tok-secret-1","token_type":"Bearer","id_token":"idtok-secret-2"}"#;
        let r = parse_response(parts(200, body), now()).unwrap();
        let shown = format!("{r:?}");
        assert!(shown.contains("id_token"), "{shown}");
        assert!(
            !shown.contains("tok-secret-1") && !shown.contains("idtok-secret-2"),
            "{shown}"
        );
    }

    #[test]
    fn rfc_success_keeps_other_members() {
        let body = r#"{"access_token":"t","expires_in":3600,"token_type":"bearer","scope":"a b","refresh_token":"r","not-before-policy":0,"issued_at":1692835200000}"#;
        let r = parse_response(parts(200, body), now()).unwrap();
        assert_eq!(r.expires_in(), Some(Duration::from_secs(3600)));
        assert!(r.token_type_is("BEARER"));
        assert_eq!(r.scope(), Some("a b"));
        assert_eq!(r.refresh_token().map(RefreshToken::secret), Some("r"));
        assert_eq!(r.issued_at_millis(), Some(1_692_835_200_000));
        assert_eq!(r.extra().get("not-before-policy"), Some(&Value::from(0)));
        assert_eq!(r.expires_at(now()), Some(now() + Duration::from_secs(3600)));
    }

    #[test]
    fn bad_expires_in_is_an_error() {
        for bad in [r#""-5""#, "-5", r#""soon""#, "315360001", "true", "1e300"] {
            let body = format!(r#"{{"access_token":"t","expires_in":{bad}}}"#);
            let err = parse_response(parts(200, &body), now()).unwrap_err();
            assert!(matches!(err, Error::InvalidResponse { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("expires_in"), "{err}");
        }
        let r = parse_response(
            parts(200, r#"{"access_token":"t","expires_in":3599.0}"#),
            now(),
        )
        .unwrap();
        assert_eq!(r.expires_in(), Some(Duration::from_secs(3599)));
    }

    #[test]
    fn missing_access_token_names_members_only() {
        let err = parse_response(
            parts(200, r#"{"token":"secret-value","expires_in":1}"#),
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::MissingAccessToken { status: 200, .. }));
        let s = err.to_string();
        assert!(
            s.contains("token, expires_in") && !s.contains("secret-value"),
            "{s}"
        );
    }

    #[test]
    fn html_body_is_unparseable_with_prefix() {
        let html = format!("<html><body>{}</body></html>", "x".repeat(1000));
        let p = ResponseParts {
            status: 502,
            content_type: Some("text/html"),
            retry_after: None,
            location: None,
            body: html.as_bytes(),
        };
        match parse_response(p, now()).unwrap_err() {
            Error::UnparseableBody {
                status,
                content_type,
                body_prefix,
                ..
            } => {
                assert_eq!(status, 502);
                assert_eq!(content_type.as_deref(), Some("text/html"));
                assert_eq!(body_prefix.len(), 256);
                assert!(body_prefix.starts_with("<html>"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The hostile bodies of F6/I9: each refused with a message that never holds the token.
    #[test]
    fn hostile_success_bodies_are_refused_without_echoing_the_token() {
        let cases = [
            (
                r#"{"access_token":"SECRETTOK\r\nX-Injected: 1","token_type":"Bearer"}"#,
                "VSCHAR",
            ),
            (
                r#"{"access_token":"SECRETTOK\u001b]0;PWNED\u0007","token_type":"Bearer"}"#,
                "VSCHAR",
            ),
            (
                r#"{"access_token":"SECRETTOK\u00e9","token_type":"Bearer"}"#,
                "VSCHAR",
            ),
            (
                r#"{"access_token":"SECRETTOK","token_type":"DPoP\r\nX-Injected: 1"}"#,
                "type-name",
            ),
            (
                r#"{"access_token":"SECRETTOK","token_type":"Bearer x"}"#,
                "type-name",
            ),
            (
                r#"{"access_token":"SECRETTOK","token_type":""}"#,
                "type-name",
            ),
            (
                r#"{"access_token":"SECRETTOK","token_type":"Bearer","error":"invalid_client"}"#,
                "`error`",
            ),
            (
                r#"{"access_token":"SECRETTOK","access_token":"SECRETTOK2","token_type":"Bearer"}"#,
                "`access_token` member appears more than once",
            ),
            (
                r#"{"access_token":"SECRETTOK","token_type":"Bearer","token_type":"Bearer"}"#,
                "`token_type` member appears more than once",
            ),
            (
                r#"{"access_token":"SECRETTOK","access\u005ftoken":"SECRETTOK2"}"#,
                "`access_token` member appears more than once",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_response(parts(200, body), now()).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(
                matches!(err, Error::InvalidResponse { status: 200, .. }),
                "{body}: {err:?}"
            );
            assert!(shown.contains(expected), "{body}: {shown}");
            assert!(
                !shown.contains("SECRETTOK"),
                "{body}: token echoed: {shown}"
            );
        }
    }

    #[test]
    fn legal_token_types_and_tokens_are_accepted() {
        for token_type in [
            "Bearer",
            "bearer",
            "DPoP",
            "N_A",
            "mac-1.0",
            "urn:ietf:params:oauth:token-type:jwt",
        ] {
            let body =
                format!(r#"{{"access_token":"a.b-c_d~e+f/g=","token_type":"{token_type}"}}"#);
            let r = parse_response(parts(200, &body), now()).unwrap();
            assert_eq!(r.token_type(), Some(token_type));
            assert_eq!(r.access_token().secret(), "a.b-c_d~e+f/g=");
        }
        // Other duplicated members are not this client's business.
        let body = r#"{"access_token":"t","x":1,"x":2}"#;
        assert!(parse_response(parts(200, body), now()).is_ok());
    }

    #[test]
    fn broken_success_body_never_leaks_a_token() {
        let err = parse_response(parts(200, r#"{"access_token":"abc123","#), now()).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("abc123"));
    }

    #[test]
    fn nhs_error_body_with_message_id_and_hint() {
        let body = r#"{"error":"invalid_request","error_description":"Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'","message_id":"rrt-1-2"}"#;
        match parse_response(parts(400, body), now()).unwrap_err() {
            Error::ServerRejected(r) => {
                let ErrorResponse {
                    status,
                    error,
                    message_id,
                    hint,
                    ..
                } = *r;
                assert_eq!(status, 400);
                assert_eq!(error.as_deref(), Some("invalid_request"));
                assert_eq!(message_id.as_deref(), Some("rrt-1-2"));
                assert_eq!(hint, Some(Hint::Algorithm));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_error_body_with_retry_after() {
        let p = ResponseParts {
            status: 429,
            content_type: None,
            retry_after: Some("3"),
            location: None,
            body: b"",
        };
        let err = parse_response(p, now()).unwrap_err();
        assert!(matches!(
            &err,
            Error::ServerRejected(r) if matches!(**r, ErrorResponse {
                status: 429,
                error: None,
                ..
            })
        ));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_retryable());
    }

    #[test]
    fn access_token_is_redacted() {
        let t = AccessToken::new("very-secret");
        // No `Display` (like `RefreshToken`): `Debug` is the only way to print it, and redacts.
        assert_eq!(format!("{t:?}"), "AccessToken([redacted])");
        assert_eq!(t.secret(), "very-secret");
        let rt = RefreshToken("very-secret".to_owned());
        assert_eq!(format!("{rt:?}"), "RefreshToken([redacted])");
        let r = TokenResponse::new(t, Some("Bearer".into()), None);
        assert!(!format!("{r:?}").contains("very-secret"));
    }
}
