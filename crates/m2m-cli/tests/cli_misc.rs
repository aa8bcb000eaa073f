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
    // Each step shows the command that does it by hand.
    for command in [
        "$ m2m keygen --kid demo-1",
        "$ m2m clients add --clients clients.toml",
        "$ m2m serve --clients clients.toml",
        "$ m2m token --issuer http://127.0.0.1:",
    ] {
        assert!(out.contains(command), "no {command:?} in {out}");
    }
    let lines: Vec<&str> = out.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(char::is_numeric) {
            let next = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                next.starts_with("   $ "),
                "step without its command: {line}"
            );
        }
    }
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

#[test]
fn demo_with_the_nhs_profile_runs_against_the_emulation() {
    let sb = Sandbox::new();
    let o = sb.run(&["demo", "--bits", "2048", "--profile", "nhs"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("$ m2m serve --profile nhs"), "{out}");
    assert!(out.contains("\"alg\": \"RS512\""), "{out}");
    assert!(out.contains("\"typ\": \"JWT\""), "{out}");
    assert!(out.contains("/oauth2/token\","), "aud = token URL: {out}");
    assert!(out.contains("\"expires_in\":\"599\""), "{out}");
    assert!(
        out.contains(
            "replay HTTP 400 invalid_request: \"Non-unique 'jti' claim in client_assertion JWT\""
        ),
        "{out}"
    );
    assert!(out.contains("message_id rrt-"), "{out}");
}
