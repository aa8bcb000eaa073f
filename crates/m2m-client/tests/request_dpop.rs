//! DPoP on the token request (RFC 9449) against the shared verifying token endpoint, which checks
//! every proof with m2m-core's validator (htm POST, htu the token URL, single-use jti, nonce):
//! a fresh proof per attempt, the one `use_dpop_nonce` round with a fresh assertion, nonce
//! rotation, `token_type` kept, a Bearer answer accepted, keys ephemeral or from a file.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use m2m_client::{ConfigError, DpopKey, Error, RetryPolicy, TokenClient, TokenClientBuilder};
use m2m_core::alg::Algorithm;
use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};
use support::request::{CLIENT_ID, KID, key, signer};

async fn endpoint(nonce: Option<&str>, replies: Vec<Reply>) -> TokenEndpoint {
    let builder = TokenEndpoint::builder(CLIENT_ID)
        .key(KID, key().public_key().clone())
        .path("/token")
        .replies(replies);
    let builder = match nonce {
        Some(nonce) => builder.dpop_nonce(nonce),
        None => builder.dpop(),
    };
    builder.start().await
}

fn client(endpoint: &TokenEndpoint, dpop: &DpopKey) -> TokenClientBuilder {
    TokenClient::builder()
        .token_url(endpoint.url())
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs256))
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(5)))
        .dpop(dpop.clone())
}

#[tokio::test]
async fn every_token_request_carries_a_proof_and_gets_a_bound_token() {
    let server = endpoint(None, vec![Reply::token()]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    assert!(!dpop.is_persistent());
    assert_eq!(dpop.algorithm(), Algorithm::Es256);
    let client = client(&server, &dpop).build().unwrap();
    let token = client.fetch().await.unwrap();
    assert!(token.token_type_is("DPoP"), "{:?}", token.token_type());
    assert!(!token.is_bearer());
    server.assert_all_valid();
    let seen = &server.seen()[0];
    assert_eq!(seen.dpop_jkt.as_deref(), Some(dpop.thumbprint()));
    assert_eq!(seen.dpop_nonce, None);
    assert_eq!(client.dpop_key().unwrap().thumbprint(), dpop.thumbprint());
}

#[tokio::test]
async fn a_retried_attempt_carries_a_fresh_proof() {
    let server = endpoint(None, vec![Reply::status(503), Reply::token()]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    let client = client(&server, &dpop).build().unwrap();
    client.fetch().await.unwrap();
    assert_eq!(server.requests(), 2);
    // The endpoint flags a replayed proof jti or assertion jti as a problem.
    server.assert_all_valid();
    let seen = server.seen();
    assert_ne!(seen[0].header("dpop"), seen[1].header("dpop"));
}

#[tokio::test]
async fn use_dpop_nonce_gets_one_retry_with_the_nonce_and_a_fresh_assertion() {
    let server = endpoint(Some("nonce-1"), vec![Reply::token()]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    let client = client(&server, &dpop).build().unwrap();
    let token = client.fetch_once().await.unwrap();
    assert!(token.token_type_is("DPoP"));
    assert_eq!(server.requests(), 2);
    server.assert_all_valid();
    let seen = server.seen();
    assert_eq!(seen[0].dpop_refused.as_deref(), Some("nonce_missing"));
    assert_eq!(seen[1].dpop_nonce.as_deref(), Some("nonce-1"));
    assert_eq!(seen[1].dpop_jkt.as_deref(), Some(dpop.thumbprint()));
    assert_ne!(seen[0].jti, seen[1].jti, "a fresh client assertion");
    assert_eq!(client.dpop_nonce().as_deref(), Some("nonce-1"));

    // The nonce is kept: the next request needs no extra round.
    client.fetch().await.unwrap();
    assert_eq!(server.requests(), 3);
    assert_eq!(server.seen()[2].dpop_nonce.as_deref(), Some("nonce-1"));

    // A rotated nonce costs one round again.
    server.set_dpop_nonce("nonce-2");
    client.fetch().await.unwrap();
    assert_eq!(server.requests(), 5);
    let seen = server.seen();
    assert_eq!(seen[3].dpop_refused.as_deref(), Some("nonce_mismatch"));
    assert_eq!(seen[4].dpop_nonce.as_deref(), Some("nonce-2"));
    server.assert_all_valid();
}

#[tokio::test]
async fn the_nonce_round_happens_once_per_attempt() {
    let refusal = Reply::error(400, "use_dpop_nonce").header("dpop-nonce", "always-new");
    let server = endpoint(None, vec![refusal]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    let client = client(&server, &dpop).build().unwrap();
    let error = client.fetch().await.unwrap_err();
    match &error {
        Error::ServerRejected(r) => assert_eq!(r.error.as_deref(), Some("use_dpop_nonce")),
        other => panic!("{other:?}"),
    }
    // One request and its one nonce retry; a 400 is not retried by the retry policy.
    assert_eq!(server.requests(), 2);
    server.assert_all_valid();
}

#[tokio::test]
async fn use_dpop_nonce_without_a_nonce_header_is_not_retried() {
    let server = endpoint(None, vec![Reply::error(400, "use_dpop_nonce")]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    let client = client(&server, &dpop).build().unwrap();
    assert!(client.fetch().await.is_err());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_bearer_answer_to_a_dpop_request_is_accepted() {
    let server = endpoint(None, vec![Reply::token().token_type("Bearer")]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    let client = client(&server, &dpop).build().unwrap();
    let token = client.fetch().await.unwrap();
    assert!(token.is_bearer());
    server.assert_all_valid();
}

#[tokio::test]
async fn a_persistent_key_is_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dpop.pem");
    let p384 = m2m_testkit::keys::p384();
    std::fs::write(&path, p384.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let dpop = DpopKey::from_file(&path).unwrap();
    assert!(dpop.is_persistent());
    assert_eq!(dpop.algorithm(), Algorithm::Es384);
    assert_eq!(dpop.thumbprint(), p384.public_key().thumbprint());
    let server = endpoint(None, vec![Reply::token()]).await;
    let client = client(&server, &dpop).build().unwrap();
    client.fetch().await.unwrap();
    server.assert_all_valid();
    assert_eq!(
        server.seen()[0].dpop_jkt.as_deref(),
        Some(dpop.thumbprint())
    );

    let rsa =
        DpopKey::from_key_with_algorithm(m2m_testkit::keys::rsa2048(), Algorithm::Ps256).unwrap();
    assert_eq!(rsa.algorithm(), Algorithm::Ps256);
    assert!(
        DpopKey::from_key_with_algorithm(m2m_testkit::keys::rsa2048(), Algorithm::Es256).is_err()
    );

    let missing = DpopKey::from_file(dir.path().join("absent.pem")).unwrap_err();
    assert!(
        matches!(missing, Error::Config(ConfigError::Invalid(_))),
        "{missing:?}"
    );
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    assert!(DpopKey::from_file(dir.path().join("junk.pem")).is_err());
}

#[tokio::test]
async fn debug_output_shows_no_key_material_or_proof() {
    let server = endpoint(None, vec![Reply::token()]).await;
    let dpop = DpopKey::ephemeral().unwrap();
    let client = client(&server, &dpop).build().unwrap();
    client.fetch().await.unwrap();
    let proof = server.seen()[0].header("dpop").unwrap().to_owned();
    let debug = format!("{dpop:?} {client:?}");
    assert!(debug.contains(dpop.thumbprint()), "{debug}");
    assert!(!debug.contains(&proof), "{debug}");
    assert!(!debug.contains("\"d\""), "{debug}");
}

#[tokio::test]
async fn without_dpop_no_proof_is_sent_and_a_dpop_endpoint_notices() {
    let server = endpoint(None, vec![Reply::token()]).await;
    let client = TokenClient::builder()
        .token_url(server.url())
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs256))
        .build()
        .unwrap();
    assert!(client.dpop_key().is_none());
    let error = client.fetch().await.unwrap_err();
    assert!(matches!(error, Error::ServerRejected(_)), "{error:?}");
    let seen = &server.seen()[0];
    assert_eq!(seen.header("dpop"), None);
    assert!(
        seen.problems.iter().any(|p| p.contains("no DPoP header")),
        "{:?}",
        seen.problems
    );
}
