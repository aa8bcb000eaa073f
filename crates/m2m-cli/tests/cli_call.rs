//! `m2m call` end to end: the real binary against a real API on loopback that verifies every
//! token against the real `m2m serve` that issued it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::io::Write as _;
use std::process::{Output, Stdio};

use support::{Stack, closed_port, stderr, stdout};

fn call(stack: &Stack, args: &[&str]) -> Output {
    stack
        .sb
        .cmd()
        .arg("call")
        .args(args)
        .args(stack.token_flags())
        .output()
        .unwrap()
}

#[test]
fn call_status_and_exit_code_table() {
    let stack = Stack::start();
    let up = stack.upstream.url();
    // (arguments, exit code, stdout)
    let rows: [(&[&str], i32, &str); 6] = [
        (&[&format!("{up}/status/200")], 0, "status 200\n"),
        (&["GET", &format!("{up}/status/204")], 0, ""),
        (&["delete", &format!("{up}/status/404")], 6, "status 404\n"),
        (&[&format!("{up}/status/500")], 6, "status 500\n"),
        (&[&format!("{up}/status/302")], 6, "status 302\n"),
        (&["NOT A METHOD", &format!("{up}/status/200")], 2, ""),
    ];
    for (args, code, out) in rows {
        let o = call(&stack, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), out, "{args:?}");
        if code == 6 {
            assert!(
                stderr(&o).starts_with("error: the API answered"),
                "{}",
                stderr(&o)
            );
        }
    }
    // The token endpoint refuses the client: exit 5, and the API is never called.
    let requests_before = stack.upstream.seen.lock().unwrap().requests;
    let o = stack
        .sb
        .cmd()
        .args(["call", &format!("{up}/status/200")])
        .args(stack.token_flags().into_iter().map(|f| {
            if f == "svc" {
                "unregistered".to_owned()
            } else {
                f
            }
        }))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(
        stack.upstream.seen.lock().unwrap().requests,
        requests_before
    );
    // Transport failure: nothing listening.
    let o = call(&stack, &[&format!("http://127.0.0.1:{}/x", closed_port())]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    // Plain http to a non-loopback host would carry the token in clear text: usage error.
    let o = call(&stack, &["http://api.example/x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // -i: status line and headers on stderr, body alone on stdout.
    let o = call(&stack, &["-i", &format!("{up}/status/200")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "status 200\n");
    assert!(
        stderr(&o).starts_with("HTTP/1.1 200 OK\n"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("x-upstream: yes\n"), "{}", stderr(&o));
    // The file cache: one token for all these calls (plus the refused request).
    assert_eq!(stack.token_requests(), 2);
}

#[test]
fn call_body_from_stdin_file_or_text_and_headers() {
    let stack = Stack::start();
    let url = format!("{}/echo", stack.upstream.url());
    let mut child = stack
        .sb
        .cmd()
        .args(["call", "PUT", &url, "--data", "-"])
        .args(stack.token_flags())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from stdin");
    std::fs::write(stack.sb.path().join("body.json"), "{\"a\":1}").unwrap();
    let o = call(
        &stack,
        &[
            &url,
            "--data",
            "@body.json",
            "-H",
            "Content-Type: application/json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\"a\":1}");
    let o = call(
        &stack,
        &[&url, "-d", "text", "-H", "Authorization: Bearer spoofed"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "text");
    let seen = stack.upstream.seen.lock().unwrap();
    assert!(!seen.authorizations.iter().any(|a| a.contains("spoofed")));
}

#[test]
fn call_invalid_token_drops_the_cached_token_and_retries_once() {
    let stack = Stack::start();
    let url = format!("{}/reject-first", stack.upstream.url());
    let o = call(&stack, &[&url, "--data", "payload"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "payload");
    assert_eq!(stack.token_requests(), 2);
    // The replacement was cached: the next call needs no token request.
    let o = call(&stack, &[&url, "--data", "again"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stack.token_requests(), 2);
    assert_eq!(stack.upstream.seen.lock().unwrap().authorizations.len(), 3);
}
