//! Secret hygiene where a public key is expected: a JWKS carrying private members is refused by
//! `m2m clients add --jwks` (nothing written) and by `m2m serve` loading such a registry (it does
//! not start), and neither echoes the key material. (`m2m jwks` refusing it is in cli_jwks.rs;
//! the registry loader's own refusal in m2m-server's registry.rs; a `jwks_uri` serving one in
//! m2m-server's fault_jwks_uri.rs.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// RFC 7515 appendix A.3's P-256 key, private member `d` included.
const PRIVATE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#;
const D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";

fn m2m(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2m"));
    for (k, _) in std::env::vars() {
        if k.starts_with("M2M_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", dir).current_dir(dir);
    cmd
}

#[test]
fn clients_add_refuses_a_private_jwks_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaky.jwks.json"), PRIVATE_JWKS).unwrap();
    let out = m2m(dir.path())
        .args([
            "clients",
            "add",
            "--clients",
            "clients.toml",
            "--id",
            "leaky",
        ])
        .args(["--jwks", "leaky.jwks.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(stderr.contains("private"), "says why: {stderr}");
    assert!(
        !stderr.contains(&D[..12]),
        "never echoes key material: {stderr}"
    );
    let written = std::fs::read_to_string(dir.path().join("clients.toml")).unwrap_or_default();
    assert!(
        !written.contains(&D[..12]),
        "nothing private written: {written}"
    );
}

#[test]
fn serve_refuses_to_start_with_a_private_jwks_in_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaky.jwks.json"), PRIVATE_JWKS).unwrap();
    std::fs::write(
        dir.path().join("clients.toml"),
        "[[client]]\nid = \"leaky\"\njwks_file = \"leaky.jwks.json\"\nalgs = [\"ES256\"]\n",
    )
    .unwrap();
    let mut child = m2m(dir.path())
        .args([
            "serve",
            "--clients",
            "clients.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--replay-store", "memory", "--data-dir", "data"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: it must exit by itself; a server that started would run until killed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("m2m serve started with a private JWKS in its registry");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(stderr.contains("private"), "says why: {stderr}");
    assert!(
        stderr.contains("leaky"),
        "names the client or file: {stderr}"
    );
    assert!(
        !stderr.contains(&D[..12]),
        "never echoes key material: {stderr}"
    );
}
