//! Fuzzes the client's token response parser, `m2m_client::parse_response` (success bodies with
//! NHS's string-typed numbers, error bodies, HTML, `Retry-After` values, redirects), plus the
//! public helpers it leans on (`parse_retry_after`, `hint_for`). No panic; a success carries a
//! non-empty token; an error never shows the access token a 2xx body carried.
//!
//! Input: bytes 0–1 = status (mapped into 100..=599); byte 2 = flags (bit 0: Content-Type,
//! bit 1: Retry-After, bit 2: Location present); then a Content-Type, a Retry-After and a
//! Location line; the rest is the body.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use m2m_client::{ResponseParts, hint_for, parse_response, parse_retry_after};
use m2m_fuzz::{NOW_SECS, assert_not_leaked, split_lines};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let [hi, lo, flags, rest @ ..] = data else {
        return;
    };
    let status = 100 + u16::from_be_bytes([*hi, *lo]) % 500;
    let (lines, body) = split_lines(rest, 3);
    let present = |bit: u8, i: usize| lines[i].as_deref().filter(|_| flags & bit != 0);
    let parts = ResponseParts {
        status,
        content_type: present(1, 0),
        retry_after: present(2, 1),
        location: present(4, 2),
        body,
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    if let Some(v) = parts.retry_after {
        let _ = parse_retry_after(v, now);
    }
    match parse_response(parts, now) {
        Ok(token) => {
            assert!(
                (200..300).contains(&status),
                "a {status} answer produced a token"
            );
            assert!(!token.access_token().secret().is_empty());
            // `extra` is shown verbatim, so only a token that occurs once in the body counts.
            let secret = token.access_token().secret();
            if String::from_utf8_lossy(body).matches(secret).count() == 1 {
                let shown = format!("{token:?}");
                assert_not_leaked(secret, &[], &shown, "TokenResponse Debug");
            }
            let _ = (token.expires_in(), token.expires_at(now), token.is_bearer());
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            let _ = (e.retry_after(), e.is_retryable());
            // A token inside a 2xx body must not reach the error text, unless the fuzzer also
            // put the same string elsewhere in the body.
            if (200..300).contains(&status) {
                if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
                    if let Some(Value::String(t)) = map.get("access_token") {
                        let text = String::from_utf8_lossy(body);
                        if text.matches(t.as_str()).count() == 1 {
                            assert_not_leaked(t, &[], &shown, "token response error");
                        }
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let _ = hint_for(status, parts.content_type, Some(&text));
});
