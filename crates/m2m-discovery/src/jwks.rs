//! Reading a JWKS document into verification keys ([`KeySet`]), with the rules every consumer
//! shares: private members refuse the whole document, two signature keys with one `kid` refuse
//! it too, keys whose `use` is not `sig` are skipped, keys m2m cannot use (unknown `kty` or
//! `alg`, RSA under 2048 bits, missing members) are skipped with a warning (RFC 7517 §5: ignore
//! what is not understood) so one odd key does not lock a client out, and each key implies the
//! algorithms it may verify; a published `alg` is bound to its key.

use std::collections::HashSet;

use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet, Kid};
use m2m_core::jwk::{Jwk, Jwks};
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
    /// The usable signature keys, in document order, each bound to its JWK `alg` if any.
    pub keys: KeySet,
    /// Each key's JWK `alg`, else its type's default ([`IMPLIED_RSA_ALGS`] for RSA), without
    /// duplicates, in first-seen order. A registry uses this when a client lists no `algs`.
    pub implied_algs: Vec<Algorithm>,
    /// The signature keys skipped as unusable, each as "key KID: reason" (already logged).
    pub skipped: Vec<String>,
}

/// Parses a JWKS document into verification keys. Pure apart from a warning per skipped key.
///
/// Refuses the whole document when any key has private members (it has leaked, and we must not
/// quietly use the rest) or when two signature keys share a `kid`. Skips keys whose `use` is
/// present and not `sig`, and signature keys that cannot be used (read failure, unknown `alg`),
/// logging them by kid. Fails when no usable signature key is left.
pub fn parse_jwks(bytes: &[u8]) -> Result<ParsedJwks, JwksError> {
    let jwks = Jwks::from_slice(bytes).map_err(|e| JwksError::Malformed {
        reason: e.to_string(),
    })?;
    jwks.ensure_public()
        .map_err(|e| JwksError::PrivateMembers {
            reason: e.to_string(),
        })?;
    let signing: Vec<_> = jwks
        .keys
        .iter()
        .filter(|jwk| jwk.use_.as_deref().is_none_or(|u| u == "sig"))
        .collect();
    let mut kids = HashSet::new();
    for kid in signing.iter().filter_map(|jwk| jwk.kid.as_deref()) {
        if !kids.insert(kid) {
            return Err(JwksError::DuplicateKid {
                kid: kid.to_owned(),
            });
        }
    }
    let mut keys = Vec::with_capacity(signing.len());
    let mut implied_algs: Vec<Algorithm> = Vec::new();
    let mut skipped = Vec::new();
    for jwk in signing {
        match read_key(jwk) {
            Ok((entry, algs)) => {
                for alg in algs {
                    if !implied_algs.contains(&alg) {
                        implied_algs.push(alg);
                    }
                }
                keys.push(entry);
            }
            Err(e) => {
                tracing::warn!(kid = jwk.kid.as_deref().unwrap_or("(no kid)"), reason = %e, "skipping a JWKS key m2m cannot use");
                skipped.push(e.to_string());
            }
        }
    }
    if keys.is_empty() {
        return Err(if skipped.is_empty() {
            JwksError::NoSignatureKeys
        } else {
            JwksError::NoUsableKeys { skipped }
        });
    }
    Ok(ParsedJwks {
        keys: KeySet::new(keys),
        implied_algs,
        skipped,
    })
}

/// One signature key: the entry (bound to its `alg`) and the algorithms it implies.
fn read_key(jwk: &Jwk) -> Result<(KeyEntry, Vec<Algorithm>), JwksError> {
    let name = || jwk.kid.clone().unwrap_or_else(|| "(no kid)".to_owned());
    let key = PublicKey::from_jwk(jwk).map_err(|e| JwksError::BadKey {
        kid: name(),
        reason: e.to_string(),
    })?;
    let published = jwk
        .alg
        .as_deref()
        .map(|a| {
            Algorithm::from_name(a).ok_or_else(|| JwksError::UnknownAlg {
                kid: name(),
                alg: a.to_owned(),
            })
        })
        .transpose()?;
    let algs = match published {
        Some(alg) => vec![alg],
        None if key.kind().default_alg().is_rsa() => IMPLIED_RSA_ALGS.to_vec(),
        None => vec![key.kind().default_alg()],
    };
    let entry = KeyEntry::new(jwk.kid.clone().map(Kid::new), key).with_alg(published);
    Ok((entry, algs))
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
        // m2m-core refuses an alg it does not know while reading the key; with no other key
        // left, the set is refused, naming the key and why.
        let err = parse_jwks(&doc(&[format!(r#"{ED},"kid":"x","alg":"HS256"}}"#)])).unwrap_err();
        assert!(
            matches!(&err, JwksError::NoUsableKeys { skipped } if skipped[0].starts_with("key x:")),
            "{err}"
        );
        assert!(err.to_string().contains("HS256"), "{err}");
        assert!(matches!(
            parse_jwks(br#"{"keys":[{"kty":"OKP","crv":"X448","x":"AA"}]}"#),
            Err(JwksError::NoUsableKeys { .. }) | Err(JwksError::Malformed { .. })
        ));
    }

    /// F8: unusable keys are skipped (and reported), the usable one kept.
    #[test]
    fn unusable_keys_are_skipped_when_a_usable_one_is_left() {
        use m2m_core::key::{KeySpec, PrivateKey};
        let small = PrivateKey::generate(KeySpec::Rsa { bits: 1024 });
        let mut entries = vec![
            r#"{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo","kid":"x25519"}"#.to_owned(),
            format!(r#"{ED},"kid":"good"}}"#),
            r#"{"kty":"RSA","kid":"no-n","e":"AQAB"}"#.to_owned(),
            format!(r#"{EC},"kid":"odd-alg","alg":"XS999"}}"#),
        ];
        if let Ok(small) = small {
            let mut jwk = small.public_key().to_jwk();
            jwk.kid = Some("rsa1024".to_owned());
            entries.push(serde_json::to_string(&jwk).unwrap());
        }
        let parsed = parse_jwks(&doc(&entries)).unwrap();
        assert_eq!(parsed.keys.len(), 1);
        assert!(parsed.keys.by_kid("good").is_some());
        assert_eq!(
            parsed.skipped.len(),
            entries.len() - 1,
            "{:?}",
            parsed.skipped
        );
        for kid in ["x25519", "no-n", "odd-alg"] {
            assert!(
                parsed
                    .skipped
                    .iter()
                    .any(|s| s.starts_with(&format!("key {kid}:"))),
                "{kid}: {:?}",
                parsed.skipped
            );
        }
        assert_eq!(parsed.implied_algs, [Algorithm::EdDsa]);
    }

    /// F8: a leaked private key still refuses the whole set, even next to usable keys and
    /// unusable ones.
    #[test]
    fn private_members_refuse_the_set_even_with_skippable_keys() {
        let err = parse_jwks(&doc(&[
            format!(r#"{ED},"kid":"ok"}}"#),
            r#"{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo","kid":"x"}"#.to_owned(),
            format!(r#"{EC},"kid":"leaked","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}}"#),
        ]))
        .unwrap_err();
        assert!(matches!(err, JwksError::PrivateMembers { .. }), "{err}");
    }

    /// I5: the published `alg` is kept on the key, so verification can bind it.
    #[test]
    fn published_alg_is_bound_to_the_key() {
        let parsed = parse_jwks(&doc(&[
            format!(r#"{EC},"kid":"ec","alg":"ES256"}}"#),
            format!(r#"{ED},"kid":"ed"}}"#),
        ]))
        .unwrap();
        let ec = parsed.keys.by_kid("ec").unwrap();
        assert_eq!(ec.alg, Some(Algorithm::Es256));
        assert!(ec.allows(Algorithm::Es256) && !ec.allows(Algorithm::Es384));
        assert_eq!(parsed.keys.by_kid("ed").unwrap().alg, None);
    }

    /// I6: two signature keys with one kid refuse the set; an encryption key may share it.
    #[test]
    fn duplicate_kids_are_refused() {
        let err = parse_jwks(&doc(&[
            format!(r#"{ED},"kid":"a"}}"#),
            format!(r#"{EC},"kid":"a"}}"#),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            JwksError::DuplicateKid {
                kid: "a".to_owned()
            }
        );
        assert!(err.to_string().contains("\"a\""), "{err}");
        let ok = parse_jwks(&doc(&[
            format!(r#"{ED},"kid":"a"}}"#),
            format!(r#"{EC},"kid":"a","use":"enc"}}"#),
        ]))
        .unwrap();
        assert_eq!(ok.keys.len(), 1);
    }
}
