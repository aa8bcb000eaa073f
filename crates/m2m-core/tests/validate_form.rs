//! The token request body rules of the rfc profile (media type, query string, duplicates,
//! decoding), the NHS form gate, and a property test that parsing never panics.

use m2m_core::validate::{NhsConfig, NhsValidator, Reason, TokenForm, parse_token_form};
use proptest::prelude::*;

const CT: &str = "application/x-www-form-urlencoded";
const GOOD: &str = "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c";

struct Row {
    rule: &'static str,
    content_type: Option<&'static str>,
    query: Option<&'static str>,
    body: &'static str,
    strict: bool,
    /// `None`: accepted.
    expect: Option<Reason>,
}

fn rows() -> Vec<Row> {
    let r = |rule, content_type, query, body, strict, expect| Row {
        rule,
        content_type,
        query,
        body,
        strict,
        expect,
    };
    vec![
        r(
            "bare media type accepted",
            Some(CT),
            None,
            GOOD,
            false,
            None,
        ),
        r(
            "charset=UTF-8 accepted",
            Some("application/x-www-form-urlencoded;charset=UTF-8"),
            None,
            GOOD,
            false,
            None,
        ),
        r(
            "charset with spaces and quotes accepted",
            Some("application/x-www-form-urlencoded ; charset=\"utf-8\""),
            None,
            GOOD,
            false,
            None,
        ),
        r(
            "media type case-insensitive",
            Some("Application/X-WWW-Form-Urlencoded"),
            None,
            GOOD,
            false,
            None,
        ),
        r(
            "empty query string accepted",
            Some(CT),
            Some(""),
            GOOD,
            false,
            None,
        ),
        r(
            "strict: bare media type accepted",
            Some(CT),
            None,
            GOOD,
            true,
            None,
        ),
        r(
            "strict: charset refused",
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            None,
            GOOD,
            true,
            Some(Reason::MediaType),
        ),
        r(
            "non-UTF-8 charset refused",
            Some("application/x-www-form-urlencoded; charset=ISO-8859-1"),
            None,
            GOOD,
            false,
            Some(Reason::MediaType),
        ),
        r(
            "missing content type",
            None,
            None,
            GOOD,
            false,
            Some(Reason::MediaType),
        ),
        r(
            "JSON content type",
            Some("application/json"),
            None,
            "{}",
            false,
            Some(Reason::MediaType),
        ),
        r(
            "multipart content type",
            Some("multipart/form-data; boundary=x"),
            None,
            GOOD,
            false,
            Some(Reason::MediaType),
        ),
        r(
            "media type prefix is not enough",
            Some("application/x-www-form-urlencodedx"),
            None,
            GOOD,
            false,
            Some(Reason::MediaType),
        ),
        r(
            "query params refused",
            Some(CT),
            Some("grant_type=client_credentials"),
            GOOD,
            false,
            Some(Reason::QueryParams),
        ),
        r(
            "duplicate grant_type refused",
            Some(CT),
            None,
            "grant_type=client_credentials&grant_type=client_credentials",
            false,
            Some(Reason::DuplicateParam),
        ),
        r(
            "duplicate extra param refused",
            Some(CT),
            None,
            "resource=a&resource=b",
            false,
            Some(Reason::DuplicateParam),
        ),
        r(
            "bad percent escape refused",
            Some(CT),
            None,
            "grant_type=client%2",
            false,
            Some(Reason::FormInvalid),
        ),
        r(
            "non-hex percent escape refused",
            Some(CT),
            None,
            "grant_type=%zz",
            false,
            Some(Reason::FormInvalid),
        ),
        r(
            "invalid UTF-8 refused",
            Some(CT),
            None,
            "scope=%ff%fe",
            false,
            Some(Reason::FormInvalid),
        ),
        r(
            "media type checked before query",
            Some("text/plain"),
            Some("a=b"),
            GOOD,
            false,
            Some(Reason::MediaType),
        ),
    ]
}

#[test]
fn form_rules_table() {
    let mut failures = Vec::new();
    for row in rows() {
        let got = parse_token_form(row.content_type, row.query, row.body.as_bytes(), row.strict);
        match (&got, row.expect) {
            (Ok(_), None) => {}
            (Err(rej), Some(reason)) if rej.reason == reason => {
                assert_eq!(
                    (rej.status, rej.error.as_ref()),
                    (400, "invalid_request"),
                    "{}",
                    row.rule
                );
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
fn decoding_percent_and_plus() {
    let form = parse_token_form(
        Some(CT),
        None,
        b"grant_type=client_credentials&scope=read+write%20admin&client_id=a%2Bb&resource=https%3A%2F%2Fapi&flag",
        false,
    )
    .expect("parsed");
    assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(form.scope.as_deref(), Some("read write admin"));
    assert_eq!(form.client_id.as_deref(), Some("a+b"));
    assert_eq!(
        form.extra,
        vec![
            ("resource".to_owned(), "https://api".to_owned()),
            ("flag".to_owned(), String::new())
        ]
    );
}

#[test]
fn empty_values_count_as_omitted() {
    let form = parse_token_form(Some(CT), None, b"grant_type=&client_assertion=&&", false)
        .expect("parsed");
    assert_eq!(form, TokenForm::default());
}

#[test]
fn debug_redacts_the_assertion_and_extra_values() {
    let form = parse_token_form(
        Some(CT),
        None,
        b"client_assertion=eyJhbGciOiJSUzI1NiJ9.e30.c2VjcmV0c2lnbmF0dXJl&client_secret=hunter2",
        false,
    )
    .expect("parsed");
    let debug = format!("{form:?}");
    assert!(!debug.contains("c2VjcmV0c2lnbmF0dXJl"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("client_secret"), "{debug}");
}

#[test]
fn nhs_form_gate() {
    let v = NhsValidator::new(NhsConfig::new(
        "https://int.api.service.nhs.uk/oauth2/token",
    ));
    for ct in [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        Some("Application/x-www-form-urlencoded"),
    ] {
        let rej = v.parse_form(ct, GOOD.as_bytes()).expect_err("415");
        assert_eq!(rej.status, 415);
        assert_eq!(
            rej.description,
            "Content-Type header must be application/x-www-form-urlencoded"
        );
    }
    // Apigee reads the first of repeated parameters and decodes leniently.
    let form = v
        .parse_form(
            Some(CT),
            b"grant_type=client_credentials&grant_type=x&scope=50%&bad=%ff",
        )
        .expect("parsed");
    assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(form.scope.as_deref(), Some("50%"));
}

proptest! {
    #[test]
    fn parse_token_form_never_panics(
        ct in proptest::option::of(".{0,60}"),
        query in proptest::option::of(".{0,40}"),
        body in proptest::collection::vec(any::<u8>(), 0..400),
        strict in any::<bool>(),
    ) {
        let _ = parse_token_form(ct.as_deref(), query.as_deref(), &body, strict);
        let v = NhsValidator::new(NhsConfig::new("https://x/token"));
        let _ = v.parse_form(ct.as_deref(), &body);
    }

    #[test]
    fn form_like_bodies_never_panic(body in "([a-z_]{0,12}(=[a-zA-Z0-9%+.]{0,20})?&?){0,12}") {
        if let Ok(form) = parse_token_form(Some(CT), None, body.as_bytes(), false) {
            let _ = format!("{form:?}");
        }
    }
}

/// An encoder written apart from the decoder: every byte outside the unreserved set escaped,
/// with the hex case and the spelling of a space (`+` or `%20`) chosen by the caller, so the
/// decoder is checked against every legal spelling of a value.
fn form_encode(value: &str, upper_hex: bool, plus_for_space: bool) -> String {
    let mut out = String::new();
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char);
            }
            b' ' if plus_for_space => out.push('+'),
            _ if upper_hex => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

proptest! {
    #[test]
    fn scope_survives_any_legal_encoding(
        scope in "\\PC{1,40}",
        upper_hex in any::<bool>(),
        plus_for_space in any::<bool>(),
    ) {
        let body = format!(
            "grant_type=client_credentials&scope={}",
            form_encode(&scope, upper_hex, plus_for_space)
        );
        let form = parse_token_form(Some(CT), None, body.as_bytes(), false).expect("parsed");
        prop_assert_eq!(form.scope.as_deref(), Some(scope.as_str()));
    }
}

#[test]
fn lenient_decoding_keeps_broken_escapes_literally() {
    let v = NhsValidator::new(NhsConfig::new("https://x/token"));
    for (raw, decoded) in [
        ("%", "%"),
        ("a%", "a%"),
        ("a%4", "a%4"),
        ("%zz%41", "%zzA"),
        ("%%41+", "%A "),
        ("100%+sure", "100% sure"),
    ] {
        let body = format!("grant_type=client_credentials&scope={raw}");
        let form = v.parse_form(Some(CT), body.as_bytes()).expect("parsed");
        assert_eq!(form.scope.as_deref(), Some(decoded), "{raw}");
    }
    // Strict (rfc) decoding refuses the same broken escapes.
    for raw in ["%", "a%4", "%zz"] {
        let body = format!("grant_type=client_credentials&scope={raw}");
        assert!(
            parse_token_form(Some(CT), None, body.as_bytes(), false).is_err(),
            "{raw}"
        );
    }
}
