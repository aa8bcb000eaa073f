//! Keys to and from JWK: private JWK/JWKS import, public JWK export, and RFC 7638 thumbprints.

use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use zeroize::Zeroizing;

use super::{Inner, KeyKind, PrivateKey, PublicKey, check_rsa_size};
use crate::alg::Algorithm;
use crate::b64;
use crate::error::Error;
use crate::jwk::{Jwk, JwkShape, Jwks};

/// A private key from JSON holding a JWK or a JWKS (`kid` chooses within a JWKS).
pub(super) fn private_from_json(bytes: &[u8], kid: Option<&str>) -> Result<PrivateKey, Error> {
    let jwk = match Jwks::from_jwk_or_jwks(bytes)? {
        (jwks, JwkShape::Set) => select(&jwks, kid)?.clone(),
        (mut jwks, JwkShape::Single) => {
            let jwk = jwks
                .keys
                .pop()
                .ok_or_else(|| Error::InvalidJwk("the JWK is missing".to_owned()))?;
            // A single key without a kid takes the caller's; one with a kid must match it.
            if let (Some(want), Some(have)) = (kid, jwk.kid.as_deref())
                && want != have
            {
                return Err(Error::KidNotFound {
                    kid: want.to_owned(),
                    available: have.to_owned(),
                });
            }
            jwk
        }
    };
    private_from_jwk(&jwk)
}

fn select<'a>(jwks: &'a Jwks, kid: Option<&str>) -> Result<&'a Jwk, Error> {
    match kid {
        Some(kid) => jwks.find(kid).ok_or_else(|| Error::KidNotFound {
            kid: kid.to_owned(),
            available: jwks.kids(),
        }),
        None => match jwks.keys.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::InvalidJwk("the JWKS holds no keys".to_owned())),
            many => Err(Error::KidRequired(many.len())),
        },
    }
}

fn member(jwk: &Jwk, name: &str, value: Option<&str>) -> Result<Zeroizing<Vec<u8>>, Error> {
    let text =
        value.ok_or_else(|| Error::InvalidJwk(format!("{} JWK is missing \"{name}\"", jwk.kty)))?;
    b64::decode(text)
        .map(Zeroizing::new)
        .ok_or_else(|| Error::InvalidJwk(format!("\"{name}\" is not unpadded base64url")))
}

fn private(
    jwk: &Jwk,
    name: &str,
    value: Option<&Zeroizing<String>>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    member(jwk, name, value.map(|v| v.as_str()))
}

fn jwk_alg(jwk: &Jwk) -> Result<Option<Algorithm>, Error> {
    jwk.alg.as_deref().map(str::parse).transpose()
}

fn curve(jwk: &Jwk) -> Result<KeyKind, Error> {
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => Ok(KeyKind::P256),
        ("EC", Some("P-384")) => Ok(KeyKind::P384),
        ("EC", Some("P-521")) => Ok(KeyKind::P521),
        ("OKP", Some("Ed25519")) => Ok(KeyKind::Ed25519),
        (kty, crv) => Err(Error::InvalidJwk(format!(
            "unsupported key type {kty} / curve {} (supported: RSA, EC P-256/P-384/P-521, OKP Ed25519)",
            crv.unwrap_or("(none)")
        ))),
    }
}

fn ec_point(jwk: &Jwk, kind: KeyKind) -> Result<Vec<u8>, Error> {
    let x = member(jwk, "x", jwk.x.as_deref())?;
    let y = member(jwk, "y", jwk.y.as_deref())?;
    let Some(len) = kind.coordinate_len() else {
        return Err(Error::InvalidJwk(format!("{kind} is not an EC curve")));
    };
    if x.len() != len || y.len() != len {
        return Err(Error::InvalidJwk(format!(
            "EC {kind} coordinates must be {len} bytes each"
        )));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

/// A private key from one JWK with private members.
pub(super) fn private_from_jwk(jwk: &Jwk) -> Result<PrivateKey, Error> {
    if jwk.d.is_none() {
        return Err(Error::PublicKeyGiven);
    }
    let alg = jwk_alg(jwk)?;
    let kid = jwk.kid.clone();
    let rejected = |what: &str, e: aws_lc_rs::error::KeyRejected| {
        Error::InvalidKey(format!("{what} JWK rejected: {e}"))
    };
    let inner = match jwk.kty.as_str() {
        "RSA" => {
            if jwk.other.contains_key("oth") {
                return Err(Error::InvalidJwk(
                    "multi-prime RSA keys (\"oth\") are not supported".to_owned(),
                ));
            }
            let n = member(jwk, "n", jwk.n.as_deref())?;
            let e = member(jwk, "e", jwk.e.as_deref())?;
            let modulus = super::strip_zeros(&n);
            let bits = modulus
                .first()
                .map_or(0, |top| modulus.len() * 8 - top.leading_zeros() as usize);
            check_rsa_size(bits)?;
            let d = private(jwk, "d", jwk.d.as_ref())?;
            let p = private(jwk, "p", jwk.p.as_ref())?;
            let q = private(jwk, "q", jwk.q.as_ref())?;
            let dp = private(jwk, "dp", jwk.dp.as_ref())?;
            let dq = private(jwk, "dq", jwk.dq.as_ref())?;
            let qi = private(jwk, "qi", jwk.qi.as_ref())?;
            let comps = aws_lc_rs::rsa::KeyPairComponents {
                public_key: signature::RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                },
                d: d.as_slice(),
                p: p.as_slice(),
                q: q.as_slice(),
                dP: dp.as_slice(),
                dQ: dq.as_slice(),
                qInv: qi.as_slice(),
            };
            Inner::Rsa(RsaKeyPair::from_components(&comps).map_err(|e| rejected("RSA", e))?)
        }
        "EC" | "OKP" => {
            let kind = curve(jwk)?;
            let d = private(jwk, "d", jwk.d.as_ref())?;
            if kind == KeyKind::Ed25519 {
                let x = member(jwk, "x", jwk.x.as_deref())?;
                Inner::Ed(
                    Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                        .map_err(|e| rejected("Ed25519", e))?,
                )
            } else {
                let point = ec_point(jwk, kind)?;
                let signing = match kind {
                    KeyKind::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    KeyKind::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    KeyKind::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                    // `curve` gives only EC curves and Ed25519, handled above.
                    KeyKind::Rsa { .. } | KeyKind::Ed25519 => {
                        return Err(Error::InvalidJwk(format!("{kind} is not an EC curve")));
                    }
                };
                Inner::Ec(
                    EcdsaKeyPair::from_private_key_and_public_key(signing, &d, &point)
                        .map_err(|e| rejected("EC", e))?,
                )
            }
        }
        other => return Err(Error::InvalidJwk(format!("unsupported kty \"{other}\""))),
    };
    PrivateKey::from_inner(inner, kid, alg)
}

/// A public key from a public JWK.
pub(super) fn public_from_jwk(jwk: &Jwk) -> Result<PublicKey, Error> {
    let key = match jwk.kty.as_str() {
        "RSA" => {
            let n = member(jwk, "n", jwk.n.as_deref())?;
            let e = member(jwk, "e", jwk.e.as_deref())?;
            PublicKey::rsa(n.to_vec(), e.to_vec())?
        }
        "EC" | "OKP" => {
            let kind = curve(jwk)?;
            if kind == KeyKind::Ed25519 {
                PublicKey::ed25519(member(jwk, "x", jwk.x.as_deref())?.to_vec())?
            } else {
                PublicKey::ec(kind, ec_point(jwk, kind)?)?
            }
        }
        other => return Err(Error::InvalidJwk(format!("unsupported kty \"{other}\""))),
    };
    if let Some(alg) = jwk_alg(jwk)? {
        key.kind().check(alg)?;
    }
    Ok(key)
}

/// The public JWK: `kty` and key members only.
pub(super) fn public_to_jwk(key: &PublicKey) -> Jwk {
    let mut jwk = Jwk::default();
    if let Some((n, e)) = key.material_rsa() {
        jwk.kty = "RSA".to_owned();
        jwk.n = Some(b64::encode(n));
        jwk.e = Some(b64::encode(e));
    } else if let Some(point) = key.material_ec() {
        let len = (point.len() - 1) / 2;
        jwk.kty = "EC".to_owned();
        jwk.crv = Some(crv_name(key.kind()).to_owned());
        jwk.x = Some(b64::encode(&point[1..=len]));
        jwk.y = Some(b64::encode(&point[1 + len..]));
    } else if let Some(x) = key.material_ed() {
        jwk.kty = "OKP".to_owned();
        jwk.crv = Some("Ed25519".to_owned());
        jwk.x = Some(b64::encode(x));
    }
    jwk
}

fn crv_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::P256 => "P-256",
        KeyKind::P384 => "P-384",
        KeyKind::P521 => "P-521",
        KeyKind::Ed25519 => "Ed25519",
        KeyKind::Rsa { .. } => "",
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
pub(super) fn thumbprint(key: &PublicKey) -> String {
    let jwk = public_to_jwk(key);
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s(&jwk.e), s(&jwk.n)),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s(&jwk.crv),
            s(&jwk.x),
            s(&jwk.y)
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            s(&jwk.crv),
            s(&jwk.x)
        ),
    };
    b64::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}
