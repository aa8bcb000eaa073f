//! Hints for the NHS token endpoint's known error messages: one actionable sentence per message.
//!
//! NHS error descriptions are terse ("Missing or invalid 'aud' claim in client_assertion JWT") and
//! the fix is rarely obvious from them. The table below maps the exact strings of the live proxy
//! and the shorter pre-2022 ("legacy") strings to a hint. Matching is on a normalised form of the
//! description (lower case, quotes dropped, "client_assertion JWT" read as "JWT") so both
//! generations match one rule. Pure: no I/O.

use std::fmt;

/// A known cause of a token-endpoint rejection, with an actionable explanation ([`Hint::text`]).
///
/// Kept as a small `Copy` enum (rather than a bare string) so callers can branch on the cause and
/// so [`crate::Error`] stays small.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hint {
    /// `alg` other than RS512 sent to NHS.
    Algorithm,
    /// `aud` not equal to the exact token URL.
    Audience,
    /// `kid` header missing.
    MissingKid,
    /// `kid` not found in the registered JWKS (often: rotation while NHS caches the old JWKS).
    UnknownKid,
    /// `typ` header missing or not `JWT`.
    Typ,
    /// `iss`/`sub` is not an API key known in this environment.
    UnknownApiKey,
    /// `iss` and `sub` missing or different.
    IssSubMismatch,
    /// `jti` reused.
    ReplayedJti,
    /// `jti` missing or not a string.
    InvalidJti,
    /// `exp` missing or not an integer.
    InvalidExp,
    /// `exp` more than five minutes ahead of the server's clock.
    ExpTooFar,
    /// `exp` already past on the server's clock.
    Expired,
    /// The assertion is not a compact JWS.
    MalformedAssertion,
    /// No public key registered for the application.
    NoPublicKey,
    /// The registered JWKS URL could not be fetched by NHS.
    JwksUnreachable,
    /// The signature did not verify with the registered key of that `kid`.
    Signature,
    /// A public-key problem reported without detail (legacy message).
    PublicKey,
    /// The application may not use the client-credentials grant.
    UnauthorizedClient,
    /// The request's Content-Type was refused (HTTP 415).
    ContentType,
    /// NHS reported an unknown error; support needs the message id.
    UnknownError,
}

impl Hint {
    /// The explanation shown to a person, in one or two sentences.
    pub fn text(self) -> &'static str {
        match self {
            Hint::Algorithm => {
                "NHS requires RS512 for client assertions: sign with an RSA key and RS512 (the NHS \
                 profile selects it when the token URL is on api.service.nhs.uk)."
            }
            Hint::Audience => {
                "the assertion's aud must equal the exact token URL the request is POSTed to, e.g. \
                 https://int.api.service.nhs.uk/oauth2/token (not .../oauth2, not another \
                 environment's host); let m2m derive aud from the token URL."
            }
            Hint::MissingKid => {
                "NHS requires a kid header naming a key in the JWKS registered for this app: \
                 configure the key id."
            }
            Hint::UnknownKid => {
                "no public key with this kid in the JWKS registered for this app in this \
                 environment. NHS caches a JWKS for up to an hour without refetching on a missing \
                 kid: publish a new key well before switching to it and keep the old one during \
                 rotation."
            }
            Hint::Typ => "NHS requires the JWT header typ \"JWT\".",
            Hint::UnknownApiKey => {
                "NHS does not know this API key (iss/sub) in this environment: API keys are per \
                 environment; is this another environment's key (e.g. prod's against INT), or a \
                 typo?"
            }
            Hint::IssSubMismatch => "iss and sub must both be present and equal the API key.",
            Hint::ReplayedJti => {
                "this jti was already used (NHS remembers them for 30 days, even for failed \
                 requests): every request needs a fresh assertion; never reuse or cache one."
            }
            Hint::InvalidJti => "jti must be a non-empty unique string such as a UUID.",
            Hint::InvalidExp => "exp must be present and a JSON integer (seconds since the epoch).",
            Hint::ExpTooFar => {
                "exp is more than 5 minutes ahead of NHS's clock: is this machine's clock fast? \
                 Sync it (NTP) or shorten the assertion lifetime."
            }
            Hint::Expired => {
                "the assertion had expired by NHS's clock (NHS allows no leeway): is this \
                 machine's clock slow? Sync it (NTP)."
            }
            Hint::MalformedAssertion => {
                "client_assertion must be a compact JWS (header.payload.signature)."
            }
            Hint::NoPublicKey => {
                "no public key is registered for this app in this environment: register your JWKS \
                 (public keys only) in the NHS developer portal."
            }
            Hint::JwksUnreachable => {
                "NHS could not fetch the JWKS URL registered for this app: it must be \
                 https://host/path, answer 200 with JSON, and present a certificate chain NHS \
                 trusts."
            }
            Hint::Signature => {
                "the signature does not verify with the registered key of this kid: check that \
                 the JWKS holds the public half of the signing key under the same kid and that \
                 the assertion is signed with RS512."
            }
            Hint::PublicKey => {
                "NHS could not use the public key registered for this app: check the JWKS \
                 registration (URL reachable, RSA key, kid)."
            }
            Hint::UnauthorizedClient => {
                "the app is not allowed to use this grant: in this environment it must be \
                 subscribed to an API product that allows application-restricted (signed JWT) \
                 access."
            }
            Hint::ContentType => {
                "the token request must be a form body with Content-Type exactly \
                 application/x-www-form-urlencoded (no charset parameter)."
            }
            Hint::UnknownError => {
                "the server gave no detail; contact its support quoting the message_id."
            }
        }
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Picks the hint for a rejection, from its HTTP status, RFC 6749 `error` and `error_description`.
///
/// Returns `None` when nothing specific is known: a wrong hint is worse than none.
pub fn hint_for(status: u16, error: Option<&str>, description: Option<&str>) -> Option<Hint> {
    if let Some(h) = description.and_then(hint_for_description) {
        return Some(h);
    }
    match (status, error) {
        (415, _) => Some(Hint::ContentType),
        (_, Some("unauthorized_client")) => Some(Hint::UnauthorizedClient),
        (_, Some("unknown_error")) => Some(Hint::UnknownError),
        _ => None,
    }
}

fn hint_for_description(description: &str) -> Option<Hint> {
    // Normalise both generations of NHS strings to one form: the legacy strings lack the quotes
    // around claim names and say "in JWT" where current ones say "in client_assertion JWT".
    let d = description
        .to_ascii_lowercase()
        .replace('\'', "")
        .replace("client_assertion jwt", "jwt");
    DESCRIPTION_RULES
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| d.contains(n)))
        .map(|(_, hint)| *hint)
}

/// Description fragments (lower case, quotes removed, "client_assertion jwt" read as "jwt") and
/// their hints, **searched in order**: the first row with a matching fragment wins. Order
/// matters where one fragment contains another: "non-unique jti" before "jti claim", "jwt has
/// expired" and "more than 5 minutes in future" before "exp claim".
const DESCRIPTION_RULES: [(&[&str], Hint); 20] = [
    (
        &["invalid alg header", "missing alg header"],
        Hint::Algorithm,
    ),
    (&["missing kid header"], Hint::MissingKid),
    (
        &["invalid kid header", "no matching public key"],
        Hint::UnknownKid,
    ),
    (&["typ header"], Hint::Typ),
    (&["missing or non-matching iss/sub"], Hint::IssSubMismatch),
    (&["invalid iss/sub"], Hint::UnknownApiKey),
    (&["non-unique jti"], Hint::ReplayedJti),
    (&["jti claim"], Hint::InvalidJti),
    (&["aud claim"], Hint::Audience),
    (&["more than 5 minutes in future"], Hint::ExpTooFar),
    (&["jwt has expired"], Hint::Expired),
    (&["exp claim"], Hint::InvalidExp),
    (
        &["malformed jwt", "failed to decode jwt"],
        Hint::MalformedAssertion,
    ),
    (&["register a public key"], Hint::NoPublicKey),
    (&["jwks endpoint"], Hint::JwksUnreachable),
    (&["signature verification failed"], Hint::Signature),
    (&["misconfigured public key"], Hint::PublicKey),
    (&["content-type header must be"], Hint::ContentType),
    (
        &["not configured to use this authorization grant type"],
        Hint::UnauthorizedClient,
    ),
    (&["an unknown error occurred"], Hint::UnknownError),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per NHS message (current and legacy) from docs/nhs-token-endpoint.md §2.2 and §2.3.
    #[test]
    fn known_nhs_messages_map_to_hints() {
        let rows: &[(u16, &str, &str, Hint)] = &[
            (
                400,
                "invalid_request",
                "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
                Hint::Algorithm,
            ),
            (
                400,
                "invalid_request",
                "Invalid 'alg' header in JWT - unsupported JWT algorithm - must be 'RS512'",
                Hint::Algorithm,
            ),
            (
                400,
                "invalid_request",
                "Missing 'kid' header in client_assertion JWT",
                Hint::MissingKid,
            ),
            (
                400,
                "invalid_request",
                "Missing 'kid' header in JWT",
                Hint::MissingKid,
            ),
            (
                401,
                "invalid_request",
                "Invalid 'kid' header in client_assertion JWT - no matching public key",
                Hint::UnknownKid,
            ),
            (
                401,
                "invalid_request",
                "Invalid 'kid' header in JWT - no matching public key",
                Hint::UnknownKid,
            ),
            (
                400,
                "invalid_request",
                "Invalid 'typ' header in client_assertion JWT - must be 'JWT'",
                Hint::Typ,
            ),
            (
                401,
                "invalid_request",
                "Invalid 'iss'/'sub' claims in client_assertion JWT",
                Hint::UnknownApiKey,
            ),
            (
                401,
                "invalid_request",
                "Invalid iss/sub claims in JWT",
                Hint::UnknownApiKey,
            ),
            (
                400,
                "invalid_request",
                "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT",
                Hint::IssSubMismatch,
            ),
            (
                400,
                "invalid_request",
                "Missing or non-matching iss/sub claims in JWT",
                Hint::IssSubMismatch,
            ),
            (
                400,
                "invalid_request",
                "Invalid 'jti' claim in client_assertion JWT - must be a unique string value such as a GUID",
                Hint::InvalidJti,
            ),
            (
                400,
                "invalid_request",
                "Missing 'jti' claim in client_assertion JWT",
                Hint::InvalidJti,
            ),
            (
                400,
                "invalid_request",
                "Missing jti claim in JWT",
                Hint::InvalidJti,
            ),
            (
                400,
                "invalid_request",
                "Non-unique 'jti' claim in client_assertion JWT",
                Hint::ReplayedJti,
            ),
            (
                400,
                "invalid_request",
                "Non-unique jti claim in JWT",
                Hint::ReplayedJti,
            ),
            (
                401,
                "invalid_request",
                "Missing or invalid 'aud' claim in client_assertion JWT",
                Hint::Audience,
            ),
            (
                401,
                "invalid_request",
                "Missing or invalid aud claim in JWT",
                Hint::Audience,
            ),
            (
                400,
                "invalid_request",
                "Invalid 'exp' claim in client_assertion JWT - must be an integer",
                Hint::InvalidExp,
            ),
            (
                400,
                "invalid_request",
                "Missing 'exp' claim in client_assertion JWT",
                Hint::InvalidExp,
            ),
            (
                400,
                "invalid_request",
                "Missing exp claim in JWT",
                Hint::InvalidExp,
            ),
            (
                400,
                "invalid_request",
                "Invalid 'exp' claim in client_assertion JWT - JWT has expired",
                Hint::Expired,
            ),
            (
                400,
                "invalid_request",
                "Invalid exp claim in JWT - JWT has expired",
                Hint::Expired,
            ),
            (
                400,
                "invalid_request",
                "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future",
                Hint::ExpTooFar,
            ),
            (
                400,
                "invalid_request",
                "Invalid exp claim in JWT - more than 5 minutes in future",
                Hint::ExpTooFar,
            ),
            (
                400,
                "invalid_request",
                "Malformed JWT in client_assertion",
                Hint::MalformedAssertion,
            ),
            (
                400,
                "invalid_request",
                "Failed to decode JWT",
                Hint::MalformedAssertion,
            ),
            (
                403,
                "public_key error",
                "You need to register a public key to use this authentication method - please contact support to configure",
                Hint::NoPublicKey,
            ),
            (
                403,
                "public_key error",
                "The JWKS endpoint, for your client_assertion can't be reached",
                Hint::JwksUnreachable,
            ),
            (
                403,
                "public_key error",
                "The JWKS endpoint for your client_assertion can not be reached",
                Hint::JwksUnreachable,
            ),
            (
                401,
                "public_key error",
                "JWT signature verification failed",
                Hint::Signature,
            ),
            (
                401,
                "public_key error",
                "Misconfigured public key - contact us",
                Hint::PublicKey,
            ),
            (
                401,
                "unauthorized_client",
                "you have tried to request authorization but your application is not configured to use this authorization grant type",
                Hint::UnauthorizedClient,
            ),
            (
                415,
                "invalid_request",
                "Content-Type header must be application/x-www-form-urlencoded",
                Hint::ContentType,
            ),
            (
                401,
                "unknown_error",
                "An unknown error occurred processing this request. Contact us for assistance diagnosing this issue: https://digital.nhs.uk/developer/help-and-support quoting Message ID",
                Hint::UnknownError,
            ),
        ];
        for (status, error, description, want) in rows {
            assert_eq!(
                hint_for(*status, Some(error), Some(description)),
                Some(*want),
                "{description}"
            );
        }
    }

    #[test]
    fn status_and_error_code_alone_still_hint() {
        assert_eq!(hint_for(415, None, None), Some(Hint::ContentType));
        assert_eq!(
            hint_for(401, Some("unauthorized_client"), None),
            Some(Hint::UnauthorizedClient)
        );
    }

    #[test]
    fn unknown_messages_get_no_hint() {
        assert_eq!(
            hint_for(
                400,
                Some("invalid_client"),
                Some("client authentication failed")
            ),
            None
        );
        assert_eq!(hint_for(500, None, None), None);
    }
}
