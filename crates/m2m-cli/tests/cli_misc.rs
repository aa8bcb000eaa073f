//! Completions, man page, help texts and the demo.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use support::{Sandbox, stderr, stdout};

#[test]
fn completions_and_man_are_generated() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let o = sb.run(&["completions", shell]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("keygen"),
            "{shell} completions mention commands"
        );
    }
    let o = sb.run(&["man"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains(".TH m2m"));
}

#[test]
fn help_documents_examples_and_exit_codes() {
    let sb = Sandbox::new();
    let top = stdout(&sb.run(&["--help"]));
    assert!(
        top.contains("Exit codes:") && top.contains("5  rejected"),
        "{top}"
    );
    for cmd in [
        "keygen",
        "assertion",
        "token",
        "decode",
        "verify",
        "jwks",
        "serve",
        "demo",
        "completions",
    ] {
        let help = stdout(&sb.run(&[cmd, "--help"]));
        assert!(help.contains("Examples:"), "{cmd} --help has examples");
    }
    let usage = sb.run(&["token", "--bogus"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn demo_runs_end_to_end() {
    let sb = Sandbox::new();
    let o = sb.run(&["demo", "--bits", "2048"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("the same token, from the cache"), "{out}");
    assert!(out.contains("replay HTTP 401"), "{out}");
    assert!(out.contains("\"typ\": \"at+jwt\""), "{out}");
    // Step 8: the protected API (m2m-resource's layer) with, without, and with a foreign token.
    assert!(
        out.contains("with a token for it") && out.contains("HTTP 200 \"hello demo-client"),
        "{out}"
    );
    assert!(
        out.contains("without a token: HTTP 401, WWW-Authenticate: Bearer resource_metadata="),
        "{out}"
    );
    assert!(
        out.contains("another audience): HTTP 401") && out.contains("error=\"invalid_token\""),
        "{out}"
    );
}
