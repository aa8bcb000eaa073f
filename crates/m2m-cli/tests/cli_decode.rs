//! `m2m decode`: JSON output with human times, and `--lint` findings on stderr with exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use support::{Sandbox, assert_fails, stderr, stdout};

fn assertion(sb: &Sandbox, extra: &[&str]) -> String {
    let pem = sb.path().join("keys/k1.pem");
    if !pem.exists() {
        sb.keygen("k1", &[]);
    }
    let mut args = vec![
        "assertion",
        "--client-id",
        "c",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
    ];
    args.extend(extra);
    let o = sb.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_owned()
}

#[test]
fn shows_header_claims_and_human_times() {
    let sb = Sandbox::new();
    let jwt = assertion(&sb, &["--env", "int"]);
    let o = sb.run(&["decode", &jwt]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["header"]["alg"], "RS512");
    assert_eq!(v["claims"]["iss"], "c");
    let exp = v["_times"]["exp"].as_str().unwrap();
    assert!(exp.ends_with("Z (in 1m)") || exp.contains("(in 5"), "{exp}");
    assert_eq!(v["_times"]["expired"], false);
    // From stdin too.
    let mut child = sb
        .cmd()
        .args(["decode", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{jwt}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("\"_times\""));
}

#[test]
fn lint_nhs_on_rs256_lists_the_alg_rule() {
    let sb = Sandbox::new();
    let jwt = assertion(&sb, &["--env", "int", "--alg", "RS256"]);
    let o = sb.run(&["decode", "--lint", "nhs", "--env", "int", &jwt]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\"RS256\""),
        "still prints the decoded token"
    );
    let err = stderr(&o);
    assert!(err.contains("alg"), "{err}");
    assert!(err.contains("RS512"), "{err}");
    // A good NHS assertion passes.
    let good = assertion(&sb, &["--env", "int"]);
    let o = sb.run(&["decode", "--lint", "nhs", "--env", "int", &good]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn not_a_jwt_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_fails(&sb.run(&["decode", "abc.def"]), 2, "malformed JWT");
}
