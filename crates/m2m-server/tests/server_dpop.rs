//! DPoP (RFC 9449) at the token endpoint, over real HTTP against the in-process server: one row
//! per refusal with its status and `error`, bound tokens (`token_type: DPoP`, `cnf.jkt` = the
//! key's RFC 7638 thumbprint, computed here independently), proof `jti` single use in every
//! replay store, the `--dpop-nonce` round by hand (through `m2m_client::TokenClient`: in
//! m2m-cli's `tests/dpop_nonce_round.rs`, as this crate may not depend on the client),
//! introspection's `cnf`, metadata, and the registry's `dpop` keys. Proofs are built with core's
//! `ProofBuilder` and, independently, with `jsonwebtoken`.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

mod support;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::jws::base64url_encode;
use m2m_core::key::PrivateKey;
use m2m_server::{DpopPolicy, NewClient, NewClientKeys, Registry, add_client, list_clients};
use serde_json::{Map, Value, json};
use support::*;

/// `svc` may use DPoP, `bound` must (`dpop = "required"`), `flagged` must through RFC 9449
/// §5.2's `dpop_bound_access_tokens = true`.
const CLIENTS: &str = r#"
[[client]]
id = "svc"
jwks_file = "svc.jwks.json"
algs = ["RS256"]
scopes = ["read"]

[[client]]
id = "bound"
jwks_file = "svc.jwks.json"
dpop = "required"

[[client]]
id = "flagged"
jwks_file = "svc.jwks.json"
dpop_bound_access_tokens = true
"#;

async fn start_dpop(store: &str) -> TestServer {
    let mut setup = Setup::new(CLIENTS);
    setup.replay_store = store.to_owned();
    start(setup, rfc_prepare).await
}

/// The key proofs are signed with, and core's builder for it.
fn proof_key() -> Arc<PrivateKey> {
    m2m_testkit::keys::p256()
}

fn builder() -> ProofBuilder {
    ProofBuilder::new(proof_key()).unwrap()
}

/// A proof from core's builder for `method` `url` at `at`.
fn proof(method: &str, url: &str, nonce: Option<&str>, at: UnixTime) -> String {
    builder()
        .build(&ProofInput::new(method, url).nonce(nonce), at)
        .unwrap()
        .into_string()
}

/// The proof key's RFC 7638 thumbprint, computed here from the JWK members (not by core).
fn independent_thumbprint(key: &PrivateKey) -> String {
    let jwk = serde_json::to_value(key.public_key().to_jwk()).unwrap();
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The public JWK of the proof key as JSON.
fn public_jwk() -> Value {
    serde_json::to_value(proof_key().public_key().to_jwk()).unwrap()
}

/// Default proof claims for the token endpoint at `at`.
fn claims(at: UnixTime) -> Map<String, Value> {
    obj(json!({
        "jti": m2m_core::assertion::new_jti(),
        "htm": "POST",
        "htu": TOKEN_URL,
        "iat": at.as_secs(),
    }))
}

/// A proof crafted by hand: `header` and `claims` as given, signed ES256 by the proof key.
fn crafted(header: Value, claims: &Map<String, Value>) -> String {
    craft(&obj(header), claims, &proof_key(), Algorithm::Es256)
}

/// An unsigned-or-MACed proof: header and claims as given, `signature` appended as is.
fn with_signature(header: Value, claims: &Map<String, Value>, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        base64url_encode(serde_json::to_vec(&header).unwrap()),
        base64url_encode(serde_json::to_vec(claims).unwrap()),
        base64url_encode(signature)
    )
}

/// A proof signed by `jsonwebtoken` (an independent JOSE implementation) with the proof key.
fn jsonwebtoken_proof(claims: &Map<String, Value>) -> String {
    let pem = proof_key().to_pkcs8_pem().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("dpop+jwt".to_owned());
    header.jwk = Some(serde_json::from_value(public_jwk()).unwrap());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A token request for `client` with these `DPoP` headers (none, one, or several).
async fn token_with(server: &TestServer, client: &str, proofs: &[&str]) -> Reply {
    token_for_issuer(server, ISSUER, client, proofs).await
}

/// [`token_with`] for a server whose issuer is `issuer` (the assertion's `aud`).
async fn token_for_issuer(
    server: &TestServer,
    issuer: &str,
    client: &str,
    proofs: &[&str],
) -> Reply {
    let assertion = assertion(
        &key_a(),
        "k1",
        Algorithm::Rs256,
        client,
        m2m_core::assertion::Audience::Issuer(issuer.into()),
        now(),
    );
    let mut request = server
        .http
        .post(server.url("/oauth2/token"))
        .form(&form(&assertion));
    for p in proofs {
        request = request.header("DPoP", *p);
    }
    Reply::read(request.send().await.unwrap()).await
}

/// The access token's claims (not verified: the server just signed it).
fn token_claims(reply: &Reply) -> Value {
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn assert_refused(reply: &Reply, status: u16, error: &str, row: &str) {
    assert_eq!(reply.status, status, "{row}: {}", reply.text);
    assert_eq!(reply.error(), error, "{row}: {}", reply.text);
    assert!(
        !reply.text.contains("access_token"),
        "{row}: no token on a refusal"
    );
}

#[tokio::test]
async fn each_refused_proof_has_its_status_and_error() {
    let server = start_dpop("memory").await;
    let t = now();
    let es256 = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk()});
    let mut private_jwk = public_jwk();
    private_jwk["d"] = json!(base64url_encode([7u8; 32]));
    let with = |name: &str, value: Value| {
        let mut c = claims(t);
        c.insert(name.to_owned(), value);
        c
    };
    let loopback_url = server.url("/oauth2/token");
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "a private key in jwk",
            crafted(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private_jwk}),
                &claims(t),
            ),
            "jwk_private",
        ),
        (
            "wrong htm",
            proof("GET", TOKEN_URL, None, t),
            "htm_mismatch",
        ),
        (
            "wrong htu (another path)",
            proof("POST", &format!("{ISSUER}/oauth2/introspect"), None, t),
            "htu_mismatch",
        ),
        (
            // The server's external URL is the issuer's: the address it listens on is not it.
            "wrong htu (the listening address, not the external URL)",
            proof("POST", &loopback_url, None, t),
            "htu_mismatch",
        ),
        (
            "stale iat",
            crafted(es256.clone(), &with("iat", json!(t.as_secs() - 301))),
            "iat_too_old",
        ),
        (
            "future iat",
            crafted(es256.clone(), &with("iat", json!(t.as_secs() + 120))),
            "iat_future",
        ),
        (
            "alg none",
            with_signature(
                json!({"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk()}),
                &claims(t),
                b"",
            ),
            "alg_refused",
        ),
        (
            "HMAC alg",
            with_signature(
                json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": public_jwk()}),
                &claims(t),
                &[1u8; 32],
            ),
            "alg_refused",
        ),
        (
            "unsupported alg",
            crafted(
                json!({"typ": "dpop+jwt", "alg": "ES256K", "jwk": public_jwk()}),
                &claims(t),
            ),
            "alg_refused",
        ),
        (
            "wrong typ",
            crafted(
                json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk()}),
                &claims(t),
            ),
            "typ_invalid",
        ),
        ("not a JWS", "not-a-proof".to_owned(), "malformed"),
    ];
    for (row, bad, reason) in &rows {
        let reply = token_with(&server, "svc", &[bad]).await;
        assert_refused(&reply, 400, "invalid_dpop_proof", row);
        assert!(
            reply.description().contains(reason),
            "{row}: expected {reason}: {}",
            reply.text
        );
    }

    // Two DPoP headers, each a valid proof on its own.
    let a = proof("POST", TOKEN_URL, None, t);
    let b = proof("POST", TOKEN_URL, None, t);
    let reply = token_with(&server, "svc", &[&a, &b]).await;
    assert_refused(&reply, 400, "invalid_dpop_proof", "two DPoP headers");
    assert!(
        reply.description().contains("more than one"),
        "{}",
        reply.text
    );

    // A required client without a proof, both ways of saying "required".
    for client in ["bound", "flagged"] {
        let reply = token_with(&server, client, &[]).await;
        assert_refused(&reply, 400, "invalid_dpop_proof", client);
        assert!(
            reply.description().contains("must use DPoP"),
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn a_proof_binds_the_token_to_the_key_and_bearer_stays_bearer() {
    let server = start_dpop("memory").await;
    let jkt = independent_thumbprint(&proof_key());
    assert_eq!(jkt, builder().thumbprint());

    // Core's builder, an allowed client.
    let reply = token_with(&server, "svc", &[&proof("POST", TOKEN_URL, None, now())]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["token_type"], "DPoP");
    assert_eq!(token_claims(&reply)["cnf"], json!({"jkt": jkt}));

    // jsonwebtoken's proof, a required client (and the §5.2 flag).
    for client in ["bound", "flagged"] {
        let reply = token_with(&server, client, &[&jsonwebtoken_proof(&claims(now()))]).await;
        assert_eq!(reply.status, 200, "{client}: {}", reply.text);
        assert_eq!(reply.json()["token_type"], "DPoP");
        assert_eq!(token_claims(&reply)["cnf"]["jkt"], jkt.as_str());
    }

    // No proof, an allowed client: a Bearer token without cnf, as before DPoP.
    let reply = token_with(&server, "svc", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["token_type"], "Bearer");
    assert!(token_claims(&reply).get("cnf").is_none());
    assert!(reply.headers.get("dpop-nonce").is_none(), "nonces are off");
}

/// Sends one proof twice (each time with a fresh client assertion): the second is a replay.
async fn replayed_proof_is_refused(store: &str) {
    let server = start_dpop(store).await;
    let p = proof("POST", TOKEN_URL, None, now());
    let first = token_with(&server, "svc", &[&p]).await;
    assert_eq!(first.status, 200, "{store}: {}", first.text);
    let again = token_with(&server, "svc", &[&p]).await;
    assert_refused(&again, 400, "invalid_dpop_proof", store);
    assert!(
        again.description().contains("already used"),
        "{}",
        again.text
    );
    // The jsonwebtoken-built proof with the same jti is the same replay.
    let mut c = claims(now());
    c.insert("jti".into(), json!("fixed-jti-1"));
    assert_eq!(
        token_with(&server, "bound", &[&jsonwebtoken_proof(&c)])
            .await
            .status,
        200
    );
    c.insert("iat".into(), json!(now().as_secs()));
    let again = token_with(&server, "bound", &[&jsonwebtoken_proof(&c)]).await;
    assert_refused(&again, 400, "invalid_dpop_proof", store);
}

#[tokio::test]
async fn replayed_proof_is_refused_memory() {
    replayed_proof_is_refused("memory").await;
}

#[tokio::test]
async fn replayed_proof_is_refused_sqlite() {
    replayed_proof_is_refused("sqlite").await;
}

#[tokio::test]
async fn replayed_proof_is_refused_redis() {
    // Fails (does not skip) under CI=true when redis-server is missing.
    let Some(redis) = m2m_testkit::redis::RedisServer::start() else {
        return;
    };
    replayed_proof_is_refused(&redis.url()).await;
}

/// A server with `--dpop-nonce` whose issuer is its own loopback URL, so the real client's `htu`
/// (the URL it posts to) is the external token URL.
async fn start_with_nonces() -> (TestServer, String, String) {
    let port = m2m_testkit::net::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut setup = Setup::new(CLIENTS);
    setup.replay_store = "memory".into();
    setup.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    setup.issuer = Some(base.clone());
    setup.dpop_nonce = true;
    let server = start(setup, rfc_prepare).await;
    (server, format!("{base}/oauth2/token"), base)
}

#[tokio::test]
async fn nonce_round_by_hand_first_use_dpop_nonce_then_ok() {
    let (server, token_url, issuer) = start_with_nonces().await;
    let first = token_for_issuer(
        &server,
        &issuer,
        "svc",
        &[&proof("POST", &token_url, None, now())],
    )
    .await;
    assert_refused(&first, 400, "use_dpop_nonce", "no nonce");
    let nonce = first.headers["dpop-nonce"].to_str().unwrap().to_owned();
    assert!(!nonce.is_empty());

    let wrong = token_for_issuer(
        &server,
        &issuer,
        "svc",
        &[&proof("POST", &token_url, Some("made-up"), now())],
    )
    .await;
    assert_refused(
        &wrong,
        400,
        "use_dpop_nonce",
        "a nonce the server never gave",
    );

    let ok = token_for_issuer(
        &server,
        &issuer,
        "svc",
        &[&proof("POST", &token_url, Some(&nonce), now())],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["token_type"], "DPoP");
    assert_eq!(
        ok.headers["dpop-nonce"].to_str().unwrap(),
        nonce,
        "success carries the current nonce too"
    );
    // A request without a proof needs no nonce (and gets one anyway).
    let bearer = token_for_issuer(&server, &issuer, "svc", &[]).await;
    assert_eq!(bearer.status, 200, "{}", bearer.text);
    assert!(bearer.headers.contains_key("dpop-nonce"));
}

#[tokio::test]
async fn introspection_shows_cnf_and_metadata_lists_the_proof_algorithms() {
    let server = start_dpop("memory").await;
    let reply = token_with(&server, "svc", &[&proof("POST", TOKEN_URL, None, now())]).await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let mut pairs = form(&good("svc"));
    pairs.retain(|(k, _)| k != "grant_type");
    pairs.push(("token".into(), token));
    let introspected = server.post_form("/oauth2/introspect", &pairs).await;
    assert_eq!(introspected.status, 200, "{}", introspected.text);
    let body = introspected.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["cnf"]["jkt"], builder().thumbprint());
    assert_eq!(body["token_type"], "DPoP");

    let metadata = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    let algs: Vec<&str> = metadata["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for alg in ["ES256", "RS256", "PS256", "EdDSA"] {
        assert!(algs.contains(&alg), "{alg} in {algs:?}");
    }
    assert!(!algs.iter().any(|a| a.starts_with("HS") || *a == "none"));
}

#[tokio::test]
async fn the_nhs_profile_refuses_dpop_nonces_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let clients = dir.path().join("clients.toml");
    std::fs::write(&clients, "").unwrap();
    let mut config = m2m_server::ServerConfig::new(&clients);
    config.profile = m2m_server::Profile::Nhs;
    config.dpop_nonce = true;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().join("data");
    let err = m2m_server::Server::start(config).await.unwrap_err();
    assert!(err.to_string().contains("nhs profile has no DPoP"), "{err}");
}

#[test]
fn registry_dpop_keys_are_validated_with_file_and_line() {
    let path = Path::new("/etc/m2m/clients.toml");
    let parse = |text: &str| Registry::parse(text, path);
    let ok = parse(
        "[[client]]\nid = \"a\"\ndpop = \"required\"\n\n[[client]]\nid = \"b\"\n\n[[client]]\nid = \"c\"\ndpop_bound_access_tokens = false\n",
    )
    .unwrap();
    assert_eq!(ok.get("a").unwrap().dpop, DpopPolicy::Required);
    assert_eq!(ok.get("b").unwrap().dpop, DpopPolicy::Allowed);
    assert_eq!(ok.get("c").unwrap().dpop, DpopPolicy::Allowed);

    let err = parse("[[client]]\nid = \"a\"\n\n[[client]]\nid = \"b\"\ndpop = \"always\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/etc/m2m/clients.toml:4:"), "{err}");
    assert!(err.contains("`dpop`") && err.contains("required"), "{err}");

    let err =
        parse("[[client]]\nid = \"a\"\ndpop = \"allowed\"\ndpop_bound_access_tokens = true\n")
            .unwrap_err()
            .to_string();
    assert!(err.starts_with("/etc/m2m/clients.toml:1:"), "{err}");
    assert!(err.contains("contradicts"), "{err}");

    let err = parse("[[client]]\nid = \"a\"\ndpop = true\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("clients.toml"), "{err}");
}

#[test]
fn clients_add_writes_dpop_and_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.toml");
    let jwks = jwks(&[(&key_a(), "k1")]);
    let mut required = NewClient::new("must", NewClientKeys::Jwks(jwks.clone()));
    required.dpop = Some(DpopPolicy::Required);
    add_client(&path, &required).unwrap();
    add_client(&path, &NewClient::new("may", NewClientKeys::Jwks(jwks))).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("dpop = \"required\""), "{text}");
    let registry = Registry::load(&path).unwrap();
    assert_eq!(registry.get("must").unwrap().dpop, DpopPolicy::Required);
    let list = list_clients(&path).unwrap();
    let shown: Vec<(&str, &str)> = list
        .iter()
        .map(|c| (c.id.as_str(), c.dpop.as_str()))
        .collect();
    assert_eq!(shown, [("must", "required"), ("may", "allowed")]);
}

#[tokio::test]
async fn the_nhs_profile_ignores_a_dpop_header_like_nhs() {
    let mut setup = Setup::new("[[client]]\nid = \"nhs-app\"\njwks_file = \"nhs.jwks.json\"\n");
    setup.profile = m2m_server::Profile::Nhs;
    setup.replay_store = "memory".into();
    let server = start(setup, |dir| {
        write_jwks(dir, "nhs.jwks.json", &[(&key_a(), "test-1")]);
    })
    .await;
    let n = now().as_secs();
    let assertion = craft(
        &obj(json!({"alg": "RS512", "typ": "JWT", "kid": "test-1"})),
        &obj(
            json!({"iss": "nhs-app", "sub": "nhs-app", "jti": m2m_core::assertion::new_jti(),
            "aud": TOKEN_URL, "exp": n + 300}),
        ),
        &key_a(),
        Algorithm::Rs512,
    );
    // A valid proof and a garbage one: NHS has no DPoP, so neither changes anything.
    for header in [proof("POST", TOKEN_URL, None, now()), "garbage".to_owned()] {
        let mut pairs = form(&assertion);
        pairs[2].1 = craft(
            &obj(json!({"alg": "RS512", "typ": "JWT", "kid": "test-1"})),
            &obj(
                json!({"iss": "nhs-app", "sub": "nhs-app", "jti": m2m_core::assertion::new_jti(),
                "aud": TOKEN_URL, "exp": n + 300}),
            ),
            &key_a(),
            Algorithm::Rs512,
        );
        let reply = Reply::read(
            server
                .http
                .post(server.url("/oauth2/token"))
                .header("DPoP", header)
                .form(&pairs)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["token_type"], "Bearer");
        assert!(token_claims(&reply).get("cnf").is_none());
        assert!(reply.headers.get("dpop-nonce").is_none());
    }
}
