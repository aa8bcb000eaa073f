//! Finding the authorization server from a resource URL — the MCP flow (RFC 9728): call the
//! resource without a token, read `resource_metadata` from its 401 challenge (else use the
//! RFC 9728 §3.1 well-known URL), check the metadata's `resource` against the URL (RFC 9728 §3.3),
//! pick the issuer from `authorization_servers` (pinned by the caller when there are several, and
//! always checked against the pin), then RFC 8414 discovery with its exact issuer check.
//!
//! The result says which `resource` to send (RFC 8707), so the token's `aud` is the API and a
//! token for one API is useless at another.

use m2m_discovery::metadata::{
    fetch_protected_resource_metadata, parse_protected_resource_metadata,
};
use m2m_discovery::{HttpClient, ProtectedResourceMetadata};
use url::Url;

use crate::discovery::{AuthServerMetadata, discover_with};
use crate::error::Error;
use crate::reqwest_transport::{ReqwestTransport, TransportConfig};
use crate::token_url::UrlPolicy;

/// What discovery from a resource found.
#[derive(Clone, Debug)]
pub struct ResourceDiscovery {
    /// The resource identifier: the `resource` to send in the token request (RFC 8707).
    pub resource: String,
    /// The resource's RFC 9728 metadata.
    pub resource_metadata: ProtectedResourceMetadata,
    /// The chosen authorization server's RFC 8414 metadata (issuer checked).
    pub auth_server: AuthServerMetadata,
}

/// Discovers how to get a token for `resource_url`, with the default transport and the strict
/// URL policy. `pinned_issuer`: the authorization server to use; required when the resource
/// names several, and when given it must be one of them.
pub async fn discover_from_resource(
    resource_url: &str,
    pinned_issuer: Option<&str>,
) -> Result<ResourceDiscovery, Error> {
    discover_from_resource_with(resource_url, pinned_issuer, UrlPolicy::default()).await
}

/// [`discover_from_resource`] under `policy` (e.g. one allowing insecure http, loudly named).
pub async fn discover_from_resource_with(
    resource_url: &str,
    pinned_issuer: Option<&str>,
    policy: UrlPolicy,
) -> Result<ResourceDiscovery, Error> {
    let fail = |reason: String| Error::ResourceDiscovery {
        resource: resource_url.to_owned(),
        reason,
    };
    let url = policy
        .parse(resource_url)
        .map_err(|e| fail(e.to_string()))?;
    let probe = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let response = probe
        .get(url.clone())
        .send()
        .await
        .map_err(|e| fail(format!("calling the resource without a token: {e}")))?;
    let challenge_url = if response.status().as_u16() == 401 {
        response
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(resource_metadata_param)
    } else {
        None
    };
    let identifier = resource_identifier(&url);
    let http =
        HttpClient::new(std::time::Duration::from_secs(10)).map_err(|e| fail(e.to_string()))?;
    let resource_metadata = match challenge_url {
        Some(meta) => {
            let meta_url = policy
                .parse(&meta)
                .map_err(|e| fail(format!("resource_metadata: {e}")))?;
            let doc = http
                .get(&meta_url, &policy, "application/json", 64 * 1024)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if doc.status != 200 {
                return Err(fail(format!("{meta_url} answered {}", doc.status)));
            }
            let named = serde_json::from_slice::<serde_json::Value>(&doc.body)
                .ok()
                .and_then(|v| {
                    v.get("resource")
                        .and_then(|r| r.as_str())
                        .map(str::to_owned)
                })
                .ok_or_else(|| fail("the resource metadata has no resource".to_owned()))?;
            if !covers(&named, &identifier) {
                return Err(fail(format!(
                    "the resource metadata is for {named:?}, not for {identifier:?} (RFC 9728 §3.3)"
                )));
            }
            parse_protected_resource_metadata(&named, &doc.body).map_err(|e| fail(e.to_string()))?
        }
        None => fetch_protected_resource_metadata(&http, &identifier, None, &policy)
            .await
            .map_err(|e| fail(e.to_string()))?,
    };
    let servers = resource_metadata.authorization_servers();
    let issuer = match (pinned_issuer, servers) {
        (Some(pin), servers) if servers.iter().any(|s| s == pin) => pin.to_owned(),
        (Some(pin), _) => {
            return Err(fail(format!(
                "the resource does not name {pin:?} among its authorization servers {servers:?}"
            )));
        }
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(fail(
                "the resource names no authorization server".to_owned(),
            ));
        }
        (None, several) => {
            return Err(fail(format!(
                "the resource names several authorization servers {several:?}; pin one with --issuer"
            )));
        }
    };
    let transport = ReqwestTransport::new(&TransportConfig::default())?;
    let auth_server = discover_with(&transport, &issuer, policy).await?;
    Ok(ResourceDiscovery {
        resource: resource_metadata.resource().to_owned(),
        resource_metadata,
        auth_server,
    })
}

/// The URL without query and fragment: what its metadata's `resource` is compared with.
fn resource_identifier(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let s = u.to_string();
    // `https://api.example` parses with a `/` path; the identifier is written without it.
    if u.path() == "/" && !url.as_str().ends_with('/') {
        s.trim_end_matches('/').to_owned()
    } else {
        s
    }
}

/// Whether metadata for resource `named` covers a request to `identifier`: the same string, or
/// a path prefix of it on a segment boundary with the same origin (an API at
/// `https://api.example/v1` protects `https://api.example/v1/items`).
fn covers(named: &str, identifier: &str) -> bool {
    if named == identifier {
        return true;
    }
    let base = named.trim_end_matches('/');
    identifier
        .strip_prefix(base)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The `resource_metadata` parameter of a `Bearer` challenge, if any. Pure.
pub fn resource_metadata_param(challenge: &str) -> Option<String> {
    let rest = challenge.trim_start();
    let scheme_end = rest.find(' ').unwrap_or(rest.len());
    if !rest[..scheme_end].eq_ignore_ascii_case("Bearer") {
        return None;
    }
    let mut params = &rest[scheme_end..];
    loop {
        params = params.trim_start_matches([' ', ',']);
        let eq = params.find('=')?;
        let name = params[..eq].trim();
        params = &params[eq + 1..];
        let value;
        if let Some(quoted) = params.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => out.push(c),
                }
            }
            params = &quoted[end?..];
            value = out;
        } else {
            let end = params.find([',', ' ']).unwrap_or(params.len());
            value = params[..end].to_owned();
            params = &params[end..];
        }
        if name.eq_ignore_ascii_case("resource_metadata") {
            return Some(value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parameters_are_read() {
        assert_eq!(
            resource_metadata_param(
                r#"Bearer realm="api", resource_metadata="https://api.example/.well-known/oauth-protected-resource", error="invalid_token""#
            )
            .as_deref(),
            Some("https://api.example/.well-known/oauth-protected-resource")
        );
        assert_eq!(
            resource_metadata_param(
                r#"bearer error_description="a, b=\"c\"", resource_metadata=x"#
            )
            .as_deref(),
            Some("x")
        );
        assert_eq!(resource_metadata_param("Basic realm=\"x\""), None);
        assert_eq!(resource_metadata_param("Bearer realm=\"x\""), None);
    }

    #[test]
    fn identifiers_and_coverage() {
        let u = |s| Url::parse(s).unwrap();
        assert_eq!(
            resource_identifier(&u("https://api.example")),
            "https://api.example"
        );
        assert_eq!(
            resource_identifier(&u("https://api.example/mcp?x=1#f")),
            "https://api.example/mcp"
        );
        assert!(covers("https://api.example/mcp", "https://api.example/mcp"));
        assert!(covers(
            "https://api.example/v1",
            "https://api.example/v1/items"
        ));
        assert!(covers("https://api.example", "https://api.example/items"));
        assert!(!covers("https://api.example/v1", "https://api.example/v10"));
        assert!(!covers("https://api.example", "https://api.example.evil/x"));
    }
}
