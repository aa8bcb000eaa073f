//! Finding other parties' metadata: RFC 8414 authorization-server metadata (with the OpenID
//! Connect Discovery location as a fallback) and RFC 9728 protected-resource metadata. Pure
//! parsers (`parse_…`) and async fetchers (`discover_…`/`fetch_…`) over [`HttpClient`].
//!
//! The identifier checks are exact string comparisons: the metadata's `issuer` must equal the
//! configured issuer (RFC 8414 §3.3) and the `resource` must equal the resource asked about
//! (RFC 9728 §3.3); otherwise a server could make a client send assertions meant for one
//! audience elsewhere, or a resource could name an authorization server it does not use.

use serde_json::{Map, Value};
use url::Url;

use crate::error::{Error, excerpt};
use crate::http::HttpClient;
use crate::policy::{UrlPolicy, shown};

/// The RFC 8414 well-known suffix.
pub const OAUTH_AUTHORIZATION_SERVER: &str = ".well-known/oauth-authorization-server";
/// The OpenID Connect Discovery well-known suffix.
pub const OPENID_CONFIGURATION: &str = ".well-known/openid-configuration";
/// The RFC 9728 well-known suffix.
pub const OAUTH_PROTECTED_RESOURCE: &str = ".well-known/oauth-protected-resource";

/// Largest metadata document accepted (metadata is a few KiB; the cap bounds a hostile host).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// What a metadata request accepts.
const JSON_ACCEPT: &str = "application/json";

/// Which well-known documents to look for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetadataSources {
    /// RFC 8414 only (the token client).
    #[default]
    OAuth,
    /// RFC 8414, then OpenID Connect Discovery (a resource server finding an issuer's keys).
    OAuthThenOpenId,
}

/// The metadata URLs to try for an issuer, in order: the RFC 8414 §3.1 form (well-known path
/// inserted before the issuer's path), then, for issuers with a path, the appended form that many
/// servers (Keycloak, OIDC-style deployments) serve instead; with
/// [`MetadataSources::OAuthThenOpenId`], then the OpenID Connect Discovery form (appended, as
/// OIDC Discovery §4 says) and its inserted variant for issuers with a path.
pub fn metadata_urls(issuer: &Url, sources: MetadataSources) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let with_path = |p: String| {
        let mut u = issuer.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.set_path(&p);
        u
    };
    let mut urls = vec![with_path(format!("/{OAUTH_AUTHORIZATION_SERVER}{path}"))];
    if !path.is_empty() {
        urls.push(with_path(format!("{path}/{OAUTH_AUTHORIZATION_SERVER}")));
    }
    if sources == MetadataSources::OAuthThenOpenId {
        urls.push(with_path(format!("{path}/{OPENID_CONFIGURATION}")));
        if !path.is_empty() {
            urls.push(with_path(format!("/{OPENID_CONFIGURATION}{path}")));
        }
    }
    urls
}

/// The RFC 9728 §3.1 metadata URL of a resource: the well-known path inserted between the host
/// and the resource's path (query and fragment dropped).
pub fn protected_resource_metadata_url(resource: &Url) -> Url {
    let path = resource.path().trim_end_matches('/');
    let mut u = resource.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.set_path(&format!("/{OAUTH_PROTECTED_RESOURCE}{path}"));
    u
}

/// Checks an issuer identifier: a URL the policy accepts, without query or fragment (RFC 8414
/// §2).
pub fn parse_issuer(issuer: &str, policy: &UrlPolicy) -> Result<Url, Error> {
    let url = policy.parse(issuer)?;
    if url.query().is_some() {
        return Err(Error::InvalidUrl {
            url: shown(&url),
            reason: "an issuer identifier has no query component (RFC 8414 §2)".to_owned(),
        });
    }
    Ok(url)
}

/// Authorization-server metadata (RFC 8414 §2 / OpenID Connect Discovery), the members m2m uses
/// typed, every other member kept.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthServerMetadata {
    issuer: String,
    token_endpoint: Option<Url>,
    jwks_uri: Option<String>,
    auth_methods: Option<Vec<String>>,
    signing_algs: Option<Vec<String>>,
    extra: Map<String, Value>,
}

impl AuthServerMetadata {
    /// The issuer identifier (equal to the configured one): the assertion's `aud` with discovery,
    /// the access token's `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `token_endpoint`, checked against the URL policy, if published.
    pub fn token_endpoint(&self) -> Option<&Url> {
        self.token_endpoint.as_ref()
    }
    /// `token_endpoint`, or an error saying the metadata has none (what a token client needs).
    pub fn require_token_endpoint(&self) -> Result<&Url, Error> {
        self.token_endpoint
            .as_ref()
            .ok_or_else(|| Error::InvalidMetadata {
                url: self.issuer.clone(),
                reason: "the metadata has no token_endpoint".to_owned(),
            })
    }
    /// `jwks_uri` as published (not yet checked: [`crate::JwksFetcher`] applies its policy).
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }
    /// `token_endpoint_auth_methods_supported`, if published.
    pub fn token_endpoint_auth_methods(&self) -> Option<&[String]> {
        self.auth_methods.as_deref()
    }
    /// `token_endpoint_auth_signing_alg_values_supported`, if published.
    pub fn token_endpoint_signing_algs(&self) -> Option<&[String]> {
        self.signing_algs.as_deref()
    }
    /// Whether the server says it accepts `private_key_jwt` (true when it does not say).
    pub fn supports_private_key_jwt(&self) -> bool {
        self.auth_methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m == "private_key_jwt"))
    }
    /// All other metadata members.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

/// Reads a JSON object body, with an escaped excerpt of anything else in the error.
fn json_object(url: &str, body: &[u8]) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::InvalidMetadata {
            url: url.to_owned(),
            reason: format!(
                "the metadata document is not a JSON object (it starts {})",
                excerpt(body)
            ),
        }),
    }
}

/// Removes and returns an optional string member.
fn take_string(
    map: &mut Map<String, Value>,
    url: &str,
    name: &str,
) -> Result<Option<String>, Error> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::InvalidMetadata {
            url: url.to_owned(),
            reason: format!("metadata member {name} is not a string"),
        }),
    }
}

/// Removes and returns an optional array-of-strings member.
fn take_list(
    map: &mut Map<String, Value>,
    url: &str,
    name: &str,
) -> Result<Option<Vec<String>>, Error> {
    let fail = |reason: String| Error::InvalidMetadata {
        url: url.to_owned(),
        reason,
    };
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(fail(format!("metadata member {name} must list strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(fail(format!("metadata member {name} is not an array"))),
    }
}

/// Reads an authorization-server metadata document and checks its `issuer` against the
/// configured one, exactly (RFC 8414 §3.3), and its `token_endpoint` against `policy`. Pure.
pub fn parse_auth_server_metadata(
    issuer: &str,
    body: &[u8],
    policy: &UrlPolicy,
) -> Result<AuthServerMetadata, Error> {
    let mut map = json_object(issuer, body)?;
    let published =
        take_string(&mut map, issuer, "issuer")?.ok_or_else(|| Error::InvalidMetadata {
            url: issuer.to_owned(),
            reason: "the metadata has no issuer".to_owned(),
        })?;
    if published != issuer {
        return Err(Error::IssuerMismatch {
            expected: issuer.to_owned(),
            published,
        });
    }
    let token_endpoint = take_string(&mut map, issuer, "token_endpoint")?
        .map(|e| {
            policy.parse(&e).map_err(|err| Error::InvalidMetadata {
                url: issuer.to_owned(),
                reason: format!("token_endpoint: {err}"),
            })
        })
        .transpose()?;
    let jwks_uri = take_string(&mut map, issuer, "jwks_uri")?;
    let auth_methods = take_list(&mut map, issuer, "token_endpoint_auth_methods_supported")?;
    let signing_algs = take_list(
        &mut map,
        issuer,
        "token_endpoint_auth_signing_alg_values_supported",
    )?;
    Ok(AuthServerMetadata {
        issuer: published,
        token_endpoint,
        jwks_uri,
        auth_methods,
        signing_algs,
        extra: map,
    })
}

/// Fetches and checks the metadata of `issuer`: tries [`metadata_urls`] in order, moving on
/// after a 404 only; any other failure ends the search (a 500 is not "not here").
pub async fn discover_auth_server(
    http: &HttpClient,
    issuer: &str,
    sources: MetadataSources,
    policy: &UrlPolicy,
) -> Result<AuthServerMetadata, Error> {
    let parsed = parse_issuer(issuer, policy)?;
    let mut tried = Vec::new();
    for url in metadata_urls(&parsed, sources) {
        tracing::debug!(%url, "fetching authorization-server metadata");
        let document = http
            .get(&url, policy, JSON_ACCEPT, MAX_METADATA_BYTES)
            .await?;
        match document.status {
            200 => return parse_auth_server_metadata(issuer, &document.body, policy),
            404 => tried.push(format!("{url} (404)")),
            status => {
                return Err(Error::Status {
                    url: url.to_string(),
                    status,
                });
            }
        }
    }
    Err(Error::MetadataNotFound {
        issuer: issuer.to_owned(),
        tried,
    })
}

/// Protected-resource metadata (RFC 9728 §2), the members m2m uses typed, every other member
/// kept.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtectedResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    bearer_methods_supported: Option<Vec<String>>,
    dpop_bound_access_tokens_required: bool,
    extra: Map<String, Value>,
}

impl ProtectedResourceMetadata {
    /// The resource identifier (equal to the one asked about): the RFC 8707 `resource` to ask
    /// tokens for.
    pub fn resource(&self) -> &str {
        &self.resource
    }
    /// Issuer identifiers of the authorization servers that issue tokens for it (possibly
    /// empty); each still goes through [`discover_auth_server`].
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }
    /// `scopes_supported`, if published.
    pub fn scopes_supported(&self) -> Option<&[String]> {
        self.scopes_supported.as_deref()
    }
    /// `bearer_methods_supported`, if published (`header`, `body`, `query`).
    pub fn bearer_methods_supported(&self) -> Option<&[String]> {
        self.bearer_methods_supported.as_deref()
    }
    /// Whether the resource requires DPoP-bound tokens (false when not said).
    pub fn dpop_bound_access_tokens_required(&self) -> bool {
        self.dpop_bound_access_tokens_required
    }
    /// All other metadata members.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

/// Reads a protected-resource metadata document and checks its `resource` against the resource
/// identifier used to find it, exactly (RFC 9728 §3.3). Pure.
pub fn parse_protected_resource_metadata(
    resource: &str,
    body: &[u8],
) -> Result<ProtectedResourceMetadata, Error> {
    let mut map = json_object(resource, body)?;
    let published =
        take_string(&mut map, resource, "resource")?.ok_or_else(|| Error::InvalidMetadata {
            url: resource.to_owned(),
            reason: "the metadata has no resource".to_owned(),
        })?;
    if published != resource {
        return Err(Error::ResourceMismatch {
            expected: resource.to_owned(),
            published,
        });
    }
    let authorization_servers =
        take_list(&mut map, resource, "authorization_servers")?.unwrap_or_default();
    let scopes_supported = take_list(&mut map, resource, "scopes_supported")?;
    let bearer_methods_supported = take_list(&mut map, resource, "bearer_methods_supported")?;
    let dpop_bound_access_tokens_required = match map.remove("dpop_bound_access_tokens_required") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(Error::InvalidMetadata {
                url: resource.to_owned(),
                reason: "metadata member dpop_bound_access_tokens_required is not a boolean"
                    .to_owned(),
            });
        }
    };
    Ok(ProtectedResourceMetadata {
        resource: published,
        authorization_servers,
        scopes_supported,
        bearer_methods_supported,
        dpop_bound_access_tokens_required,
        extra: map,
    })
}

/// Fetches the protected-resource metadata of `resource` from its RFC 9728 §3.1 location, or
/// from `metadata_url` when the resource named one (the `resource_metadata` parameter of its
/// `WWW-Authenticate` challenge), and checks it with [`parse_protected_resource_metadata`].
pub async fn fetch_protected_resource_metadata(
    http: &HttpClient,
    resource: &str,
    metadata_url: Option<&Url>,
    policy: &UrlPolicy,
) -> Result<ProtectedResourceMetadata, Error> {
    let resource_url = policy.parse(resource)?;
    let url = match metadata_url {
        Some(u) => u.clone(),
        None => protected_resource_metadata_url(&resource_url),
    };
    let document = http
        .get(&url, policy, JSON_ACCEPT, MAX_METADATA_BYTES)
        .await?;
    match document.status {
        200 => parse_protected_resource_metadata(resource, &document.body),
        404 => Err(Error::MetadataNotFound {
            issuer: resource.to_owned(),
            tried: vec![format!("{url} (404)")],
        }),
        status => Err(Error::Status {
            url: url.to_string(),
            status,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }
    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn rfc8414_urls() {
        assert_eq!(
            strs(metadata_urls(
                &u("https://as.example.com"),
                MetadataSources::OAuth
            )),
            ["https://as.example.com/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            strs(metadata_urls(
                &u("https://kc.example.com/realms/x"),
                MetadataSources::OAuth
            )),
            [
                "https://kc.example.com/.well-known/oauth-authorization-server/realms/x",
                "https://kc.example.com/realms/x/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn openid_urls_come_after_the_rfc8414_ones() {
        assert_eq!(
            strs(metadata_urls(
                &u("https://as.example.com/"),
                MetadataSources::OAuthThenOpenId
            )),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(metadata_urls(
                &u("https://kc.example.com/realms/x/"),
                MetadataSources::OAuthThenOpenId
            )),
            [
                "https://kc.example.com/.well-known/oauth-authorization-server/realms/x",
                "https://kc.example.com/realms/x/.well-known/oauth-authorization-server",
                "https://kc.example.com/realms/x/.well-known/openid-configuration",
                "https://kc.example.com/.well-known/openid-configuration/realms/x",
            ]
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let body = br#"{"issuer":"https://as.example.com/","token_endpoint":"https://as.example.com/token"}"#;
        let p = UrlPolicy::new();
        let err = parse_auth_server_metadata("https://as.example.com", body, &p).unwrap_err();
        assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("not exactly the configured issuer"),
            "{err}"
        );
        let ok = parse_auth_server_metadata("https://as.example.com/", body, &p).unwrap();
        assert_eq!(
            ok.require_token_endpoint().unwrap().as_str(),
            "https://as.example.com/token"
        );
        assert!(ok.supports_private_key_jwt());
    }

    #[test]
    fn insecure_token_endpoint_is_refused() {
        let body = br#"{"issuer":"https://as.example.com","token_endpoint":"http://as.example.com/token"}"#;
        let err = parse_auth_server_metadata("https://as.example.com", body, &UrlPolicy::new())
            .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
    }

    #[test]
    fn members_are_typed_and_the_rest_kept() {
        let body = br#"{"issuer":"https://a","jwks_uri":"https://a/jwks",
            "token_endpoint_auth_methods_supported":["client_secret_basic"],
            "grant_types_supported":["client_credentials"]}"#;
        let m = parse_auth_server_metadata("https://a", body, &UrlPolicy::new()).unwrap();
        assert_eq!(m.jwks_uri(), Some("https://a/jwks"));
        assert!(m.token_endpoint().is_none());
        assert!(m.require_token_endpoint().is_err());
        assert!(!m.supports_private_key_jwt());
        assert!(m.extra().contains_key("grant_types_supported"));
        let bad = br#"{"issuer":"https://a","token_endpoint_auth_methods_supported":"x"}"#;
        assert!(parse_auth_server_metadata("https://a", bad, &UrlPolicy::new()).is_err());
    }

    #[test]
    fn non_json_metadata_is_shown_as_a_short_escaped_excerpt() {
        let body = format!("<html>\n{}</html>", "x".repeat(500));
        let err = parse_auth_server_metadata("https://a", body.as_bytes(), &UrlPolicy::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("<html>\\n"), "{err}");
        assert!(err.len() < 250, "{err}");
    }

    #[test]
    fn issuer_with_a_query_is_refused() {
        assert!(parse_issuer("https://as.example.com?x=1", &UrlPolicy::new()).is_err());
        assert!(parse_issuer("http://as.example.com", &UrlPolicy::new()).is_err());
        assert!(parse_issuer("https://as.example.com/t", &UrlPolicy::new()).is_ok());
    }

    #[test]
    fn protected_resource_metadata() {
        assert_eq!(
            protected_resource_metadata_url(&u("https://api.example.com/mcp?x=1")).as_str(),
            "https://api.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            protected_resource_metadata_url(&u("https://api.example.com")).as_str(),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
        let body = br#"{"resource":"https://api.example.com/mcp",
            "authorization_servers":["https://as.example.com"],
            "scopes_supported":["read"],"bearer_methods_supported":["header"],
            "dpop_bound_access_tokens_required":true,"resource_name":"MCP"}"#;
        let m = parse_protected_resource_metadata("https://api.example.com/mcp", body).unwrap();
        assert_eq!(m.resource(), "https://api.example.com/mcp");
        assert_eq!(m.authorization_servers(), ["https://as.example.com"]);
        assert_eq!(m.scopes_supported().unwrap(), ["read"]);
        assert_eq!(m.bearer_methods_supported().unwrap(), ["header"]);
        assert!(m.dpop_bound_access_tokens_required());
        assert_eq!(m.extra()["resource_name"], "MCP");

        let err =
            parse_protected_resource_metadata("https://api.example.com/other", body).unwrap_err();
        assert!(matches!(err, Error::ResourceMismatch { .. }), "{err}");
        let bad = br#"{"resource":"https://r","dpop_bound_access_tokens_required":"yes"}"#;
        assert!(parse_protected_resource_metadata("https://r", bad).is_err());
        let minimal =
            parse_protected_resource_metadata("https://r", br#"{"resource":"https://r"}"#).unwrap();
        assert!(minimal.authorization_servers().is_empty());
        assert!(!minimal.dpop_bound_access_tokens_required());
    }
}
