//! Protocol values that are easy to mix up, as types: a client id, a key id and an issuer are all
//! strings on the wire, and passing one where another belongs compiles as long as they are bare
//! `String`s. The kid-and-key pair gets a name too ([`KeyEntry`], [`KeySet`]) instead of the
//! anonymous `(Option<String>, PublicKey)` tuple the validator, the registry and the JWKS fetcher
//! used to pass around.
//!
//! The string newtypes deref to `str` and compare with `&str`, so reading them costs nothing; they
//! are (de)serialized as plain JSON/TOML strings.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::alg::Algorithm;
use crate::key::PublicKey;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value (no validation: the rules for each value live with its checks).
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The inner `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_newtype!(
    /// An OAuth client identifier (RFC 6749 §2.2): the `iss` and `sub` of a client assertion, the
    /// registry's key, the NHS API key.
    ClientId
);
string_newtype!(
    /// A JWK key id (`kid`, RFC 7517 §4.5): picks the verification key out of a JWKS.
    Kid
);
string_newtype!(
    /// An issuer identifier (RFC 8414 §2): compared as an exact string, never normalised.
    Issuer
);

/// One verification key with its `kid` and, when the JWKS says, its `alg`, as published in a JWKS
/// or registered inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key's `kid`, when it has one (a single-key client may omit it).
    pub kid: Option<Kid>,
    /// The key.
    pub key: PublicKey,
    /// The JWK's `alg`, when published: the only algorithm this key verifies (RFC 7517 §4.4).
    /// `None`: any algorithm that fits the key type (and the caller's allow-list).
    pub alg: Option<Algorithm>,
}

impl KeyEntry {
    /// A key with an optional kid and no published `alg`.
    pub fn new(kid: Option<Kid>, key: PublicKey) -> Self {
        KeyEntry {
            kid,
            key,
            alg: None,
        }
    }

    /// The same key, bound to the `alg` its JWK publishes.
    pub fn with_alg(mut self, alg: Option<Algorithm>) -> Self {
        self.alg = alg;
        self
    }

    /// Whether a signature made with `alg` may be checked with this key: a published `alg` is
    /// binding, so an RSA key published for RS512 does not verify RS256 even where a client's
    /// allow-list has both (a key's owner says what it signs with; honouring it stops an
    /// algorithm the owner never used from being accepted under their key).
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|published| published == alg)
    }
}

/// A client's or an issuer's verification keys. Cheap to clone (shared), immutable: a key
/// rotation builds a new set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet(Arc<[KeyEntry]>);

impl KeySet {
    /// The set of these keys, in the order given (the order of the JWKS).
    pub fn new(keys: Vec<KeyEntry>) -> Self {
        KeySet(keys.into())
    }
    /// The keys as a slice.
    pub fn as_slice(&self) -> &[KeyEntry] {
        &self.0
    }
    /// The keys.
    pub fn iter(&self) -> std::slice::Iter<'_, KeyEntry> {
        self.0.iter()
    }
    /// How many keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The first key whose `kid` is exactly `kid`.
    pub fn by_kid(&self, kid: &str) -> Option<&KeyEntry> {
        self.0.iter().find(|e| e.kid.as_deref() == Some(kid))
    }
}

impl From<Vec<KeyEntry>> for KeySet {
    fn from(keys: Vec<KeyEntry>) -> Self {
        KeySet::new(keys)
    }
}

impl<'a> IntoIterator for &'a KeySet {
    type Item = &'a KeyEntry;
    type IntoIter = std::slice::Iter<'a, KeyEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_compare_with_str_and_serialize_as_strings() {
        let id = ClientId::from("app-1");
        assert_eq!(id, "app-1");
        assert_eq!(id.as_str(), "app-1");
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"app-1\"")
        );
        let back: Kid = serde_json::from_str("\"k1\"").unwrap_or_else(|_| Kid::from("bad"));
        assert_eq!(back, "k1");
    }
}
