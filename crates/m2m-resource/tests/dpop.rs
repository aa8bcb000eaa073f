//! DPoP at the resource over real HTTP on loopback (RFC 9449 §7): tokens bound with `cnf.jkt`
//! minted by the independent `jsonwebtoken` signer, proofs from m2m-core's `ProofBuilder` and
//! from `jsonwebtoken`. One test per row: a good proof (200, the caller's jkt), no proof, another
//! key's proof, a replayed proof, a proof for another URL or method, a wrong `ath`, a stale `iat`,
//! a bound token as Bearer, mode `required` with a plain Bearer token, an API behind a proxy
//! (external URL), and the shared Redis replay store across two instances.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_resource::{
    Caller, DpopMode, DpopSettings, RedisProofStore, RequireBearerLayer, ResourceMetadata,
    TrustedIssuer, Verifier,
};
use serde_json::{Value, json};
use support::{AUDIENCE, claims, key_for, keyset, now_secs, sign};

const ISSUER: &str = "https://as.example.com";

fn verifier() -> Verifier {
    let key = key_for(Algorithm::Es256);
    Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&key, "k1")])))
        .build()
        .unwrap()
}

/// An access token from the issuer, bound to `jkt` when given.
fn token(jkt: Option<&str>) -> String {
    let mut c = claims(ISSUER);
    if let Some(jkt) = jkt {
        c.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    sign(Algorithm::Es256, Some("at+jwt"), Some("k1"), &c)
}

fn now() -> UnixTime {
    UnixTime::from_secs(now_secs())
}

/// A client's DPoP key and its proof builder.
fn client_key() -> ProofBuilder {
    ProofBuilder::new(Arc::new(PrivateKey::generate(KeySpec::P256).unwrap())).unwrap()
}

fn proof(p: &ProofBuilder, method: &str, url: &str, token: &str, at: UnixTime) -> String {
    p.build(&ProofInput::new(method, url).access_token(token), at)
        .unwrap()
        .into_string()
}

/// A proof signed by `jsonwebtoken` (not m2m's builder) with `key`.
fn jsonwebtoken_proof(key: &PrivateKey, method: &str, url: &str, token: &str) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.typ = Some("dpop+jwt".to_owned());
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": serde_json::to_value(key.public_key().to_jwk()).unwrap()["x"],
        "y": serde_json::to_value(key.public_key().to_jwk()).unwrap()["y"],
    });
    h.jwk = Some(serde_json::from_value(jwk).unwrap());
    let claims = json!({
        "jti": format!("jwt-{}", now_secs()), "htm": method, "htu": url, "iat": now_secs(),
        "ath": m2m_core::dpop::ath(token),
    });
    let pem = key.to_pkcs8_pem().unwrap();
    let enc = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&h, &claims, &enc).unwrap()
}

/// The API: `/whoami` (any method) answers the caller's client id and DPoP jkt.
async fn serve(settings: DpopSettings) -> String {
    let metadata = ResourceMetadata::from_identifier(AUDIENCE, vec![ISSUER.to_owned()]).unwrap();
    let layer = RequireBearerLayer::new(verifier())
        .challenge(metadata.challenge())
        .dpop(settings);
    let app = Router::new()
        .route(
            "/whoami",
            any(|caller: Caller| async move {
                axum::Json(json!({"client_id": caller.client_id(), "jkt": caller.dpop_jkt()}))
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Answer {
    status: u16,
    challenges: Vec<String>,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    /// The challenge of `scheme` (`Bearer` or `DPoP`).
    fn challenge(&self, scheme: &str) -> Option<&str> {
        self.challenges
            .iter()
            .map(String::as_str)
            .find(|c| c.split(' ').next() == Some(scheme))
    }
}

async fn call(
    method: &str,
    url: &str,
    authorization: Option<String>,
    dpop: Option<String>,
) -> Answer {
    let mut r = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(a) = authorization {
        r = r.header("authorization", a);
    }
    if let Some(p) = dpop {
        r = r.header("dpop", p);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        challenges,
        body,
    }
}

/// A 401 refusing a DPoP request: the DPoP challenge carries `error` and `algs`.
fn assert_dpop_refusal(a: &Answer, error: &str) {
    assert_eq!(a.status, 401, "{:?}", a.body);
    assert_eq!(a.error(), error, "{:?}", a.body);
    let c = a
        .challenge("DPoP")
        .unwrap_or_else(|| panic!("{:?}", a.challenges));
    assert!(c.contains("algs=\"") && c.contains("ES256"), "{c}");
    assert!(c.contains(&format!("error=\"{error}\"")), "{c}");
}

#[tokio::test]
async fn a_good_proof_is_200_with_the_callers_jkt() {
    let base = serve(DpopSettings::new(DpopMode::Required)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let a = call(
        "GET",
        &url,
        Some(format!("DPoP {t}")),
        Some(proof(&client, "GET", &url, &t, now())),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["client_id"], "svc");
    assert_eq!(a.body["jkt"], client.thumbprint());
    // The token is cached now; a fresh proof (and a query string, which htu ignores) is again 200.
    let p = proof(&client, "POST", &url, &t, now());
    let a = call(
        "POST",
        &format!("{url}?page=2"),
        Some(format!("DPoP {t}")),
        Some(p),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[tokio::test]
async fn a_proof_made_by_jsonwebtoken_is_accepted() {
    let base = serve(DpopSettings::new(DpopMode::Allowed)).await;
    let url = format!("{base}/whoami");
    let key = PrivateKey::generate(KeySpec::P256).unwrap();
    let t = token(Some(&key.public_key().thumbprint()));
    let p = jsonwebtoken_proof(&key, "GET", &url, &t);
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(p)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["jkt"], key.public_key().thumbprint());
}

#[tokio::test]
async fn no_proof_is_401_with_the_dpop_challenge() {
    let base = serve(DpopSettings::new(DpopMode::Allowed)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let a = call("GET", &url, Some(format!("DPoP {t}")), None).await;
    assert_dpop_refusal(&a, "invalid_dpop_proof");
    // No credential at all: both challenges, no error code.
    let a = call("GET", &url, None, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenges.len(), 2, "{:?}", a.challenges);
    assert!(a.challenge("Bearer").is_some() && a.challenge("DPoP").is_some());
    assert!(
        a.challenges.iter().all(|c| !c.contains("error=")),
        "{:?}",
        a.challenges
    );
    assert!(
        a.challenges
            .iter()
            .all(|c| c.contains("resource_metadata=")),
        "{:?}",
        a.challenges
    );
}

#[tokio::test]
async fn another_keys_proof_is_refused() {
    let base = serve(DpopSettings::new(DpopMode::Required)).await;
    let url = format!("{base}/whoami");
    let (client, thief) = (client_key(), client_key());
    let t = token(Some(client.thumbprint()));
    let a = call(
        "GET",
        &url,
        Some(format!("DPoP {t}")),
        Some(proof(&thief, "GET", &url, &t, now())),
    )
    .await;
    // RFC 9449 §7.1: a key that is not the token's binding makes the token invalid here.
    assert_dpop_refusal(&a, "invalid_token");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let base = serve(DpopSettings::new(DpopMode::Required)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let p = proof(&client, "GET", &url, &t, now());
    let first = call("GET", &url, Some(format!("DPoP {t}")), Some(p.clone())).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = call("GET", &url, Some(format!("DPoP {t}")), Some(p)).await;
    assert_dpop_refusal(&again, "invalid_dpop_proof");
    assert!(
        again.body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
}

#[tokio::test]
async fn a_proof_for_another_url_or_method_is_refused() {
    let base = serve(DpopSettings::new(DpopMode::Required)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let other_url = proof(&client, "GET", &format!("{base}/other"), &t, now());
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(other_url)).await;
    assert_dpop_refusal(&a, "invalid_dpop_proof");
    let other_method = proof(&client, "POST", &url, &t, now());
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(other_method)).await;
    assert_dpop_refusal(&a, "invalid_dpop_proof");
}

#[tokio::test]
async fn a_wrong_ath_or_a_stale_iat_is_refused() {
    let base = serve(DpopSettings::new(DpopMode::Required)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let other_token = token(Some(client.thumbprint()));
    let wrong_ath = proof(&client, "GET", &url, &other_token, now());
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(wrong_ath)).await;
    assert_dpop_refusal(&a, "invalid_dpop_proof");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("ath"),
        "{:?}",
        a.body
    );
    let stale = proof(
        &client,
        "GET",
        &url,
        &t,
        UnixTime::from_secs(now_secs() - 400),
    );
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(stale)).await;
    assert_dpop_refusal(&a, "invalid_dpop_proof");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("iat"),
        "{:?}",
        a.body
    );
}

#[tokio::test]
async fn a_bound_token_as_bearer_is_invalid_token() {
    for mode in [DpopMode::Bearer, DpopMode::Allowed] {
        let base = serve(DpopSettings::new(mode)).await;
        let url = format!("{base}/whoami");
        let client = client_key();
        let t = token(Some(client.thumbprint()));
        // Even with a good proof next to it: the Bearer scheme does not carry a bound token.
        let p = proof(&client, "GET", &url, &t, now());
        let a = call("GET", &url, Some(format!("Bearer {t}")), Some(p)).await;
        assert_eq!(a.status, 401, "{mode}");
        assert_eq!(a.error(), "invalid_token", "{mode}");
        let bearer = a.challenge("Bearer").unwrap();
        assert!(bearer.contains("error=\"invalid_token\""), "{bearer}");
        assert_eq!(
            a.challenge("DPoP").is_some(),
            mode == DpopMode::Allowed,
            "{mode}"
        );
        // An unbound token is fine as Bearer in both modes.
        let a = call("GET", &url, Some(format!("Bearer {}", token(None))), None).await;
        assert_eq!(a.status, 200, "{mode}: {:?}", a.body);
        assert_eq!(a.body["jkt"], Value::Null);
    }
}

#[tokio::test]
async fn mode_required_refuses_a_plain_bearer_token() {
    let base = serve(DpopSettings::new(DpopMode::Required)).await;
    let url = format!("{base}/whoami");
    let a = call("GET", &url, Some(format!("Bearer {}", token(None))), None).await;
    assert_dpop_refusal(&a, "invalid_token");
    assert!(a.challenge("Bearer").is_none(), "{:?}", a.challenges);
    // An unbound token under the DPoP scheme, even with a proof, is refused too.
    let client = client_key();
    let t = token(None);
    let a = call(
        "GET",
        &url,
        Some(format!("DPoP {t}")),
        Some(proof(&client, "GET", &url, &t, now())),
    )
    .await;
    assert_dpop_refusal(&a, "invalid_token");
}

#[tokio::test]
async fn mode_bearer_refuses_the_dpop_scheme_as_before() {
    let base = serve(DpopSettings::new(DpopMode::Bearer)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let a = call(
        "GET",
        &url,
        Some(format!("DPoP {t}")),
        Some(proof(&client, "GET", &url, &t, now())),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenges.len(), 1);
    assert!(a.challenge("Bearer").unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn behind_a_proxy_proofs_name_the_external_url() {
    let external = "https://api.example.com/prefix";
    let base = serve(DpopSettings::new(DpopMode::Required).external_url(external)).await;
    let url = format!("{base}/whoami");
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    // The client addressed https://api.example.com/prefix/whoami; the proxy forwarded to /whoami.
    let p = proof(&client, "GET", &format!("{external}/whoami"), &t, now());
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(p)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    // A proof for the internal address is not what a client behind the proxy would send.
    let p = proof(&client, "GET", &url, &t, now());
    let a = call("GET", &url, Some(format!("DPoP {t}")), Some(p)).await;
    assert_dpop_refusal(&a, "invalid_dpop_proof");
}

#[tokio::test]
async fn the_redis_store_refuses_a_proof_used_at_another_instance() {
    let Some(redis) = m2m_testkit::redis::RedisServer::start() else {
        return;
    };
    let external = "https://api.example.com";
    let instance = |url: String| {
        let store = Arc::new(RedisProofStore::open(&url).unwrap());
        DpopSettings::new(DpopMode::Required)
            .external_url(external)
            .replay_store(store)
    };
    let a_base = serve(instance(redis.url())).await;
    let b_base = serve(instance(redis.url())).await;
    let client = client_key();
    let t = token(Some(client.thumbprint()));
    let p = proof(&client, "GET", &format!("{external}/whoami"), &t, now());
    let at_a = call(
        "GET",
        &format!("{a_base}/whoami"),
        Some(format!("DPoP {t}")),
        Some(p.clone()),
    )
    .await;
    assert_eq!(at_a.status, 200, "{:?}", at_a.body);
    let at_b = call(
        "GET",
        &format!("{b_base}/whoami"),
        Some(format!("DPoP {t}")),
        Some(p),
    )
    .await;
    assert_dpop_refusal(&at_b, "invalid_dpop_proof");
    // A fresh proof is fine at B.
    let p = proof(&client, "GET", &format!("{external}/whoami"), &t, now());
    let at_b = call(
        "GET",
        &format!("{b_base}/whoami"),
        Some(format!("DPoP {t}")),
        Some(p),
    )
    .await;
    assert_eq!(at_b.status, 200, "{:?}", at_b.body);
    // Redis gone: 503, not acceptance.
    redis.kill();
    let p = proof(&client, "GET", &format!("{external}/whoami"), &t, now());
    let down = call(
        "GET",
        &format!("{a_base}/whoami"),
        Some(format!("DPoP {t}")),
        Some(p),
    )
    .await;
    assert_eq!(down.status, 503, "{:?}", down.body);
}
