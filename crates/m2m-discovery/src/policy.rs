//! The one URL policy for every document m2m fetches or posts to: https, or plain http only to a
//! loopback host (development), unless the caller writes `dangerous_allow_insecure_http`.
//!
//! Plain http to a real host would let anyone on the path swap the keys or metadata we are about
//! to trust (and, for a token endpoint, read the assertion and the token), so it is refused by
//! default. The path rule exists because NHS refuses a `jwks_uri` without a path, and a bare host
//! is almost always a configuration slip.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::Error;

/// Which URLs may be fetched. `Copy`, cheap to pass; the default is the strict policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    insecure_http: bool,
    require_path: bool,
}

impl UrlPolicy {
    /// The strict policy: https, or http to loopback; no path required.
    pub const fn new() -> Self {
        UrlPolicy {
            insecure_http: false,
            require_path: false,
        }
    }

    /// Also require a non-empty path (`https://host` and `https://host/` are refused). A
    /// tightening, so not `dangerous`.
    pub const fn require_path(mut self) -> Self {
        self.require_path = true;
        self
    }

    /// Allows plain http to any host. Only for closed test networks: documents (and, for a token
    /// endpoint, assertions and tokens) then travel in clear text and can be replaced in transit.
    pub const fn dangerous_allow_insecure_http(mut self) -> Self {
        self.insecure_http = true;
        self
    }

    /// Whether [`UrlPolicy::dangerous_allow_insecure_http`] was set.
    pub const fn allows_insecure_http(&self) -> bool {
        self.insecure_http
    }

    /// Whether [`UrlPolicy::require_path`] was set.
    pub const fn requires_path(&self) -> bool {
        self.require_path
    }

    /// Parses `url` and applies [`UrlPolicy::check`].
    pub fn parse(&self, url: &str) -> Result<Url, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        self.check(&parsed)?;
        Ok(parsed)
    }

    /// Applies the rules: http(s) with a host, no credentials, no fragment, https unless the host
    /// is loopback (or insecure http was dangerously allowed), and a path when required.
    pub fn check(&self, url: &Url) -> Result<(), Error> {
        if url.host().is_none() || !matches!(url.scheme(), "https" | "http") {
            return Err(Error::UnsupportedUrl { url: shown(url) });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::UrlHasForbiddenPart {
                url: shown(url),
                what: "user credentials",
            });
        }
        if url.fragment().is_some() {
            return Err(Error::UrlHasForbiddenPart {
                url: shown(url),
                what: "a fragment",
            });
        }
        if url.scheme() == "http" && !self.insecure_http && !is_loopback(url) {
            return Err(Error::InsecureHttp { url: shown(url) });
        }
        if self.require_path && (url.path().is_empty() || url.path() == "/") {
            return Err(Error::UrlWithoutPath { url: shown(url) });
        }
        Ok(())
    }
}

/// Whether the URL's host is `localhost` or a loopback IP (127.0.0.0/8, ::1).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether a host string (as in a URL: `localhost`, `127.0.0.1`, `[::1]` or `::1`) is loopback.
/// Other names are not resolved: `localhost.` or a name that resolves to 127.0.0.1 is not
/// loopback here, because DNS can change under us.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The URL for messages: credentials removed, so an error never echoes a password.
pub(crate) fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        let strict = UrlPolicy::new();
        for ok in [
            "https://int.api.service.nhs.uk/oauth2/token",
            "http://127.0.0.1:8080/token",
            "http://127.8.9.10/token",
            "http://[::1]:9000/token",
            "http://localhost/token",
            "http://LOCALHOST:1/token",
        ] {
            assert!(strict.parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/token",
            "http://10.0.0.1/token",
            "http://[::2]/t",
        ] {
            let err = strict.parse(bad).unwrap_err();
            assert!(matches!(err, Error::InsecureHttp { .. }), "{bad}");
            assert!(
                err.to_string().contains("dangerous_allow_insecure_http"),
                "{err}"
            );
            let allowed = UrlPolicy::new().dangerous_allow_insecure_http();
            assert!(allowed.parse(bad).is_ok(), "{bad}");
        }
    }

    #[test]
    fn malformed_and_odd_urls_have_clear_errors() {
        let p = UrlPolicy::new();
        assert_eq!(
            p.parse("int.api.service.nhs.uk/oauth2/token")
                .unwrap_err()
                .to_string(),
            "\"int.api.service.nhs.uk/oauth2/token\" is not a valid URL: relative URL without a base"
        );
        assert!(matches!(
            p.parse("ftp://x/y"),
            Err(Error::UnsupportedUrl { .. })
        ));
        assert!(matches!(
            p.parse("https://x/y#f"),
            Err(Error::UrlHasForbiddenPart { .. })
        ));
        let creds = p.parse("https://user:secret@x/y").unwrap_err().to_string();
        assert!(!creds.contains("secret"), "{creds}");
    }

    #[test]
    fn require_path_refuses_bare_hosts() {
        let p = UrlPolicy::new().require_path();
        for bad in [
            "https://example.com",
            "https://example.com/",
            "http://example.com/jwks",
            "ftp://x/y",
        ] {
            assert!(p.parse(bad).is_err(), "{bad}");
        }
        for good in [
            "https://example.com/jwks.json",
            "http://127.0.0.1:9/jwks",
            "http://localhost/x",
        ] {
            assert!(p.parse(good).is_ok(), "{good}");
        }
        assert!(matches!(
            p.parse("https://example.com/"),
            Err(Error::UrlWithoutPath { .. })
        ));
        assert!(UrlPolicy::new().parse("https://example.com/").is_ok());
    }

    #[test]
    fn loopback_hosts() {
        for yes in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(yes), "{yes}");
        }
        for no in [
            "example.com",
            "10.0.0.1",
            "[::2]",
            "localhost.",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }
}
