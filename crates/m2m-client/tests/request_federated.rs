//! Federated workload credentials against the testkit's verifying token endpoint on 127.0.0.1:
//! the JWT a test wrote arrives byte for byte, as the client assertion or as the jwt-bearer
//! grant; a file is re-read for every request; the GitHub Actions source asks a loopback fake
//! of the Actions service with the bearer and the audience; failures are specific and token-free.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use m2m_client::assertion_source::{CommandSource, EnvSource, FileSource, GithubActionsSource};
use m2m_client::{AssertionSource, AssertionSourceError, ClientAuth, Error, TokenClient};
use m2m_testkit::actions_token::ActionsTokenService;
use m2m_testkit::token_endpoint::{FederatedForm, TokenEndpoint};

const CLIENT_ID: &str = "workload-1";
/// Shaped like a Kubernetes service-account token (three base64url parts); the endpoint compares
/// bytes, it does not verify it.
const JWT_A: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOndvcmtlciJ9.c2lnbmF0dXJlLWE";
const JWT_B: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOndvcmtlciIsImp0aSI6ImIifQ.c2lnbmF0dXJlLWI";

fn client(endpoint: &TokenEndpoint, auth: ClientAuth) -> TokenClient {
    TokenClient::builder()
        .token_url(endpoint.url())
        .client_auth(auth)
        .retry_policy(m2m_client::RetryPolicy::default().max_attempts(1))
        .build()
        .unwrap()
}

fn grant(source: impl AssertionSource + 'static) -> ClientAuth {
    ClientAuth::JwtBearerGrant {
        client_id: None,
        source: Arc::new(source),
    }
}

#[tokio::test]
async fn file_is_reread_for_every_request_as_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{JWT_A}\n")).unwrap();
    let endpoint = TokenEndpoint::builder(CLIENT_ID)
        .federated(FederatedForm::Grant)
        .start()
        .await;
    endpoint.expect_assertion(JWT_A);
    let client = client(&endpoint, grant(FileSource::new(&path)));
    assert_eq!(
        client.fetch().await.unwrap().access_token().secret(),
        "token-1"
    );
    // Kubernetes rotates the projected token: the next request must carry the new one.
    std::fs::write(&path, JWT_B).unwrap();
    endpoint.expect_assertion(JWT_B);
    assert_eq!(
        client.fetch().await.unwrap().access_token().secret(),
        "token-2"
    );
    endpoint.assert_all_valid();
    let seen = endpoint.seen();
    assert_eq!(seen[0].field("assertion"), Some(JWT_A));
    assert_eq!(seen[1].field("assertion"), Some(JWT_B));
    let names: Vec<&str> = seen[1].form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["grant_type", "assertion"]);
    assert_eq!(
        seen[1].field("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
}

#[tokio::test]
async fn client_assertion_form_on_the_wire() {
    let endpoint = TokenEndpoint::builder(CLIENT_ID)
        .federated(FederatedForm::ClientAssertion)
        .start()
        .await;
    endpoint.expect_assertion(JWT_A);
    // (The environment source's success case runs in the CLI tests: a child process gets its own
    // environment, and this crate forbids the unsafe set_var.)
    let source = CommandSource::new(format!("printf '%s\\n' '{JWT_A}'"));
    let client = client(
        &endpoint,
        ClientAuth::FederatedAssertion {
            client_id: Some(CLIENT_ID.to_owned()),
            source: Arc::new(source),
        },
    );
    client.fetch().await.unwrap();
    endpoint.assert_all_valid();
    let seen = &endpoint.seen()[0];
    let names: Vec<&str> = seen.form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "grant_type",
            "client_assertion_type",
            "client_assertion",
            "client_id"
        ]
    );
    assert_eq!(seen.field("grant_type"), Some("client_credentials"));
    assert_eq!(seen.field("client_assertion"), Some(JWT_A));
    assert_eq!(client.client_auth().method_name(), "private_key_jwt");
}

#[tokio::test]
async fn a_grant_sent_where_a_client_assertion_is_expected_is_refused() {
    let endpoint = TokenEndpoint::builder(CLIENT_ID)
        .federated(FederatedForm::ClientAssertion)
        .start()
        .await;
    endpoint.expect_assertion(JWT_A);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    std::fs::write(&path, JWT_A).unwrap();
    let e = client(&endpoint, grant(FileSource::new(&path)))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(!e.to_string().contains(JWT_A));
}

#[tokio::test]
async fn github_actions_source_asks_with_bearer_and_audience() {
    let audience = "https://auth.example.com";
    let actions = ActionsTokenService::start("request-token-1", audience, JWT_A);
    let endpoint = TokenEndpoint::builder(CLIENT_ID)
        .federated(FederatedForm::Grant)
        .start()
        .await;
    endpoint.expect_assertion(JWT_A);
    let source =
        GithubActionsSource::new(&actions.request_url(), "request-token-1", audience).unwrap();
    client(&endpoint, grant(source)).fetch().await.unwrap();
    endpoint.assert_all_valid();
    let seen = actions.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].audiences, [audience]);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("bearer request-token-1")
    );

    // A wrong request token: refused by the service, reported without the token.
    let source = GithubActionsSource::new(&actions.request_url(), "wrong-token", audience).unwrap();
    let e = client(&endpoint, grant(source)).fetch().await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains("wrong-token"), "{text}");
    // A wrong audience: the service says 400.
    let source =
        GithubActionsSource::new(&actions.request_url(), "request-token-1", "other").unwrap();
    let e = client(&endpoint, grant(source)).fetch().await.unwrap_err();
    assert!(e.to_string().contains("HTTP 400"), "{e}");
    assert_eq!(
        endpoint.requests(),
        1,
        "failures never reach the token endpoint"
    );
}

#[tokio::test]
async fn source_errors_are_specific_and_token_free() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n  \n").unwrap();
    let html = dir.path().join("html");
    std::fs::write(&html, "<html>not a token</html>").unwrap();
    let cases: Vec<(Arc<dyn AssertionSource>, &str)> = vec![
        (
            Arc::new(FileSource::new(&missing)),
            "cannot read the assertion file",
        ),
        (Arc::new(FileSource::new(&empty)), "is empty"),
        (Arc::new(FileSource::new(&html)), "is not a JWT"),
        (
            Arc::new(CommandSource::new(format!(
                "echo {JWT_A}; echo 'agent unavailable' >&2; exit 1"
            ))),
            "the assertion command failed (exit status: 1): agent unavailable",
        ),
        (
            Arc::new(CommandSource::new("sleep 30").timeout(Duration::from_millis(300))),
            "did not finish within 0.3 s and was killed",
        ),
        (
            Arc::new(EnvSource::new("M2M_TEST_FEDERATED_UNSET_VARIABLE")),
            "M2M_TEST_FEDERATED_UNSET_VARIABLE holding the assertion is not set",
        ),
    ];
    let endpoint = TokenEndpoint::builder(CLIENT_ID)
        .federated(FederatedForm::Grant)
        .start()
        .await;
    for (source, wanted) in cases {
        let started = std::time::Instant::now();
        let e = client(
            &endpoint,
            ClientAuth::JwtBearerGrant {
                client_id: None,
                source,
            },
        )
        .fetch()
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(e, Error::AssertionSource(_)), "{e:?}");
        let text = format!("{e} {e:?}");
        assert!(text.contains(wanted), "{wanted}: {text}");
        assert!(!text.contains("eyJ"), "{text}");
    }
    assert_eq!(endpoint.requests(), 0);
    let e = AssertionSourceError::Empty {
        origin: "x".to_owned(),
    };
    assert_eq!(e.to_string(), "the assertion from x is empty");
}
