//! Federated workload credentials through the real `m2m` binary against the testkit's verifying
//! token endpoint (which compares the presented JWT byte for byte with what the test wrote):
//! `--assertion-file` re-read between calls (with and without the cache), `--assertion-cmd`
//! killed at its timeout, `--assertion-env`, `--assertion-github` against a loopback fake of the
//! Actions service, the client-assertion and grant forms, profiles, clap's conflicts, `m2m call`
//! and `m2m introspect` with the same flags, and errors that are specific and never contain the
//! JWT.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use m2m_testkit::actions_token::ActionsTokenService;
use m2m_testkit::token_endpoint::{FederatedForm, Reply, TokenEndpoint};
use serde_json::json;
use support::{Sandbox, assert_fails, stderr, stdout};

/// Shaped like a Kubernetes projected service-account token.
const JWT_A: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOndvcmtlciJ9.c2lnbmF0dXJlLWE";
/// The same token after Kubernetes rotated it.
const JWT_B: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOndvcmtlciIsImp0aSI6ImIifQ.c2lnbmF0dXJlLWI";

const CLIENT_ID: &str = "workload-1";

fn endpoint(form: FederatedForm, reply: Reply) -> TokenEndpoint {
    TokenEndpoint::builder(CLIENT_ID)
        .federated(form)
        .replies([reply])
        .start_in_background()
}

fn write(sb: &Sandbox, name: &str, text: &str) -> PathBuf {
    let path = sb.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `m2m token` with `args`, the client secret variable removed (it would conflict).
fn token(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd()
        .arg("token")
        .args(args)
        .env_remove("M2M_CLIENT_SECRET")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "m2m failed: {}", stderr(o));
    stdout(o).trim().to_owned()
}

#[test]
fn assertion_file_as_the_grant_is_reread_for_every_request() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    let file = write(&sb, "token", &format!("{JWT_A}\n"));
    let args = [
        "--token-url",
        ep.url(),
        "--assertion-file",
        file.to_str().unwrap(),
        "--grant",
        "jwt-bearer",
        "--no-cache",
    ];
    ep.expect_assertion(JWT_A);
    assert_eq!(ok(&token(&sb, &args)), "token-1");
    write(&sb, "token", JWT_B);
    ep.expect_assertion(JWT_B);
    assert_eq!(ok(&token(&sb, &args)), "token-2");
    ep.assert_all_valid();
    let seen = ep.seen();
    assert_eq!(seen[0].field("assertion"), Some(JWT_A));
    assert_eq!(seen[1].field("assertion"), Some(JWT_B));
    let names: Vec<&str> = seen[1].form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["grant_type", "assertion"],
        "no client_id unless given"
    );
}

#[test]
fn with_the_cache_the_file_is_read_again_once_the_access_token_expired() {
    let sb = Sandbox::new();
    // A 1 s access token: usable for half of it, then the next call must fetch again.
    let ep = endpoint(
        FederatedForm::Grant,
        Reply::token().expires_in(Some(json!(1))),
    );
    let file = write(&sb, "token", JWT_A);
    let args = [
        "--token-url",
        ep.url(),
        "--assertion-file",
        file.to_str().unwrap(),
        "--grant",
        "jwt-bearer",
    ];
    ep.expect_assertion(JWT_A);
    assert_eq!(ok(&token(&sb, &args)), "token-1");
    std::thread::sleep(Duration::from_millis(1100));
    write(&sb, "token", JWT_B);
    ep.expect_assertion(JWT_B);
    assert_eq!(ok(&token(&sb, &args)), "token-2");
    ep.assert_all_valid();
    assert_eq!(ep.requests(), 2);
}

#[test]
fn cache_is_keyed_by_the_source_and_governed_by_the_access_token() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    ep.expect_assertion(JWT_A);
    let a = write(&sb, "a", JWT_A);
    let b = write(&sb, "b", JWT_A);
    let run = |file: &PathBuf| {
        ok(&token(
            &sb,
            &[
                "--token-url",
                ep.url(),
                "--assertion-file",
                file.to_str().unwrap(),
                "--grant",
                "jwt-bearer",
            ],
        ))
    };
    assert_eq!(run(&a), "token-1");
    // The same source again: the cached access token (its expires_in governs, not the file).
    write(&sb, "a", JWT_B);
    assert_eq!(run(&a), "token-1");
    // Another source (another workload's file): never the first one's token.
    assert_eq!(run(&b), "token-2");
    assert_eq!(ep.requests(), 2);
    // No cache file holds the assertion.
    for entry in std::fs::read_dir(sb.path().join("cache/m2m")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(!text.contains("eyJ"), "{text}");
    }
}

#[test]
fn hanging_assertion_command_is_killed_at_its_timeout() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    let started = Instant::now();
    let o = token(
        &sb,
        &[
            "--token-url",
            ep.url(),
            "--assertion-cmd",
            "sleep 60",
            "--assertion-timeout",
            "1",
            "--grant",
            "jwt-bearer",
        ],
    );
    let elapsed = started.elapsed();
    let err = assert_fails(&o, 3, "did not finish within 1 s and was killed");
    assert!(err.contains("--assertion-timeout"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(ep.requests(), 0);
}

#[test]
fn assertion_command_output_is_the_client_assertion() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::ClientAssertion, Reply::token());
    ep.expect_assertion(JWT_A);
    write(&sb, "svid", &format!("  {JWT_A}  \n"));
    let out = ok(&token(
        &sb,
        &[
            "--token-url",
            ep.url(),
            "--client-id",
            CLIENT_ID,
            "--assertion-cmd",
            "cat svid",
            "--no-cache",
        ],
    ));
    assert_eq!(out, "token-1");
    ep.assert_all_valid();
    let seen = &ep.seen()[0];
    assert_eq!(seen.field("grant_type"), Some("client_credentials"));
    assert_eq!(
        seen.field("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(seen.field("client_assertion"), Some(JWT_A));
    assert_eq!(seen.field("client_id"), Some(CLIENT_ID));
    assert_eq!(seen.field("assertion"), None);
}

#[test]
fn assertion_env_source() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    ep.expect_assertion(JWT_B);
    let o = sb
        .cmd()
        .args([
            "token",
            "--token-url",
            ep.url(),
            "--assertion-env",
            "WORKLOAD_JWT",
            "--grant",
            "jwt-bearer",
            "--client-id",
            CLIENT_ID,
            "--no-cache",
        ])
        .env_remove("M2M_CLIENT_SECRET")
        .env("WORKLOAD_JWT", JWT_B)
        .output()
        .unwrap();
    assert_eq!(ok(&o), "token-1");
    ep.assert_all_valid();
    assert_eq!(ep.seen()[0].field("client_id"), Some(CLIENT_ID));
    let o = token(
        &sb,
        &[
            "--token-url",
            ep.url(),
            "--assertion-env",
            "M2M_TEST_UNSET_VARIABLE",
        ],
    );
    assert_fails(
        &o,
        3,
        "M2M_TEST_UNSET_VARIABLE holding the assertion is not set",
    );
}

#[test]
fn github_actions_source_asks_for_the_token_endpoints_audience() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    ep.expect_assertion(JWT_A);
    // No --aud and no issuer: the aud rule gives the token URL.
    let actions = ActionsTokenService::start("req-token-1", ep.url(), JWT_A);
    let run = |extra: &[&str]| {
        sb.cmd()
            .arg("token")
            .args(["--token-url", ep.url(), "--assertion-github"])
            .args(["--grant", "jwt-bearer", "--no-cache"])
            .args(extra)
            .env_remove("M2M_CLIENT_SECRET")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", actions.request_url())
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "req-token-1")
            .output()
            .unwrap()
    };
    assert_eq!(ok(&run(&[])), "token-1");
    ep.assert_all_valid();
    let seen = actions.seen();
    assert_eq!(seen[0].audiences, [ep.url()]);
    assert_eq!(seen[0].authorization.as_deref(), Some("bearer req-token-1"));
    // Another audience asked for: the fake refuses it (400), and nothing reaches the endpoint.
    let o = run(&["--assertion-audience", "api://elsewhere"]);
    let err = assert_fails(&o, 3, "GitHub Actions ID-token request failed: HTTP 400");
    assert!(!err.contains("req-token-1"), "{err}");
    assert_eq!(actions.seen()[1].audiences, ["api://elsewhere"]);
    assert_eq!(ep.requests(), 1);
    // Outside GitHub Actions: said before anything is sent.
    let o = token(
        &sb,
        &["--token-url", ep.url(), "--assertion-github", "--no-cache"],
    );
    assert_fails(&o, 3, "ACTIONS_ID_TOKEN_REQUEST_URL is not set");
}

#[test]
fn profile_gives_the_source_and_the_grant() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    ep.expect_assertion(JWT_A);
    let file = write(&sb, "token", JWT_A);
    std::fs::create_dir_all(sb.path().join("config/m2m")).unwrap();
    write(
        &sb,
        "config/m2m/config.toml",
        &format!(
            "[profiles.k8s]\ntoken_url = \"{}\"\nassertion_file = \"{}\"\ngrant = \"jwt-bearer\"\n",
            ep.url(),
            file.display()
        ),
    );
    assert_eq!(
        ok(&token(&sb, &["--profile", "k8s", "--no-cache"])),
        "token-1"
    );
    ep.assert_all_valid();
}

#[test]
fn source_errors_are_specific_and_never_show_the_jwt() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    write(&sb, "empty", " \n");
    write(&sb, "html", "<html>proxy error</html>");
    let missing = sb.path().join("missing");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--assertion-file", missing.to_str().unwrap()],
            "cannot read the assertion file",
        ),
        (&["--assertion-file", "empty"], "is empty"),
        (&["--assertion-file", "html"], "is not a JWT"),
        (
            &[
                "--assertion-cmd",
                &format!("echo {JWT_A}; echo 'spire-agent: no socket' >&2; exit 1"),
            ],
            "the assertion command failed (exit status: 1): spire-agent: no socket",
        ),
    ];
    for (source, wanted) in cases {
        let mut args = vec!["--token-url", ep.url(), "--grant", "jwt-bearer"];
        args.extend(source);
        let o = token(&sb, &args);
        let err = assert_fails(&o, 3, wanted);
        assert!(!err.contains("eyJ"), "{err}");
    }
    assert_eq!(ep.requests(), 0);
}

#[test]
fn clap_refuses_a_key_or_secret_beside_an_assertion_source() {
    let sb = Sandbox::new();
    let base = ["--token-url", "http://127.0.0.1:9/token"];
    for extra in [
        &["--assertion-file", "t", "--key", "k.pem"][..],
        &["--assertion-cmd", "x", "--client-secret-file", "s"],
        &["--assertion-env", "V", "--client-secret-stdin"],
        &["--assertion-file", "t", "--assertion-env", "V"],
        &["--assertion-timeout", "3", "--assertion-file", "t"],
    ] {
        let o = token(&sb, &[&base[..], extra].concat());
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("cannot be used with") || err.contains("applies to --assertion-cmd only"),
            "{extra:?}: {err}"
        );
    }
    let o = token(&sb, &[&base[..], &["--grant", "jwt-bearer"]].concat());
    assert_fails(&o, 2, "--grant jwt-bearer needs the workload's JWT");
}

#[test]
fn introspection_takes_the_federated_client_assertion_but_not_the_grant() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::ClientAssertion, Reply::token());
    ep.serve(
        "/introspect",
        Reply::json(200, json!({"active": false}).to_string()),
    );
    let file = write(&sb, "token", JWT_A);
    let introspection_url = format!("{}/introspect", ep.base());
    let args = [
        "introspect",
        "some-token",
        "--token-url",
        ep.url(),
        "--introspection-url",
        &introspection_url,
        "--assertion-file",
        file.to_str().unwrap(),
    ];
    let o = sb
        .cmd()
        .args(args)
        .env_remove("M2M_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(
        o.status.code() != Some(2) && o.status.code() != Some(3),
        "{}",
        stderr(&o)
    );
    assert_eq!(ep.hits("/introspect"), 1);
    let o = sb
        .cmd()
        .args(args)
        .args(["--grant", "jwt-bearer"])
        .env_remove("M2M_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_fails(&o, 2, "introspection needs client authentication");
    assert_eq!(ep.hits("/introspect"), 1);
}

#[test]
fn m2m_call_takes_the_same_flags() {
    let sb = Sandbox::new();
    let ep = endpoint(FederatedForm::Grant, Reply::token());
    ep.expect_assertion(JWT_A);
    let api = support::upstream::start_open();
    let file = write(&sb, "token", JWT_A);
    let o = sb
        .cmd()
        .args(["call", &format!("{}/headers", api.url())])
        .args(["--token-url", ep.url(), "--grant", "jwt-bearer"])
        .args(["--assertion-file", file.to_str().unwrap(), "--no-cache"])
        .env_remove("M2M_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    ep.assert_all_valid();
    assert_eq!(api.seen.lock().unwrap().authorizations, ["Bearer token-1"]);
}

#[test]
fn m2m_assertion_says_a_federated_jwt_is_not_signed_here() {
    let sb = Sandbox::new();
    let o = sb
        .cmd()
        .args(["assertion", "--token-url", "http://127.0.0.1:9/token"])
        .args(["--assertion-file", "token"])
        .env_remove("M2M_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_fails(
        &o,
        2,
        "a federated JWT (--assertion-*) is sent as its source gives it",
    );
}
