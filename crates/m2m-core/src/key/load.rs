//! Reading keys from PEM and DER: PKCS#1, PKCS#8, SEC1 and encrypted PKCS#8 private keys, SPKI
//! and PKCS#1 public keys. Every failure names the format it recognised and what to do.

use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use pkcs8::der::Decode as _;
use zeroize::Zeroizing;

use super::{Inner, KeyKind, PrivateKey, PublicKey, encrypted};
use crate::error::Error;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// Loads the first private key found in PEM text (files from `openssl ecparam -genkey` carry an
/// `EC PARAMETERS` block first; certificates and parameters are skipped).
pub(super) fn from_pem(text: &str, passphrase: Option<&[u8]>) -> Result<PrivateKey, Error> {
    let blocks = pem::parse_many(text).map_err(|_| {
        Error::InvalidKey("malformed PEM (check the BEGIN/END lines and base64 body)".to_owned())
    })?;
    let mut saw_public = false;
    for block in blocks {
        let tag = block.tag().to_owned();
        let legacy_encrypted = block.headers().get("Proc-Type").is_some();
        // Take the decoded DER out of the PEM block (a move, not a copy) so the only buffer
        // holding the key bytes is wiped on drop.
        let der = Zeroizing::new(block.into_contents());
        match tag.as_str() {
            "RSA PRIVATE KEY" => {
                if legacy_encrypted {
                    return Err(Error::UnsupportedKeyEncryption(
                        "legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED)".to_owned(),
                    ));
                }
                return rsa_from_pkcs1(&der);
            }
            "PRIVATE KEY" => return from_pkcs8(&der),
            "EC PRIVATE KEY" => {
                if legacy_encrypted {
                    return Err(Error::UnsupportedKeyEncryption(
                        "legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED)".to_owned(),
                    ));
                }
                return ec_from_sec1(&der);
            }
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase.ok_or(Error::PassphraseRequired)?;
                let plain = encrypted::decrypt_pkcs8(&der, pass)?;
                return from_pkcs8(&plain);
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => saw_public = true,
            "OPENSSH PRIVATE KEY" => {
                return Err(Error::InvalidKey(
                    "OpenSSH key format is not supported: convert with `ssh-keygen -p -m PKCS8 -f KEY`".to_owned(),
                ));
            }
            _ => {}
        }
    }
    if saw_public {
        Err(Error::PublicKeyGiven)
    } else {
        Err(Error::InvalidKey(
            "no private key block found in the PEM file".to_owned(),
        ))
    }
}

/// Loads a DER private key: PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1, in that order of trial.
pub(super) fn from_der(der: &[u8], passphrase: Option<&[u8]>) -> Result<PrivateKey, Error> {
    if pkcs8::PrivateKeyInfo::from_der(der).is_ok() {
        return from_pkcs8(der);
    }
    if pkcs8::EncryptedPrivateKeyInfo::from_der(der).is_ok() {
        let pass = passphrase.ok_or(Error::PassphraseRequired)?;
        let plain = encrypted::decrypt_pkcs8(der, pass)?;
        return from_pkcs8(&plain);
    }
    if rsa_modulus_bits(der).is_some() {
        return rsa_from_pkcs1(der);
    }
    ec_from_sec1(der)
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<PrivateKey, Error> {
    if let Some(bits) = rsa_modulus_bits(der) {
        check_rsa_size(bits)?;
    }
    let key = RsaKeyPair::from_der(der)
        .map_err(|e| Error::InvalidKey(format!("PKCS#1 RSA private key rejected: {e}")))?;
    PrivateKey::from_inner(Inner::Rsa(key), None, None)
}

pub(super) fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, Error> {
    let info = pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|_| Error::InvalidKey("not a valid PKCS#8 PrivateKeyInfo structure".to_owned()))?;
    let oid = info.algorithm.oid.to_string();
    match oid.as_str() {
        OID_RSA => {
            if let Some(bits) = rsa_modulus_bits(info.private_key) {
                check_rsa_size(bits)?;
            }
            let key = RsaKeyPair::from_pkcs8(der)
                .map_err(|e| Error::InvalidKey(format!("PKCS#8 RSA private key rejected: {e}")))?;
            PrivateKey::from_inner(Inner::Rsa(key), None, None)
        }
        OID_EC => {
            let curve = info
                .algorithm
                .parameters_oid()
                .map(|o| o.to_string())
                .map_err(|_| Error::InvalidKey("EC key without a named curve".to_owned()))?;
            let alg = match curve.as_str() {
                OID_P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                OID_P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                OID_P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                other => {
                    return Err(Error::InvalidKey(format!(
                        "EC curve {other} is not supported (use P-256, P-384 or P-521)"
                    )));
                }
            };
            let key = EcdsaKeyPair::from_pkcs8(alg, der)
                .map_err(|e| Error::InvalidKey(format!("PKCS#8 EC private key rejected: {e}")))?;
            PrivateKey::from_inner(Inner::Ec(key), None, None)
        }
        OID_ED25519 => {
            let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|e| Error::InvalidKey(format!("PKCS#8 Ed25519 private key rejected: {e}")))?;
            PrivateKey::from_inner(Inner::Ed(key), None, None)
        }
        OID_RSA_PSS => Err(Error::InvalidKey(
            "RSA-PSS-restricted keys (OID id-RSASSA-PSS) are not supported: generate a plain RSA key \
             (`openssl genpkey -algorithm RSA`) and sign with PS256/PS384/PS512"
                .to_owned(),
        )),
        other => Err(Error::InvalidKey(format!("unsupported key algorithm OID {other}"))),
    }
}

fn ec_from_sec1(der: &[u8]) -> Result<PrivateKey, Error> {
    let algs = [
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
    ];
    for alg in algs {
        if let Ok(key) = EcdsaKeyPair::from_private_key_der(alg, der) {
            return PrivateKey::from_inner(Inner::Ec(key), None, None);
        }
    }
    Err(Error::InvalidKey(
        "not a valid SEC1 EC private key on P-256, P-384 or P-521".to_owned(),
    ))
}

/// Refuses RSA moduli below [`super::MIN_RSA_BITS`].
pub(crate) fn check_rsa_size(bits: usize) -> Result<(), Error> {
    if bits < super::MIN_RSA_BITS {
        Err(Error::RsaKeyTooSmall { bits })
    } else {
        Ok(())
    }
}

/// Reads a public key from PEM (`PUBLIC KEY` SPKI, or `RSA PUBLIC KEY` PKCS#1).
pub(super) fn public_from_pem(bytes: &[u8]) -> Result<PublicKey, Error> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::InvalidKey("not PEM text".to_owned()))?;
    let blocks =
        pem::parse_many(text).map_err(|_| Error::InvalidKey("malformed PEM".to_owned()))?;
    for block in &blocks {
        match block.tag() {
            "PUBLIC KEY" => return public_from_spki(block.contents()),
            "RSA PUBLIC KEY" => {
                let (n, e) = rsa_public_pkcs1(block.contents()).ok_or_else(|| {
                    Error::InvalidKey("malformed PKCS#1 RSA public key".to_owned())
                })?;
                return PublicKey::rsa(n, e);
            }
            tag if tag.contains("PRIVATE KEY") => {
                return PrivateKey::from_bytes(bytes, None, None).map(|k| k.public_key().clone());
            }
            _ => {}
        }
    }
    Err(Error::InvalidKey("no PUBLIC KEY block found".to_owned()))
}

fn public_from_spki(der: &[u8]) -> Result<PublicKey, Error> {
    let spki = pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| Error::InvalidKey("malformed SubjectPublicKeyInfo".to_owned()))?;
    let key_bytes = spki.subject_public_key.raw_bytes();
    match spki.algorithm.oid.to_string().as_str() {
        OID_RSA => {
            let (n, e) = rsa_public_pkcs1(key_bytes)
                .ok_or_else(|| Error::InvalidKey("malformed RSA public key".to_owned()))?;
            PublicKey::rsa(n, e)
        }
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map(|o| o.to_string())
                .unwrap_or_default();
            let kind = match curve.as_str() {
                OID_P256 => KeyKind::P256,
                OID_P384 => KeyKind::P384,
                OID_P521 => KeyKind::P521,
                _ => return Err(Error::InvalidKey("unsupported EC curve".to_owned())),
            };
            PublicKey::ec(kind, key_bytes.to_vec())
        }
        OID_ED25519 => PublicKey::ed25519(key_bytes.to_vec()),
        other => Err(Error::InvalidKey(format!(
            "unsupported public key algorithm OID {other}"
        ))),
    }
}

/// A minimal DER walker for the two INTEGERs we need; avoids a PKCS#1 dependency.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// Reads one TLV with the expected tag and returns its value.
    fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&len0, mut rest) = rest.split_first()?;
        let len = if len0 < 0x80 {
            usize::from(len0)
        } else {
            let n = usize::from(len0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let mut len = 0usize;
            for b in &rest[..n] {
                len = (len << 8) | usize::from(*b);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let (value, tail) = rest.split_at(len);
        self.0 = tail;
        Some(value)
    }
}

/// Modulus size of a PKCS#1 `RSAPrivateKey` (version, n, …), or `None` if it is not one.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let mut outer = Der(der);
    let mut seq = Der(outer.take(0x30)?);
    let version = seq.take(0x02)?;
    if version != [0] {
        return None;
    }
    let n = super::strip_zeros(seq.take(0x02)?);
    let top = n.first()?;
    Some(n.len() * 8 - top.leading_zeros() as usize)
}

/// `(n, e)` of a PKCS#1 `RSAPublicKey`.
fn rsa_public_pkcs1(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut outer = Der(der);
    let mut seq = Der(outer.take(0x30)?);
    let n = seq.take(0x02)?.to_vec();
    let e = seq.take(0x02)?.to_vec();
    Some((n, e))
}
