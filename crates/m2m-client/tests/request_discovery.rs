//! RFC 8414 discovery against a real server on 127.0.0.1: the metadata's issuer must match
//! exactly, the discovered endpoint gets `aud` = issuer and `typ` = client-authentication+jwt.
#![allow(clippy::unwrap_used)]

mod support;

use m2m_client::{
    Error, ReqwestTransport, TokenClient, TransportConfig, UrlPolicy, discover, discover_with,
};
use m2m_core::alg::Algorithm;
use support::request::{CLIENT_ID, Reply, nhs_ok, signer, start};

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

#[tokio::test]
async fn discovered_endpoint_uses_the_issuer_as_audience() {
    let server = start(vec![nhs_ok()]).await;
    let issuer = server.base();
    server.serve(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, metadata(issuer, server.url())),
    );
    server.expect_audience(issuer);

    let meta = discover(issuer).await.unwrap();
    assert_eq!(meta.issuer(), issuer);
    assert_eq!(meta.token_endpoint().as_str(), server.url());
    assert_eq!(meta.jwks_uri(), Some(format!("{issuer}/jwks").as_str()));
    assert!(meta.supports_private_key_jwt());

    let client = TokenClient::builder()
        .discovered(meta)
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs256))
        .build()
        .unwrap();
    client.fetch().await.unwrap();
    server.assert_all_valid();
    let seen = &server.seen()[0];
    assert_eq!(seen.typ.as_deref(), Some("client-authentication+jwt"));
    assert_eq!(seen.alg.as_deref(), Some("RS256"));
}

#[tokio::test]
async fn issuer_with_a_path_falls_back_to_the_appended_form() {
    let server = start(vec![nhs_ok()]).await;
    let issuer = format!("{}/realms/test", server.base());
    // Only the Keycloak-style location exists; the RFC 8414 one answers 404.
    server.serve(
        "/realms/test/.well-known/oauth-authorization-server",
        Reply::json(200, metadata(&issuer, server.url())),
    );
    let transport = ReqwestTransport::new(&TransportConfig::default()).unwrap();
    let meta = discover_with(&transport, &issuer, UrlPolicy::default())
        .await
        .unwrap();
    assert_eq!(meta.issuer(), issuer);
}

#[tokio::test]
async fn issuer_mismatch_is_refused() {
    let server = start(vec![nhs_ok()]).await;
    let issuer = server.base();
    server.serve(
        "/.well-known/oauth-authorization-server",
        Reply::json(200, metadata("https://evil.example", server.url())),
    );
    let err = discover(issuer).await.unwrap_err();
    assert!(matches!(err, Error::Discovery { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not exactly the configured issuer"),
        "{err}"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn missing_metadata_names_the_urls_tried() {
    let server = start(vec![nhs_ok()]).await;
    let err = discover(&format!("{}/tenant", server.base()))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("/.well-known/oauth-authorization-server/tenant (404)"),
        "{shown}"
    );
    assert!(
        shown.contains("/tenant/.well-known/oauth-authorization-server (404)"),
        "{shown}"
    );
}

#[tokio::test]
async fn insecure_issuer_is_refused() {
    let err = discover("http://auth.example.com").await.unwrap_err();
    assert!(err.to_string().contains("plain http"), "{err}");
}
