//! Secret hygiene of the `m2m` binary's own log output: stderr with `RUST_LOG=trace` (which the
//! CLI's EnvFilter honours for every crate) during `m2m token` and `m2m demo --bits 2048` holds
//! no private key, no assertion signature and no access token.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::process::Command;

use m2m_core::key::{KeySpec, PrivateKey};
use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};
use support::hygiene::{assert_absent, jws_like, key_secrets, token_secrets};

const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJzdmMiLCJleHAiOjk5OTk5OTk5OTl9.\
                     c2VjcmV0LWFjY2Vzcy10b2tlbi1zaWduYXR1cmUtdGhhdC1tdXN0LW5ldmVyLWJlLWxvZ2dlZA";

fn m2m(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2m"));
    for (k, _) in std::env::vars() {
        if k.starts_with("M2M_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("RUST_LOG", "trace")
        .current_dir(home);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m2m_token_stderr_at_trace_leaks_nothing() {
    let key = PrivateKey::generate(KeySpec::P256).unwrap();
    // The shared verifying endpoint (it records every request), answering a fixed, JWT-shaped
    // token.
    let endpoint = TokenEndpoint::builder("svc")
        .key("k1", key.public_key().clone())
        .replies([Reply::token().access_token(TOKEN)])
        .start()
        .await;
    let url = endpoint.url().to_owned();

    let home = tempfile::tempdir().unwrap();
    let key_path = home.path().join("k.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();

    let mut outputs = Vec::new();
    // Twice: the second run is answered from the file cache (its own code path and logs).
    for extra in [&["--no-cache"][..], &[][..], &[][..]] {
        let out = tokio::task::spawn_blocking({
            let mut cmd = m2m(home.path());
            cmd.args([
                "token",
                "--token-url",
                &url,
                "--client-id",
                "svc",
                "--kid",
                "k1",
            ])
            .args(["--alg", "ES256", "--attempts", "1", "--key"])
            .arg(&key_path)
            .args(extra);
            move || cmd.output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(TOKEN),
            "the token goes to stdout, by design"
        );
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stderr = outputs.join("\n");
    assert!(stderr.contains("TRACE"), "trace logging is on: {stderr}");

    let seen = endpoint.seen();
    assert!(!seen.is_empty());
    endpoint.assert_all_valid();
    let signatures: Vec<String> = seen
        .iter()
        .map(|r| {
            let assertion = r.field("client_assertion").unwrap();
            assertion.rsplit('.').next().unwrap().to_owned()
        })
        .collect();
    assert_absent(
        &stderr,
        &[
            ("client private key", key_secrets(&key)),
            ("assertion signature", signatures),
            ("access token", token_secrets(TOKEN)),
        ],
    );
    assert_eq!(jws_like(&stderr), Vec::<String>::new());
    assert!(!stderr.contains("PRIVATE KEY"));
}

#[test]
fn m2m_demo_at_trace_prints_no_signed_jws_or_key() {
    let home = tempfile::tempdir().unwrap();
    let out = m2m(home.path())
        .args(["demo", "--bits", "2048"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("TRACE"), "trace logging is on");
    // The demo's key lives in a temporary directory that is gone; what can be checked is that no
    // key and nothing carrying a signature (assertion, access token) is printed: the demo shows
    // them decoded, signatures left out.
    for (name, text) in [("stderr", &stderr), ("stdout", &stdout)] {
        assert!(!text.contains("PRIVATE KEY"), "{name}");
        assert_eq!(jws_like(text), Vec::<String>::new(), "{name}");
    }
}
