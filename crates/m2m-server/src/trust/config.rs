//! The registry's `[[trust]]` tables: parsing and validation into [`Trust`], with errors that
//! name the file and line (docs/server.md, `## Trusted workload issuers`).
//!
//! ```toml
//! [[trust]]
//! issuer = "https://token.actions.githubusercontent.com"
//! # keys: discovery = "oidc" (default) | "rfc8414", or jwks_uri = "…", or jwks / jwks_file
//! audiences = ["https://auth.example"]          # default: our issuer and token URL
//! subject = "repo:org/repo:ref:refs/heads/main"   # or subject_prefix = "repo:org/repo:"
//! claims = { repository = "org/repo" }            # `a/b` also reads nested objects
//! client_id = "deployer"                          # or scopes = [...] (+ token_audience)
//! max_lifetime = 3600                             # seconds; default 3600
//! reuse = "single-use"                            # or "allow-within-lifetime" (SPIRE)
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use m2m_discovery::{UrlPolicy, parse_jwks};
use serde::Deserialize;

use super::{DEFAULT_TRUST_MAX_LIFETIME, Reuse, SubjectRule, Trust, TrustGrant, TrustKeySource};
use crate::registry::MAX_TOKEN_LIFETIME;

/// One `[[trust]]` table as written. Unknown keys are refused (a typo such as `subjects =` must
/// not widen or empty a rule silently).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrust {
    issuer: String,
    discovery: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<toml::Value>,
    jwks_file: Option<String>,
    audiences: Option<Vec<String>>,
    subject: Option<String>,
    subject_prefix: Option<String>,
    claims: Option<BTreeMap<String, String>>,
    client_id: Option<String>,
    scopes: Option<Vec<String>>,
    token_audience: Option<String>,
    max_lifetime: Option<u64>,
    reuse: Option<String>,
}

impl RawTrust {
    /// The issuer as written, for messages.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Validates the entry; `base` resolves a relative `jwks_file`. Whether `client_id` names a
    /// registered client is checked by the registry, which knows the clients.
    pub(crate) fn validate(&self, base: &Path, line: usize) -> Result<Trust, String> {
        let policy = UrlPolicy::new();
        if self.issuer.is_empty() {
            return Err("`issuer` must not be empty".to_owned());
        }
        policy
            .parse(&self.issuer)
            .map_err(|e| format!("`issuer`: {e}"))?;
        let given = [
            self.discovery.is_some(),
            self.jwks_uri.is_some(),
            self.jwks.is_some(),
            self.jwks_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(
                "give only one of `discovery`, `jwks_uri`, `jwks` and `jwks_file`".to_owned(),
            );
        }
        let keys = if let Some(d) = &self.discovery {
            match d.as_str() {
                "oidc" => TrustKeySource::Oidc,
                "rfc8414" => TrustKeySource::Rfc8414,
                other => {
                    return Err(format!(
                        "`discovery` must be \"oidc\" or \"rfc8414\", not {other:?}"
                    ));
                }
            }
        } else if let Some(uri) = &self.jwks_uri {
            TrustKeySource::JwksUri(policy.parse(uri).map_err(|e| format!("`jwks_uri`: {e}"))?)
        } else if let Some(value) = &self.jwks {
            let json = serde_json::to_vec(value).map_err(|e| format!("`jwks`: {e}"))?;
            TrustKeySource::Static(parse_jwks(&json).map_err(|e| format!("`jwks`: {e}"))?.keys)
        } else if let Some(file) = &self.jwks_file {
            let full = base.join(file);
            let bytes =
                std::fs::read(&full).map_err(|e| format!("`jwks_file` {}: {e}", full.display()))?;
            TrustKeySource::Static(
                parse_jwks(&bytes)
                    .map_err(|e| format!("`jwks_file` {}: {e}", full.display()))?
                    .keys,
            )
        } else {
            TrustKeySource::Oidc
        };
        let subject = match (&self.subject, &self.subject_prefix) {
            (Some(s), None) if !s.is_empty() => SubjectRule::Exact(s.clone()),
            (None, Some(p)) if !p.is_empty() => SubjectRule::Prefix(p.clone()),
            (Some(_), Some(_)) => {
                return Err("give either `subject` or `subject_prefix`, not both".to_owned());
            }
            _ => {
                return Err(
                    "a non-empty `subject` (exact) or `subject_prefix` is required: an entry \
                     must say which of the issuer's workloads it admits"
                        .to_owned(),
                );
            }
        };
        let grant = match (&self.client_id, &self.scopes) {
            (Some(_), Some(_)) => {
                return Err("give either `client_id` or `scopes`, not both".to_owned());
            }
            (Some(_), None) if self.token_audience.is_some() => {
                return Err(
                    "`token_audience` goes with `scopes`; a `client_id` match gets that client's \
                     audience"
                        .to_owned(),
                );
            }
            (Some(id), None) if !id.is_empty() => TrustGrant::Client(id.clone()),
            (None, Some(scopes)) => {
                if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                    return Err("`scopes` must be non-empty strings without spaces".to_owned());
                }
                TrustGrant::Principal {
                    scopes: scopes.clone(),
                    token_audience: self.token_audience.clone(),
                }
            }
            _ => {
                return Err(
                    "say what a match gets: `client_id = \"…\"` (a registered client) or \
                     `scopes = [...]`"
                        .to_owned(),
                );
            }
        };
        let max_lifetime = match self.max_lifetime {
            None => DEFAULT_TRUST_MAX_LIFETIME,
            Some(0) => return Err("`max_lifetime` must be at least 1 second".to_owned()),
            Some(s) if Duration::from_secs(s) > MAX_TOKEN_LIFETIME => {
                return Err(format!(
                    "`max_lifetime` of {s} s is above {} s (a day)",
                    MAX_TOKEN_LIFETIME.as_secs()
                ));
            }
            Some(s) => Duration::from_secs(s),
        };
        let reuse = match self.reuse.as_deref() {
            None | Some("single-use") => Reuse::SingleUse,
            Some("allow-within-lifetime") => Reuse::AllowWithinLifetime,
            Some(other) => {
                return Err(format!(
                    "`reuse` must be \"single-use\" or \"allow-within-lifetime\", not {other:?}"
                ));
            }
        };
        let audiences = self.audiences.clone().unwrap_or_default();
        if audiences.iter().any(String::is_empty) {
            return Err("`audiences` must not hold an empty string".to_owned());
        }
        let claims: Vec<(String, String)> = self
            .claims
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if claims.iter().any(|(k, _)| k.is_empty()) {
            return Err("`claims` names must not be empty".to_owned());
        }
        Ok(Trust {
            issuer: self.issuer.clone(),
            keys,
            audiences,
            subject,
            claims,
            grant,
            max_lifetime,
            reuse,
            line,
        })
    }
}

/// Entries of one issuer must name the same keys: the keys verify the token before any entry's
/// subject rule is tried.
pub(crate) fn check_same_keys(trusts: &[Trust]) -> Result<(), (usize, String, String)> {
    for (i, t) in trusts.iter().enumerate() {
        if let Some(first) = trusts[..i]
            .iter()
            .find(|f| f.issuer == t.issuer && f.keys != t.keys)
        {
            return Err((
                t.line,
                t.issuer.clone(),
                format!(
                    "entries of one issuer must name the same keys (the entry at line {} names \
                     others)",
                    first.line
                ),
            ));
        }
    }
    Ok(())
}
