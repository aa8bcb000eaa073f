//! The pure part of DPoP at a resource server: reading the `Authorization` and `DPoP` headers
//! (RFC 6750 §2.1, RFC 9449 §7.1) and deciding, by [`DpopMode`], what a request presents. Header
//! bytes in, a [`Presented`] credential or a [`Refusal`] out: no I/O, no crypto, no clock, so a
//! proptest feeds it arbitrary bytes.

use std::fmt;
use std::str::FromStr;

use m2m_core::validate::{AccessTokenReason, DpopReason, DpopRejection};

use crate::error::Refusal;

/// Which tokens a resource accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DpopMode {
    /// Bearer tokens only (RFC 6750); the `DPoP` scheme is refused. A token bound with `cnf` is
    /// refused too, as it always is when presented as Bearer.
    #[default]
    Bearer,
    /// Unbound tokens as Bearer, DPoP-bound tokens with the `DPoP` scheme and a proof.
    Allowed,
    /// DPoP-bound tokens with a proof only (RFC 9728 `dpop_bound_access_tokens_required`).
    Required,
}

impl DpopMode {
    /// `bearer`, `allowed` or `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            DpopMode::Bearer => "bearer",
            DpopMode::Allowed => "allowed",
            DpopMode::Required => "required",
        }
    }
    /// Whether the `DPoP` scheme is accepted.
    pub fn accepts_dpop(self) -> bool {
        self != DpopMode::Bearer
    }
    /// Whether the `Bearer` scheme is accepted.
    pub fn accepts_bearer(self) -> bool {
        self != DpopMode::Required
    }
}

impl fmt::Display for DpopMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DpopMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bearer" => Ok(DpopMode::Bearer),
            "allowed" => Ok(DpopMode::Allowed),
            "required" => Ok(DpopMode::Required),
            other => Err(format!(
                "{other:?} is not a DPoP mode (bearer, allowed or required)"
            )),
        }
    }
}

/// The authentication scheme a request used, so a refusal's `error` goes on that scheme's
/// challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP`.
    Dpop,
}

/// The credential a request presents, once the mode allowed it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// A Bearer token.
    Bearer(&'a str),
    /// A token with the `DPoP` scheme and its one proof.
    Dpop {
        /// The access token.
        token: &'a str,
        /// The `DPoP` header's value.
        proof: &'a str,
    },
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token or the proof.
        match self {
            Presented::Bearer(_) => f.write_str("Presented::Bearer([redacted])"),
            Presented::Dpop { .. } => f.write_str("Presented::Dpop([redacted])"),
        }
    }
}

/// The scheme of the (first) `Authorization` header, if it is Bearer or DPoP.
pub fn used_scheme(authorization: &[&[u8]]) -> Option<Scheme> {
    let value = authorization.first()?;
    let end = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
    let scheme = &value[..end];
    if scheme.eq_ignore_ascii_case(b"Bearer") {
        Some(Scheme::Bearer)
    } else if scheme.eq_ignore_ascii_case(b"DPoP") {
        Some(Scheme::Dpop)
    } else {
        None
    }
}

/// Reads a request's credential under `mode`: `query` is the request target's query string,
/// `authorization` and `dpop` every value of those headers, in order.
///
/// Refusals: a token in the query string, two `Authorization` headers, a non-ASCII header or a
/// credential that is not token68 → 400 `invalid_request`; no `Authorization` or another scheme →
/// 401 without error code; the `DPoP` scheme in `bearer` mode → 401 `invalid_token`; a Bearer
/// token in `required` mode → 401 `invalid_token` ([`Refusal::DpopRequired`]); the `DPoP`
/// scheme without exactly one ASCII `DPoP` header → 401 `invalid_dpop_proof`. A `DPoP` header
/// next to a Bearer token is ignored (RFC 9449 §7.2).
pub fn read_credentials<'a>(
    mode: DpopMode,
    query: Option<&str>,
    authorization: &[&'a [u8]],
    dpop: &[&'a [u8]],
) -> Result<Presented<'a>, Refusal> {
    if query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "access_token" || p.starts_with("access_token="))
    }) {
        return Err(Refusal::InvalidRequest(
            "access tokens in the query string are refused; send them in the Authorization header"
                .into(),
        ));
    }
    let value = match authorization {
        [] => return Err(Refusal::NoToken),
        [one] => *one,
        _ => {
            return Err(Refusal::InvalidRequest(
                "more than one Authorization header".into(),
            ));
        }
    };
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or_else(|| Refusal::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim_start_matches(' ');
    if scheme.eq_ignore_ascii_case("Bearer") {
        let token = token68(token, "Bearer")?;
        if !mode.accepts_bearer() {
            return Err(Refusal::DpopRequired);
        }
        return Ok(Presented::Bearer(token));
    }
    if !scheme.eq_ignore_ascii_case("DPoP") {
        // Another scheme (Basic, …) is no token: the client gets the challenge.
        return Err(Refusal::NoToken);
    }
    if !mode.accepts_dpop() {
        return Err(Refusal::token(
            AccessTokenReason::SenderConstrained,
            "DPoP-bound tokens are not accepted by this resource",
        ));
    }
    let token = token68(token, "DPoP")?;
    let proof = match dpop {
        [] => {
            return Err(proof_refusal(
                "no DPoP header: the DPoP scheme needs a DPoP proof in the DPoP header",
            ));
        }
        [one] => *one,
        _ => return Err(proof_refusal("more than one DPoP header")),
    };
    let proof = std::str::from_utf8(proof)
        .ok()
        .filter(|p| p.is_ascii() && !p.is_empty())
        .ok_or_else(|| proof_refusal("the DPoP header is empty or not ASCII"))?;
    Ok(Presented::Dpop { token, proof })
}

fn proof_refusal(description: &'static str) -> Refusal {
    Refusal::Proof(DpopRejection {
        reason: DpopReason::Malformed,
        description: description.into(),
    })
}

/// `token` if it is a non-empty RFC 7235 token68 value.
fn token68<'a>(token: &'a str, scheme: &str) -> Result<&'a str, Refusal> {
    if token.is_empty() || !token.bytes().all(is_token68) {
        return Err(Refusal::InvalidRequest(
            format!("the {scheme} credential is not a token68 value").into(),
        ));
    }
    Ok(token)
}

/// RFC 7235 token68 characters (plus `=` padding).
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [DpopMode; 3] = [DpopMode::Bearer, DpopMode::Allowed, DpopMode::Required];

    fn read(
        mode: DpopMode,
        authz: &[&'static str],
        dpop: &[&'static str],
    ) -> Result<Presented<'static>, Refusal> {
        let a: Vec<&'static [u8]> = authz.iter().map(|s| s.as_bytes()).collect();
        let d: Vec<&'static [u8]> = dpop.iter().map(|s| s.as_bytes()).collect();
        read_credentials(mode, None, &a, &d)
    }

    #[test]
    fn each_mode_accepts_its_schemes() {
        use DpopMode::*;
        assert_eq!(read(Bearer, &["Bearer t"], &[]), Ok(Presented::Bearer("t")));
        assert_eq!(
            read(Allowed, &["bearer t"], &["p"]),
            Ok(Presented::Bearer("t"))
        );
        assert_eq!(
            read(Required, &["Bearer t"], &[]),
            Err(Refusal::DpopRequired)
        );
        let dpop = Presented::Dpop {
            token: "t",
            proof: "p",
        };
        assert_eq!(read(Allowed, &["DPoP t"], &["p"]), Ok(dpop));
        assert_eq!(read(Required, &["dpop  t"], &["p"]), Ok(dpop));
        let refused = read(Bearer, &["DPoP t"], &["p"]).unwrap_err();
        assert_eq!(refused.reason(), Some(AccessTokenReason::SenderConstrained));
    }

    #[test]
    fn malformed_requests_are_refused_in_every_mode() {
        for mode in ALL {
            assert_eq!(read(mode, &[], &[]), Err(Refusal::NoToken));
            assert_eq!(read(mode, &["Basic dTpw"], &[]), Err(Refusal::NoToken));
            assert_eq!(
                read(mode, &["Bearer a", "Bearer b"], &[])
                    .unwrap_err()
                    .status(),
                400
            );
            assert_eq!(read(mode, &["Bearer a b"], &[]).unwrap_err().status(), 400);
            assert_eq!(read(mode, &["Bearer"], &[]).unwrap_err().status(), 400);
            let q = read_credentials(mode, Some("x=1&access_token=t"), &[b"Bearer t"], &[]);
            assert_eq!(q.unwrap_err().status(), 400);
        }
        for mode in [DpopMode::Allowed, DpopMode::Required] {
            for dpop in [&[][..], &["p", "q"][..], &[""][..]] {
                let r = read(mode, &["DPoP t"], dpop).unwrap_err();
                assert_eq!(r.error_code(), Some("invalid_dpop_proof"), "{dpop:?}");
                assert_eq!(r.status(), 401);
            }
        }
    }

    #[test]
    fn the_used_scheme_is_read_from_the_first_header() {
        assert_eq!(used_scheme(&[b"Bearer x"]), Some(Scheme::Bearer));
        assert_eq!(used_scheme(&[b"DPoP x"]), Some(Scheme::Dpop));
        assert_eq!(used_scheme(&[b"dpop"]), Some(Scheme::Dpop));
        assert_eq!(used_scheme(&[b"Basic x"]), None);
        assert_eq!(used_scheme(&[]), None);
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in ALL {
            assert_eq!(mode.as_str().parse::<DpopMode>(), Ok(mode));
        }
        assert!("Bearer".parse::<DpopMode>().is_err());
    }

    proptest! {
        /// Arbitrary Authorization and DPoP header bytes never panic, in any mode, and what is
        /// accepted is always a token68 token (and a proof for the DPoP scheme).
        #[test]
        fn arbitrary_header_bytes_never_panic(
            authz in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3),
            dpop in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3),
            prefix in prop_oneof![Just(&b"Bearer "[..]), Just(&b"DPoP "[..]), Just(&b""[..])],
            query in proptest::option::of(".{0,32}"),
            mode in prop_oneof![Just(DpopMode::Bearer), Just(DpopMode::Allowed), Just(DpopMode::Required)],
        ) {
            let mut authz = authz;
            if let Some(first) = authz.first_mut() {
                let mut v = prefix.to_vec();
                v.extend_from_slice(first);
                *first = v;
            }
            let a: Vec<&[u8]> = authz.iter().map(Vec::as_slice).collect();
            let d: Vec<&[u8]> = dpop.iter().map(Vec::as_slice).collect();
            let _ = used_scheme(&a);
            match read_credentials(mode, query.as_deref(), &a, &d) {
                Ok(Presented::Bearer(t)) => {
                    prop_assert!(mode.accepts_bearer());
                    prop_assert!(!t.is_empty() && t.bytes().all(is_token68));
                }
                Ok(Presented::Dpop { token, proof }) => {
                    prop_assert!(mode.accepts_dpop());
                    prop_assert!(!token.is_empty() && token.bytes().all(is_token68));
                    prop_assert!(!proof.is_empty() && proof.is_ascii());
                    prop_assert_eq!(d.len(), 1);
                }
                Err(r) => prop_assert!(matches!(r.status(), 400 | 401)),
            }
        }
    }
}
