//! `m2m jwks`: merging for rotation, refusing private members and duplicate kids; and
//! `m2m jwks check` against a local server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use support::{Reply, Sandbox, assert_fails, endpoint, stderr, stdout};

#[test]
fn merges_new_and_old_keys_from_jwks_and_pem() {
    let sb = Sandbox::new();
    let (_, old_jwks) = sb.keygen("old", &[]);
    let (new_pem, _) = sb.keygen("new", &["--alg", "ES256"]);
    let o = sb.run(&[
        "jwks",
        "--kid",
        "new",
        new_pem.to_str().unwrap(),
        old_jwks.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], "new", "new key first");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[1]["kid"], "old");
    for k in keys {
        assert!(
            k.get("d").is_none(),
            "private PEM contributes only its public half"
        );
    }
}

#[test]
fn refuses_private_members_and_duplicate_kids() {
    let sb = Sandbox::new();
    let private = sb.path().join("private.jwk.json");
    std::fs::write(
        &private,
        r#"{"kty":"EC","crv":"P-256","kid":"a",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
    )
    .unwrap();
    let err = assert_fails(
        &sb.run(&["jwks", private.to_str().unwrap()]),
        3,
        "private key members (d)",
    );
    assert!(!err.contains("jpsQnnGQ"), "never echoes key material");
    let (_, jwks) = sb.keygen("k1", &[]);
    assert_fails(
        &sb.run(&["jwks", jwks.to_str().unwrap(), jwks.to_str().unwrap()]),
        3,
        "duplicate kid \"k1\"",
    );
}

#[test]
fn check_reports_a_good_and_a_bad_hosted_jwks() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    let good = endpoint(Reply::token(), &jwks, "c");
    good.serve(
        "/jwks.json",
        Reply::json(200, std::fs::read_to_string(&jwks).unwrap()),
    );
    let o = sb.run(&[
        "jwks",
        "check",
        &format!("http://{}/jwks.json", good.addr()),
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let report = stdout(&o);
    assert!(report.contains("ok      HTTP 200"), "{report}");
    assert!(
        report.contains("RSA-2048: NHS requires 4096"),
        "warns on small RSA: {report}"
    );

    let o = sb.run(&["jwks", "check", &format!("http://{}/missing", good.addr())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("HTTP 404"), "{}", stdout(&o));

    let o = sb.run(&["jwks", "check", "http://jwks.example.org/jwks.json"]);
    assert_fails(&o, 3, "plain http");
}
