//! Federation end to end, both halves on the real binary: a `[[trust]]` written by `m2m trust
//! add` (a workload issuer's keys given inline), the real `m2m serve`, and `m2m token
//! --assertion-file F --grant jwt-bearer` with F rewritten between calls the way the kubelet
//! rewrites a projected service-account token. The client reads the file again for every
//! request; the server's default single-use rule refuses the same token twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::{Output, Stdio};
use std::sync::Arc;

use m2m_core::alg::Algorithm;
use m2m_core::jws::sign_compact;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use serde_json::{Map, Value, json};
use support::{Sandbox, ServerProcess, closed_port, stderr, stdout, wait_until_listening};

const ISSUER: &str = "https://oidc.prod-cluster.example";
const SUBJECT: &str = "system:serviceaccount:billing:worker";

/// A token shaped like a Kubernetes projected service-account token (`kubernetes.io` object,
/// `jti` as since 1.29) of the `worker` account in `namespace` for `aud`, signed by the
/// cluster's key.
fn service_account_token(key: &Arc<PrivateKey>, namespace: &str, aud: &str, jti: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{namespace}:worker"),
        "aud": [aud],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": jti,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": "worker", "uid": "0d5b2c1e-6b1f-4d2b-9a51-3c3f1c6d7e80" },
            "pod": { "name": "worker-7d9c", "uid": "9a1f0c2b-1111-4e0f-8b7a-2f5d6c7b8a90" }
        }
    });
    let signer =
        KeySigner::new(Arc::clone(key), Algorithm::Es256, Some("cluster-1".into())).unwrap();
    let header: Map<String, Value> = serde_json::from_value(json!({ "typ": "JWT" })).unwrap();
    sign_compact(&header, claims.as_object().unwrap(), &signer).unwrap()
}

fn token(sb: &Sandbox, token_url: &str, file: &std::path::Path) -> Output {
    sb.cmd()
        .args(["token", "--token-url", token_url, "--grant", "jwt-bearer"])
        .args(["--assertion-file", file.to_str().unwrap(), "--no-cache"])
        .env_remove("M2M_CLIENT_SECRET")
        .output()
        .unwrap()
}

#[test]
fn assertion_file_grant_against_m2m_serve_rereads_the_rotated_token() {
    let sb = Sandbox::new();
    let cluster = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let mut jwk = serde_json::to_value(cluster.public_key().to_jwk()).unwrap();
    jwk["kid"] = json!("cluster-1");
    jwk["alg"] = json!("ES256");
    let jwks = sb.path().join("cluster.jwks.json");
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).unwrap();

    let o = sb.run(&[
        "trust",
        "add",
        "--clients",
        "clients.toml",
        "--issuer",
        ISSUER,
        "--jwks",
        jwks.to_str().unwrap(),
        "--subject-prefix",
        "system:serviceaccount:billing:",
        "--claim",
        "kubernetes.io/namespace=billing",
        "--scope",
        "invoices:read",
        "--token-audience",
        "https://invoices.example",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let port = closed_port();
    let server = ServerProcess(
        sb.cmd()
            .args(["serve", "--clients", "clients.toml"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--replay-store", "sqlite", "--data-dir", "data"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port);
    let issuer = format!("http://127.0.0.1:{port}");
    let token_url = format!("{issuer}/oauth2/token");
    let file = sb.path().join("token");

    // The first projected token: accepted, and the access token is what the trust grants.
    std::fs::write(
        &file,
        service_account_token(&cluster, "billing", &issuer, "jti-1"),
    )
    .unwrap();
    let o = token(&sb, &token_url, &file);
    assert!(o.status.success(), "{}", stderr(&o));
    let access = stdout(&o).trim().to_owned();
    let decoded = sb.run(&["decode", &access]);
    let claims = &serde_json::from_str::<Value>(&stdout(&decoded)).unwrap()["claims"];
    assert_eq!(claims["sub"], SUBJECT);
    assert_eq!(claims["aud"], "https://invoices.example");
    assert_eq!(claims["scope"], "invoices:read");

    // The same file again: the server's single-use rule refuses the replayed token.
    let o = token(&sb, &token_url, &file);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(
        !err.contains(&std::fs::read_to_string(&file).unwrap()),
        "{err}"
    );

    // The kubelet rotates the file: the client reads it again and the new token is accepted.
    std::fs::write(
        &file,
        service_account_token(&cluster, "billing", &issuer, "jti-2"),
    )
    .unwrap();
    let o = token(&sb, &token_url, &file);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(stdout(&o).trim(), access);

    // Another namespace's account, signed by the same cluster, matches no rule.
    let mut text = service_account_token(&cluster, "payroll", &issuer, "jti-3");
    text.push('\n'); // files often end in a newline: the client trims it
    std::fs::write(&file, text).unwrap();
    let o = token(&sb, &token_url, &file);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("invalid_grant"), "{err}");
    drop(server);
}
