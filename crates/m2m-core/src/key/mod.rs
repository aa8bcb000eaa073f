//! Private and public keys on aws-lc-rs: the key kinds m2m supports, generation, signing and
//! verification. Keys are parsed once (at load) so signing and verifying do no parsing.
//!
//! Loading from files lives in [`load`] (PEM, DER, encrypted PKCS#8) and [`jwk_io`] (JWK/JWKS);
//! this module owns the in-memory types.

mod encrypted;
mod jwk_io;
mod load;

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
    RsaPublicKeyComponents,
};
use zeroize::Zeroizing;

use crate::alg::Algorithm;
use crate::error::Error;

/// The smallest RSA modulus we accept, for signing and verifying (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// What kind of key this is, which decides the algorithms it can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
    /// ECDSA on NIST P-521.
    P521,
    /// EdDSA on Ed25519.
    Ed25519,
}

impl KeyKind {
    /// The byte length of one EC point coordinate (and of each half of a fixed-size ECDSA
    /// signature) for an EC curve; `None` for RSA and Ed25519. Written once for the JWK reader
    /// and the point check.
    pub fn coordinate_len(self) -> Option<usize> {
        match self {
            KeyKind::P256 => Some(32),
            KeyKind::P384 => Some(48),
            KeyKind::P521 => Some(66),
            KeyKind::Rsa { .. } | KeyKind::Ed25519 => None,
        }
    }

    /// The algorithm used when neither the key (JWK `alg`) nor a profile chooses one.
    pub fn default_alg(self) -> Algorithm {
        match self {
            KeyKind::Rsa { .. } => Algorithm::Rs256,
            KeyKind::P256 => Algorithm::Es256,
            KeyKind::P384 => Algorithm::Es384,
            KeyKind::P521 => Algorithm::Es512,
            KeyKind::Ed25519 => Algorithm::EdDsa,
        }
    }

    /// Whether `alg` can be used with this kind of key. ECDSA algorithms are bound to their
    /// curve (RFC 7518 §3.4), so ES256 with a P-384 key is refused.
    pub fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa { .. } => alg.is_rsa(),
            KeyKind::P256 => alg == Algorithm::Es256,
            KeyKind::P384 => alg == Algorithm::Es384,
            KeyKind::P521 => alg == Algorithm::Es512,
            KeyKind::Ed25519 => alg == Algorithm::EdDsa,
        }
    }

    /// Fails with an actionable error if `alg` does not fit.
    pub fn check(self, alg: Algorithm) -> Result<(), Error> {
        if self.fits(alg) {
            Ok(())
        } else {
            Err(self.mismatch(alg))
        }
    }

    /// The error for `alg` used with a key of this kind (what [`KeyKind::check`] returns).
    pub(crate) fn mismatch(self, alg: Algorithm) -> Error {
        Error::AlgorithmMismatch {
            alg,
            kind: self,
            suggested: self.default_alg(),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::P256 => f.write_str("EC P-256"),
            KeyKind::P384 => f.write_str("EC P-384"),
            KeyKind::P521 => f.write_str("EC P-521"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// RSA with 2048, 3072 or 4096 bits.
    Rsa {
        /// Modulus size: 2048, 3072 or 4096.
        bits: usize,
    },
    /// EC P-256 (ES256).
    P256,
    /// EC P-384 (ES384).
    P384,
    /// EC P-521 (ES512).
    P521,
    /// Ed25519 (EdDSA).
    Ed25519,
}

impl KeySpec {
    /// The key to generate for `alg`; `rsa_bits` applies to RSA algorithms.
    pub fn for_alg(alg: Algorithm, rsa_bits: usize) -> KeySpec {
        match alg {
            Algorithm::Es256 => KeySpec::P256,
            Algorithm::Es384 => KeySpec::P384,
            Algorithm::Es512 => KeySpec::P521,
            Algorithm::EdDsa => KeySpec::Ed25519,
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512 => KeySpec::Rsa { bits: rsa_bits },
        }
    }
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key. Its `Debug` shows the kind and kid only, never key material.
pub struct PrivateKey {
    inner: Inner,
    public: PublicKey,
    kid: Option<String>,
    jwk_alg: Option<Algorithm>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a fresh key with aws-lc-rs.
    pub fn generate(spec: KeySpec) -> Result<PrivateKey, Error> {
        let fail = |what: &str| Error::KeyGeneration(what.to_owned());
        let inner = match spec {
            KeySpec::Rsa { bits } => {
                let size = match bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    other => {
                        return Err(Error::Config(format!(
                            "RSA key size {other} is not supported (choose 2048, 3072 or 4096)"
                        )));
                    }
                };
                Inner::Rsa(RsaKeyPair::generate(size).map_err(|_| fail("RSA"))?)
            }
            KeySpec::P256 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| fail("P-256"))?,
            ),
            KeySpec::P384 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| fail("P-384"))?,
            ),
            KeySpec::P521 => Inner::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P521_SHA512_FIXED_SIGNING)
                    .map_err(|_| fail("P-521"))?,
            ),
            KeySpec::Ed25519 => Inner::Ed(Ed25519KeyPair::generate().map_err(|_| fail("Ed25519"))?),
        };
        PrivateKey::from_inner(inner, None, None)
    }

    /// Loads a private key from a file's bytes, whatever its format: PEM (PKCS#1
    /// `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`),
    /// raw DER, a JWK, or a JWKS (`kid` chooses the key when it holds several).
    pub fn from_bytes(
        bytes: &[u8],
        kid: Option<&str>,
        passphrase: Option<&[u8]>,
    ) -> Result<PrivateKey, Error> {
        let text = std::str::from_utf8(bytes).ok().map(str::trim_start);
        match text {
            Some(t) if t.starts_with('{') => jwk_io::private_from_json(bytes, kid),
            Some(t) if t.starts_with("-----BEGIN") => load::from_pem(t, passphrase),
            Some("") => Err(Error::InvalidKey("the key file is empty".to_owned())),
            _ if bytes.first() == Some(&0x30) => load::from_der(bytes, passphrase),
            _ => Err(Error::InvalidKey(
                "not a PEM, DER, JWK or JWKS key (expected \"-----BEGIN … PRIVATE KEY-----\" or JSON)".to_owned(),
            )),
        }
    }

    /// Loads a private key from a JWK with private members.
    pub fn from_jwk(jwk: &crate::jwk::Jwk) -> Result<PrivateKey, Error> {
        jwk_io::private_from_jwk(jwk)
    }

    fn from_inner(
        inner: Inner,
        kid: Option<String>,
        jwk_alg: Option<Algorithm>,
    ) -> Result<PrivateKey, Error> {
        let public = match &inner {
            Inner::Rsa(k) => {
                let components: RsaPublicKeyComponents<Vec<u8>> = k.public_key().into();
                PublicKey::rsa(components.n, components.e)?
            }
            Inner::Ec(k) => {
                let kind = ec_kind(k)?;
                PublicKey::ec(kind, k.public_key().as_ref().to_vec())?
            }
            Inner::Ed(k) => PublicKey::ed25519(k.public_key().as_ref().to_vec())?,
        };
        if let Some(alg) = jwk_alg {
            public.kind().check(alg)?;
        }
        Ok(PrivateKey {
            inner,
            public,
            kid,
            jwk_alg,
        })
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.public.kind()
    }

    /// The `kid` the key was stored under, when it came from a JWK or JWKS.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` of the JWK it came from, if any (it then takes precedence over profiles).
    pub fn jwk_alg(&self) -> Option<Algorithm> {
        self.jwk_alg
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), in a buffer that is
    /// zeroed on drop. Write it with mode 0600.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        let der = self.pkcs8_der()?;
        let block = pem::Pem::new("PRIVATE KEY", der.to_vec());
        let text = pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Zeroizing::new(text))
    }

    /// The key as encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`; PBES2 with
    /// PBKDF2-HMAC-SHA256 and AES-256-CBC), which [`PrivateKey::from_bytes`] reads back with the
    /// passphrase. An empty passphrase is refused.
    pub fn to_encrypted_pkcs8_pem(&self, passphrase: &[u8]) -> Result<String, Error> {
        let der = self.pkcs8_der()?;
        let encrypted = encrypted::encrypt_pkcs8(&der, passphrase)?;
        let block = pem::Pem::new("ENCRYPTED PRIVATE KEY", encrypted);
        Ok(pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ))
    }

    /// The unencrypted PKCS#8 DER, zeroed on drop.
    fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let failed = || Error::InvalidKey("could not encode the key as PKCS#8".to_owned());
        let der: Zeroizing<Vec<u8>> = match &self.inner {
            Inner::Rsa(k) => {
                let doc: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    k.as_der().map_err(|_| failed())?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            Inner::Ec(k) => Zeroizing::new(k.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec()),
            Inner::Ed(k) => Zeroizing::new(k.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec()),
        };
        Ok(der)
    }

    /// Signs `msg` with `alg`, returning the JWS signature bytes (ECDSA as fixed-width `r||s`).
    pub fn sign(&self, alg: Algorithm, msg: &[u8]) -> Result<Vec<u8>, Error> {
        self.kind().check(alg)?;
        match &self.inner {
            Inner::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    Algorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::Rs512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    Algorithm::Ps384 => &signature::RSA_PSS_SHA384,
                    Algorithm::Ps512 => &signature::RSA_PSS_SHA512,
                    // Not an RSA algorithm: `check` above has refused it already.
                    Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512 | Algorithm::EdDsa => {
                        return Err(self.kind().mismatch(alg));
                    }
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| Error::SigningFailed)?;
                Ok(sig)
            }
            Inner::Ec(k) => Ok(k
                .sign(&SystemRandom::new(), msg)
                .map_err(|_| Error::SigningFailed)?
                .as_ref()
                .to_vec()),
            Inner::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

fn ec_kind(k: &EcdsaKeyPair) -> Result<KeyKind, Error> {
    // Compare by value: aws-lc-rs declares these algorithms as `const`, so two references to
    // one of them need not share an address and `ptr::eq` would spuriously fail.
    let alg = k.algorithm();
    if *alg == signature::ECDSA_P256_SHA256_FIXED_SIGNING {
        Ok(KeyKind::P256)
    } else if *alg == signature::ECDSA_P384_SHA384_FIXED_SIGNING {
        Ok(KeyKind::P384)
    } else if *alg == signature::ECDSA_P521_SHA512_FIXED_SIGNING {
        Ok(KeyKind::P521)
    } else {
        Err(Error::InvalidKey("unsupported EC curve".to_owned()))
    }
}

/// Key members of a public key, as the JWK encodes them (big-endian, no leading zeros for RSA).
#[derive(Clone, PartialEq, Eq)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 || x || y`.
    Ec {
        point: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

/// A public key, ready to verify: aws-lc-rs keys are parsed on first use per algorithm and kept,
/// so a registry key is parsed once, not per request.
#[derive(Clone)]
pub struct PublicKey {
    kind: KeyKind,
    material: Arc<Material>,
    parsed: Arc<[OnceLock<Result<ParsedPublicKey, ()>>; 10]>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kind", &self.kind)
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.material == other.material
    }
}
impl Eq for PublicKey {}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

impl PublicKey {
    fn new(kind: KeyKind, material: Material) -> PublicKey {
        PublicKey {
            kind,
            material: Arc::new(material),
            parsed: Arc::new(Default::default()),
        }
    }

    pub(crate) fn rsa(n: Vec<u8>, e: Vec<u8>) -> Result<PublicKey, Error> {
        let n = strip_zeros(&n);
        let e = strip_zeros(&e);
        let bits = match n.first() {
            Some(top) => n.len() * 8 - top.leading_zeros() as usize,
            None => 0,
        };
        check_rsa_size(bits)?;
        if e.is_empty() || e.len() > 8 {
            return Err(Error::InvalidKey(
                "RSA public exponent is out of range".to_owned(),
            ));
        }
        Ok(PublicKey::new(
            KeyKind::Rsa { bits },
            Material::Rsa { n, e },
        ))
    }

    pub(crate) fn ec(kind: KeyKind, point: Vec<u8>) -> Result<PublicKey, Error> {
        let Some(coord) = kind.coordinate_len() else {
            return Err(Error::InvalidKey("not an EC curve".to_owned()));
        };
        if point.len() != 1 + 2 * coord || point[0] != 4 {
            return Err(Error::InvalidKey(format!(
                "EC {kind} public point has the wrong length"
            )));
        }
        let key = PublicKey::new(kind, Material::Ec { point });
        // Parse now so an off-curve point is refused at load time, not at the first request.
        key.parsed_for(kind.default_alg())?;
        Ok(key)
    }

    pub(crate) fn ed25519(x: Vec<u8>) -> Result<PublicKey, Error> {
        if x.len() != 32 {
            return Err(Error::InvalidKey(
                "Ed25519 public key must be 32 bytes".to_owned(),
            ));
        }
        Ok(PublicKey::new(KeyKind::Ed25519, Material::Ed25519 { x }))
    }

    /// Reads a public key from a JWK. JWKs with private members are refused: where a public
    /// key is expected, a private one is a leak waiting to be published.
    pub fn from_jwk(jwk: &crate::jwk::Jwk) -> Result<PublicKey, Error> {
        jwk.ensure_public()?;
        jwk_io::public_from_jwk(jwk)
    }

    /// Reads a public key from PEM: `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(bytes: &[u8]) -> Result<PublicKey, Error> {
        load::public_from_pem(bytes)
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public JWK (`kty` and key members only); callers add `kid`, `alg` and `use`.
    pub fn to_jwk(&self) -> crate::jwk::Jwk {
        jwk_io::public_to_jwk(self)
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): a stable `kid` derived from the key.
    pub fn thumbprint(&self) -> String {
        jwk_io::thumbprint(self)
    }

    /// Verifies a JWS signature over `msg`.
    pub fn verify(&self, alg: Algorithm, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        self.kind.check(alg)?;
        let parsed = self.parsed_for(alg)?;
        parsed.verify_sig(msg, sig).map_err(|_| Error::BadSignature)
    }

    fn parsed_for(&self, alg: Algorithm) -> Result<&ParsedPublicKey, Error> {
        let slot = &self.parsed[alg_index(alg)];
        let parsed = slot.get_or_init(|| self.parse(alg));
        parsed
            .as_ref()
            .map_err(|()| Error::InvalidKey(format!("the {} public key is not valid", self.kind)))
    }

    fn parse(&self, alg: Algorithm) -> Result<ParsedPublicKey, ()> {
        match &*self.material {
            Material::Rsa { n, e } => {
                let params: &'static signature::RsaParameters = match alg {
                    Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    // Not an RSA algorithm: `verify` has refused it already.
                    Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512 | Algorithm::EdDsa => {
                        return Err(());
                    }
                };
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .to_parsed_public_key(params)
                .map_err(|_| ())
            }
            Material::Ec { point } => {
                let verify: &'static signature::EcdsaVerificationAlgorithm = match alg {
                    Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Algorithm::Es512 => &signature::ECDSA_P521_SHA512_FIXED,
                    // Not an EC algorithm: `verify` has refused it already.
                    Algorithm::Rs256
                    | Algorithm::Rs384
                    | Algorithm::Rs512
                    | Algorithm::Ps256
                    | Algorithm::Ps384
                    | Algorithm::Ps512
                    | Algorithm::EdDsa => return Err(()),
                };
                ParsedPublicKey::new(verify, point).map_err(|_| ())
            }
            Material::Ed25519 { x } => ParsedPublicKey::new(&signature::ED25519, x).map_err(|_| ()),
        }
    }

    pub(crate) fn material_rsa(&self) -> Option<(&[u8], &[u8])> {
        match &*self.material {
            Material::Rsa { n, e } => Some((n, e)),
            _ => None,
        }
    }

    pub(crate) fn material_ec(&self) -> Option<&[u8]> {
        match &*self.material {
            Material::Ec { point } => Some(point),
            _ => None,
        }
    }

    pub(crate) fn material_ed(&self) -> Option<&[u8]> {
        match &*self.material {
            Material::Ed25519 { x } => Some(x),
            _ => None,
        }
    }
}

fn alg_index(alg: Algorithm) -> usize {
    Algorithm::ALL.iter().position(|a| *a == alg).unwrap_or(0)
}

pub(crate) use load::check_rsa_size;
