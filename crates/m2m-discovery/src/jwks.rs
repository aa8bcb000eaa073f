//! Reading a JWKS document into verification keys ([`KeySet`]), with the rules every consumer
//! shares: private members refuse the whole document, keys whose `use` is not `sig` are skipped,
//! and each key implies the algorithms it may verify.

use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet, Kid};
use m2m_core::jwk::Jwks;
use m2m_core::key::PublicKey;

use crate::error::JwksError;

/// Largest JWKS body accepted, 64 KiB: the fetcher stops downloading there and `m2m jwks check`
/// reports a larger document as an error. A JWKS of ten 4096-bit RSA keys is under 8 KiB, so this
/// leaves room for rotation while bounding what a hostile host can make us hold.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The algorithms an RSA key without `alg` may verify: RS256, the JOSE default (RFC 7518), and
/// RS512, the NHS default that `m2m keygen` produces. Both, because the publisher did not say and
/// the two ecosystems disagree.
pub const IMPLIED_RSA_ALGS: [Algorithm; 2] = [Algorithm::Rs256, Algorithm::Rs512];

/// Verification keys parsed from a JWKS, plus the algorithms they imply.
#[derive(Clone, Debug)]
pub struct ParsedJwks {
    /// The signature keys, in document order.
    pub keys: KeySet,
    /// Each key's JWK `alg`, else its type's default ([`IMPLIED_RSA_ALGS`] for RSA), without
    /// duplicates, in first-seen order. A registry uses this when a client lists no `algs`.
    pub implied_algs: Vec<Algorithm>,
}

/// Parses a JWKS document into verification keys. Pure.
///
/// Refuses the whole document when any key has private members (it has leaked, and we must not
/// quietly use the rest). Skips keys whose `use` is present and not `sig`. Fails when a usable key
/// cannot be read, names an unknown `alg`, or when no signature key is left.
pub fn parse_jwks(bytes: &[u8]) -> Result<ParsedJwks, JwksError> {
    let jwks = Jwks::from_slice(bytes).map_err(|e| JwksError::Malformed {
        reason: e.to_string(),
    })?;
    jwks.ensure_public()
        .map_err(|e| JwksError::PrivateMembers {
            reason: e.to_string(),
        })?;
    let mut keys = Vec::with_capacity(jwks.keys.len());
    let mut implied_algs: Vec<Algorithm> = Vec::new();
    for jwk in &jwks.keys {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        let name = || jwk.kid.clone().unwrap_or_else(|| "(no kid)".to_owned());
        let key = PublicKey::from_jwk(jwk).map_err(|e| JwksError::BadKey {
            kid: name(),
            reason: e.to_string(),
        })?;
        let algs = match jwk.alg.as_deref() {
            Some(a) => vec![
                Algorithm::from_name(a).ok_or_else(|| JwksError::UnknownAlg {
                    kid: name(),
                    alg: a.to_owned(),
                })?,
            ],
            None if key.kind().default_alg().is_rsa() => IMPLIED_RSA_ALGS.to_vec(),
            None => vec![key.kind().default_alg()],
        };
        for alg in algs {
            if !implied_algs.contains(&alg) {
                implied_algs.push(alg);
            }
        }
        keys.push(KeyEntry::new(jwk.kid.clone().map(Kid::new), key));
    }
    if keys.is_empty() {
        return Err(JwksError::NoSignatureKeys);
    }
    Ok(ParsedJwks {
        keys: KeySet::new(keys),
        implied_algs,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 8037 A.2 Ed25519 public key.
    const ED: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo""#;
    /// RFC 7515 A.3 P-256 key (public part).
    const EC: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0""#;

    fn doc(keys: &[String]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    #[test]
    fn keys_kids_and_implied_algs() {
        let parsed = parse_jwks(&doc(&[
            format!(r#"{ED},"kid":"ed"}}"#),
            format!(r#"{EC},"kid":"ec","alg":"ES256"}}"#),
            format!(r#"{ED},"kid":"enc","use":"enc"}}"#),
        ]))
        .unwrap();
        assert_eq!(parsed.keys.len(), 2, "the use=enc key is skipped");
        assert!(parsed.keys.by_kid("ed").is_some());
        assert!(parsed.keys.by_kid("enc").is_none());
        assert_eq!(parsed.implied_algs, [Algorithm::EdDsa, Algorithm::Es256]);
    }

    #[test]
    fn rsa_keys_without_alg_imply_rs256_and_rs512() {
        use m2m_core::key::{KeySpec, PrivateKey};
        let key = PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap();
        let jwk = serde_json::to_string(&key.public_key().to_jwk()).unwrap();
        let parsed = parse_jwks(&doc(&[jwk])).unwrap();
        assert_eq!(parsed.implied_algs, IMPLIED_RSA_ALGS);
        assert!(parsed.keys.as_slice()[0].kid.is_none());
    }

    #[test]
    fn private_members_refuse_the_whole_document_without_echoing_them() {
        let d = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
        let err = parse_jwks(&doc(&[
            format!(r#"{ED},"kid":"ok"}}"#),
            format!(r#"{EC},"kid":"leaked","d":"{d}"}}"#),
        ]))
        .unwrap_err();
        assert!(matches!(err, JwksError::PrivateMembers { .. }), "{err}");
        assert!(!err.to_string().contains("jpsQnn"), "{err}");
    }

    #[test]
    fn unusable_documents_are_refused() {
        assert!(matches!(
            parse_jwks(b"<html>"),
            Err(JwksError::Malformed { .. })
        ));
        assert_eq!(
            parse_jwks(&doc(&[format!(r#"{ED},"use":"enc"}}"#)])).unwrap_err(),
            JwksError::NoSignatureKeys
        );
        // m2m-core refuses an alg it does not know while reading the key.
        let err = parse_jwks(&doc(&[format!(r#"{ED},"kid":"x","alg":"HS256"}}"#)])).unwrap_err();
        assert!(
            matches!(&err, JwksError::BadKey { kid, .. } if kid == "x"),
            "{err}"
        );
        assert!(err.to_string().contains("HS256"), "{err}");
        assert!(matches!(
            parse_jwks(br#"{"keys":[{"kty":"OKP","crv":"X448","x":"AA"}]}"#),
            Err(JwksError::BadKey { .. }) | Err(JwksError::Malformed { .. })
        ));
    }
}
