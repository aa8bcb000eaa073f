//! [`Endpoint`]: where token requests go, and the one place that decides what that implies for
//! the assertion's `aud` and for the profile.

use m2m_core::assertion::Audience;
use m2m_core::nhs::Environment;

use crate::discovery::AuthServerMetadata;
use crate::error::ConfigError;
use crate::profile::Profile;
use crate::token_url::TokenUrl;

/// How the token endpoint is given. Each way implies a default audience and a profile; the
/// builder and the CLI both read them from here.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A token URL (already checked). `aud` = the URL; an `api.service.nhs.uk` host implies the
    /// NHS profile.
    Url(TokenUrl),
    /// An NHS England API platform environment: its token URL, `aud` = that URL, NHS profile.
    Nhs(Environment),
    /// Discovered metadata (RFC 8414): its token endpoint, `aud` = the issuer.
    Discovered(Box<AuthServerMetadata>),
}

impl Endpoint {
    /// The token URL requests are sent to.
    pub fn token_url(&self) -> Result<TokenUrl, ConfigError> {
        match self {
            Endpoint::Url(url) => Ok(url.clone()),
            Endpoint::Nhs(env) => TokenUrl::parse(env.token_url()),
            Endpoint::Discovered(m) => Ok(m.token_endpoint().clone()),
        }
    }

    /// The assertion's `aud` unless one is set explicitly: the token URL, or for discovered
    /// metadata the issuer.
    pub fn audience(&self) -> Audience {
        match self {
            Endpoint::Url(url) => Audience::TokenUrl(url.as_str().to_owned()),
            Endpoint::Nhs(env) => Audience::TokenUrl(env.token_url().to_owned()),
            Endpoint::Discovered(m) => Audience::Issuer(m.issuer().to_owned()),
        }
    }

    /// The profile that applies unless one is set explicitly: NHS for an NHS environment or an
    /// NHS host, else the generic one.
    pub fn implied_profile(&self) -> Profile {
        match self {
            Endpoint::Nhs(_) => Profile::Nhs,
            Endpoint::Url(url) => Profile::for_token_url(url),
            Endpoint::Discovered(m) => Profile::for_token_url(m.token_endpoint()),
        }
    }
}
