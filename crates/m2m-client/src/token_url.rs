//! The token endpoint's URL, checked once: https, or plain http only to loopback or when
//! explicitly (and loudly) allowed.
//!
//! Plain http to a real host would expose the client assertion (replayable until it expires) and
//! the access token to anyone on the path, so it is refused unless the caller writes
//! `dangerous_allow_insecure_http`, which is easy to grep for.

use std::fmt;
use std::str::FromStr;

use url::{Host, Url};

use crate::error::ConfigError;

/// A token endpoint URL that passed the transport-security rules.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenUrl(Url);

/// Options for [`TokenUrl::parse_with`]: m2m-discovery's URL policy, the one every m2m fetch
/// and post uses (`UrlPolicy::default()` is the strict one).
pub use m2m_discovery::UrlPolicy;

impl TokenUrl {
    /// Parses and checks a token URL: https, or http to a loopback host (127.0.0.0/8, ::1,
    /// `localhost`).
    pub fn parse(url: &str) -> Result<TokenUrl, ConfigError> {
        TokenUrl::parse_with(url, UrlPolicy::default())
    }

    /// Like [`TokenUrl::parse`], with options.
    pub fn parse_with(url: &str, policy: UrlPolicy) -> Result<TokenUrl, ConfigError> {
        let parsed = Url::parse(url).map_err(|e| ConfigError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        TokenUrl::from_url(parsed, policy)
    }

    /// Checks an already parsed URL.
    pub fn from_url(url: Url, policy: UrlPolicy) -> Result<TokenUrl, ConfigError> {
        check_url(&url, policy)?;
        Ok(TokenUrl(url))
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as a string, exactly as it is POSTed to (and as NHS compares `aud` to it).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the host is the NHS England API platform (`api.service.nhs.uk` or a subdomain),
    /// which selects the NHS profile.
    pub fn is_nhs(&self) -> bool {
        match self.0.host() {
            Some(Host::Domain(d)) => m2m_core::nhs::is_nhs_host(d),
            _ => false,
        }
    }
}

/// Applies the transport-security rules to any endpoint URL (token endpoint, issuer): the policy
/// is m2m-discovery's, its refusals become this crate's [`ConfigError`]s.
pub(crate) fn check_url(url: &Url, policy: UrlPolicy) -> Result<(), ConfigError> {
    policy.check(url).map_err(config_error)
}

/// The [`ConfigError`] for a URL m2m-discovery's policy refused.
fn config_error(e: m2m_discovery::Error) -> ConfigError {
    use m2m_discovery::Error as D;
    match e {
        D::UnsupportedUrl { url } => ConfigError::UnsupportedUrl { url },
        D::UrlHasForbiddenPart { url, what } => ConfigError::UrlHasForbiddenPart { url, what },
        D::InsecureHttp { url } => ConfigError::InsecureHttp { url },
        D::InvalidUrl { url, reason } => ConfigError::InvalidUrl { url, reason },
        D::UrlWithoutPath { url } => ConfigError::InvalidUrl {
            url,
            reason: "the URL has no path".to_owned(),
        },
        other => ConfigError::InvalidUrl {
            url: String::new(),
            reason: other.to_string(),
        },
    }
}

impl FromStr for TokenUrl {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenUrl::parse(s)
    }
}

impl fmt::Display for TokenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TokenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenUrl").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://int.api.service.nhs.uk/oauth2/token",
            "http://127.0.0.1:8080/token",
            "http://127.8.9.10/token",
            "http://[::1]:9000/token",
            "http://localhost/token",
            "http://LOCALHOST:1/token",
        ] {
            assert!(TokenUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/token",
            "http://10.0.0.1/token",
            "http://[::2]/t",
        ] {
            let err = TokenUrl::parse(bad).unwrap_err();
            assert!(matches!(err, ConfigError::InsecureHttp { .. }), "{bad}");
            assert!(
                err.to_string().contains("dangerous_allow_insecure_http"),
                "{err}"
            );
            let allowed = UrlPolicy::default().dangerous_allow_insecure_http();
            assert!(TokenUrl::parse_with(bad, allowed).is_ok(), "{bad}");
        }
    }

    #[test]
    fn malformed_and_odd_urls_have_clear_errors() {
        let err = TokenUrl::parse("int.api.service.nhs.uk/oauth2/token").unwrap_err();
        assert_eq!(
            err.to_string(),
            "token URL \"int.api.service.nhs.uk/oauth2/token\" is not a valid URL: relative URL without a base"
        );
        assert!(matches!(
            TokenUrl::parse("ftp://x/y"),
            Err(ConfigError::UnsupportedUrl { .. })
        ));
        assert!(matches!(
            TokenUrl::parse("https://x/y#f"),
            Err(ConfigError::UrlHasForbiddenPart { .. })
        ));
        let creds = TokenUrl::parse("https://user:secret@x/y")
            .unwrap_err()
            .to_string();
        assert!(!creds.contains("secret"), "{creds}");
    }

    #[test]
    fn nhs_hosts_are_recognised() {
        assert!(
            TokenUrl::parse("https://api.service.nhs.uk/oauth2/token")
                .unwrap()
                .is_nhs()
        );
        assert!(
            TokenUrl::parse("https://int.api.service.nhs.uk/oauth2/token")
                .unwrap()
                .is_nhs()
        );
        assert!(
            TokenUrl::parse("https://INT.api.service.nhs.uk/oauth2/token")
                .unwrap()
                .is_nhs()
        );
        assert!(
            !TokenUrl::parse("https://api.service.nhs.uk.evil.com/t")
                .unwrap()
                .is_nhs()
        );
        assert!(
            !TokenUrl::parse("https://notapi.service.nhs.uk/t")
                .unwrap()
                .is_nhs()
        );
    }

    #[test]
    fn token_url_string_is_exactly_what_is_posted() {
        let u = TokenUrl::parse("https://int.api.service.nhs.uk/oauth2/token").unwrap();
        assert_eq!(u.as_str(), "https://int.api.service.nhs.uk/oauth2/token");
    }
}
