//! The DPoP nonce round between the two libraries, in process: `m2m_client::TokenClient` with a
//! DPoP key against a real `m2m_server` started with `dpop_nonce` (`m2m serve --dpop-nonce`). The
//! first request has no nonce and is answered `400 use_dpop_nonce` with a `DPoP-Nonce`; the
//! client retries once with it and gets a token bound to its key. It lives here because the
//! server crate may not depend on the client crate (tests/crate_graph.rs).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use base64::Engine as _;
use m2m_client::{DpopKey, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::jwk::Jwks;
use m2m_core::signer::KeySigner;
use m2m_server::{Server, ServerConfig};
use serde_json::Value;

#[tokio::test]
async fn the_real_client_retries_once_with_the_servers_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let client_key = m2m_testkit::keys::p256();
    let mut jwk = client_key.public_key().to_jwk();
    jwk.kid = Some("k1".into());
    std::fs::write(
        dir.path().join("bound.jwks.json"),
        serde_json::to_vec(&Jwks { keys: vec![jwk] }).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("clients.toml"),
        "[[client]]\nid = \"bound\"\njwks_file = \"bound.jwks.json\"\ndpop = \"required\"\n",
    )
    .unwrap();
    // The issuer is the loopback URL the client posts to: the proof's htu is the external URL.
    let port = m2m_testkit::net::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut config = ServerConfig::new(dir.path().join("clients.toml"));
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.issuer = Some(issuer.clone());
    config.replay_store = "memory".into();
    config.data_dir = dir.path().join("data");
    config.dpop_nonce = true;
    let server = Server::start(config).await.unwrap();

    let proof_key = DpopKey::from_key(Arc::new(
        m2m_core::key::PrivateKey::generate(m2m_core::key::KeySpec::P256).unwrap(),
    ))
    .unwrap();
    let jkt = proof_key.thumbprint().to_owned();
    let signer = KeySigner::new(client_key, Algorithm::Es256, Some("k1".into())).unwrap();
    let client = TokenClient::builder()
        .token_url(server.token_url())
        .client_id("bound")
        .audience(issuer.clone())
        .signer(Arc::new(signer))
        .dpop(proof_key)
        .build()
        .unwrap();
    assert!(client.dpop_nonce().is_none());
    let token = client.fetch().await.unwrap();
    assert!(token.token_type_is("DPoP"));
    assert!(client.dpop_nonce().is_some(), "the server's nonce was kept");
    let payload = token.access_token().secret().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str());
    // The next request carries the nonce from the start: no retry, still bound.
    assert!(client.fetch().await.unwrap().token_type_is("DPoP"));

    // Exactly one refusal (the first request's use_dpop_nonce) and two tokens.
    let metrics = reqwest::get(format!("{issuer}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("m2m_token_requests_total{outcome=\"rejected\",reason=\"other\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("m2m_token_requests_total{outcome=\"issued\",reason=\"ok\"} 2"),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}
