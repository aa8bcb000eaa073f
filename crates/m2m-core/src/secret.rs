//! Client secrets (RFC 6749 §2.3.1): the redacted, zeroized [`ClientSecret`] a client holds, and
//! the [`SecretVerifier`] (SHA-256 of the secret) a server stores instead of it, compared in
//! constant time.
//!
//! Why SHA-256 and not a slow password hash: the secrets m2m generates carry 256 bits of
//! entropy, so there is nothing to brute-force; a slow hash would only cost every token request.
//! Supplied secrets must therefore be at least [`MIN_SUPPLIED_SECRET_LEN`] bytes.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use zeroize::Zeroizing;

use crate::error::Error;

/// Shortest secret a server accepts when an operator supplies one (`--secret-file`): 32 bytes,
/// the length of a generated secret's entropy.
pub const MIN_SUPPLIED_SECRET_LEN: usize = 32;

/// Bytes of randomness in a generated secret (256 bits).
const GENERATED_SECRET_BYTES: usize = 32;

/// A client secret. `Debug` prints `[redacted]`; the bytes are wiped when dropped. There is no
/// `Display`: the only ways to the bytes are [`expose`](Self::expose) and
/// [`expose_str`](Self::expose_str), easy to grep for.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<Vec<u8>>);

impl ClientSecret {
    /// A secret from its bytes. An empty secret is refused.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<ClientSecret, Error> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.is_empty() {
            return Err(Error::Config("the client secret is empty".to_owned()));
        }
        Ok(ClientSecret(bytes))
    }

    /// The first line of a secrets file or of standard input (without its line ending). Refuses
    /// an empty first line.
    pub fn from_first_line(text: &[u8]) -> Result<ClientSecret, Error> {
        let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        ClientSecret::new(line.to_vec())
    }

    /// A new secret: 256 random bits from aws-lc-rs's CSPRNG, base64url without padding
    /// (43 characters, safe in any header, form or shell).
    pub fn generate() -> Result<ClientSecret, Error> {
        let mut raw = Zeroizing::new([0u8; GENERATED_SECRET_BYTES]);
        aws_lc_rs::rand::fill(raw.as_mut())
            .map_err(|_| Error::KeyGeneration("the system random generator failed".to_owned()))?;
        ClientSecret::new(crate::b64::encode(raw.as_ref()).into_bytes())
    }

    /// The secret's bytes (to send or to key an HMAC).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, when it is UTF-8 (form fields and the Basic header carry text).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty secret cannot be made.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The verifier a server stores for this secret.
    pub fn verifier(&self) -> SecretVerifier {
        SecretVerifier::of(&self.0)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// What a server stores for a `client_secret_basic`/`client_secret_post` client: the SHA-256 of
/// the secret. Knowing it does not let anyone authenticate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretVerifier([u8; 32]);

impl SecretVerifier {
    /// The verifier of these secret bytes.
    pub fn of(secret: &[u8]) -> SecretVerifier {
        let digest = digest::digest(&digest::SHA256, secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        SecretVerifier(out)
    }

    /// A verifier no secret is known to match, compared against when the client is unknown so
    /// that an unknown client and a wrong secret take the same work.
    pub fn dummy() -> SecretVerifier {
        SecretVerifier::of(b"m2m: no client has this secret; this verifier only equalises work")
    }

    /// Whether `presented` is the secret, in constant time (the SHA-256 of the presented bytes
    /// is computed in full and compared with `verify_slices_are_equal`).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let candidate = SecretVerifier::of(presented);
        verify_slices_are_equal(&self.0, &candidate.0).is_ok()
    }

    /// Whether two verifiers are equal, in constant time (the server hashes a presented secret
    /// once and compares it with each stored verifier).
    pub fn matches_verifier(&self, other: &SecretVerifier) -> bool {
        verify_slices_are_equal(&self.0, &other.0).is_ok()
    }

    /// Lowercase hex, as written in the registry (`sha256 = "…"`).
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<SecretVerifier, Error> {
        let bad = || Error::Config("a secret verifier must be 64 hex digits (SHA-256)".to_owned());
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(bad());
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0]).ok_or_else(bad)? << 4) | nibble(pair[1]).ok_or_else(bad)?;
        }
        Ok(SecretVerifier(out))
    }
}

impl fmt::Debug for SecretVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret, but nobody needs it in a log either.
        f.write_str("SecretVerifier(sha256)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_verifier_round_trips() {
        let s = ClientSecret::new(b"%:+/ =&-very-secret".to_vec()).unwrap();
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        let v = s.verifier();
        assert!(v.matches(b"%:+/ =&-very-secret"));
        assert!(!v.matches(b"%:+/ =&-very-secreT"));
        assert!(!v.matches(b""));
        assert_eq!(SecretVerifier::from_hex(&v.to_hex()).unwrap(), v);
        assert!(SecretVerifier::from_hex("zz").is_err());
        assert!(!SecretVerifier::dummy().matches(b"%:+/ =&-very-secret"));
    }

    #[test]
    fn generated_secrets_are_43_base64url_chars_and_differ() {
        let a = ClientSecret::generate().unwrap();
        let b = ClientSecret::generate().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert!(
            a.expose_str()
                .unwrap()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn first_line_only_and_empty_refused() {
        let s = ClientSecret::from_first_line(b"abc\r\nsecond").unwrap();
        assert_eq!(s.expose(), b"abc");
        assert!(ClientSecret::from_first_line(b"\nabc").is_err());
        assert!(ClientSecret::new(Vec::new()).is_err());
    }
}
