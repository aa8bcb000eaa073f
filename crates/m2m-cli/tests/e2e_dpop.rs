//! DPoP end to end over all three parties, each the real binary on loopback: `m2m serve` (a
//! client registered `dpop = "required"`, rotating server nonces), `m2m token --dpop-key` (a
//! bound token whose `cnf.jkt` is the key's thumbprint, after one nonce round), `m2m gateway
//! --dpop required` in front of an upstream, and `m2m call --dpop-key` through it. Then the
//! same token misused by hand: without a proof, with another key's proof, a replayed proof, a
//! proof for another URL or method, and as a Bearer token — each a 401 with the DPoP challenge.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Stdio;
use std::sync::Arc;

use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::key::{KeySpec, PrivateKey};
use serde_json::Value;
use support::upstream;
use support::{
    Sandbox, ServerProcess, closed_port, headers, request, stderr, stdout, wait_until_listening,
};

fn now() -> UnixTime {
    UnixTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

/// Every challenge of a response head, joined.
fn challenge(head: &str) -> String {
    headers(head, "www-authenticate").join(" | ")
}

#[test]
fn a_bound_token_from_m2m_serve_works_through_the_gateway_only_with_its_key() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &["--alg", "ES256"]);
    let (dpop_pem, _) = sb.keygen("dpop-1", &["--alg", "ES256"]);
    let dpop_key =
        Arc::new(PrivateKey::from_bytes(&std::fs::read(&dpop_pem).unwrap(), None, None).unwrap());
    let o = sb.run(&[
        "clients",
        "add",
        "--clients",
        "clients.toml",
        "--id",
        "svc",
        "--jwks",
        jwks.to_str().unwrap(),
        "--scope",
        "read",
        "--dpop",
        "required",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let as_port = closed_port();
    let _server = ServerProcess(
        sb.cmd()
            .args(["serve", "--clients", "clients.toml"])
            .args(["--listen", &format!("127.0.0.1:{as_port}")])
            .args(["--replay-store", "memory", "--data-dir", "data"])
            .arg("--dpop-nonce")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(as_port);
    let issuer = format!("http://127.0.0.1:{as_port}");
    let token_flags = [
        "--issuer",
        issuer.as_str(),
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
    ];

    // Without DPoP, a required client is refused.
    let o = sb.cmd().arg("token").args(token_flags).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid_dpop_proof"), "{}", stderr(&o));

    // With the key: the nonce round happens inside, and the token is bound to the key.
    let o = sb
        .cmd()
        .arg("token")
        .args(token_flags)
        .args(["--dpop-key", dpop_pem.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let response: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(response["token_type"], "DPoP");
    let token = response["access_token"].as_str().unwrap().to_owned();
    let decoded = sb.run(&["decode", &token]);
    let claims = &serde_json::from_str::<Value>(&stdout(&decoded)).unwrap()["claims"];
    assert_eq!(claims["cnf"]["jkt"], dpop_key.public_key().thumbprint());

    // The gateway in front of an upstream, DPoP required; the token's aud is the issuer.
    let upstream = upstream::start_open();
    let gw_port = closed_port();
    let _gateway = ServerProcess(
        sb.cmd()
            .args(["gateway", "--listen", &format!("127.0.0.1:{gw_port}")])
            .args(["--upstream", &upstream.url()])
            .args(["--issuer", &issuer, "--audience", &issuer])
            .args(["--dpop", "required"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(gw_port);
    let api = format!("http://127.0.0.1:{gw_port}/headers");

    // m2m call with the same key: a fresh proof, 200 from the upstream.
    let o = sb
        .cmd()
        .args(["call", &api])
        .args(token_flags)
        .args(["--dpop-key", dpop_pem.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The upstream echoes the headers it got: the gateway's identity for the caller; the
    // caller's credentials went no further than the gateway.
    let seen: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(seen["x-m2m-client-id"], "svc", "{seen}");
    assert!(seen.get("dpop").is_none(), "{seen}");

    let proof_for = |key: &Arc<PrivateKey>, method: &str, url: &str| {
        ProofBuilder::new(Arc::clone(key))
            .unwrap()
            .build(&ProofInput::new(method, url).access_token(&token), now())
            .unwrap()
            .into_string()
    };
    let dpop_auth = format!("DPoP {token}");
    let refused = |headers: &[(&str, &str)], method: &str, why: &str| {
        let (status, head, _) = request(gw_port, method, "/headers", headers);
        assert_eq!(status, 401, "{why}: {head}");
        let c = challenge(&head);
        assert!(c.contains("DPoP"), "{why}: {c}");
    };

    // A good proof by hand: 200; the same proof again: replayed, 401.
    let good = proof_for(&dpop_key, "GET", &api);
    let (status, head, _) = request(
        gw_port,
        "GET",
        "/headers",
        &[("Authorization", &dpop_auth), ("DPoP", &good)],
    );
    assert_eq!(status, 200, "{head}");
    refused(
        &[("Authorization", &dpop_auth), ("DPoP", &good)],
        "GET",
        "replayed proof",
    );
    refused(&[("Authorization", &dpop_auth)], "GET", "no proof");
    let other = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    refused(
        &[
            ("Authorization", &dpop_auth),
            ("DPoP", &proof_for(&other, "GET", &api)),
        ],
        "GET",
        "another key's proof",
    );
    let elsewhere = format!("http://127.0.0.1:{gw_port}/echo");
    refused(
        &[
            ("Authorization", &dpop_auth),
            ("DPoP", &proof_for(&dpop_key, "GET", &elsewhere)),
        ],
        "GET",
        "a proof for another URL",
    );
    refused(
        &[
            ("Authorization", &dpop_auth),
            ("DPoP", &proof_for(&dpop_key, "POST", &api)),
        ],
        "GET",
        "a proof for another method",
    );
    refused(
        &[("Authorization", &format!("Bearer {token}"))],
        "GET",
        "the bound token as Bearer",
    );
}
