//! `m2m gateway --dpop` and `m2m verify --dpop-proof` end to end: the real binary in front of a
//! real API on loopback. The real `m2m serve` cannot mint DPoP-bound tokens yet, so the issuer is
//! a key of the test's own (`--jwks`) and tokens bound with `cnf.jkt` are signed here; proofs come
//! from m2m-core's `ProofBuilder`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::jws::EncodedHeader;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use support::upstream::{self, Upstream};
use support::{
    Sandbox, ServerProcess, closed_port, headers, request, stderr, stdout, wait_until_listening,
};

const ISSUER: &str = "https://as.example.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Gateway {
    sb: Sandbox,
    issuer_key: Arc<PrivateKey>,
    jwks: std::path::PathBuf,
    upstream: Upstream,
    _process: ServerProcess,
    port: u16,
}

impl Gateway {
    fn audience(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An access token for the gateway from the test's issuer, bound to `jkt` when given.
    fn token(&self, jkt: Option<&str>) -> String {
        let signer = KeySigner::new(
            Arc::clone(&self.issuer_key),
            Algorithm::Es256,
            Some("k1".into()),
        )
        .unwrap();
        let header = EncodedHeader::typed("at+jwt", &signer).unwrap();
        let mut claims = serde_json::json!({
            "iss": ISSUER, "sub": "svc", "client_id": "svc", "aud": self.audience(),
            "iat": now(), "exp": now() + 300, "jti": format!("j-{}", now()), "scope": "read",
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = serde_json::json!({ "jkt": jkt });
        }
        header.sign(&claims, &signer).unwrap()
    }
}

fn start(extra: &[&str]) -> Gateway {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &["--alg", "ES256"]);
    let issuer_key =
        Arc::new(PrivateKey::from_bytes(&std::fs::read(&pem).unwrap(), None, None).unwrap());
    let port = closed_port();
    let upstream = upstream::start_open();
    let process = ServerProcess(
        sb.cmd()
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &upstream.url()])
            .args([
                "--issuer",
                ISSUER,
                "--audience",
                &format!("http://127.0.0.1:{port}"),
            ])
            .args(["--jwks", jwks.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn m2m gateway"),
    );
    wait_until_listening(port);
    Gateway {
        sb,
        issuer_key,
        jwks,
        upstream,
        _process: process,
        port,
    }
}

/// The body of a chunked response, de-chunked (enough for the small JSON answers here).
fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| {
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        serde_json::from_str(&body[start..=end]).unwrap()
    })
}

fn client_key() -> ProofBuilder {
    ProofBuilder::new(Arc::new(PrivateKey::generate(KeySpec::P256).unwrap())).unwrap()
}

fn proof(p: &ProofBuilder, method: &str, url: &str, token: &str) -> String {
    p.build(
        &ProofInput::new(method, url).access_token(token),
        UnixTime::from_secs(now()),
    )
    .unwrap()
    .into_string()
}

#[test]
fn dpop_required_forwards_a_bound_token_with_its_proof_and_refuses_the_rest() {
    let g = start(&["--dpop", "required"]);
    let client = client_key();
    let token = g.token(Some(client.thumbprint()));
    let url = format!("{}/headers", g.audience());
    let authorization = format!("DPoP {token}");
    let p = proof(&client, "GET", &url, &token);
    let (status, _, body) = request(
        g.port,
        "GET",
        "/headers",
        &[("Authorization", &authorization), ("DPoP", &p)],
    );
    assert_eq!(status, 200, "{body}");
    let seen = json(&body);
    assert_eq!(seen["x-m2m-client-id"], "svc", "{seen}");
    assert!(
        seen.get("dpop").is_none(),
        "the proof is not forwarded: {seen}"
    );
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert_eq!(g.upstream.seen.lock().unwrap().requests, 1);

    // The same proof again: a replay.
    let (status, head, body) = request(
        g.port,
        "GET",
        "/headers",
        &[("Authorization", &authorization), ("DPoP", &p)],
    );
    assert_eq!(status, 401, "{body}");
    let challenges = headers(&head, "www-authenticate");
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(challenges[0].starts_with("DPoP "), "{challenges:?}");
    assert!(
        challenges[0].contains("error=\"invalid_dpop_proof\""),
        "{challenges:?}"
    );
    assert!(challenges[0].contains("algs=\""), "{challenges:?}");

    // A proof for another method.
    let p = proof(&client, "POST", &url, &token);
    let (status, _, body) = request(
        g.port,
        "GET",
        "/headers",
        &[("Authorization", &authorization), ("DPoP", &p)],
    );
    assert_eq!(status, 401, "{body}");

    // A plain Bearer token: DPoP required.
    let plain = format!("Bearer {}", g.token(None));
    let (status, head, _) = request(g.port, "GET", "/headers", &[("Authorization", &plain)]);
    assert_eq!(status, 401);
    let challenges = headers(&head, "www-authenticate");
    assert!(
        challenges[0].contains("error=\"invalid_token\""),
        "{challenges:?}"
    );
    assert_eq!(
        g.upstream.seen.lock().unwrap().requests,
        1,
        "nothing else upstream"
    );

    // The RFC 9728 document says so.
    let (status, _, body) = request(g.port, "GET", "/.well-known/oauth-protected-resource", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["dpop_bound_access_tokens_required"],
        true,
        "{body}"
    );
    // And which proof algorithms to use (RFC 9728 §2), the challenge's `algs`.
    let algs = json(&body)["dpop_signing_alg_values_supported"].clone();
    assert!(
        algs.as_array().unwrap().iter().any(|a| a == "ES256"),
        "{body}"
    );
}

#[test]
fn behind_a_proxy_the_proofs_name_the_external_url() {
    let g = start(&[
        "--dpop",
        "allowed",
        "--external-url",
        "https://api.example.com/v1/",
    ]);
    let client = client_key();
    let token = g.token(Some(client.thumbprint()));
    let authorization = format!("DPoP {token}");
    let p = proof(&client, "GET", "https://api.example.com/v1/headers", &token);
    let (status, _, body) = request(
        g.port,
        "GET",
        "/headers",
        &[("Authorization", &authorization), ("DPoP", &p)],
    );
    assert_eq!(status, 200, "{body}");
    // Mode allowed: an unbound Bearer token still works, and no credential gets both challenges.
    let plain = format!("Bearer {}", g.token(None));
    let (status, _, body) = request(g.port, "GET", "/headers", &[("Authorization", &plain)]);
    assert_eq!(status, 200, "{body}");
    let (status, head, _) = request(g.port, "GET", "/headers", &[]);
    assert_eq!(status, 401);
    assert_eq!(headers(&head, "www-authenticate").len(), 2, "{head}");
}

#[test]
fn dpop_flags_are_checked() {
    let sb = Sandbox::new();
    let base = [
        "gateway",
        "--listen",
        "127.0.0.1:1",
        "--upstream",
        "http://127.0.0.1:2",
        "--issuer",
        ISSUER,
        "--audience",
        "https://api.example.com",
    ];
    let o = sb.run(&[&base[..], &["--external-url", "https://x.example"][..]].concat());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--dpop allowed"), "{}", stderr(&o));
    let o = sb.run(&[&base[..], &["--dpop", "sometimes"][..]].concat());
    assert!(!o.status.success());
    let o = sb.run(
        &[
            &base[..],
            &["--dpop", "required", "--external-url", "https://x/?q=1"][..],
        ]
        .concat(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--external-url"), "{}", stderr(&o));
}

#[test]
fn verify_checks_a_dpop_proof_and_prints_the_jkt() {
    let g = start(&[]);
    let client = client_key();
    let token = g.token(Some(client.thumbprint()));
    let url = "https://api.example.com/things";
    let jwks = g.jwks.to_str().unwrap().to_owned();
    let audience = g.audience();
    let verify = |extra: &[&str]| {
        let mut args: Vec<&str> = vec![
            "verify",
            token.as_str(),
            "--issuer",
            ISSUER,
            "--audience",
            audience.as_str(),
            "--jwks",
            jwks.as_str(),
        ];
        args.extend(extra);
        g.sb.run(&args)
    };
    let p = proof(&client, "GET", url, &token);
    let o = verify(&["--dpop-proof", &p, "--method", "GET", "--url", url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(out["_dpop"]["jkt"], client.thumbprint());
    assert_eq!(out["cnf"]["jkt"], client.thumbprint());
    // Another URL: refused with the rule's name, exit 1.
    let o = verify(&[
        "--dpop-proof",
        &p,
        "--method",
        "GET",
        "--url",
        "https://api.example.com/other",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("htu_mismatch"), "{}", stderr(&o));
    // Without a proof the bound token is no Bearer token.
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("sender_constrained"), "{}", stderr(&o));
    // --method without --dpop-proof is a usage error.
    let o = verify(&["--method", "GET"]);
    assert!(!o.status.success());
}
