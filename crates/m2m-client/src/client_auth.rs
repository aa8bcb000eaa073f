//! How the client proves who it is to the token endpoint: one [`ClientAuth`] per client, asked
//! once per attempt for the form fields and headers that attempt carries.
//!
//! Only `private_key_jwt` (RFC 7523 §2.2) exists today. The seam is shaped for the secret-based
//! methods (RFC 6749 §2.3.1 `client_secret_basic`/`client_secret_post`, OIDC `client_secret_jwt`)
//! as further variants: a method contributes form fields and/or headers (`Authorization: Basic`),
//! and the token client neither knows nor cares which.

use std::fmt;

use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::UnixTime;
use m2m_core::wire::CLIENT_ASSERTION_TYPE;

use crate::error::Error;

/// How the client authenticates at the token endpoint.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// A client assertion signed with the client's private key (RFC 7523 §2.2,
    /// `private_key_jwt`). Each attempt carries a freshly signed assertion with a new `jti`, as
    /// servers refuse a replayed one.
    PrivateKeyJwt(AssertionBuilder),
}

impl ClientAuth {
    /// The method's registered name (RFC 7591 §2 `token_endpoint_auth_method`).
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// The client id the method authenticates (for `private_key_jwt`: the assertion's `iss` and
    /// `sub`).
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::PrivateKeyJwt(b) => b.client_id(),
        }
    }

    /// The assertion `aud`, for methods that sign one.
    pub fn audience(&self) -> Option<&Audience> {
        match self {
            ClientAuth::PrivateKeyJwt(b) => Some(b.audience()),
        }
    }

    /// The assertion builder, for methods that sign assertions with a private key.
    pub fn assertion_builder(&self) -> Option<&AssertionBuilder> {
        match self {
            ClientAuth::PrivateKeyJwt(b) => Some(b),
        }
    }

    /// Names of the form fields this method sets; extra parameters may not replace them.
    pub fn form_field_names(&self) -> &'static [&'static str] {
        match self {
            ClientAuth::PrivateKeyJwt(_) => &["client_assertion_type", "client_assertion"],
        }
    }

    /// What ONE attempt carries: called again for every retry, so each attempt gets a fresh
    /// assertion (a replayed `jti` would be refused).
    pub fn apply(&self, now: UnixTime) -> Result<AuthParts, Error> {
        match self {
            ClientAuth::PrivateKeyJwt(builder) => {
                let assertion = builder.build(now).map_err(Error::Assertion)?;
                Ok(AuthParts {
                    form: vec![
                        ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()),
                        ("client_assertion", assertion.as_str().to_owned()),
                    ],
                    headers: Vec::new(),
                    jti: Some(assertion.jti),
                })
            }
        }
    }
}

/// The credentials of one attempt: form fields and headers to add to the token request.
///
/// `Debug` shows names only: the values are credentials.
#[non_exhaustive]
#[derive(Clone, Default)]
pub struct AuthParts {
    /// Form fields, in order.
    pub form: Vec<(&'static str, String)>,
    /// HTTP headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// The assertion's `jti`, when one was signed (for logs; not a secret).
    pub jti: Option<String>,
}

impl fmt::Debug for AuthParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthParts")
            .field(
                "form",
                &self.form.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("jti", &self.jti)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use m2m_core::alg::Algorithm;
    use m2m_core::key::{KeySpec, PrivateKey};
    use m2m_core::signer::KeySigner;

    use super::*;

    fn auth() -> ClientAuth {
        let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
        let signer = Arc::new(KeySigner::new(key, Algorithm::Es256, Some("k1".into())).unwrap());
        ClientAuth::PrivateKeyJwt(AssertionBuilder::new(
            signer,
            "client-1",
            Audience::TokenUrl("https://as.example/token".into()),
        ))
    }

    #[test]
    fn private_key_jwt_signs_a_fresh_assertion_per_attempt() {
        let auth = auth();
        assert_eq!(auth.method_name(), "private_key_jwt");
        assert_eq!(auth.client_id(), "client-1");
        let now = UnixTime::from_secs(1_700_000_000);
        let a = auth.apply(now).unwrap();
        let b = auth.apply(now).unwrap();
        assert_ne!(a.jti, b.jti);
        let names: Vec<_> = a.form.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, auth.form_field_names());
        assert_eq!(a.form[0].1, CLIENT_ASSERTION_TYPE);
        assert!(a.headers.is_empty());
        let debug = format!("{a:?}");
        assert!(!debug.contains(&a.form[1].1), "{debug}");
    }
}
