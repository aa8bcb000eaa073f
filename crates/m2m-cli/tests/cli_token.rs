//! `m2m token` against a real token endpoint on 127.0.0.1 that verifies the assertion: output
//! formats, NHS-style answers, and each failure with its exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::path::PathBuf;

use std::time::Duration;
use support::{
    Reply, Sandbox, TokenEndpoint, assert_fails, closed_port, endpoint, nhs_alg_error, stderr,
    stdout,
};

const CLIENT: &str = "client-1";

struct Setup {
    sb: Sandbox,
    pem: PathBuf,
    endpoint: TokenEndpoint,
}

fn setup(reply: Reply) -> Setup {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    let endpoint = endpoint(reply, &jwks, CLIENT);
    Setup { sb, pem, endpoint }
}

impl Setup {
    fn token(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "token",
            "--token-url",
            self.endpoint.url(),
            "--client-id",
            CLIENT,
            "--key",
            self.pem.to_str().unwrap(),
            "--kid",
            "k1",
            "--attempts",
            "1",
            "--no-cache",
        ];
        args.extend(extra);
        self.sb.run(&args)
    }
}

#[test]
fn prints_the_token_json_or_header() {
    let s = setup(Reply::token());
    let o = s.token(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "token-1\n");
    let o = s.token(&["--header"]);
    assert_eq!(stdout(&o), "Authorization: Bearer token-2\n");
    let o = s.token(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["access_token"], "token-3");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(s.endpoint.requests(), 3);
}

#[test]
fn nhs_style_success_with_string_expires_in() {
    let s = setup(Reply::nhs_token());
    let o = s.token(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["access_token"], "nhs-token-1");
    assert_eq!(v["expires_in"], 599);
    assert!(v["issued_at"].is_string());
}

#[test]
fn nhs_error_body_with_hint_exits_5() {
    let s = setup(nhs_alg_error());
    let err = assert_fails(&s.token(&[]), 5, "HTTP 400 invalid_request");
    assert!(
        err.contains("must be 'RS512'"),
        "verbatim description: {err}"
    );
    assert!(err.contains("rrt-123-test"), "message_id: {err}");
    assert!(err.contains("\nhint: "), "hint line: {err}");
}

#[test]
fn html_answer_exits_4() {
    let s = setup(Reply::text(
        200,
        "text/html",
        "<html><body>Sign in</body></html>",
    ));
    let err = assert_fails(&s.token(&[]), 4, "not an OAuth JSON response");
    assert!(err.contains("text/html"), "{err}");
}

#[test]
fn invalid_json_exits_4() {
    let s = setup(Reply::json(200, "{\"access_token\": "));
    assert_fails(&s.token(&[]), 4, "not an OAuth JSON response");
}

#[test]
fn success_without_access_token_exits_4() {
    let s = setup(Reply::json(200, r#"{"token_type": "Bearer"}"#));
    let err = assert_fails(&s.token(&[]), 4, "without an access_token");
    assert!(
        err.contains("token_type"),
        "names the members present: {err}"
    );
}

#[test]
fn rejected_assertion_exits_5() {
    // The endpoint verifies: an assertion for another client id is refused.
    let s = setup(Reply::token());
    let o = s.sb.run(&[
        "token",
        "--token-url",
        s.endpoint.url(),
        "--client-id",
        "someone-else",
        "--key",
        s.pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--attempts",
        "1",
        "--no-cache",
    ]);
    assert_fails(&o, 5, "invalid_client");
}

#[test]
fn connection_refused_exits_4() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("k1", &[]);
    let url = format!("http://127.0.0.1:{}/oauth2/token", closed_port());
    let o = sb.run(&[
        "token",
        "--token-url",
        &url,
        "--client-id",
        CLIENT,
        "--key",
        pem.to_str().unwrap(),
        "--attempts",
        "1",
        "--no-cache",
    ]);
    assert_fails(&o, 4, "127.0.0.1");
}

#[test]
fn timeout_exits_4_with_hint() {
    let s = setup(Reply::token().delay(Duration::from_secs(30)));
    let err = assert_fails(&s.token(&["--timeout", "1"]), 4, "time");
    assert!(err.contains("--timeout"), "{err}");
}

#[test]
fn plain_http_to_remote_host_is_refused_before_sending() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("k1", &[]);
    let o = sb.run(&[
        "token",
        "--token-url",
        "http://auth.example.org/token",
        "--client-id",
        CLIENT,
        "--key",
        pem.to_str().unwrap(),
    ]);
    assert_fails(&o, 3, "plain http");
    let o = sb.run(&[
        "token",
        "--token-url",
        "ht!tp://x",
        "--client-id",
        CLIENT,
        "--key",
        pem.to_str().unwrap(),
    ]);
    assert_fails(&o, 3, "not a valid URL");
}

#[test]
fn file_cache_saves_the_second_request() {
    let s = setup(Reply::token());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "token",
            "--token-url",
            s.endpoint.url(),
            "--client-id",
            CLIENT,
            "--key",
            s.pem.to_str().unwrap(),
            "--kid",
            "k1",
            "--attempts",
            "1",
        ];
        args.extend(extra);
        let o = s.sb.run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(run(&[]), "token-1\n");
    assert_eq!(run(&[]), "token-1\n", "second run answered from the cache");
    assert_eq!(s.endpoint.requests(), 1, "the endpoint saw one request");
    // The cache file: 0600, holds the token but no key material.
    let dir = s.sb.path().join("cache/m2m");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !text.contains("PRIVATE") && !text.contains("\"d\""),
        "{text}"
    );
    // Another scope is another cache entry.
    assert_eq!(run(&["--scope", "read"]), "token-2\n");
    // --no-cache: two more requests.
    assert_eq!(run(&["--no-cache"]), "token-3\n");
    assert_eq!(run(&["--no-cache"]), "token-4\n");
    assert_eq!(s.endpoint.requests(), 4);
    // `m2m cache clear` empties it: the next run fetches again.
    let o = s.sb.run(&["cache", "clear"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run(&[]), "token-5\n");
}
