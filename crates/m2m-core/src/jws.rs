//! Compact JWS (RFC 7515 §7.1): strict parsing, signing and verification on aws-lc-rs.
//!
//! We keep our own thin layer instead of a JWT crate because it gives ES512 and EdDSA, keys that
//! are parsed once, no process-global crypto provider, and a parser whose every refusal we choose.

use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::b64;
use crate::error::Error;
use crate::key::PublicKey;
use crate::signer::Signer;

/// Refuse anything larger before decoding: bounded work for hostile input. Far above any sane
/// assertion (the server applies its own, smaller, 8 KiB limit).
pub const MAX_COMPACT_LEN: usize = 64 * 1024;

/// A parsed compact JWS whose signature has not been checked: nothing in it is trusted yet.
#[derive(Clone)]
pub struct UnverifiedJws {
    signing_input: String,
    header: Map<String, Value>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl std::fmt::Debug for UnverifiedJws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnverifiedJws")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl UnverifiedJws {
    /// Parses `header.payload.signature`: exactly three parts, strict unpadded base64url, and a
    /// header that is a JSON object with no duplicate members.
    pub fn parse(token: &str) -> Result<UnverifiedJws, Error> {
        if token.len() > MAX_COMPACT_LEN {
            return Err(Error::MalformedJws("longer than 64 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::MalformedJws(
                "a JWS has exactly three dot-separated parts",
            ));
        };
        if h.is_empty() {
            return Err(Error::MalformedJws("empty header"));
        }
        let header_bytes = b64::decode(h).ok_or(Error::MalformedJws("header is not base64url"))?;
        let payload = b64::decode(p).ok_or(Error::MalformedJws("payload is not base64url"))?;
        let signature = b64::decode(s).ok_or(Error::MalformedJws("signature is not base64url"))?;
        let header = parse_object(&header_bytes)
            .ok_or(Error::MalformedJws("header is not a JSON object"))?;
        Ok(UnverifiedJws {
            // `h.p` is the token's start: a copy, not a format.
            signing_input: token[..h.len() + 1 + p.len()].to_owned(),
            header,
            payload,
            signature,
        })
    }

    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }
    /// The `alg` header, if it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }
    /// The `kid` header, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }
    /// The `typ` header, if it is a string.
    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }
    /// The decoded payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The payload as a JSON object (JWT claims), refusing duplicate members.
    pub fn claims(&self) -> Result<Map<String, Value>, Error> {
        parse_object(&self.payload).ok_or(Error::MalformedJws("payload is not a JSON object"))
    }
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    pub fn signing_input(&self) -> &str {
        &self.signing_input
    }
    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
    /// Checks the signature with `key` under `alg` (the caller decides `alg`; never trust the header).
    pub fn verify(&self, key: &PublicKey, alg: Algorithm) -> Result<(), Error> {
        key.verify(alg, self.signing_input.as_bytes(), &self.signature)
    }
}

/// A JSON object with no duplicated member names (RFC 7515 §5.2 lets us refuse them, and a
/// parser that keeps the last one while another keeps the first is an attack surface).
fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    struct Strict(Map<String, Value>);
    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Strict, A::Error> {
                    let mut out = Map::new();
                    while let Some((k, v)) = map.next_entry::<String, Value>()? {
                        if out.contains_key(&k) {
                            return Err(serde::de::Error::custom("duplicate member"));
                        }
                        out.insert(k, v);
                    }
                    Ok(Strict(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Strict>(bytes).ok().map(|s| s.0)
}

/// Signs `claims` as a compact JWS. `alg` always comes from the signer (overriding the header);
/// `kid` comes from the signer unless the header already has one.
pub fn sign_compact(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    signer: &dyn Signer,
) -> Result<String, Error> {
    EncodedHeader::new(header, signer)?.sign(claims, signer)
}

/// A protected header encoded once for signing many JWSs: a server signs every access token with
/// the same header, and serializing and encoding it again for each was work for nothing.
///
/// The header gets the same `alg` and `kid` rules as [`sign_compact`], and
/// [`EncodedHeader::sign`] refuses a signer whose algorithm is not the header's `alg`, so a header
/// cannot claim one algorithm while the signature uses another.
#[derive(Clone, Debug)]
pub struct EncodedHeader {
    /// `base64url(header) "."`
    prefix: String,
    alg: Algorithm,
}

impl EncodedHeader {
    /// Encodes `header` with `alg` (and `kid`, unless set) taken from `signer`.
    pub fn new(header: &Map<String, Value>, signer: &dyn Signer) -> Result<EncodedHeader, Error> {
        let mut header = header.clone();
        header.insert(
            "alg".to_owned(),
            Value::String(signer.algorithm().name().to_owned()),
        );
        if let Some(kid) = signer.key_id() {
            header
                .entry("kid")
                .or_insert_with(|| Value::String(kid.to_owned()));
        }
        EncodedHeader::encode(&header, signer.algorithm())
    }

    /// The header `{"alg", "typ", "kid"}`, in that order, with `alg` and `kid` (when it has one)
    /// taken from `signer`: what a client assertion carries.
    pub fn typed(typ: &str, signer: &dyn Signer) -> Result<EncodedHeader, Error> {
        let mut header = Map::new();
        header.insert(
            "alg".to_owned(),
            Value::String(signer.algorithm().name().to_owned()),
        );
        header.insert("typ".to_owned(), Value::String(typ.to_owned()));
        if let Some(kid) = signer.key_id() {
            header.insert("kid".to_owned(), Value::String(kid.to_owned()));
        }
        EncodedHeader::encode(&header, signer.algorithm())
    }

    /// Encodes `header` exactly as given; it must already carry `alg` (DPoP proofs, whose header
    /// holds a public `jwk` and no `kid`).
    pub(crate) fn encode(
        header: &Map<String, Value>,
        alg: Algorithm,
    ) -> Result<EncodedHeader, Error> {
        let header_json = serde_json::to_vec(header).map_err(|_| Error::SigningFailed)?;
        let mut prefix = b64::encode(header_json);
        prefix.push('.');
        Ok(EncodedHeader { prefix, alg })
    }

    /// Signs `claims` (any value that serializes to a JSON object: a [`Map`] or a struct) under
    /// this header.
    pub fn sign<T: serde::Serialize + ?Sized>(
        &self,
        claims: &T,
        signer: &dyn Signer,
    ) -> Result<String, Error> {
        const NOT_AN_OBJECT: Error = Error::Misuse("the claims must serialize to a JSON object");
        if signer.algorithm() != self.alg {
            return Err(Error::Misuse(
                "the signer's algorithm is not the encoded header's alg",
            ));
        }
        let claims_json = serde_json::to_vec(claims).map_err(|_| NOT_AN_OBJECT)?;
        if claims_json.first() != Some(&b'{') {
            return Err(NOT_AN_OBJECT);
        }
        // header + payload + an RSA-4096 signature (the largest), all base64url.
        let mut out = String::with_capacity(self.prefix.len() + claims_json.len() * 4 / 3 + 700);
        out.push_str(&self.prefix);
        b64::encode_into(&claims_json, &mut out);
        let sig = signer.sign(out.as_bytes())?;
        out.push('.');
        b64::encode_into(sig, &mut out);
        Ok(out)
    }
}

/// Base64url helpers for callers that build JOSE objects by hand (tests, fuzzers).
pub fn base64url_encode(bytes: impl AsRef<[u8]>) -> String {
    b64::encode(bytes)
}

/// Strict base64url decoding (no padding, no standard alphabet).
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    b64::decode(text)
}
