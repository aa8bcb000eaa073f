//! Guards the guard: the shared token endpoint really refuses what it should (wrong key, wrong
//! audience, replayed jti, expired or too long-lived assertions, wrong media type), answers
//! valid requests from its script in order, and records what it saw. Every client test that
//! passes against it relies on these checks.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_core::wire::{CLIENT_ASSERTION_TYPE, FORM_MEDIA_TYPE};
use m2m_testkit::keys;
use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};

const CLIENT: &str = "svc";

fn assertion(key: Arc<PrivateKey>, kid: &str, aud: &str, lifetime: Duration) -> String {
    let signer = KeySigner::new(key, Algorithm::Es256, Some(kid.to_owned())).unwrap();
    AssertionBuilder::new(Arc::new(signer), CLIENT, Audience::TokenUrl(aud.to_owned()))
        .dangerous_lifetime(lifetime)
        .build(SystemClock.now())
        .unwrap()
        .into_string()
}

fn form(assertion: &str) -> String {
    url_encode(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ])
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post(url: &str, content_type: &str, body: String) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn endpoint() -> TokenEndpoint {
    TokenEndpoint::builder(CLIENT)
        .key("k1", keys::p256().public_key().clone())
        .replies([Reply::token(), Reply::nhs_token().access_token("fixed")])
        .start()
        .await
}

#[tokio::test]
async fn valid_requests_are_answered_from_the_script_in_order() {
    let e = endpoint().await;
    let minute = Duration::from_secs(60);
    let (status, body) = post(
        e.url(),
        FORM_MEDIA_TYPE,
        form(&assertion(keys::p256(), "k1", e.url(), minute)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""access_token":"token-1""#), "{body}");
    for _ in 0..2 {
        let (status, body) = post(
            e.url(),
            FORM_MEDIA_TYPE,
            form(&assertion(keys::p256(), "k1", e.url(), minute)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""access_token":"fixed""#), "{body}");
        assert!(body.contains(r#""expires_in":"599""#), "{body}");
        assert!(body.contains(r#""issued_at":""#), "{body}");
    }
    assert_eq!((e.requests(), e.verified()), (3, 3));
    e.assert_all_valid();
    let seen = &e.seen()[0];
    assert_eq!(seen.alg.as_deref(), Some("ES256"));
    assert_eq!(seen.kid.as_deref(), Some("k1"));
    assert_eq!(seen.field("grant_type"), Some("client_credentials"));
    assert_eq!(seen.header("Content-Type"), Some(FORM_MEDIA_TYPE));
}

#[tokio::test]
async fn every_broken_request_is_refused_and_recorded() {
    let e = endpoint().await;
    let minute = Duration::from_secs(60);
    let good = || assertion(keys::p256(), "k1", e.url(), minute);
    let replayed = good();
    let other_p256 = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let cases: Vec<(&str, String, String)> = vec![
        (
            "signature",
            FORM_MEDIA_TYPE.into(),
            form(&assertion(other_p256, "k1", e.url(), minute)),
        ),
        (
            "kid",
            FORM_MEDIA_TYPE.into(),
            form(&assertion(keys::p256(), "k2", e.url(), minute)),
        ),
        (
            "aud",
            FORM_MEDIA_TYPE.into(),
            form(&assertion(
                keys::p256(),
                "k1",
                "https://elsewhere.example/token",
                minute,
            )),
        ),
        (
            "exp",
            FORM_MEDIA_TYPE.into(),
            form(&assertion(
                keys::p256(),
                "k1",
                e.url(),
                Duration::from_secs(3600),
            )),
        ),
        ("content-type", "application/json".into(), form(&good())),
        (
            "grant_type",
            FORM_MEDIA_TYPE.into(),
            form(&good()).replace("client_credentials", "password"),
        ),
        (
            "client_assertion missing",
            FORM_MEDIA_TYPE.into(),
            url_encode(&[("grant_type", "client_credentials")]),
        ),
        ("replayed jti", FORM_MEDIA_TYPE.into(), form(&replayed)),
    ];
    // The first use of `replayed` is valid; its second use (the last case) is not.
    let (status, _) = post(e.url(), FORM_MEDIA_TYPE, form(&replayed)).await;
    assert_eq!(status, 200);
    for (problem, content_type, body) in &cases {
        let (status, text) = post(e.url(), content_type, body.clone()).await;
        assert_eq!(status, 401, "{problem}: {text}");
        assert!(text.contains("invalid_client"), "{problem}: {text}");
        let seen = e.seen();
        let last = seen.last().unwrap();
        assert!(
            last.problems.iter().any(|p| p.starts_with(problem)),
            "{problem}: {:?}",
            last.problems
        );
    }
    assert_eq!(e.requests(), cases.len() + 1);
    assert_eq!(e.verified(), 1);
    // Refusals use up no scripted reply.
    let (_, body) = post(e.url(), FORM_MEDIA_TYPE, form(&good())).await;
    assert!(body.contains("fixed"), "{body}");
}

#[tokio::test]
async fn answer_invalid_answers_but_still_records_the_problem() {
    let e = TokenEndpoint::builder(CLIENT)
        .key("k1", keys::p256().public_key().clone())
        .audience("https://issuer.example")
        .answer_invalid()
        .start()
        .await;
    let body = form(&assertion(
        keys::p256(),
        "k1",
        e.url(),
        Duration::from_secs(60),
    ));
    let (status, _) = post(e.url(), FORM_MEDIA_TYPE, body).await;
    assert_eq!(status, 200);
    assert!(e.seen()[0].problems.iter().any(|p| p.starts_with("aud")));
    assert_eq!(e.verified(), 0);
}

#[tokio::test]
async fn other_paths_are_served_and_counted() {
    let e = endpoint().await;
    e.serve("/jwks.json", Reply::json(200, r#"{"keys":[]}"#));
    let get = |path: &str| reqwest::get(format!("{}{path}", e.base()));
    assert_eq!(get("/jwks.json").await.unwrap().status(), 200);
    assert_eq!(get("/missing").await.unwrap().status(), 404);
    assert_eq!(e.hits("/jwks.json"), 1);
    assert_eq!(e.requests(), 0);
}
