//! How the client proves who it is to the token endpoint: one [`ClientAuth`] per client, asked
//! once per attempt for the form fields and headers that attempt carries.
//!
//! The methods: `private_key_jwt` (RFC 7523 §2.2), `client_secret_basic` and
//! `client_secret_post` (RFC 6749 §2.3.1) and `client_secret_jwt` (OIDC Core §9). A method
//! contributes form fields and/or headers (`Authorization: Basic`), and the token client neither
//! knows nor cares which. Secrets are held in core's redacted, zeroized
//! [`ClientSecret`](m2m_core::secret::ClientSecret); no `Debug`, log or error shows them.
//!
//! Federated workload credentials (a platform's JWT from an [`AssertionSource`]) are two more
//! variants: [`ClientAuth::FederatedAssertion`] presents the JWT as the client assertion, and
//! [`ClientAuth::JwtBearerGrant`] presents it as the RFC 7523 §2.1 grant itself, which changes
//! `grant_type` too ([`ClientAuth::grant_type`]). Their sources are asynchronous, so the token
//! client asks [`ClientAuth::credentials`]; [`ClientAuth::apply`] serves the other methods.

use std::fmt;
use std::sync::Arc;

use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::UnixTime;
use m2m_core::hmac::SecretJwtBuilder;
use m2m_core::secret::ClientSecret;
use m2m_core::wire::{CLIENT_ASSERTION_TYPE, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER};

use crate::assertion_source::AssertionSource;
use crate::error::Error;

/// How the client authenticates at the token endpoint.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// A client assertion signed with the client's private key (RFC 7523 §2.2,
    /// `private_key_jwt`). Each attempt carries a freshly signed assertion with a new `jti`, as
    /// servers refuse a replayed one.
    PrivateKeyJwt(AssertionBuilder),
    /// The client id and secret in an `Authorization: Basic` header, each
    /// form-urlencoded before they are joined (RFC 6749 §2.3.1).
    ClientSecretBasic {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: ClientSecret,
    },
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: ClientSecret,
    },
    /// An assertion MACed with the secret (OIDC Core §9; HS256/384/512, fresh `jti` per attempt).
    ClientSecretJwt(SecretJwtBuilder),
    /// A platform's JWT (Kubernetes, SPIFFE, GitHub Actions) as the client assertion in the
    /// client-credentials grant (RFC 7523 §2.2; Entra ID's and Keycloak's "federated client
    /// authentication"). The source is asked again for every attempt.
    FederatedAssertion {
        /// Sent as `client_id` when set (Entra ID wants it; RFC 7521 §4.2 makes it optional).
        client_id: Option<String>,
        /// Where the JWT comes from.
        source: Arc<dyn AssertionSource>,
    },
    /// A platform's JWT as the authorization grant itself: `grant_type=urn:ietf:params:oauth:
    /// grant-type:jwt-bearer&assertion=…` (RFC 7523 §2.1), with no client authentication.
    JwtBearerGrant {
        /// Sent as `client_id` when set (optional, RFC 7521 §4.1).
        client_id: Option<String>,
        /// Where the JWT comes from.
        source: Arc<dyn AssertionSource>,
    },
}

impl ClientAuth {
    /// The method's registered name (RFC 7591 §2 `token_endpoint_auth_method`).
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
            ClientAuth::ClientSecretBasic { .. } => "client_secret_basic",
            ClientAuth::ClientSecretPost { .. } => "client_secret_post",
            ClientAuth::ClientSecretJwt(_) => "client_secret_jwt",
            // On the wire a federated client assertion is a jwt-bearer client assertion like any
            // signed by the client (servers list it as private_key_jwt).
            ClientAuth::FederatedAssertion { .. } => "private_key_jwt",
            // The grant carries no client authentication (RFC 7591 "none").
            ClientAuth::JwtBearerGrant { .. } => "none",
        }
    }

    /// The `grant_type` of the token request: the jwt-bearer grant for
    /// [`ClientAuth::JwtBearerGrant`], client credentials otherwise.
    pub fn grant_type(&self) -> &'static str {
        match self {
            ClientAuth::JwtBearerGrant { .. } => GRANT_JWT_BEARER,
            _ => GRANT_CLIENT_CREDENTIALS,
        }
    }

    /// The assertion source of the federated variants.
    pub fn assertion_source(&self) -> Option<&Arc<dyn AssertionSource>> {
        match self {
            ClientAuth::FederatedAssertion { source, .. }
            | ClientAuth::JwtBearerGrant { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the method may go without a client id (the federated ones: the JWT names the
    /// workload).
    pub fn client_id_optional(&self) -> bool {
        self.assertion_source().is_some()
    }

    /// The client id the method authenticates (for `private_key_jwt`: the assertion's `iss` and
    /// `sub`).
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::PrivateKeyJwt(b) => b.client_id(),
            ClientAuth::ClientSecretBasic { client_id, .. }
            | ClientAuth::ClientSecretPost { client_id, .. } => client_id,
            ClientAuth::ClientSecretJwt(b) => b.client_id(),
            ClientAuth::FederatedAssertion { client_id, .. }
            | ClientAuth::JwtBearerGrant { client_id, .. } => client_id.as_deref().unwrap_or(""),
        }
    }

    /// The assertion `aud`, for methods that sign one.
    pub fn audience(&self) -> Option<&Audience> {
        match self {
            ClientAuth::PrivateKeyJwt(b) => Some(b.audience()),
            ClientAuth::ClientSecretJwt(b) => Some(b.audience()),
            _ => None,
        }
    }

    /// The assertion builder, for methods that sign assertions with a private key.
    pub fn assertion_builder(&self) -> Option<&AssertionBuilder> {
        match self {
            ClientAuth::PrivateKeyJwt(b) => Some(b),
            _ => None,
        }
    }

    /// Names of the form fields this method sets; extra parameters may not replace them.
    pub fn form_field_names(&self) -> &'static [&'static str] {
        match self {
            ClientAuth::PrivateKeyJwt(_) | ClientAuth::ClientSecretJwt(_) => {
                &["client_assertion_type", "client_assertion"]
            }
            ClientAuth::ClientSecretBasic { .. } => &[],
            ClientAuth::ClientSecretPost { .. } => &["client_id", "client_secret"],
            ClientAuth::FederatedAssertion { .. } => {
                &["client_assertion_type", "client_assertion", "client_id"]
            }
            ClientAuth::JwtBearerGrant { .. } => &["assertion", "client_id"],
        }
    }

    /// Whether the method sends a client secret (NHS refuses these).
    pub fn uses_secret(&self) -> bool {
        matches!(
            self,
            ClientAuth::ClientSecretBasic { .. }
                | ClientAuth::ClientSecretPost { .. }
                | ClientAuth::ClientSecretJwt(_)
        )
    }

    /// What ONE attempt carries, for every method: the federated ones ask their source now (a
    /// file re-read, a command run, a GitHub request), the others are [`ClientAuth::apply`].
    pub async fn credentials(&self, now: UnixTime) -> Result<AuthParts, Error> {
        let (client_id, source, fields): (_, _, [&'static str; 2]) = match self {
            ClientAuth::FederatedAssertion { client_id, source } => (
                client_id,
                source,
                ["client_assertion_type", "client_assertion"],
            ),
            ClientAuth::JwtBearerGrant { client_id, source } => {
                (client_id, source, ["", "assertion"])
            }
            _ => return self.apply(now),
        };
        let assertion = source.assertion().await.map_err(Error::AssertionSource)?;
        let mut form = Vec::with_capacity(3);
        if !fields[0].is_empty() {
            form.push((fields[0], CLIENT_ASSERTION_TYPE.to_owned()));
        }
        form.push((fields[1], assertion.as_str().to_owned()));
        if let Some(id) = client_id {
            form.push(("client_id", id.clone()));
        }
        Ok(AuthParts {
            form,
            headers: Vec::new(),
            jti: None,
        })
    }

    /// What ONE attempt carries: called again for every retry, so each attempt gets a fresh
    /// assertion (a replayed `jti` would be refused). The federated variants read their source
    /// asynchronously: use [`ClientAuth::credentials`] for them (here they are an error).
    pub fn apply(&self, now: UnixTime) -> Result<AuthParts, Error> {
        match self {
            ClientAuth::FederatedAssertion { .. } | ClientAuth::JwtBearerGrant { .. } => {
                Err(crate::error::ConfigError::Invalid(
                    "a federated assertion comes from an asynchronous source: use \
                     ClientAuth::credentials"
                        .to_owned(),
                )
                .into())
            }
            ClientAuth::PrivateKeyJwt(builder) => Ok(signed_assertion(
                builder.build(now).map_err(Error::Assertion)?,
            )),
            ClientAuth::ClientSecretJwt(builder) => Ok(signed_assertion(
                builder.build(now).map_err(Error::Assertion)?,
            )),
            ClientAuth::ClientSecretBasic { client_id, secret } => Ok(AuthParts {
                form: Vec::new(),
                headers: vec![("authorization".to_owned(), basic_header(client_id, secret)?)],
                jti: None,
            }),
            ClientAuth::ClientSecretPost { client_id, secret } => Ok(AuthParts {
                form: vec![
                    ("client_id", client_id.clone()),
                    ("client_secret", secret_text(secret)?.to_owned()),
                ],
                headers: Vec::new(),
                jti: None,
            }),
        }
    }
}

/// The form fields of a client assertion we signed (RFC 7523 §2.2), either method; its `jti`
/// is kept for the log.
fn signed_assertion(assertion: m2m_core::assertion::Assertion) -> AuthParts {
    AuthParts {
        form: vec![
            ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()),
            ("client_assertion", assertion.as_str().to_owned()),
        ],
        headers: Vec::new(),
        jti: Some(assertion.jti),
    }
}

/// The secret as text: form fields and the Basic header carry text.
fn secret_text(secret: &ClientSecret) -> Result<&str, Error> {
    secret.expose_str().ok_or_else(|| {
        crate::error::ConfigError::Invalid("the client secret is not UTF-8 text".to_owned()).into()
    })
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` — RFC 6749 §2.3.1 requires the
/// `application/x-www-form-urlencoded` encoding of each part *before* joining; many libraries
/// skip it and then fail on secrets containing `%`, `:` or `+`.
pub(crate) fn basic_header(client_id: &str, secret: &ClientSecret) -> Result<String, Error> {
    use base64::Engine as _;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let joined = zeroize::Zeroizing::new(format!(
        "{}:{}",
        encode(client_id),
        encode(secret_text(secret)?)
    ));
    Ok(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined.as_bytes())
    ))
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
    fn basic_encodes_each_part_before_joining() {
        let secret = ClientSecret::new(b"%:+/ =&".to_vec()).unwrap();
        let header = basic_header("id:1", &secret).unwrap();
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"id%3A1:%25%3A%2B%2F+%3D%26");
        let auth = ClientAuth::ClientSecretBasic {
            client_id: "id:1".into(),
            secret,
        };
        let parts = auth.apply(UnixTime::from_secs(1)).unwrap();
        assert!(parts.form.is_empty());
        assert!(!format!("{auth:?}{parts:?}").contains("%:+/"));
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
