//! Helpers for the secret-hygiene tests: the strings that must never reach a log (a
//! private key's PEM lines and its JWK `d`, assertion signatures, access tokens), a signer that
//! records every signature it makes, and a scan for anything shaped like a signed compact JWS.

use std::sync::{Arc, Mutex};

use base64::Engine;
use m2m_core::alg::Algorithm;
use m2m_core::jws::base64url_encode;
use m2m_core::key::PrivateKey;
use m2m_core::signer::{KeySigner, Signer};

/// One DER TLV at `pos`: (tag, content start, content end).
fn tlv(der: &[u8], pos: usize) -> (u8, usize, usize) {
    let tag = der[pos];
    let first = der[pos + 1] as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        let len = der[pos + 2..pos + 2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, pos + 2 + n)
    };
    (tag, start, start + len)
}

/// The children of the constructed value whose content is `der[start..end]`.
fn children(der: &[u8], start: usize, end: usize) -> Vec<(u8, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let t = tlv(der, pos);
        out.push(t);
        pos = t.2;
    }
    out
}

/// The private scalar (EC: `d`) or private exponent (RSA: `d`) of a PKCS#8 key, without leading
/// zero bytes — what a private JWK's `d` member encodes.
pub fn private_d(pkcs8_der: &[u8]) -> Vec<u8> {
    let (_, s, e) = tlv(pkcs8_der, 0);
    let info = children(pkcs8_der, s, e);
    let (_, ks, _) = info[2]; // OCTET STRING privateKey
    let (_, is, ie) = tlv(pkcs8_der, ks); // SEQUENCE (ECPrivateKey or RSAPrivateKey)
    let inner = children(pkcs8_der, is, ie);
    let (tag, ds, de) = if inner[1].0 == 0x04 {
        inner[1] // ECPrivateKey: version, OCTET STRING d
    } else {
        inner[3] // RSAPrivateKey: version, n, e, d
    };
    assert!(tag == 0x04 || tag == 0x02, "unexpected DER tag {tag:#x}");
    let d = &pkcs8_der[ds..de];
    let skip = d.iter().take_while(|b| **b == 0).count();
    d[skip..].to_vec()
}

/// Every string of `key` that must never be logged: each PEM body line (64 base64 characters,
/// so a partial leak is caught too), `d` as base64url (the JWK form), base64 and hex.
pub fn key_secrets(key: &PrivateKey) -> Vec<String> {
    let pem = key.to_pkcs8_pem().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .unwrap();
    let d = private_d(&der);
    assert!(d.len() >= 31, "found the private value ({} bytes)", d.len());
    let mut out: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 32)
        .map(str::to_owned)
        .collect();
    out.push(base64url_encode(&d));
    out.push(base64::engine::general_purpose::STANDARD.encode(&d));
    out.push(d.iter().map(|b| format!("{b:02x}")).collect());
    out
}

/// Signs with a [`KeySigner`] and remembers every signature (base64url), so a test knows the
/// signature part of every assertion the client sent.
#[derive(Debug)]
pub struct RecordingSigner {
    inner: KeySigner,
    pub signatures: Arc<Mutex<Vec<String>>>,
}

impl RecordingSigner {
    pub fn new(key: Arc<PrivateKey>, alg: Algorithm, kid: &str) -> Self {
        RecordingSigner {
            inner: KeySigner::new(key, alg, Some(kid.to_owned())).unwrap(),
            signatures: Arc::default(),
        }
    }
}

impl Signer for RecordingSigner {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        self.inner.key_id()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, m2m_core::Error> {
        let sig = self.inner.sign(msg)?;
        self.signatures.lock().unwrap().push(base64url_encode(&sig));
        Ok(sig)
    }
}

/// An access token's secret parts: the whole token and (for a JWT) its signature.
pub fn token_secrets(token: &str) -> Vec<String> {
    let mut out = vec![token.to_owned()];
    if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() >= 32) {
        out.push(sig.to_owned());
    }
    out
}

/// Asserts none of `secrets` occurs in `log`; names the kind of the first that does.
#[track_caller]
pub fn assert_absent(log: &str, secrets: &[(&str, Vec<String>)]) {
    for (what, values) in secrets {
        assert!(!values.is_empty(), "no {what} to look for");
        for v in values {
            assert!(
                !log.contains(v.as_str()),
                "{what} leaked into the log (value starting {:?})",
                &v[..v.len().min(8)]
            );
        }
    }
}

/// Compact JWS with a real signature (three base64url segments, the last ≥ 43 characters —
/// an ES256 signature is 86): anything like that in a log is an assertion or a token.
pub fn jws_like(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .filter(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3 && parts[0].len() >= 10 && parts[1].len() >= 10 && parts[2].len() >= 43
        })
        .map(str::to_owned)
        .collect()
}
