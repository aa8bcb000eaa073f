//! Fuzzes the token request form parsers: `m2m_core::validate::parse_token_form` (rfc profile)
//! and `NhsValidator::parse_form` with an arbitrary Content-Type, query string and body. No
//! panic; a query string is always refused; the parsed form's `Debug` never shows the assertion.
//!
//! Input: byte 0 = flags (bit 0: Content-Type present, bit 1: query present, bit 2: strict media
//! type); then a Content-Type line and a query line; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_core::validate::{NhsConfig, NhsValidator, Reason, TokenForm, parse_token_form};
use m2m_fuzz::{TOKEN_URL, assert_not_leaked, split_lines};

fn check_debug(form: &TokenForm) {
    let Some(assertion) = form.client_assertion.as_deref() else {
        return;
    };
    let mut public: Vec<&str> = [
        &form.grant_type,
        &form.client_assertion_type,
        &form.client_id,
        &form.scope,
    ]
    .into_iter()
    .filter_map(|v| v.as_deref())
    .collect();
    public.extend(form.extra.iter().map(|(k, _)| k.as_str()));
    assert_not_leaked(assertion, &public, &format!("{form:?}"), "TokenForm Debug");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split_lines(rest, 2);
    let content_type = lines[0].as_deref().filter(|_| flags & 1 == 1);
    let query = lines[1].as_deref().filter(|_| flags & 2 == 2);
    let strict = flags & 4 == 4;

    match parse_token_form(content_type, query, body, strict) {
        Ok(form) => {
            assert!(
                query.is_none_or(str::is_empty),
                "a query string was accepted"
            );
            check_debug(&form);
            // Parameters sent empty count as omitted.
            for v in [
                &form.grant_type,
                &form.client_assertion_type,
                &form.client_assertion,
            ] {
                assert!(v.as_deref() != Some(""));
            }
        }
        Err(r) => {
            assert_eq!(r.status / 100, 4, "form refusals are 4xx: {r:?}");
            let _ = (r.reason.as_str(), r.to_string());
            if query.is_some_and(|q| !q.is_empty()) && r.reason != Reason::MediaType {
                assert_eq!(r.reason, Reason::QueryParams);
            }
        }
    }
    let nhs = NhsValidator::new(NhsConfig::new(TOKEN_URL));
    if let Ok(form) = nhs.parse_form(content_type, body) {
        check_debug(&form);
    }
});
