//! The NHS England API platform's environments and token URLs (docs/nhs-token-endpoint.md
//! §1.4), so users pick an environment by name and the assertion `aud` is always the exact token URL NHS compares against.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The algorithm NHS's token endpoint accepts, and nothing else.
pub const NHS_ALG: crate::alg::Algorithm = crate::alg::Algorithm::Rs512;

/// An NHS England API platform environment that issues application-restricted tokens.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `sandbox.api.service.nhs.uk`.
    Sandbox,
    /// `dev.api.service.nhs.uk` (external development; only a few APIs).
    Dev,
    /// `int.api.service.nhs.uk`, the integration (path-to-live) environment.
    Int,
    /// `api.service.nhs.uk`, production.
    Prod,
}

impl Environment {
    /// Every environment, for `--help` and completion.
    pub const ALL: [Environment; 4] = [
        Environment::Sandbox,
        Environment::Dev,
        Environment::Int,
        Environment::Prod,
    ];

    /// The token URL, which is also the exact `aud` NHS requires.
    pub fn token_url(self) -> &'static str {
        match self {
            Environment::Sandbox => "https://sandbox.api.service.nhs.uk/oauth2/token",
            Environment::Dev => "https://dev.api.service.nhs.uk/oauth2/token",
            Environment::Int => "https://int.api.service.nhs.uk/oauth2/token",
            Environment::Prod => "https://api.service.nhs.uk/oauth2/token",
        }
    }

    /// The short name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Dev => "dev",
            Environment::Int => "int",
            Environment::Prod => "prod",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Environment {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "sandbox" => Ok(Environment::Sandbox),
            "dev" | "development" => Ok(Environment::Dev),
            "int" | "integration" => Ok(Environment::Int),
            "prod" | "production" | "live" => Ok(Environment::Prod),
            _ => Err(Error::Config(format!(
                "unknown NHS environment \"{s}\" (choose sandbox, dev, int or prod)"
            ))),
        }
    }
}

/// Whether `host` belongs to the NHS England API platform (`api.service.nhs.uk` or any
/// `*.api.service.nhs.uk`), in which case the NHS profile (RS512, `typ: JWT`) applies by itself.
pub fn is_nhs_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "api.service.nhs.uk" || host.ends_with(".api.service.nhs.uk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(is_nhs_host("api.service.nhs.uk"));
        assert!(is_nhs_host("INT.api.service.nhs.uk"));
        assert!(is_nhs_host("internal-dev.api.service.nhs.uk"));
        assert!(!is_nhs_host("api.service.nhs.uk.evil.example"));
        assert!(!is_nhs_host("xapi.service.nhs.uk"));
    }

    #[test]
    fn envs() {
        for env in Environment::ALL {
            assert_eq!(env.name().parse::<Environment>().ok(), Some(env));
            assert!(env.token_url().starts_with("https://"));
        }
    }
}
