//! The token endpoint's URL, checked once: https, or plain http only to loopback or when
//! explicitly (and loudly) allowed.
//!
//! Plain http to a real host would expose the client assertion (replayable until it expires) and
//! the access token to anyone on the path, so it is refused unless the caller writes
//! `dangerous_allow_insecure_http`, which is easy to grep for.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use url::{Host, Url};

use crate::error::ConfigError;

/// A token endpoint URL that passed the transport-security rules.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenUrl(Url);

/// Options for [`TokenUrl::parse_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    insecure_http: bool,
}

impl UrlPolicy {
    /// Allows plain http to any host. Only for closed test networks: the assertion and the token
    /// then travel in clear text.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.insecure_http = true;
        self
    }
}

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

/// Applies the transport-security rules to any endpoint URL (token endpoint, issuer).
pub(crate) fn check_url(url: &Url, policy: UrlPolicy) -> Result<(), ConfigError> {
    let shown = || {
        let mut u = url.clone();
        // Never echo credentials back in an error message.
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.to_string()
    };
    if url.host().is_none() || !matches!(url.scheme(), "https" | "http") {
        return Err(ConfigError::UnsupportedUrl { url: shown() });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::UrlHasForbiddenPart {
            url: shown(),
            what: "user credentials",
        });
    }
    if url.fragment().is_some() {
        return Err(ConfigError::UrlHasForbiddenPart {
            url: shown(),
            what: "a fragment",
        });
    }
    if url.scheme() == "http" && !policy.insecure_http && !is_loopback(url) {
        return Err(ConfigError::InsecureHttp { url: shown() });
    }
    Ok(())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
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
