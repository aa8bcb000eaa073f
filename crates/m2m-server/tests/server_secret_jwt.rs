//! The replay and rate-limit suites for `client_secret_jwt` (and the secret methods' rate-limit
//! charging), over real HTTP against the in-process server with memory and SQLite stores.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::path::Path;

use m2m_core::assertion::Audience;
use m2m_core::hmac::{HmacAlg, SecretJwtBuilder};
use m2m_core::secret::ClientSecret;
use support::*;

const JWT_SECRET: &str = "a-client_secret_jwt-secret-of-more-than-32-bytes";
const BASIC_SECRET: &str = "a-client_secret_basic-secret-of-more-than-32-bytes";

fn clients() -> String {
    let v = ClientSecret::new(BASIC_SECRET.as_bytes().to_vec())
        .unwrap()
        .verifier()
        .to_hex();
    format!(
        r#"
[[client]]
id = "jwt"
auth_method = "client_secret_jwt"

[[client]]
id = "jwt-limited"
auth_method = "client_secret_jwt"
rate_limit = 3

[[client]]
id = "basic-limited"
auth_method = "client_secret_basic"
secret_verifiers = [{{ sha256 = "{v}" }}]
rate_limit = 3

[[client]]
id = "svc"
jwks_file = "svc.jwks.json"
"#
    )
}

fn prepare(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    rfc_prepare(dir);
    let path = dir.join("secrets.toml");
    std::fs::write(
        &path,
        format!(
            "[[secret]]\nclient = \"jwt\"\nvalue = \"{JWT_SECRET}\"\n\n[[secret]]\nclient = \"jwt-limited\"\nvalue = \"{JWT_SECRET}\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn server(store: &str) -> TestServer {
    let mut setup = Setup::new(clients());
    setup.replay_store = store.into();
    start(setup, prepare).await
}

fn hs(client: &str, secret: &str) -> String {
    SecretJwtBuilder::new(
        ClientSecret::new(secret.as_bytes().to_vec()).unwrap(),
        HmacAlg::Hs256,
        client,
        Audience::Issuer(ISSUER.into()),
    )
    .unwrap()
    .build(now())
    .unwrap()
    .into_string()
}

#[tokio::test]
async fn a_client_secret_jwt_assertion_is_accepted_once_on_every_store() {
    for store in ["memory", "sqlite"] {
        let t = server(store).await;
        let a = hs("jwt", JWT_SECRET);
        let r = t.token(&a).await;
        assert_eq!(r.status, 200, "{store}: {}", r.text);
        let r = t.token(&a).await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (401, "invalid_client"),
            "{store}"
        );
        assert!(
            r.description().contains("already used"),
            "{store}: {}",
            r.text
        );
        // A fresh assertion works again.
        assert_eq!(t.token(&hs("jwt", JWT_SECRET)).await.status, 200, "{store}");
    }
}

#[tokio::test]
async fn client_secret_jwt_failures_count_against_the_rate_limit() {
    let t = server("memory").await;
    for _ in 0..3 {
        let r = t
            .token(&hs("jwt-limited", "a-wrong-secret-that-is-long-enough-32b"))
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = t.token(&hs("jwt-limited", JWT_SECRET)).await;
    assert_eq!(r.status, 429, "{}", r.text);
}

#[tokio::test]
async fn basic_failures_count_against_the_rate_limit() {
    use base64::Engine as _;
    let t = server("memory").await;
    let header = |secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("basic-limited:{secret}"))
        )
    };
    let post = |secret: String| {
        t.http
            .post(t.url(m2m_server::TOKEN_PATH))
            .header("authorization", secret)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for _ in 0..3 {
        let r = Reply::read(post(header("wrong")).await.unwrap()).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(
            r.headers
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap().starts_with("Basic realm=")),
        );
    }
    let r = Reply::read(post(header(BASIC_SECRET)).await.unwrap()).await;
    assert_eq!(r.status, 429, "{}", r.text);
}

#[tokio::test]
async fn hmac_for_a_private_key_jwt_client_and_a_signature_for_a_secret_client_are_refused() {
    let t = server("memory").await;
    // An HMAC assertion (even keyed with anything) for a private_key_jwt client.
    let r = t.token(&hs("svc", JWT_SECRET)).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert!(
        r.description()
            .contains("not registered for client_secret_jwt"),
        "{}",
        r.text
    );
    // A signed assertion for a client_secret_jwt client.
    let r = t.token(&good_for("jwt")).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert!(
        r.description()
            .contains("not registered for private_key_jwt"),
        "{}",
        r.text
    );
}

fn good_for(client: &str) -> String {
    assertion(
        &key_a(),
        "k1",
        m2m_core::alg::Algorithm::Rs256,
        client,
        Audience::Issuer(ISSUER.into()),
        now(),
    )
}
