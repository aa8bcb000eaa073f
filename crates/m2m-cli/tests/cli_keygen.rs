//! `m2m keygen`: file modes, no overwrite, public-only JWKS, defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use support::{Sandbox, assert_fails, stderr};

#[test]
fn writes_private_key_0600_and_public_jwks() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode");
    }
    let pem_text = std::fs::read_to_string(&pem).unwrap();
    assert!(
        pem_text.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
    let key = &doc["keys"][0];
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["kid"], "k1");
    assert_eq!(key["alg"], "RS512");
    assert_eq!(key["use"], "sig");
    assert!(key["n"].is_string() && key["e"].is_string());
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
        assert!(key.get(private).is_none(), "JWKS must not carry {private}");
    }
}

#[test]
fn refuses_to_overwrite_either_file() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    let before = std::fs::read(&pem).unwrap();
    let o = sb.run(&["keygen", "--kid", "k1", "--bits", "2048", "--out", "keys"]);
    assert_fails(&o, 3, "already exists");
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        before,
        "private key untouched"
    );
    // Only the JWKS present: still refused, and no stray private key is left behind.
    std::fs::remove_file(&pem).unwrap();
    let o = sb.run(&["keygen", "--kid", "k1", "--bits", "2048", "--out", "keys"]);
    assert_fails(&o, 3, "k1.jwks.json already exists");
    assert!(!pem.exists());
    assert!(jwks.exists());
}

#[test]
fn ec_key_with_thumbprint_kid() {
    let sb = Sandbox::new();
    let o = sb.run(&["keygen", "--alg", "ES256", "--out", "keys"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "keygen reports on stderr only");
    let files: Vec<String> = std::fs::read_dir(sb.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let jwks_name = files
        .iter()
        .find(|f| f.ends_with(".jwks.json"))
        .expect("jwks written");
    let kid = jwks_name.trim_end_matches(".jwks.json");
    assert_eq!(kid.len(), 43, "RFC 7638 SHA-256 thumbprint, base64url");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.path().join("keys").join(jwks_name)).unwrap())
            .unwrap();
    assert_eq!(doc["keys"][0]["kid"], kid);
    assert_eq!(doc["keys"][0]["crv"], "P-256");
    assert_eq!(doc["keys"][0]["alg"], "ES256");
    assert!(doc["keys"][0].get("d").is_none());
    assert!(stderr(&o).contains("next: register"), "tells the next step");
}

#[test]
fn bad_kid_and_bits_are_usage_errors() {
    let sb = Sandbox::new();
    assert_fails(
        &sb.run(&["keygen", "--kid", "../evil", "--out", "keys"]),
        2,
        "file name",
    );
    let o = sb.run(&["keygen", "--kid", "x", "--bits", "1024", "--out", "keys"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
