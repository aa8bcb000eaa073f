//! RFC 8414 / OIDC / RFC 9728 discovery against a real host on 127.0.0.1: the exact issuer and
//! resource checks, the well-known locations in order (path-inserted, appended, OpenID), 404 as
//! "try the next one" and nothing else, and the URL policy before any request.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Host, Reply};
use m2m_discovery::metadata::{discover_auth_server, fetch_protected_resource_metadata};
use m2m_discovery::{Error, HttpClient, MetadataSources, UrlPolicy};

fn metadata(issuer: &str, token_endpoint: &str) -> String {
    serde_json::json!({
        "issuer": issuer,
        "token_endpoint": token_endpoint,
        "jwks_uri": format!("{issuer}/jwks"),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
    })
    .to_string()
}

fn http() -> HttpClient {
    HttpClient::new(Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn discovered_metadata_at_the_rfc8414_location() {
    let host = Host::start().await;
    let issuer = host.base.clone();
    let token = format!("{issuer}/oauth2/token");
    host.set(
        "/.well-known/oauth-authorization-server",
        Reply::json(metadata(&issuer, &token)),
    );
    let meta = discover_auth_server(&http(), &issuer, MetadataSources::OAuth, &UrlPolicy::new())
        .await
        .unwrap();
    assert_eq!(meta.issuer(), issuer);
    assert_eq!(meta.require_token_endpoint().unwrap().as_str(), token);
    assert_eq!(meta.jwks_uri(), Some(format!("{issuer}/jwks").as_str()));
    assert!(meta.supports_private_key_jwt());
    assert_eq!(
        meta.token_endpoint_signing_algs().unwrap(),
        ["RS256", "ES256"]
    );
}

#[tokio::test]
async fn issuer_with_a_path_falls_back_to_the_appended_form() {
    let host = Host::start().await;
    let issuer = format!("{}/realms/test", host.base);
    // Only the Keycloak-style location exists; the RFC 8414 one answers 404.
    host.set(
        "/realms/test/.well-known/oauth-authorization-server",
        Reply::json(metadata(&issuer, &format!("{issuer}/token"))),
    );
    let meta = discover_auth_server(&http(), &issuer, MetadataSources::OAuth, &UrlPolicy::new())
        .await
        .unwrap();
    assert_eq!(meta.issuer(), issuer);
    assert_eq!(
        host.hits("/.well-known/oauth-authorization-server/realms/test"),
        1,
        "the RFC 8414 form was tried first"
    );
}

#[tokio::test]
async fn openid_configuration_is_tried_only_when_asked() {
    let host = Host::start().await;
    let issuer = format!("{}/tenant", host.base);
    host.set(
        "/tenant/.well-known/openid-configuration",
        Reply::json(metadata(&issuer, &format!("{issuer}/token"))),
    );
    let err = discover_auth_server(&http(), &issuer, MetadataSources::OAuth, &UrlPolicy::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MetadataNotFound { .. }), "{err}");
    let meta = discover_auth_server(
        &http(),
        &issuer,
        MetadataSources::OAuthThenOpenId,
        &UrlPolicy::new(),
    )
    .await
    .unwrap();
    assert_eq!(meta.issuer(), issuer);
    assert_eq!(host.hits("/tenant/.well-known/openid-configuration"), 1);
}

#[tokio::test]
async fn issuer_mismatch_is_refused() {
    let host = Host::start().await;
    let issuer = host.base.clone();
    host.set(
        "/.well-known/oauth-authorization-server",
        Reply::json(metadata("https://evil.example", &format!("{issuer}/token"))),
    );
    let err = discover_auth_server(&http(), &issuer, MetadataSources::OAuth, &UrlPolicy::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
    assert!(err.to_string().contains("RFC 8414 §3.3"), "{err}");
}

#[tokio::test]
async fn missing_metadata_names_the_urls_tried_and_a_500_stops_the_search() {
    let host = Host::start().await;
    let issuer = format!("{}/x", host.base);
    let err = discover_auth_server(&http(), &issuer, MetadataSources::OAuth, &UrlPolicy::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/.well-known/oauth-authorization-server/x (404)"),
        "{text}"
    );
    assert!(
        text.contains("/x/.well-known/oauth-authorization-server (404)"),
        "{text}"
    );

    host.set(
        "/.well-known/oauth-authorization-server/x",
        Reply::status(500),
    );
    let err = discover_auth_server(&http(), &issuer, MetadataSources::OAuth, &UrlPolicy::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
    assert_eq!(host.hits("/x/.well-known/oauth-authorization-server"), 1);
}

#[tokio::test]
async fn insecure_issuer_is_refused_before_any_request() {
    let err = discover_auth_server(
        &http(),
        "http://as.example.com",
        MetadataSources::OAuth,
        &UrlPolicy::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err}");
}

#[tokio::test]
async fn protected_resource_metadata_is_fetched_and_its_resource_checked() {
    let host = Host::start().await;
    let resource = format!("{}/mcp", host.base);
    let doc = serde_json::json!({
        "resource": resource,
        "authorization_servers": [host.base],
        "scopes_supported": ["tools:call"],
        "bearer_methods_supported": ["header"],
    })
    .to_string();
    host.set(
        "/.well-known/oauth-protected-resource/mcp",
        Reply::json(&*doc),
    );
    let meta = fetch_protected_resource_metadata(&http(), &resource, None, &UrlPolicy::new())
        .await
        .unwrap();
    assert_eq!(meta.resource(), resource);
    assert_eq!(meta.authorization_servers(), [host.base.as_str()]);
    assert!(!meta.dpop_bound_access_tokens_required());

    // The same document served for another resource is refused (RFC 9728 §3.3).
    let other = format!("{}/other", host.base);
    host.set("/meta.json", Reply::json(&*doc));
    let err = fetch_protected_resource_metadata(
        &http(),
        &other,
        Some(&host.url("/meta.json")),
        &UrlPolicy::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err}");
}
