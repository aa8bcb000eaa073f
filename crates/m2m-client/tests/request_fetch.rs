//! The token request against a real, verifying token endpoint on 127.0.0.1: success shapes,
//! every retry rule, broken bodies, NHS error bodies with hints, transport failures, redirects
//! and the URL and profile rules.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use m2m_client::{
    ConfigError, Error, ErrorResponse, Hint, Profile, RetryPolicy, TokenClient, TransportKind,
};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::Audience;
use m2m_core::nhs::Environment;
use support::request::{CLIENT_ID, ClientFor, Reply, dead_port_url, nhs_ok, signer, start};

fn body_of(e: &Error) -> String {
    format!("{e} {e:?}")
}

#[tokio::test]
async fn nhs_style_success_with_string_numbers() {
    let server = start(vec![nhs_ok()]).await;
    let client = server.client().profile(Profile::Nhs).build().unwrap();
    let token = client.fetch().await.unwrap();
    assert_eq!(token.access_token().secret(), "nhs-access-token-1");
    assert_eq!(token.expires_in(), Some(Duration::from_secs(599)));
    assert!(token.issued_at_millis().unwrap() > 1_600_000_000_000);
    assert!(token.is_bearer());
    assert_eq!(server.requests(), 1);
    server.assert_all_valid();
    let seen = &server.seen()[0];
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.alg.as_deref(), Some("RS512"));
    assert_eq!(seen.typ.as_deref(), Some("JWT"));
    let names: Vec<&str> = seen.form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["grant_type", "client_assertion_type", "client_assertion"]
    );
}

#[tokio::test]
async fn rfc_success_with_number_and_optional_params() {
    let server = start(vec![Reply::json(
        200,
        r#"{"access_token":"rfc-token","token_type":"bearer","expires_in":3600,"scope":"read write","ext":true}"#,
    )])
    .await;
    let client = server
        .client()
        .scope("read write")
        .resource("https://api.example.com")
        .audience_param("https://api.example.com/")
        .extra_param("tenant", "t 1&2")
        .build()
        .unwrap();
    let token = client.fetch().await.unwrap();
    assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    assert!(token.token_type_is("Bearer"));
    assert_eq!(token.scope(), Some("read write"));
    assert_eq!(
        token.extra().get("ext"),
        Some(&serde_json::Value::Bool(true))
    );
    server.assert_all_valid();
    let form = &server.seen()[0].form;
    let get = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("scope"), Some("read write"));
    assert_eq!(get("resource"), Some("https://api.example.com"));
    assert_eq!(get("audience"), Some("https://api.example.com/"));
    assert_eq!(get("tenant"), Some("t 1&2"));
}

#[tokio::test]
async fn retries_503_with_a_fresh_jti() {
    let server = start(vec![
        Reply::json(503, r#"{"error":"temporarily_unavailable"}"#),
        nhs_ok(),
    ])
    .await;
    let client = server.client().build().unwrap();
    client.fetch().await.unwrap();
    assert_eq!(server.requests(), 2);
    server.assert_all_valid(); // includes: no jti seen twice
    let jtis: HashSet<_> = server.seen().into_iter().map(|s| s.jti.unwrap()).collect();
    assert_eq!(jtis.len(), 2);
}

#[tokio::test]
async fn final_oauth_errors_are_not_retried() {
    for (status, error) in [
        (400, "invalid_client"),
        (401, "invalid_client"),
        (400, "invalid_request"),
        (503, "invalid_request"),
        (401, "unauthorized_client"),
        (400, "invalid_scope"),
    ] {
        let body = format!(r#"{{"error":"{error}","error_description":"no"}}"#);
        let server = start(vec![Reply::json(status, body), nhs_ok()]).await;
        let err = server.client().build().unwrap().fetch().await.unwrap_err();
        assert_eq!(server.requests(), 1, "{status} {error}");
        match &err {
            Error::ServerRejected(r) => {
                let ErrorResponse {
                    status: s,
                    error: e,
                    error_description,
                    ..
                } = &**r;
                assert_eq!(*s, status);
                assert_eq!(e.as_deref(), Some(error));
                assert_eq!(error_description.as_deref(), Some("no"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retryable());
    }
}

/// Paused time: the 7 s `Retry-After` is waited for exactly, without really sleeping.
#[tokio::test(start_paused = true)]
async fn honours_retry_after_on_429() {
    let server = start(vec![
        Reply::json(429, r#"{"error":"rate_limited"}"#).header("retry-after", "7"),
        nhs_ok(),
    ])
    .await;
    // No transport timeouts: under paused time they would fire while waiting for real I/O.
    let client = server
        .client()
        .timeout(None)
        .connect_timeout(None)
        .build()
        .unwrap();
    client.fetch().await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(7),
        "{:?}",
        seen[1].at - seen[0].at
    );
    server.assert_all_valid();
}

#[tokio::test]
async fn retry_after_beyond_the_cap_ends_retries() {
    let server = start(vec![
        Reply::json(429, "{}").header("retry-after", "3600"),
        nhs_ok(),
    ])
    .await;
    let err = server.client().build().unwrap().fetch().await.unwrap_err();
    assert_eq!(server.requests(), 1);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn attempts_are_bounded() {
    let server = start(vec![Reply::json(500, r#"{"error":"server_error"}"#)]).await;
    let err = server.client().build().unwrap().fetch().await.unwrap_err();
    assert_eq!(server.requests(), 3, "default policy: 3 attempts");
    assert_eq!(err.status(), Some(500));

    let server = start(vec![Reply::json(502, "{}")]).await;
    let policy = RetryPolicy::default()
        .max_attempts(5)
        .base_delay(Duration::from_millis(1));
    server
        .client()
        .retry_policy(policy)
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 5);
    server.assert_all_valid();
}

#[tokio::test]
async fn html_from_a_proxy_is_unparseable_and_retried_on_5xx() {
    let html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let reply = Reply::text(502, "text/html; charset=utf-8", html);
    let server = start(vec![reply.clone(), reply, nhs_ok()]).await;
    server.client().build().unwrap().fetch().await.unwrap();
    assert_eq!(server.requests(), 3);

    let reply = Reply::text(502, "text/html", html);
    let server = start(vec![reply]).await;
    let err = server
        .client()
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    match &err {
        Error::UnparseableBody {
            status,
            content_type,
            body_prefix,
            ..
        } => {
            assert_eq!(*status, 502);
            assert_eq!(content_type.as_deref(), Some("text/html"));
            assert!(body_prefix.starts_with("<html><head><title>502"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("HTTP 502"), "{err}");
}

#[tokio::test]
async fn invalid_json_on_200_is_not_retried_and_leaks_nothing() {
    let server = start(vec![Reply::json(200, r#"{"access_token":"leaky-secret","#)]).await;
    let err = server.client().build().unwrap().fetch().await.unwrap_err();
    assert!(
        matches!(err, Error::UnparseableBody { status: 200, .. }),
        "{err:?}"
    );
    assert!(!body_of(&err).contains("leaky-secret"));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn success_without_access_token() {
    let server = start(vec![Reply::json(
        200,
        r#"{"token_type":"Bearer","expires_in":"599"}"#,
    )])
    .await;
    let err = server.client().build().unwrap().fetch().await.unwrap_err();
    match &err {
        Error::MissingAccessToken {
            status: 200,
            members,
        } => assert_eq!(members, &["token_type", "expires_in"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn nhs_error_bodies_carry_message_id_and_hint() {
    let rows = [
        (
            400,
            "invalid_request",
            "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'",
            Hint::Algorithm,
            "NHS requires RS512",
        ),
        (
            401,
            "invalid_request",
            "Missing or invalid 'aud' claim in client_assertion JWT",
            Hint::Audience,
            "exact token URL",
        ),
        (
            401,
            "invalid_request",
            "Invalid 'kid' header in client_assertion JWT - no matching public key",
            Hint::UnknownKid,
            "up to an hour",
        ),
        (
            400,
            "invalid_request",
            "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in future",
            Hint::ExpTooFar,
            "clock fast",
        ),
        (
            400,
            "invalid_request",
            "Invalid 'exp' claim in client_assertion JWT - JWT has expired",
            Hint::Expired,
            "clock slow",
        ),
        (
            401,
            "invalid_request",
            "Invalid 'iss'/'sub' claims in client_assertion JWT",
            Hint::UnknownApiKey,
            "another environment",
        ),
        (
            400,
            "invalid_request",
            "Non-unique 'jti' claim in client_assertion JWT",
            Hint::ReplayedJti,
            "fresh assertion",
        ),
        (
            400,
            "invalid_request",
            "Invalid 'typ' header in client_assertion JWT - must be 'JWT'",
            Hint::Typ,
            "typ",
        ),
        (
            403,
            "public_key error",
            "The JWKS endpoint, for your client_assertion can't be reached",
            Hint::JwksUnreachable,
            "JWKS URL",
        ),
        (
            401,
            "public_key error",
            "JWT signature verification failed",
            Hint::Signature,
            "public half",
        ),
        (
            401,
            "unauthorized_client",
            "you have tried to request authorization but your application is not configured to use this authorization grant type",
            Hint::UnauthorizedClient,
            "subscribed",
        ),
        (
            415,
            "invalid_request",
            "Content-Type header must be application/x-www-form-urlencoded",
            Hint::ContentType,
            "no charset",
        ),
    ];
    let script = rows
        .iter()
        .enumerate()
        .map(|(i, (status, error, desc, _, _))| {
            let body = serde_json::json!({"error": error, "error_description": desc, "message_id": format!("rrt-{i}")});
            Reply::json(*status, body.to_string())
        })
        .collect();
    let server = start(script).await;
    let client = server
        .client()
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap();
    for (i, (status, error, desc, hint, words)) in rows.iter().enumerate() {
        let err = client.fetch().await.unwrap_err();
        match &err {
            Error::ServerRejected(r) => {
                let ErrorResponse {
                    status: s,
                    error: e,
                    error_description,
                    message_id,
                    hint: h,
                    ..
                } = &**r;
                assert_eq!(s, status);
                assert_eq!(e.as_deref(), Some(*error));
                assert_eq!(error_description.as_deref(), Some(*desc));
                assert_eq!(message_id.as_deref(), Some(format!("rrt-{i}").as_str()));
                assert_eq!(h, &Some(*hint));
            }
            other => panic!("{other:?}"),
        }
        // The message carries the server's fields; the hint is shown apart from it.
        let shown = err.to_string();
        assert!(
            shown.contains(desc) && shown.contains(&format!("rrt-{i}")),
            "{shown}"
        );
        let hint_text = err.hint().unwrap().to_string();
        assert!(hint_text.contains(words), "{hint_text}");
        assert!(!err.is_retryable(), "{shown}");
    }
    assert_eq!(server.requests(), rows.len());
    server.assert_all_valid();
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let url = dead_port_url();
    let client = TokenClient::builder()
        .token_url(&url)
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs512))
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(1)))
        .build()
        .unwrap();
    let err = client.fetch().await.unwrap_err();
    match &err {
        Error::Transport { kind, message } => {
            assert_eq!(*kind, TransportKind::Connect, "{message}");
            let port = url.trim_end_matches("/token").rsplit(':').next().unwrap();
            assert!(
                message.contains(&format!("could not connect to 127.0.0.1:{port}")),
                "{message}"
            );
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn slow_server_times_out() {
    let server = start(vec![nhs_ok().delay(Duration::from_secs(60))]).await;
    let client = server
        .client()
        .timeout(Some(Duration::from_millis(300)))
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap();
    let err = client.fetch().await.unwrap_err();
    match &err {
        Error::Transport { kind, message } => {
            assert_eq!(*kind, TransportKind::Timeout, "{message}");
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let reply = Reply::status(307).header("location", "/elsewhere");
    let server = start(vec![reply]).await;
    let err = server.client().build().unwrap().fetch().await.unwrap_err();
    match &err {
        Error::Redirected {
            status: 307,
            location,
        } => assert_eq!(location.as_deref(), Some("/elsewhere")),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("redirects are not followed"),
        "{err}"
    );
    assert_eq!(server.requests(), 1);
    assert_eq!(server.hits("/elsewhere"), 0);
}

#[tokio::test]
async fn plain_http_to_a_real_host_is_refused_before_sending() {
    let base = || {
        TokenClient::builder()
            .client_id(CLIENT_ID)
            .signer(signer(Algorithm::Rs256))
    };
    let err = base()
        .token_url("http://auth.example.com/token")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::InsecureHttp { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("dangerous_allow_insecure_http"),
        "{err}"
    );
    base()
        .token_url("http://auth.example.com/token")
        .dangerous_allow_insecure_http()
        .build()
        .unwrap();
    let err = base().token_url("not a url").build().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("token URL \"not a url\" is not a valid URL: "),
        "{err}"
    );
}

#[tokio::test]
async fn nhs_profile_rules() {
    // Environment → exact token URL, aud = that URL, NHS profile.
    let client = TokenClient::builder()
        .nhs(Environment::Int)
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs512))
        .build()
        .unwrap();
    assert_eq!(
        client.token_url().as_str(),
        "https://int.api.service.nhs.uk/oauth2/token"
    );
    assert_eq!(client.profile(), Profile::Nhs);
    assert_eq!(
        client.audience(),
        Some(&Audience::TokenUrl(
            "https://int.api.service.nhs.uk/oauth2/token".into()
        ))
    );

    // A token URL on an NHS host selects the profile by itself; RS256 is refused before sending.
    let err = TokenClient::builder()
        .token_url("https://api.service.nhs.uk/oauth2/token")
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs256))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("accepts only RS512"), "{err}");

    // The NHS profile against a loopback emulator: aud = the exact token URL.
    let server = start(vec![nhs_ok()]).await;
    let err = server
        .client()
        .signer(signer(Algorithm::Ps512))
        .profile(Profile::Nhs)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(ConfigError::Profile(_))));
    server
        .client()
        .profile(Profile::Nhs)
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap();
    server.assert_all_valid();
}

#[tokio::test]
async fn explicit_audience_overrides() {
    let server = start(vec![nhs_ok()]).await;
    server.expect_audience("https://issuer.example.com");
    let client = server
        .client()
        .audience("https://issuer.example.com")
        .build()
        .unwrap();
    client.fetch().await.unwrap();
    server.assert_all_valid();
    assert_eq!(server.seen()[0].typ.as_deref(), Some("JWT"));
}

#[tokio::test]
async fn incomplete_configuration_is_a_clear_error() {
    let err = TokenClient::builder()
        .client_id("x")
        .signer(signer(Algorithm::Rs256))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("missing the token endpoint"),
        "{err}"
    );
    let err = TokenClient::builder()
        .token_url("https://a.example/t")
        .signer(signer(Algorithm::Rs256))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("missing the client id"), "{err}");
    let err = TokenClient::builder()
        .token_url("https://a.example/t")
        .client_id("x")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("missing the signer"), "{err}");
    let err = TokenClient::builder()
        .token_url("https://a.example/t")
        .client_id("x")
        .signer(signer(Algorithm::Rs256))
        .extra_param("client_assertion", "forged")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("client_assertion is set by the client"),
        "{err}"
    );
    let err = TokenClient::builder()
        .token_url("https://a.example/t")
        .client_id("x")
        .signer(signer(Algorithm::Rs256))
        .assertion_lifetime(Duration::from_secs(3600))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("lifetime"), "{err}");
}

#[tokio::test]
async fn no_secrets_in_debug_or_errors() {
    let server = start(vec![
        nhs_ok(),
        Reply::json(400, r#"{"error":"invalid_client"}"#),
    ])
    .await;
    let client = server.client().build().unwrap();
    let token = client.fetch().await.unwrap();
    let err = client.fetch().await.unwrap_err();
    let shown = format!(
        "{client:?} {token:?} {:?} {err} {err:?}",
        token.access_token()
    );
    assert!(!shown.contains("nhs-access-token-1"), "{shown}");
    for seen in server.seen() {
        let assertion = &seen
            .form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1;
        let signature = assertion.rsplit('.').next().unwrap();
        assert!(!shown.contains(signature));
    }
}

/// Guards the guard: the test server does reject what it should, so passing tests mean something.
#[tokio::test]
async fn the_test_server_really_verifies() {
    let server = start(vec![nhs_ok()]).await;
    server.expect_audience("https://somewhere-else.example/token");
    server.client().build().unwrap().fetch().await.unwrap();
    let problems = &server.seen()[0].problems;
    assert!(
        problems.iter().any(|p| p.starts_with("aud")),
        "{problems:?}"
    );

    let server = start(vec![nhs_ok()]).await;
    let other_key =
        m2m_core::key::PrivateKey::generate(m2m_core::key::KeySpec::Rsa { bits: 2048 }).unwrap();
    let forged = m2m_core::signer::KeySigner::new(
        std::sync::Arc::new(other_key),
        Algorithm::Rs512,
        Some("test-1".into()),
    )
    .unwrap();
    server
        .client()
        .signer(std::sync::Arc::new(forged))
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap();
    let problems = &server.seen()[0].problems;
    assert!(
        problems.iter().any(|p| p.starts_with("signature")),
        "{problems:?}"
    );
}

/// https to a plain-http server: a real TLS handshake failure, reported as such and not retried.
#[tokio::test]
async fn tls_failure_is_reported_as_tls() {
    let server = start(vec![nhs_ok()]).await;
    let client = TokenClient::builder()
        .token_url(server.url().replace("http://", "https://"))
        .client_id(CLIENT_ID)
        .signer(signer(Algorithm::Rs256))
        .build()
        .unwrap();
    let err = client.fetch().await.unwrap_err();
    match &err {
        Error::Transport { kind, message } => {
            assert_eq!(*kind, TransportKind::Tls, "{message}");
            assert!(
                message.starts_with("TLS handshake with 127.0.0.1:"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(server.requests(), 0);
}
