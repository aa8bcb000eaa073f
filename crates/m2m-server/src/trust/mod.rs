//! Trust of workload issuers: the registry's `[[trust]]` entries ([`Trust`]), which say whose
//! tokens (a Kubernetes cluster, a SPIRE server, GitHub Actions) are accepted as the RFC 7523 §2.1
//! jwt-bearer grant or as a federated client assertion, for which subjects, and what a match gets.
//!
//! # Layout
//!
//! - this file: the validated entry and the pure rule matching (subject, claims).
//! - `config`: parsing `[[trust]]` tables from the registry file, with file:line errors.
//! - `keys`: the issuers' keys (OIDC / RFC 8414 discovery, `jwks_uri`, or static), fetched
//!   through `m2m_discovery` under its policy, with a bounded wait.
//! - `verify`: one token through the checks (core's `precheck_federated` → keys → signature →
//!   rule → core's `check_federated_claims` → the `jti` record), shared by the grant
//!   (`token/jwt_bearer.rs`) and client authentication (`client_auth`).
//! - `edit`: comment-preserving edits of the file, for `m2m trust add|list|remove`.

pub(crate) mod config;
pub(crate) mod edit;
pub(crate) mod keys;
pub(crate) mod verify;

use std::time::Duration;

use m2m_core::ids::KeySet;
use serde_json::Value;
use url::Url;

/// A trust's `max_lifetime` unless set: an hour, the default lifetime of a Kubernetes projected
/// service-account token (`expirationSeconds: 3600`); longer-lived tokens are refused.
pub const DEFAULT_TRUST_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Where a trusted issuer's keys come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TrustKeySource {
    /// OpenID Connect discovery (`/.well-known/openid-configuration`), then its `jwks_uri`: what
    /// Kubernetes, GitHub Actions and SPIRE's OIDC discovery provider publish. The default.
    Oidc,
    /// RFC 8414 metadata (`/.well-known/oauth-authorization-server`), then its `jwks_uri`.
    Rfc8414,
    /// This JWKS URL.
    JwksUri(Url),
    /// These keys (inline `jwks` or `jwks_file`), never fetched.
    Static(KeySet),
}

/// Which subjects an entry matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectRule {
    /// `sub` equals this.
    Exact(String),
    /// `sub` starts with this.
    Prefix(String),
}

/// What a matching token gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustGrant {
    /// It acts as this registered client (its scopes, resources, audience, lifetime).
    Client(String),
    /// A principal named by the token's `sub`, with these scopes and access-token audience
    /// (`None`: the issuer). Only through the jwt-bearer grant.
    Principal {
        /// Scopes it may be granted.
        scopes: Vec<String>,
        /// `aud` of its access tokens.
        token_audience: Option<String>,
    },
}

/// Whether a token may be presented more than once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reuse {
    /// `jti` required, recorded until `exp`: each token works once. The default.
    #[default]
    SingleUse,
    /// `jti` optional and not recorded: the same token works until it expires (SPIRE reuses its
    /// JWT-SVIDs). Stated explicitly in the entry.
    AllowWithinLifetime,
}

impl Reuse {
    /// The registry spelling.
    pub fn name(self) -> &'static str {
        match self {
            Reuse::SingleUse => "single-use",
            Reuse::AllowWithinLifetime => "allow-within-lifetime",
        }
    }
}

/// One validated `[[trust]]` entry.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The issuer identifier, compared with `iss` exactly.
    pub issuer: String,
    /// Where its keys come from.
    pub keys: TrustKeySource,
    /// Accepted `aud` values; empty: this server's issuer identifier and token URL.
    pub audiences: Vec<String>,
    /// Which subjects match.
    pub subject: SubjectRule,
    /// Claims that must also match: a literal top-level claim name, else a `/`-separated path
    /// into nested objects (`kubernetes.io/namespace`), with the value compared as a string.
    pub claims: Vec<(String, String)>,
    /// What a match gets.
    pub grant: TrustGrant,
    /// Longest accepted token lifetime (`exp` − `iat`).
    pub max_lifetime: Duration,
    /// Whether a token may be presented again.
    pub reuse: Reuse,
    /// 1-based line of its `[[trust]]` table, for messages.
    pub line: usize,
}

impl Trust {
    /// Whether the token's (verified) subject and claims satisfy this entry. Pure.
    pub fn matches(&self, sub: &str, claims: &serde_json::Map<String, Value>) -> bool {
        let subject_ok = match &self.subject {
            SubjectRule::Exact(s) => sub == s,
            SubjectRule::Prefix(p) => sub.starts_with(p.as_str()),
        };
        subject_ok
            && self
                .claims
                .iter()
                .all(|(name, want)| claim_value(claims, name).is_some_and(|v| v == *want))
    }
}

/// A claim as text for comparison: the literal top-level name first (GitHub's `repository`, or
/// a flattened `kubernetes.io/namespace`), else the `/`-separated path into nested objects
/// (Kubernetes nests `{"kubernetes.io": {"namespace": …}}`). Dots are not separators: claim
/// names such as `kubernetes.io` contain them. Strings compare as they are; numbers and booleans
/// as their JSON text; objects, arrays and null never match.
fn claim_value(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    let value = claims.get(name).or_else(|| {
        let mut parts = name.split('/');
        let mut current = claims.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    })?;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trust(subject: SubjectRule, claims: &[(&str, &str)]) -> Trust {
        Trust {
            issuer: "https://k8s.example".into(),
            keys: TrustKeySource::Oidc,
            audiences: vec![],
            subject,
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            grant: TrustGrant::Client("c".into()),
            max_lifetime: DEFAULT_TRUST_MAX_LIFETIME,
            reuse: Reuse::SingleUse,
            line: 1,
        }
    }

    #[test]
    fn nested_and_top_level_claims_both_match() {
        let k8s = json!({"kubernetes.io": {"namespace": "prod",
            "serviceaccount": {"name": "billing", "uid": "u"}}});
        let k8s = k8s.as_object().unwrap();
        let t = trust(
            SubjectRule::Prefix("system:serviceaccount:prod:".into()),
            &[
                ("kubernetes.io/namespace", "prod"),
                ("kubernetes.io/serviceaccount/name", "billing"),
            ],
        );
        assert!(t.matches("system:serviceaccount:prod:billing", k8s));
        assert!(!t.matches("system:serviceaccount:dev:billing", k8s));
        let flat = json!({"kubernetes.io/namespace": "prod",
            "kubernetes.io/serviceaccount/name": "billing"});
        assert!(t.matches("system:serviceaccount:prod:x", flat.as_object().unwrap()));
        let wrong = json!({"kubernetes.io": {"namespace": "dev"}});
        assert!(!t.matches("system:serviceaccount:prod:x", wrong.as_object().unwrap()));
    }

    #[test]
    fn exact_subject_and_scalar_claims() {
        let gh = json!({"repository": "org/repo", "run_id": 42, "object": {"a": 1}});
        let gh = gh.as_object().unwrap();
        let sub = "repo:org/repo:ref:refs/heads/main";
        assert!(
            trust(
                SubjectRule::Exact(sub.into()),
                &[("repository", "org/repo")]
            )
            .matches(sub, gh)
        );
        assert!(!trust(SubjectRule::Exact(sub.into()), &[]).matches("repo:org/repo", gh));
        assert!(trust(SubjectRule::Exact(sub.into()), &[("run_id", "42")]).matches(sub, gh));
        assert!(!trust(SubjectRule::Exact(sub.into()), &[("object", "")]).matches(sub, gh));
        assert!(!trust(SubjectRule::Exact(sub.into()), &[("missing", "x")]).matches(sub, gh));
    }
}
