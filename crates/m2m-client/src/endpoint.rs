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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_implies_its_audience_and_profile() {
        let nhs = Endpoint::Nhs(Environment::Int);
        assert_eq!(
            nhs.audience(),
            Audience::TokenUrl("https://int.api.service.nhs.uk/oauth2/token".to_owned())
        );
        assert_eq!(nhs.implied_profile(), Profile::Nhs);
        assert_eq!(
            nhs.token_url().unwrap().as_str(),
            Environment::Int.token_url()
        );

        let url = Endpoint::Url(TokenUrl::parse("https://as.example/token").unwrap());
        assert_eq!(
            url.audience(),
            Audience::TokenUrl("https://as.example/token".to_owned())
        );
        assert_eq!(url.implied_profile(), Profile::Generic);

        let nhs_host =
            Endpoint::Url(TokenUrl::parse("https://api.service.nhs.uk/oauth2/token").unwrap());
        assert_eq!(nhs_host.implied_profile(), Profile::Nhs);
    }
}
