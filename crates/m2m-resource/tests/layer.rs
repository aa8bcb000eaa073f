//! The tower layer and axum extractor over real HTTP on loopback: 200 with the caller's
//! identity, RFC 6750 challenges (401 without error code, 401 invalid_token, 403
//! insufficient_scope per route, 400 invalid_request for a token in the query or two headers),
//! the RFC 9728 document, and a non-axum inner service (as a proxy would use it) reading the
//! identity from the request extensions.
#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::routing::{get, post};
use m2m_core::alg::Algorithm;
use m2m_resource::{Caller, RequireBearerLayer, ResourceMetadata, TrustedIssuer, Verifier};
use serde_json::{Value, json};
use support::{AUDIENCE, claims, key_for, keyset, sign};

const ISSUER: &str = "https://as.example.com";

fn verifier() -> Verifier {
    let key = key_for(Algorithm::Es256);
    Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keyset(&[(&key, "k1")])))
        .build()
        .unwrap()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn token(scope: &str, aud: &str) -> String {
    let mut c = claims(ISSUER);
    c.insert("scope".into(), json!(scope));
    c.insert("aud".into(), json!(aud));
    sign(Algorithm::Es256, Some("at+jwt"), Some("k1"), &c)
}

#[tokio::test]
async fn the_layer_protects_routes_and_hands_the_caller_to_handlers() {
    let metadata = ResourceMetadata::from_identifier(AUDIENCE, vec![ISSUER.to_owned()]).unwrap();
    let layer = RequireBearerLayer::new(verifier()).challenge(metadata.challenge());
    let app = Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move {
                axum::Json(json!({
                    "client_id": caller.client_id(),
                    "sub": caller.sub(),
                    "scopes": caller.scopes(),
                    "jti": caller.claims().get("jti"),
                }))
            }),
        )
        .route(
            "/write",
            post(|caller: Caller| async move { caller.client_id().to_owned() })
                .route_layer(layer.clone().require_scopes(["write"])),
        )
        .layer(layer)
        .merge(metadata.router());
    let base = serve(app).await;
    let http = reqwest::Client::new();

    let ok = http
        .get(format!("{base}/whoami"))
        .bearer_auth(token("read", AUDIENCE))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["sub"], "svc");
    assert_eq!(body["scopes"], json!(["read"]));

    let none = http.get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        "Bearer resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\""
    );

    let other = http
        .get(format!("{base}/whoami"))
        .bearer_auth(token("read", "https://other.example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    let challenge = other.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let read_only = http
        .post(format!("{base}/write"))
        .bearer_auth(token("read", AUDIENCE))
        .send()
        .await
        .unwrap();
    assert_eq!(read_only.status(), 403);
    let challenge = read_only.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"write\""),
        "{challenge}"
    );
    let writer = http
        .post(format!("{base}/write"))
        .bearer_auth(token("read write", AUDIENCE))
        .send()
        .await
        .unwrap();
    assert_eq!(writer.status(), 200);

    let t = token("read", AUDIENCE);
    let in_query = http
        .get(format!("{base}/whoami?access_token={t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 400);
    assert!(
        in_query.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );
    let two = http
        .get(format!("{base}/whoami"))
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400);
    let garbage = http
        .get(format!("{base}/whoami"))
        .header("authorization", "Bearer a b")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);

    let doc: Value = http
        .get(format!("{base}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], AUDIENCE);
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
}

#[tokio::test]
async fn any_inner_service_reads_the_caller_from_extensions() {
    // What a reverse proxy does: a plain tower service, not an axum handler.
    let inner = tower::service_fn(|req: Request<Body>| async move {
        let caller = req.extensions().get::<Caller>().unwrap();
        Ok::<_, Infallible>(Response::new(Body::from(format!(
            "{} {}",
            caller.client_id(),
            caller.scopes().join(",")
        ))))
    });
    let service = tower::ServiceBuilder::new()
        .layer(RequireBearerLayer::new(verifier()))
        .service(inner);
    let app = Router::new().fallback_service(service);
    let base = serve(app).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/anything/at/all"))
        .bearer_auth(token("read write", AUDIENCE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "svc read,write");
    let r = http.get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_caller_extractor_without_the_layer_is_a_500_not_an_open_door() {
    let app = Router::new().route(
        "/",
        get(|c: Caller| async move { c.client_id().to_owned() }),
    );
    let base = serve(app).await;
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.status(), 500);
}
