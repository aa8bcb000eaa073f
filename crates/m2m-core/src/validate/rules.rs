//! Profile-neutral building blocks of the rules: parsing the assertion once, JSON `NumericDate`s,
//! `typ` normalisation, and the JavaScript value semantics the NHS proxy's claim script relies on.

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::error::Error;
use crate::jws::UnverifiedJws;

/// A compact JWS whose header and claims are JSON objects; nothing about it is trusted yet.
pub(crate) struct Parsed {
    pub(crate) jws: UnverifiedJws,
    pub(crate) claims: Map<String, Value>,
}

impl Parsed {
    /// `None` when the token is not three base64url parts with JSON-object header and claims.
    pub(crate) fn parse(token: &str) -> Option<Parsed> {
        let jws = UnverifiedJws::parse(token).ok()?;
        let claims = jws.claims().ok()?;
        Some(Parsed { jws, claims })
    }

    pub(crate) fn header(&self) -> &Map<String, Value> {
        self.jws.header()
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header().get(name).and_then(Value::as_str)
    }
}

/// The one leeway rule of both validators (client assertions and access tokens): at most
/// [`super::MAX_LEEWAY`] (300 s) through the safe setters; more only through `dangerous_leeway`,
/// because a leeway extends every token's life by that much. `what` names the setting in the
/// error ("a leeway", "an access-token leeway").
pub(crate) fn check_leeway(leeway: std::time::Duration, what: &str) -> Result<(), Error> {
    if leeway > super::MAX_LEEWAY {
        return Err(Error::Config(format!(
            "{what} of {} s is above {} s; use dangerous_leeway to allow it",
            leeway.as_secs(),
            super::MAX_LEEWAY.as_secs()
        )));
    }
    Ok(())
}

/// Seconds since the epoch, with the millisecond fraction, for comparing against `NumericDate`s
/// (which RFC 7519 §2 allows to be non-integer).
pub(crate) fn now_secs(now: UnixTime) -> f64 {
    // u64 milliseconds fit an f64 exactly until the year 287 396.
    now.as_millis() as f64 / 1000.0
}

/// A `NumericDate` (RFC 7519 §2): a finite JSON number. Strings are not dates.
pub(crate) fn numeric_date(value: &Value) -> Option<f64> {
    value.as_f64().filter(|f| f.is_finite())
}

/// A finite, non-negative `NumericDate` as a [`UnixTime`]: whole milliseconds rounded *up*,
/// saturating. Up, because this is the `exp` a replay store keeps a `jti` until (plus leeway) and
/// the `exp` check compares against: floored, an `exp` with a sub-millisecond fraction would let
/// the validator accept during a millisecond in which every store has already forgotten the pair.
pub(crate) fn to_unix_time(secs: f64) -> UnixTime {
    let millis = (secs * 1000.0).ceil();
    if millis.is_nan() || millis <= 0.0 {
        UnixTime::from_millis(0)
    } else if millis >= u64::MAX as f64 {
        UnixTime::from_millis(u64::MAX)
    } else {
        UnixTime::from_millis(millis as u64)
    }
}

/// The rfc profile's `typ` rule: absent, `JWT` or `client-authentication+jwt` (RFC 7523, RFC
/// 10070), case-insensitively and with an optional `application/` prefix (RFC 7515 §4.1.9).
pub(crate) fn typ_ok_rfc(typ: Option<&Value>) -> bool {
    let Some(typ) = typ else { return true };
    let Some(typ) = typ.as_str() else {
        return false;
    };
    let lower = typ.to_ascii_lowercase();
    let bare = lower.strip_prefix("application/").unwrap_or(&lower);
    bare == "jwt" || bare == "client-authentication+jwt"
}

/// NHS's `typ` rule: `typeof typ == "string" && typ.toLowerCase() == "jwt"`.
pub(crate) fn typ_ok_nhs(typ: Option<&Value>) -> bool {
    typ.and_then(Value::as_str)
        .is_some_and(|t| t.to_lowercase() == "jwt")
}

/// JavaScript truthiness of a JSON value read from a parsed object (`None` = `undefined`).
pub(crate) fn js_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// JavaScript `ToNumber` (what `exp * 1000` does to a claim in the NHS proxy).
pub(crate) fn js_to_number(value: Option<&Value>) -> f64 {
    match value {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => js_string_to_number(s),
        Some(v @ (Value::Array(_) | Value::Object(_))) => js_string_to_number(&js_to_string(v)),
    }
}

/// JavaScript `ToNumber` on a string: trimmed, empty is 0, decimal/hex/octal/binary literals and
/// `Infinity`; anything else is NaN.
fn js_string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d));
        }
    }
    if t.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        t.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// JavaScript `String(value)` for a JSON value.
pub(crate) fn js_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                if v.is_null() {
                    String::new()
                } else {
                    js_to_string(v)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

fn js_number_to_string(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// JavaScript loose equality `a == b` for values from two separately parsed JSON documents
/// (objects and arrays are never the same object, so they never equal one another).
pub(crate) fn js_loose_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    use Value as V;
    match (a, b) {
        (None | Some(V::Null), None | Some(V::Null)) => true,
        (None | Some(V::Null), _) | (_, None | Some(V::Null)) => false,
        (Some(V::String(x)), Some(V::String(y))) => x == y,
        (Some(V::Bool(x)), Some(V::Bool(y))) => x == y,
        (Some(x @ V::Number(_)), Some(y @ V::Number(_))) => {
            js_to_number(Some(x)) == js_to_number(Some(y))
        }
        (Some(V::Array(_) | V::Object(_)), Some(V::Array(_) | V::Object(_))) => false,
        // Booleans compare as numbers; objects and arrays compare through their string form.
        (Some(V::Bool(x)), Some(other)) | (Some(other), Some(V::Bool(x))) => {
            let n = Value::from(u8::from(*x));
            js_loose_eq(Some(&n), Some(other))
        }
        (Some(o @ (V::Array(_) | V::Object(_))), Some(p))
        | (Some(p), Some(o @ (V::Array(_) | V::Object(_)))) => {
            let s = Value::String(js_to_string(o));
            js_loose_eq(Some(&s), Some(p))
        }
        // Remaining: number vs string.
        (Some(x), Some(y)) => js_to_number(Some(x)) == js_to_number(Some(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn js_number_coercion() {
        assert_eq!(js_to_number(Some(&json!("123"))), 123.0);
        assert_eq!(js_to_number(Some(&json!(" 12 "))), 12.0);
        assert_eq!(js_to_number(Some(&json!(""))), 0.0);
        assert_eq!(js_to_number(Some(&json!(null))), 0.0);
        assert_eq!(js_to_number(Some(&json!(true))), 1.0);
        assert_eq!(js_to_number(Some(&json!([]))), 0.0);
        assert_eq!(js_to_number(Some(&json!([7]))), 7.0);
        assert_eq!(js_to_number(Some(&json!("0x10"))), 16.0);
        assert!(js_to_number(Some(&json!("abc"))).is_nan());
        assert!(js_to_number(Some(&json!("inf"))).is_nan());
        assert!(js_to_number(Some(&json!({}))).is_nan());
        assert!(js_to_number(None).is_nan());
    }

    #[test]
    fn js_equality_and_truthiness() {
        assert!(js_loose_eq(Some(&json!("a")), Some(&json!("a"))));
        assert!(!js_loose_eq(Some(&json!("a")), Some(&json!("b"))));
        assert!(js_loose_eq(Some(&json!(1)), Some(&json!("1"))));
        assert!(!js_loose_eq(Some(&json!("a")), None));
        assert!(!js_loose_eq(Some(&json!([])), Some(&json!([]))));
        assert!(js_loose_eq(Some(&json!(["a"])), Some(&json!("a"))));
        assert!(!js_truthy(Some(&json!(""))));
        assert!(!js_truthy(Some(&json!(0))));
        assert!(js_truthy(Some(&json!([]))));
        assert_eq!(js_to_string(&json!(5.0)), "5");
        assert_eq!(js_to_string(&json!([1, null, "x"])), "1,,x");
    }

    #[test]
    fn typ_rules() {
        assert!(typ_ok_rfc(None));
        assert!(typ_ok_rfc(Some(&json!("JWT"))));
        assert!(typ_ok_rfc(Some(&json!(
            "application/Client-Authentication+JWT"
        ))));
        assert!(!typ_ok_rfc(Some(&json!("at+jwt"))));
        assert!(!typ_ok_rfc(Some(&json!(1))));
        assert!(!typ_ok_nhs(None));
        assert!(typ_ok_nhs(Some(&json!("jwt"))));
        assert!(!typ_ok_nhs(Some(&json!("application/jwt"))));
    }
}
