//! Federated workload credentials against the real server: loopback issuers (OIDC discovery and
//! JWKS served by axum on 127.0.0.1) minting tokens with an independent signer (`jsonwebtoken`),
//! shaped like a Kubernetes projected service-account token, a SPIFFE JWT-SVID and a GitHub
//! Actions OIDC token, presented as the RFC 7523 §2.1 jwt-bearer grant and as a federated client
//! assertion. Also: `[[trust]]` configuration errors, reload, and a proptest that arbitrary
//! `[[trust]]` TOML never panics the parser.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use m2m_core::key::PrivateKey;
use m2m_server::{Registry, RegistryError};
use serde_json::{Value, json};
use support::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A loopback issuer: `/.well-known/openid-configuration` and `/jwks`.
struct Issuer {
    base: String,
    jwks: String,
    /// Answer 500 for the JWKS.
    down: AtomicBool,
    /// Never answer the JWKS (the server must stop waiting).
    hang: AtomicBool,
}

async fn openid_configuration(State(issuer): State<Arc<Issuer>>) -> Response {
    axum::Json(json!({
        "issuer": issuer.base,
        "jwks_uri": format!("{}/jwks", issuer.base),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn jwks_document(State(issuer): State<Arc<Issuer>>) -> Response {
    if issuer.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if issuer.down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        issuer.jwks.clone(),
    )
        .into_response()
}

async fn start_issuer(key: &PrivateKey, kid: &str) -> Arc<Issuer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = Arc::new(Issuer {
        base,
        jwks: serde_json::to_string(&jwks(&[(key, kid)])).unwrap(),
        down: AtomicBool::new(false),
        hang: AtomicBool::new(false),
    });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/jwks", get(jwks_document))
        .with_state(Arc::clone(&issuer));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

/// Signs `claims` with `jsonwebtoken` (not m2m's signer).
fn mint(key: &PrivateKey, kid: &str, alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    let pem = key.to_pkcs8_pem().unwrap();
    let encoding = match alg {
        jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some("JWT".to_owned());
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn secs() -> u64 {
    now().as_secs()
}

/// A Kubernetes projected service-account token (v1.30 shape: `jti`, node info).
fn k8s_claims(iss: &str, namespace: &str, sa: &str) -> Value {
    let now = secs();
    json!({
        "aud": [ISSUER],
        "exp": now + 3600,
        "iat": now,
        "iss": iss,
        "jti": m2m_core::assertion::new_jti(),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "5e0b3b8a-7ad4-4d5c-9a39-8a1f0e7c1a01"},
            "pod": {"name": format!("{sa}-7d9f8b6c5-x2x7q"), "uid": "b0f3c2a1-3c2e-4c8f-9d6a-2b7e1c0d9f11"},
            "serviceaccount": {"name": sa, "uid": "c1d2e3f4-1111-4a2b-8c3d-4e5f6a7b8c9d"}
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
    })
}

/// A SPIFFE JWT-SVID as SPIRE mints it: no `jti` (SPIRE reuses its SVIDs).
fn svid_claims(iss: &str, id: &str) -> Value {
    let now = secs();
    json!({"sub": id, "aud": [ISSUER], "exp": now + 300, "iat": now, "iss": iss})
}

/// A GitHub Actions OIDC token (`nbf` before `iat`, as GitHub issues them).
fn github_claims(iss: &str, repository: &str) -> Value {
    let now = secs();
    json!({
        "jti": m2m_core::assertion::new_jti(),
        "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "environment": "production",
        "aud": ISSUER,
        "ref": "refs/heads/main",
        "sha": "d6ffc5a8e7ef37a6d1a1d0e8f45ef5e4b1d3a2c9",
        "repository": repository,
        "repository_owner": repository.split('/').next().unwrap(),
        "repository_owner_id": "65432",
        "repository_id": "123456",
        "repository_visibility": "private",
        "actor_id": "12",
        "actor": "octocat",
        "run_id": "6789012345",
        "run_number": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "workflow": "deploy",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_type": "branch",
        "workflow_ref": format!("{repository}/.github/workflows/deploy.yml@refs/heads/main"),
        "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@refs/heads/main"),
        "iss": iss,
        "nbf": now - 600,
        "exp": now + 300,
        "iat": now,
    })
}

struct World {
    server: TestServer,
    k8s: Arc<Issuer>,
    github: Arc<Issuer>,
    spire: Arc<Issuer>,
    down: Arc<Issuer>,
    slow: Arc<Issuer>,
}

fn registry(w: &[&Arc<Issuer>; 5]) -> String {
    let [k8s, github, spire, down, slow] = w.map(|i| i.base.clone());
    format!(
        r#"
[[client]]
id = "deployer"
scopes = ["deploy", "read"]

[[client]]
id = "billing"
scopes = ["invoices:read"]
audience = "https://billing-api.example"

# Kubernetes: keys by OIDC discovery (the default).
[[trust]]
issuer = "{k8s}"
subject_prefix = "system:serviceaccount:prod:"
claims = {{ "kubernetes.io/namespace" = "prod" }}
client_id = "billing"

# GitHub Actions: a jwks_uri.
[[trust]]
issuer = "{github}"
jwks_uri = "{github}/jwks"
subject = "repo:org/repo:ref:refs/heads/main"
claims = {{ repository = "org/repo", environment = "production" }}
client_id = "deployer"

# SPIRE: static keys, reuse allowed, a principal.
[[trust]]
issuer = "{spire}"
jwks_file = "spire.jwks.json"
subject_prefix = "spiffe://example.org/ns/prod/"
scopes = ["metrics:write"]
token_audience = "https://metrics.example"
reuse = "allow-within-lifetime"
max_lifetime = 600

[[trust]]
issuer = "{down}"
subject = "system:serviceaccount:prod:x"
scopes = ["a"]

[[trust]]
issuer = "{slow}"
jwks_uri = "{slow}/jwks"
subject = "system:serviceaccount:prod:x"
scopes = ["a"]
"#
    )
}

async fn world() -> World {
    let k8s = start_issuer(&key_a(), "k8s-2024").await;
    let github = start_issuer(&key_b(), "gh-1").await;
    let spire = start_issuer(&key_ec(), "spire-1").await;
    let down = start_issuer(&key_a(), "k8s-2024").await;
    down.down.store(true, Ordering::SeqCst);
    let slow = start_issuer(&key_a(), "k8s-2024").await;
    slow.hang.store(true, Ordering::SeqCst);
    let toml = registry(&[&k8s, &github, &spire, &down, &slow]);
    let mut setup = Setup::new(toml);
    setup.replay_store = "memory".into();
    let server = start(setup, |dir: &Path| {
        write_jwks(dir, "spire.jwks.json", &[(&key_ec(), "spire-1")]);
    })
    .await;
    World {
        server,
        k8s,
        github,
        spire,
        down,
        slow,
    }
}

fn grant(assertion: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), JWT_BEARER.into()),
        ("assertion".into(), assertion.into()),
    ]
}

async fn exchange(w: &World, assertion: &str) -> Reply {
    w.server.post_form("/oauth2/token", &grant(assertion)).await
}

fn access_claims(reply: &Reply) -> serde_json::Map<String, Value> {
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    m2m_core::jws::UnverifiedJws::parse(&token)
        .unwrap()
        .claims()
        .unwrap()
}

fn k8s_token(_: &World, claims: &Value) -> String {
    mint(&key_a(), "k8s-2024", jsonwebtoken::Algorithm::RS256, claims)
}

#[tokio::test]
async fn kubernetes_service_account_token_gets_the_mapped_clients_token() {
    let w = world().await;
    let reply = exchange(
        &w,
        &k8s_token(&w, &k8s_claims(&w.k8s.base, "prod", "billing")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["scope"], "invoices:read");
    let claims = access_claims(&reply);
    assert_eq!(claims["sub"], "billing");
    assert_eq!(claims["aud"], "https://billing-api.example");
}

#[tokio::test]
async fn github_actions_token_gets_the_mapped_client_and_a_narrower_scope() {
    let w = world().await;
    let token = mint(
        &key_b(),
        "gh-1",
        jsonwebtoken::Algorithm::RS256,
        &github_claims(&w.github.base, "org/repo"),
    );
    let mut form = grant(&token);
    form.push(("scope".into(), "deploy".into()));
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["scope"], "deploy");
    assert_eq!(access_claims(&reply)["client_id"], "deployer");
    // A scope outside the mapped client's is refused.
    let token = mint(
        &key_b(),
        "gh-1",
        jsonwebtoken::Algorithm::RS256,
        &github_claims(&w.github.base, "org/repo"),
    );
    let mut form = grant(&token);
    form.push(("scope".into(), "admin".into()));
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(reply.error(), "invalid_scope");
}

#[tokio::test]
async fn spiffe_svid_is_accepted_twice_where_reuse_is_allowed() {
    let w = world().await;
    let id = "spiffe://example.org/ns/prod/sa/metrics-agent";
    let svid = mint(
        &key_ec(),
        "spire-1",
        jsonwebtoken::Algorithm::ES256,
        &svid_claims(&w.spire.base, id),
    );
    for _ in 0..2 {
        let reply = exchange(&w, &svid).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let claims = access_claims(&reply);
        assert_eq!(claims["sub"], id);
        assert_eq!(claims["aud"], "https://metrics.example");
        assert_eq!(claims["scope"], "metrics:write");
    }
}

#[tokio::test]
async fn refusals_are_invalid_grant_with_the_reason() {
    let w = world().await;
    let refused = |reply: Reply, needle: &str| {
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.error(), "invalid_grant", "{}", reply.text);
        assert!(
            reply.description().contains(needle),
            "{needle:?} not in {:?}",
            reply.description()
        );
    };
    // An issuer with no [[trust]] entry.
    let stranger = k8s_claims("https://kubernetes.default.svc", "prod", "billing");
    refused(exchange(&w, &k8s_token(&w, &stranger)).await, "not trusted");
    // A subject no rule matches.
    let dev = k8s_claims(&w.k8s.base, "dev", "billing");
    refused(
        exchange(&w, &k8s_token(&w, &dev)).await,
        "no [[trust]] rule",
    );
    // The subject matches but a claim does not (namespace claim says dev).
    let mut mixed = k8s_claims(&w.k8s.base, "prod", "billing");
    mixed["kubernetes.io"]["namespace"] = json!("dev");
    refused(
        exchange(&w, &k8s_token(&w, &mixed)).await,
        "no [[trust]] rule",
    );
    let other_repo = github_claims(&w.github.base, "org/other");
    let mut other_repo_same_sub = other_repo.clone();
    other_repo_same_sub["sub"] = json!("repo:org/repo:ref:refs/heads/main");
    let token = mint(
        &key_b(),
        "gh-1",
        jsonwebtoken::Algorithm::RS256,
        &other_repo_same_sub,
    );
    refused(exchange(&w, &token).await, "no [[trust]] rule");
    // A wrong audience.
    let mut aud = k8s_claims(&w.k8s.base, "prod", "billing");
    aud["aud"] = json!(["https://vault.example"]);
    refused(exchange(&w, &k8s_token(&w, &aud)).await, "'aud'");
    // A lifetime over the trust's limit (3600 s by default).
    let mut long = k8s_claims(&w.k8s.base, "prod", "billing");
    long["exp"] = json!(secs() + 7200);
    refused(exchange(&w, &k8s_token(&w, &long)).await, "limit of 3600 s");
    // No `exp` at all.
    let mut forever = k8s_claims(&w.k8s.base, "prod", "billing");
    forever.as_object_mut().unwrap().remove("exp");
    refused(exchange(&w, &k8s_token(&w, &forever)).await, "never expire");
    // Signed by another key.
    let forged = mint(
        &key_b(),
        "k8s-2024",
        jsonwebtoken::Algorithm::RS256,
        &k8s_claims(&w.k8s.base, "prod", "billing"),
    );
    refused(exchange(&w, &forged).await, "signature");
    // A reused jti where the trust wants single use.
    let once = k8s_token(&w, &k8s_claims(&w.k8s.base, "prod", "billing"));
    assert_eq!(exchange(&w, &once).await.status, 200);
    refused(exchange(&w, &once).await, "already used");
    // A single-use trust needs a jti.
    let mut no_jti = k8s_claims(&w.k8s.base, "prod", "billing");
    no_jti.as_object_mut().unwrap().remove("jti");
    refused(exchange(&w, &k8s_token(&w, &no_jti)).await, "'jti'");
    // No assertion parameter.
    let reply = w
        .server
        .post_form("/oauth2/token", &[("grant_type".into(), JWT_BEARER.into())])
        .await;
    assert_eq!(reply.error(), "invalid_request");
}

#[tokio::test]
async fn an_issuer_whose_keys_are_down_is_refused_after_a_bounded_wait() {
    let w = world().await;
    let token = k8s_token(&w, &k8s_claims(&w.down.base, "prod", "x"));
    let reply = exchange(&w, &token).await;
    assert_eq!(reply.error(), "invalid_grant", "{}", reply.text);
    assert!(
        reply.description().contains("unavailable"),
        "{}",
        reply.text
    );
    let started = Instant::now();
    let token = k8s_token(&w, &k8s_claims(&w.slow.base, "prod", "x"));
    let reply = exchange(&w, &token).await;
    assert_eq!(reply.error(), "invalid_grant", "{}", reply.text);
    assert!(
        reply.description().contains("unavailable"),
        "{}",
        reply.text
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn federated_client_assertion_authenticates_the_mapped_client() {
    let w = world().await;
    let token = mint(
        &key_b(),
        "gh-1",
        jsonwebtoken::Algorithm::RS256,
        &github_claims(&w.github.base, "org/repo"),
    );
    let mut form = form(&token);
    form.push(("client_id".into(), "deployer".into()));
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(access_claims(&reply)["client_id"], "deployer");
    // Replayed: invalid_client, not invalid_grant.
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (401, "invalid_client")
    );
    assert!(
        reply.description().contains("already used"),
        "{}",
        reply.text
    );
    // The client_id parameter must be the mapped client.
    let token = mint(
        &key_b(),
        "gh-1",
        jsonwebtoken::Algorithm::RS256,
        &github_claims(&w.github.base, "org/repo"),
    );
    let mut wrong = support::form(&token);
    wrong.push(("client_id".into(), "billing".into()));
    let reply = w.server.post_form("/oauth2/token", &wrong).await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (401, "invalid_client")
    );
    // A rule granting a principal is not client authentication.
    let svid = mint(
        &key_ec(),
        "spire-1",
        jsonwebtoken::Algorithm::ES256,
        &svid_claims(&w.spire.base, "spiffe://example.org/ns/prod/sa/a"),
    );
    let form = support::form(&svid);
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (401, "invalid_client")
    );
    assert!(
        reply.description().contains("grants scopes"),
        "{}",
        reply.text
    );
    // A federated token with no matching rule: invalid_client.
    let dev = k8s_token(&w, &k8s_claims(&w.k8s.base, "dev", "billing"));
    let form = support::form(&dev);
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (401, "invalid_client")
    );
}

#[tokio::test]
async fn metadata_lists_the_grant_only_when_an_issuer_is_trusted() {
    let w = world().await;
    let meta = w
        .server
        .get("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta.json()["grant_types_supported"],
        json!(["client_credentials", JWT_BEARER])
    );
    let plain = start_rfc("memory").await;
    let meta = plain.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta.json()["grant_types_supported"],
        json!(["client_credentials"])
    );
    let reply = plain.post_form("/oauth2/token", &grant(&good("svc"))).await;
    assert_eq!(reply.error(), "unsupported_grant_type");
}

#[tokio::test]
async fn a_reload_adds_a_trust() {
    let k8s = start_issuer(&key_a(), "k8s-2024").await;
    let mut setup = Setup::new("[[client]]\nid = \"billing\"\nscopes = [\"r\"]\n");
    setup.replay_store = "memory".into();
    let server = start(setup, |_: &Path| {}).await;
    let token = mint(
        &key_a(),
        "k8s-2024",
        jsonwebtoken::Algorithm::RS256,
        &k8s_claims(&k8s.base, "prod", "billing"),
    );
    let reply = server.post_form("/oauth2/token", &grant(&token)).await;
    assert_eq!(reply.error(), "unsupported_grant_type");
    let path = server.dir.path().join("clients.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[[trust]]\nissuer = \"{}\"\nsubject = \"system:serviceaccount:prod:billing\"\nclient_id = \"billing\"\n",
        k8s.base
    ));
    std::fs::write(&path, text).unwrap();
    server.server.as_ref().unwrap().reload_clients().unwrap();
    let reply = server.post_form("/oauth2/token", &grant(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn parse(toml: &str) -> Result<Registry, RegistryError> {
    Registry::parse(toml, Path::new("/nonexistent/clients.toml"))
}

#[test]
fn trust_configuration_errors_name_the_line_and_the_problem() {
    let cases = [
        (
            "issuer = \"https://i.example\"\nclient_id = \"c\"",
            "subject",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"",
            "client_id",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"nobody\"",
            "not a registered client",
        ),
        (
            "issuer = \"http://i.example\"\nsubject = \"s\"\nclient_id = \"c\"",
            "issuer",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nsubject_prefix = \"p\"\nclient_id = \"c\"",
            "not both",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\nscopes = [\"a\"]",
            "not both",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\nreuse = \"sometimes\"",
            "reuse",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\nmax_lifetime = 0",
            "max_lifetime",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\ndiscovery = \"saml\"",
            "discovery",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\ndiscovery = \"oidc\"\njwks_uri = \"https://i.example/jwks\"",
            "only one",
        ),
        (
            "issuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\nsubjects = \"typo\"",
            "subjects",
        ),
    ];
    for (entry, needle) in cases {
        let text = format!("[[client]]\nid = \"c\"\n\n[[trust]]\n{entry}\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
        if !needle.contains("subjects") {
            assert!(err.contains("clients.toml:4:"), "line missing: {err}");
        }
    }
    // Entries of one issuer must name the same keys.
    let text = "[[client]]\nid = \"c\"\n[[trust]]\nissuer = \"https://i.example\"\nsubject = \"a\"\nclient_id = \"c\"\n[[trust]]\nissuer = \"https://i.example\"\njwks_uri = \"https://i.example/jwks\"\nsubject = \"b\"\nclient_id = \"c\"\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(err.contains("same keys"), "{err}");
    // A good entry loads.
    let ok = parse(
        "[[client]]\nid = \"c\"\n[[trust]]\nissuer = \"https://i.example\"\nsubject = \"s\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    assert_eq!(ok.trusts().len(), 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_trust_toml_never_panics(
        keys in proptest::collection::vec(
            proptest::sample::select(vec![
                "issuer", "discovery", "jwks_uri", "jwks", "jwks_file", "audiences", "subject",
                "subject_prefix", "claims", "client_id", "scopes", "token_audience",
                "max_lifetime", "reuse", "other",
            ]),
            0..8,
        ),
        values in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<String>().prop_map(|s| format!("{s:?}")),
                proptest::prelude::any::<i64>().prop_map(|n| n.to_string()),
                proptest::prelude::Just("[\"a\", \"\"]".to_owned()),
                proptest::prelude::Just("{ \"a/b\" = \"c\" }".to_owned()),
                proptest::prelude::Just("\"https://i.example\"".to_owned()),
                proptest::prelude::Just("\"oidc\"".to_owned()),
                proptest::prelude::Just("\"c\"".to_owned()),
                proptest::prelude::Just("{ keys = [] }".to_owned()),
            ],
            8,
        ),
        raw in ".{0,80}",
    ) {
        let mut text = String::from("[[client]]\nid = \"c\"\n[[trust]]\n");
        for (k, v) in keys.iter().zip(&values) {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let _ = parse(&text);
        let _ = parse(&format!("[[trust]]\n{raw}\n"));
    }
}

use proptest::strategy::Strategy as _;

#[tokio::test]
async fn client_authentication_beside_the_grant_must_succeed() {
    let w = world().await;
    let token = mint(
        &key_b(),
        "gh-1",
        jsonwebtoken::Algorithm::RS256,
        &github_claims(&w.github.base, "org/repo"),
    );
    let mut form = grant(&token);
    // A client assertion of a client this registry does not have.
    form.push(("client_assertion_type".into(), ASSERTION_TYPE.into()));
    form.push(("client_assertion".into(), good("svc")));
    let reply = w.server.post_form("/oauth2/token", &form).await;
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (401, "invalid_client"),
        "{}",
        reply.text
    );
    // The grant itself was not consumed: the same token works without the failed authentication.
    let reply = exchange(&w, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The grant takes a DPoP proof like the client-credentials path (docs/dpop.md): the token is
/// bound to the proof's key (`cnf.jkt`, `token_type: DPoP`).
#[tokio::test]
async fn the_grant_with_a_dpop_proof_gets_a_bound_token() {
    use m2m_core::dpop::{ProofBuilder, ProofInput};
    let w = world().await;
    let proof_key = m2m_testkit::keys::p256();
    let builder = ProofBuilder::new(Arc::clone(&proof_key)).unwrap();
    // htu is the token URL as the server is addressed from outside (its issuer), not loopback.
    let proof = builder
        .build(&ProofInput::new("POST", TOKEN_URL), now())
        .unwrap()
        .into_string();
    let reply = w
        .server
        .http
        .post(w.server.url("/oauth2/token"))
        .header("DPoP", proof)
        .form(&grant(&k8s_token(
            &w,
            &k8s_claims(&w.k8s.base, "prod", "billing"),
        )))
        .send()
        .await
        .unwrap();
    let reply = Reply::read(reply).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["token_type"], "DPoP");
    let claims = access_claims(&reply);
    assert_eq!(claims["cnf"]["jkt"], proof_key.public_key().thumbprint());
}
