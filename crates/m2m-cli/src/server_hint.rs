//! Hints the CLI adds to a token endpoint's refusal from what only the command line knows: how
//! the algorithm was chosen, which kid was sent, which audience rule was used. The library's
//! hints (`m2m_client::Hint`) know only the server's message. Pure: no I/O.

use crate::settings::{AlgChoice, AlgSource};

/// How the assertion's `aud` was chosen, for the hint on an `aud` refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AudRule {
    /// `--aud`, `--issuer`, an NHS environment, or discovery by `--issuer`: the user's choice.
    Given,
    /// The token URL, because no RFC 8414 metadata at its origin named it.
    TokenUrlGuess,
    /// The issuer of the RFC 8414 metadata found at the token URL's origin.
    DiscoveredIssuer(String),
}

/// A better hint for `error` (the server's `error_description`, lower-cased inside), or `None`
/// to keep the library's.
pub(crate) fn hint(description: &str, alg: &AlgChoice, aud: &AudRule) -> Option<String> {
    let d = description.to_ascii_lowercase();
    if d.contains("'aud'") || d.contains("aud claim") {
        return aud_hint(description, aud);
    }
    if d.contains("'alg'") || d.contains("alg header") {
        return Some(alg_hint(alg));
    }
    None
}

fn aud_hint(description: &str, aud: &AudRule) -> Option<String> {
    // m2m serve's rfc profile names the issuer it wants: `… the issuer identifier "X"`.
    let issuer = description
        .split("issuer identifier \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|s| !s.is_empty());
    let how = match aud {
        AudRule::TokenUrlGuess => {
            "aud was the token URL (no RFC 8414 metadata at its origin names it); "
        }
        AudRule::DiscoveredIssuer(_) => {
            "aud was the issuer found by RFC 8414 discovery at the token URL's origin; "
        }
        AudRule::Given => "",
    };
    Some(match issuer {
        Some(issuer) => format!(
            "{how}this server wants aud = its issuer identifier: pass --issuer {issuer} (m2m \
             then finds the token URL by RFC 8414 discovery, or keeps your --token-url), or --aud {issuer}"
        ),
        None if *aud == AudRule::Given => return None,
        None => format!(
            "{how}if the server wants its issuer identifier as aud (RFC 10070), pass --issuer URL"
        ),
    })
}

fn alg_hint(alg: &AlgChoice) -> String {
    let kid = alg
        .kid
        .as_deref()
        .map_or_else(|| "no kid".to_owned(), |k| format!("kid {k:?}"));
    let mut hint = format!(
        "the assertion was signed with {} and {kid}; pass --alg with the algorithm the server \
         pinned for this client (m2m keygen keys: RS512)",
        alg.describe()
    );
    if matches!(alg.source, AlgSource::KeyType) {
        hint.push_str(
            "; the alg was guessed because no JWKS beside the key names this kid — check --kid",
        );
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use m2m_core::alg::Algorithm;

    fn guessed() -> AlgChoice {
        AlgChoice {
            alg: Algorithm::Rs256,
            source: AlgSource::KeyType,
            kid: Some("int-9".into()),
        }
    }

    #[test]
    fn aud_refusal_names_the_issuer_flag() {
        let h = hint(
            "assertion 'aud' must be the issuer identifier \"http://127.0.0.1:8080\"",
            &guessed(),
            &AudRule::TokenUrlGuess,
        )
        .unwrap_or_default();
        assert!(h.contains("--issuer http://127.0.0.1:8080"), "{h}");
        assert!(h.contains("token URL"), "{h}");
    }

    #[test]
    fn alg_refusal_names_alg_flag_and_kid() {
        for description in [
            "assertion 'alg' RS256 is not allowed for this client (allowed: RS512)",
            "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
        ] {
            let h = hint(description, &guessed(), &AudRule::Given).unwrap_or_default();
            assert!(h.contains("--alg"), "{h}");
            assert!(h.contains("int-9"), "{h}");
            assert!(h.contains("--kid"), "{h}");
        }
    }

    #[test]
    fn other_refusals_keep_the_library_hint() {
        assert_eq!(
            hint(
                "assertion 'jti' was already used",
                &guessed(),
                &AudRule::Given
            ),
            None
        );
    }
}
