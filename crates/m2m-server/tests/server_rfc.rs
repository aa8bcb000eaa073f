//! The rfc profile over real HTTP: happy path, the HTTP mapping of rejections, replay (also
//! concurrent and across a restart), metadata, JWKS, introspection, metrics, health, rate limit,
//! server keys on disk.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use m2m_core::alg::Algorithm;
use m2m_core::assertion::Audience;
use m2m_core::jwk::Jwks;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::PublicKey;
use serde_json::json;
use support::*;

#[tokio::test]
async fn happy_path_issues_a_verifiable_rfc9068_token() {
    let t = start_rfc("sqlite").await;
    let r = t.token(&good("svc")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers.contains_key("x-request-id"));
    let body = r.json();
    let members: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        ["access_token", "token_type", "expires_in", "scope"]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "read write");

    let jwks: Jwks = serde_json::from_str(&t.get("/.well-known/jwks.json").await.text).unwrap();
    let jws = UnverifiedJws::parse(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(jws.typ(), Some("at+jwt"));
    assert_eq!(jws.alg(), Some("ES256"));
    let jwk = jwks.find(jws.kid().unwrap()).unwrap();
    jws.verify(&PublicKey::from_jwk(jwk).unwrap(), Algorithm::Es256)
        .unwrap();
    let claims = jws.claims().unwrap();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["aud"], ISSUER);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let names: Vec<&str> = claims.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "iss",
            "sub",
            "client_id",
            "aud",
            "iat",
            "exp",
            "jti",
            "scope"
        ],
        "exactly RFC 9068's claims, and no others"
    );
    let header: Vec<&str> = jws.header().keys().map(String::as_str).collect();
    assert_eq!(header, ["typ", "alg", "kid"]);
}

#[tokio::test]
async fn ec_client_audience_and_lifetime_overrides() {
    let t = start_rfc("memory").await;
    let a = assertion(
        &key_ec(),
        "e1",
        Algorithm::Es256,
        "ec",
        Audience::Issuer(ISSUER.into()),
        now(),
    );
    let r = t.token(&a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json().get("scope").is_none(),
        "a client without scopes gets no scope"
    );

    let r = t.token(&good("aud-svc")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["expires_in"], 120);
    let jws = UnverifiedJws::parse(r.json()["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(jws.claims().unwrap()["aud"], "rs-1");
}

#[tokio::test]
async fn scope_must_be_a_subset() {
    let t = start_rfc("memory").await;
    let mut f = form(&good("svc"));
    f.push(("scope".into(), "read".into()));
    let r = t.post_form("/oauth2/token", &f).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["scope"], "read");

    let mut f = form(&good("svc"));
    f.push(("scope".into(), "read admin".into()));
    let r = t.post_form("/oauth2/token", &f).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_scope"),
        "{}",
        r.text
    );
    assert!(r.description().contains("admin"));
}

#[tokio::test]
async fn replay_is_refused() {
    let t = start_rfc("sqlite").await;
    let a = good("svc");
    assert_eq!(t.token(&a).await.status, 200);
    let r = t.token(&a).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    assert!(r.description().contains("jti"), "{}", r.text);
}

#[tokio::test]
async fn http_level_rejections() {
    let t = start_rfc("memory").await;
    let a = good("svc");
    let body = serde_urlencoded_form(&form(&a));

    // Wrong media type.
    let r = Reply::read(
        t.http
            .post(t.url("/oauth2/token"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_request"),
        "{}",
        r.text
    );
    // ;charset=UTF-8 is accepted (but a fresh assertion is needed, nothing was consumed above).
    let r = Reply::read(
        t.http
            .post(t.url("/oauth2/token"))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .body(serde_urlencoded_form(&form(&good("svc"))))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Parameters in the query string.
    let r = t
        .post_form(
            "/oauth2/token?grant_type=client_credentials",
            &form(&good("svc")),
        )
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_request"),
        "{}",
        r.text
    );
    // Duplicated parameter.
    let mut f = form(&good("svc"));
    f.push(("grant_type".into(), "client_credentials".into()));
    let r = t.post_form("/oauth2/token", &f).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_request"),
        "{}",
        r.text
    );
    assert!(r.description().contains("grant_type"), "{}", r.text);
    // Unsupported grant type.
    let mut f = form(&good("svc"));
    f[0].1 = "password".into();
    let r = t.post_form("/oauth2/token", &f).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unsupported_grant_type"),
        "{}",
        r.text
    );
    // 1 MiB body.
    let huge = format!(
        "grant_type=client_credentials&x={}",
        "a".repeat(1024 * 1024)
    );
    let r = Reply::read(
        t.http
            .post(t.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text);
    // GET → 405 Allow: POST.
    let r = t.get("/oauth2/token").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    assert!(r.text.is_empty());
    // Unknown client, keyless client.
    let r = t.token(&good("nobody")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    let r = t.token(&good("keyless")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
    // client_id form field different from sub.
    let mut f = form(&good("svc"));
    f.push(("client_id".into(), "ec".into()));
    let r = t.post_form("/oauth2/token", &f).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn assertion_level_rejections_map_to_invalid_client() {
    let t = start_rfc("memory").await;
    let n = now();
    let header = |alg: &str| obj(json!({"alg": alg, "typ": "JWT", "kid": "k1"}));
    // alg none (unsigned).
    let none = format!(
        "{}.{}.",
        m2m_core::jws::base64url_encode(serde_json::to_vec(&header("none")).unwrap()),
        m2m_core::jws::base64url_encode(
            serde_json::to_vec(&default_claims("svc", ISSUER, n)).unwrap()
        )
    );
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none),
        (
            "HS256",
            craft(
                &header("HS256"),
                &default_claims("svc", ISSUER, n),
                &key_a(),
                Algorithm::Rs256,
            ),
        ),
        (
            "alg not pinned (RS384)",
            craft(
                &header("RS384"),
                &default_claims("svc", ISSUER, n),
                &key_a(),
                Algorithm::Rs384,
            ),
        ),
        (
            "wrong key",
            craft(
                &header("RS256"),
                &default_claims("svc", ISSUER, n),
                &key_b(),
                Algorithm::Rs256,
            ),
        ),
        (
            "token-URL aud",
            craft(
                &header("RS256"),
                &default_claims("svc", TOKEN_URL, n),
                &key_a(),
                Algorithm::Rs256,
            ),
        ),
        ("unknown kid", {
            let h = obj(json!({"alg": "RS256", "kid": "nope"}));
            craft(
                &h,
                &default_claims("svc", ISSUER, n),
                &key_a(),
                Algorithm::Rs256,
            )
        }),
        ("expired", {
            let mut c = default_claims("svc", ISSUER, n);
            c.insert("exp".into(), json!(n.as_secs() - 120));
            craft(&header("RS256"), &c, &key_a(), Algorithm::Rs256)
        }),
        ("exp too far", {
            let mut c = default_claims("svc", ISSUER, n);
            c.insert("exp".into(), json!(n.as_secs() + 3600));
            craft(&header("RS256"), &c, &key_a(), Algorithm::Rs256)
        }),
        ("no jti", {
            let mut c = default_claims("svc", ISSUER, n);
            c.remove("jti");
            craft(&header("RS256"), &c, &key_a(), Algorithm::Rs256)
        }),
    ];
    for (name, a) in cases {
        let r = t.token(&a).await;
        assert!(
            matches!(r.status, 400 | 401),
            "{name}: {} {}",
            r.status,
            r.text
        );
        assert!(
            matches!(r.error().as_str(), "invalid_client" | "invalid_request"),
            "{name}: {}",
            r.text
        );
        assert!(!r.description().is_empty(), "{name}");
        assert!(
            r.json().get("message_id").is_none(),
            "rfc bodies carry no message_id"
        );
    }
    let r = t.token("not-a-jwt").await;
    assert!(matches!(r.status, 400 | 401), "{}", r.text);
}

#[tokio::test]
async fn opaque_errors_hide_the_reason() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.opaque = true;
    let t = start(setup, rfc_prepare).await;
    let r = t.token(&good("nobody")).await;
    assert_eq!(
        (r.status, r.description().as_str()),
        (401, "client authentication failed"),
        "{}",
        r.text
    );
}

/// Opacity lives in the HTTP layer (`response.rs`), not in the validator: every
/// authentication failure reads the same, while a form problem (400) stays a 400.
#[tokio::test]
async fn opaque_errors_hide_every_authentication_failure() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.opaque = true;
    let t = start(setup, rfc_prepare).await;
    let n = now();
    let header = |alg: &str, kid: &str| obj(json!({"alg": alg, "typ": "JWT", "kid": kid}));
    let none = format!(
        "{}.{}.",
        m2m_core::jws::base64url_encode(serde_json::to_vec(&header("none", "k1")).unwrap()),
        m2m_core::jws::base64url_encode(
            serde_json::to_vec(&default_claims("svc", ISSUER, n)).unwrap()
        )
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "aud is the token URL",
            craft(
                &header("RS256", "k1"),
                &default_claims("svc", TOKEN_URL, n),
                &key_a(),
                Algorithm::Rs256,
            ),
        ),
        (
            "unknown kid",
            craft(
                &header("RS256", "k9"),
                &default_claims("svc", ISSUER, n),
                &key_a(),
                Algorithm::Rs256,
            ),
        ),
        ("alg none", none),
    ];
    for (name, assertion) in cases {
        let r = t.token(&assertion).await;
        assert_eq!(
            (r.status, r.error().as_str(), r.description().as_str()),
            (401, "invalid_client", "client authentication failed"),
            "{name}: {}",
            r.text
        );
    }
    let mut f = form(&good("svc"));
    f.retain(|(k, _)| k != "grant_type");
    let r = t.post_form("/oauth2/token", &f).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

async fn fifty_concurrent(t: &TestServer) {
    let a = good("svc");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (http, url, f) = (t.http.clone(), t.url("/oauth2/token"), form(&a));
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .form(&f)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        49,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn fifty_concurrent_same_assertion_memory() {
    fifty_concurrent(&start_rfc("memory").await).await;
}

#[tokio::test]
async fn fifty_concurrent_same_assertion_sqlite() {
    fifty_concurrent(&start_rfc("sqlite").await).await;
}

#[tokio::test]
async fn fifty_concurrent_same_assertion_redis_and_store_failure_is_503() {
    let Some(redis) = m2m_testkit::redis::RedisServer::start() else {
        return;
    };
    let t = start_rfc(&redis.url()).await;
    fifty_concurrent(&t).await;
    assert_eq!(t.get("/readyz").await.status, 200);

    redis.kill();
    let r = t.token(&good("svc")).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (503, "temporarily_unavailable"),
        "{}",
        r.text
    );
    assert!(r.json().get("access_token").is_none());
    assert_eq!(t.get("/readyz").await.status, 503);
    let metrics = t.get("/metrics").await.text;
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("m2m_replay_store_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 1, "{metrics}");
    assert!(
        metrics
            .contains(r#"m2m_token_requests_total{outcome="error",reason="store_unavailable"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn replay_and_server_key_survive_a_restart_with_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let start_with_data = || async {
        let mut setup = Setup::new(RFC_CLIENTS);
        setup.data_dir = Some(data.path().to_path_buf());
        start(setup, rfc_prepare).await
    };
    let mut t = start_with_data().await;
    let a = good("svc");
    assert_eq!(t.token(&a).await.status, 200);
    let jwks1 = t.get("/.well-known/jwks.json").await.json();
    t.stop().await;

    let key_file = data.path().join("keys/current.pem");
    assert!(key_file.exists(), "key generated on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let t2 = start_with_data().await;
    let r = t2.token(&a).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "replay after restart: {}",
        r.text
    );
    let jwks2 = t2.get("/.well-known/jwks.json").await.json();
    assert_eq!(jwks1, jwks2, "the key is reused on the second start");
    assert_eq!(t2.token(&good("svc")).await.status, 200);
}

#[tokio::test]
async fn metadata_and_jwks() {
    let t = start_rfc("memory").await;
    let r = t.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], TOKEN_URL);
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    // Named for clients that require one (MCP Python SDK); it refuses every request.
    assert_eq!(
        m["authorization_endpoint"],
        format!("{ISSUER}/oauth2/authorize")
    );
    let refused = t.get("/oauth2/authorize?response_type=code").await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.text.contains("unsupported_response_type"),
        "{}",
        refused.text
    );
    assert_eq!(
        m["introspection_endpoint"],
        format!("{ISSUER}/oauth2/introspect")
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        m["introspection_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    let algs = m["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.contains(&json!("RS512")) && algs.contains(&json!("ES256")),
        "{algs:?}"
    );

    let jwks = t.get("/.well-known/jwks.json").await.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "never private members");
}

async fn introspect(t: &TestServer, caller: &str, token: &str) -> Reply {
    let a = assertion(
        &key_a(),
        "k1",
        Algorithm::Rs256,
        caller,
        Audience::Issuer(ISSUER.into()),
        now(),
    );
    let f = vec![
        ("token".to_owned(), token.to_owned()),
        (
            "client_assertion_type".to_owned(),
            ASSERTION_TYPE.to_owned(),
        ),
        ("client_assertion".to_owned(), a),
    ];
    t.post_form("/oauth2/introspect", &f).await
}

#[tokio::test]
async fn introspection_visibility() {
    let t = start_rfc("memory").await;
    let token = t.token(&good("aud-svc")).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = introspect(&t, "aud-svc", &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "aud-svc");
    assert_eq!(body["aud"], "rs-1");
    assert_eq!(body["iss"], ISSUER);

    let r = introspect(&t, "rs-1", &token).await;
    assert_eq!(
        r.json()["active"],
        true,
        "the audience may introspect: {}",
        r.text
    );

    let r = introspect(&t, "svc", &token).await;
    assert_eq!(
        r.json(),
        json!({"active": false}),
        "a third client sees nothing"
    );

    let r = introspect(&t, "svc", "garbage").await;
    assert_eq!(r.json(), json!({"active": false}));
    let forged = token.rsplit_once('.').unwrap().0.to_owned() + ".AAAA";
    assert_eq!(
        introspect(&t, "aud-svc", &forged).await.json(),
        json!({"active": false})
    );

    // Unauthenticated caller.
    let f = vec![("token".to_owned(), token.clone())];
    let r = t.post_form("/oauth2/introspect", &f).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = introspect(&t, "nobody", &token).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert_eq!(t.get("/oauth2/introspect").await.status, 405);
}

#[tokio::test]
async fn metrics_health_and_rate_limit() {
    let t = start_rfc("sqlite").await;
    assert_eq!(t.get("/healthz").await.status, 200);
    assert_eq!(t.get("/readyz").await.status, 200);

    for _ in 0..3 {
        let r = t.token(&good("limited")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = t.token(&good("limited")).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Other clients are not affected (server-wide limit is off in this setup).
    assert_eq!(t.token(&good("svc")).await.status, 200);
    assert_eq!(t.token(&good("nobody")).await.status, 401);

    let r = t.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = r.text;
    assert!(
        m.contains(r#"m2m_token_requests_total{outcome="issued",reason="ok"} 4"#),
        "{m}"
    );
    assert!(
        m.contains(r#"m2m_token_requests_total{outcome="rejected",reason="rate_limited"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"m2m_token_requests_total{outcome="rejected",reason="unknown_client"} 1"#),
        "{m}"
    );
    assert!(
        m.contains("m2m_token_request_duration_seconds_count 6"),
        "{m}"
    );
    assert!(m.contains("m2m_replay_store_errors_total 0"), "{m}");
}

#[tokio::test]
async fn server_wide_rate_limit_applies_to_every_client() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.rate_limit = 2;
    let t = start(setup, rfc_prepare).await;
    assert_eq!(t.token(&good("svc")).await.status, 200);
    assert_eq!(t.token(&good("svc")).await.status, 200);
    assert_eq!(t.token(&good("svc")).await.status, 429);
    // "limited" has its own override (3).
    for _ in 0..3 {
        assert_eq!(t.token(&good("limited")).await.status, 200);
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() {
    let mut t = start_rfc("memory").await;
    let url = t.url("/healthz");
    t.stop().await;
    assert!(t.http.get(url).send().await.is_err());
}

fn serde_urlencoded_form(pairs: &[(String, String)]) -> String {
    url_encode_pairs(pairs)
}

fn url_encode_pairs(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 6749 §2.3: a request may authenticate its client in one way only. A Basic header next to
/// an assertion (or a body secret) is refused before anything is checked or consumed.
#[tokio::test]
async fn more_than_one_client_authentication_method_is_refused() {
    let t = start_rfc("memory").await;
    let a = good("svc");
    let basic = |path: &str, f: &[(String, String)]| {
        t.http
            .post(t.url(path))
            .header("authorization", "Basic c3ZjOnNlY3JldA==")
            .form(f)
            .send()
    };

    let r = Reply::read(basic(m2m_server::TOKEN_PATH, &form(&a)).await.unwrap()).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_request"),
        "{}",
        r.text
    );
    assert!(
        r.description()
            .contains("more than one client authentication method"),
        "{}",
        r.text
    );
    let mut f = form(&good("svc"));
    f.push(("client_secret".into(), "secret".into()));
    let r = t.post_form(m2m_server::TOKEN_PATH, &f).await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));

    // Introspection goes through the same client authentication.
    let f = vec![
        ("token".to_owned(), "x".to_owned()),
        (
            "client_assertion_type".to_owned(),
            ASSERTION_TYPE.to_owned(),
        ),
        ("client_assertion".to_owned(), good("svc")),
    ];
    let r = Reply::read(basic(m2m_server::INTROSPECT_PATH, &f).await.unwrap()).await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));

    // The refused assertion was not consumed: alone, it is accepted.
    assert_eq!(t.token(&a).await.status, 200);
}

/// F3: an `exp` with a sub-millisecond fraction (`T + 0.0005`, as `time.time() + 60` gives). The
/// store used to keep the pair until `floor(exp ms) + leeway` while the validator accepted until
/// `exp + leeway`: in that last millisecond a captured assertion got a token again (memory,
/// SQLite). Redis expires keys on its own wall clock, so the manual clock cannot reach the
/// boundary there; it runs for the server-side path all the same.
#[tokio::test]
async fn a_sub_millisecond_exp_is_remembered_as_long_as_it_is_accepted() {
    let redis = m2m_testkit::redis::RedisServer::start();
    let mut stores = vec!["memory".to_owned(), "sqlite".to_owned()];
    stores.extend(redis.as_ref().map(|r| r.url()));
    for store in stores {
        let start = m2m_core::clock::UnixTime::from_secs(now().as_secs());
        let clock = m2m_core::clock::ManualClock::new(start);
        let mut setup = Setup::new(RFC_CLIENTS);
        setup.replay_store = store.clone();
        setup.clock = Some(std::sync::Arc::new(clock.clone()));
        let t = start_with(setup).await;
        let t_secs = start.as_secs();
        let mut claims = default_claims("svc", ISSUER, start);
        claims.insert("exp".into(), json!(t_secs as f64 + 0.0005));
        let a = craft(
            &obj(json!({"alg": "RS256", "kid": "k1"})),
            &claims,
            &key_a(),
            Algorithm::Rs256,
        );
        assert_eq!(t.token(&a).await.status, 200, "{store}: first use");
        // floor(exp ms) + 10 s leeway: the validator still accepts in this millisecond...
        clock.set(m2m_core::clock::UnixTime::from_millis(
            t_secs * 1000 + 10_000,
        ));
        let r = t.token(&a).await;
        assert_eq!(
            r.status, 401,
            "{store}: replayed at the boundary: {}",
            r.text
        );
        assert!(r.description().contains("jti"), "{store}: {}", r.text);
        // ...and refuses it as expired from the next one on.
        clock.set(m2m_core::clock::UnixTime::from_millis(
            t_secs * 1000 + 10_001,
        ));
        let r = t.token(&a).await;
        assert_eq!(r.status, 401, "{store}: {}", r.text);
        assert!(r.description().contains("expired"), "{store}: {}", r.text);
    }
}

async fn start_with(setup: Setup) -> TestServer {
    start(setup, rfc_prepare).await
}

/// Rows in the SQLite replay store of a test server started with `replay_store = "sqlite"`.
fn sqlite_replay_rows(t: &TestServer) -> i64 {
    let path = t.dir.path().join("data").join("replay.sqlite3");
    let db = rusqlite::Connection::open(path).unwrap();
    db.query_row("SELECT COUNT(*) FROM m2m_replay", [], |row| row.get(0))
        .unwrap()
}

/// F5: the rate limit is checked after the signature but before the replay insert. A client
/// held at 3 a minute that sends 10 requests writes 3 replay rows (it used to write 10), and the
/// assertion that was refused with 429 still works once the bucket has refilled: its `jti` was
/// not burnt.
#[tokio::test]
async fn a_rate_limited_request_neither_writes_the_store_nor_burns_its_jti() {
    let start_at = now();
    let clock = m2m_core::clock::ManualClock::new(start_at);
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.clock = Some(std::sync::Arc::new(clock.clone()));
    let t = start_with(setup).await;
    for _ in 0..3 {
        let r = t.token(&good("limited")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let refused = good("limited");
    for _ in 0..7 {
        let r = t.token(&good("limited")).await;
        assert_eq!(r.status, 429, "{}", r.text);
    }
    assert_eq!(t.token(&refused).await.status, 429);
    assert_eq!(
        sqlite_replay_rows(&t),
        3,
        "only issued requests are recorded"
    );
    // One token comes back every 20 s at 3 a minute.
    clock.set(start_at.add(std::time::Duration::from_secs(21)));
    let r = t.token(&refused).await;
    assert_eq!(
        r.status, 200,
        "the 429'd assertion is still unused: {}",
        r.text
    );
    assert_eq!(sqlite_replay_rows(&t), 4);
}

/// F5: failed authentications of a known client count against its rate limit, and introspection
/// applies the limit before the replay insert too.
#[tokio::test]
async fn failed_authentications_count_against_the_rate_limit() {
    let t = start_rfc("sqlite").await;
    let wrong_key = assertion(
        &key_b(),
        "k1",
        Algorithm::Rs256,
        "limited",
        Audience::Issuer(ISSUER.into()),
        now(),
    );
    for _ in 0..3 {
        let r = t.token(&wrong_key).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = t.token(&good("limited")).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let r = introspect(&t, "limited", "some-token").await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(sqlite_replay_rows(&t), 0);
}

/// I8: refusals need no authentication, so their info lines are capped per second (50): with
/// the clock held still, 200 refusals log 50 lines and count the other 150 as suppressed, while
/// every refusal is still counted in `m2m_token_requests_total`.
#[tokio::test]
async fn refusal_log_lines_are_capped_per_second() {
    let clock = m2m_core::clock::ManualClock::new(now());
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.clock = Some(std::sync::Arc::new(clock.clone()));
    let t = start_with(setup).await;
    for _ in 0..200 {
        let r = t.post_form("/oauth2/token", &[]).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    let m = t.get("/metrics").await.text;
    assert!(
        m.contains("m2m_refusal_log_lines_suppressed_total 150"),
        "{m}"
    );
    assert!(
        m.contains("m2m_token_request_duration_seconds_count 200"),
        "{m}"
    );
}

/// I7: for an issuer with a path, the metadata is also served at the RFC 8414 §3.1
/// path-inserted location; another suffix is 404, and the root location still works.
#[tokio::test]
async fn metadata_is_served_at_the_path_inserted_location() {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = "memory".into();
    setup.issuer = Some("https://issuer.m2m.test/tenant/a".into());
    let t = start_with(setup).await;
    let r = t
        .get("/.well-known/oauth-authorization-server/tenant/a")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["issuer"], "https://issuer.m2m.test/tenant/a");
    assert_eq!(
        t.get("/.well-known/oauth-authorization-server")
            .await
            .status,
        200
    );
    assert_eq!(
        t.get("/.well-known/oauth-authorization-server/other")
            .await
            .status,
        404
    );
    // Without a path in the issuer there is no path-inserted location.
    let t = start_rfc("memory").await;
    assert_eq!(
        t.get("/.well-known/oauth-authorization-server/tenant")
            .await
            .status,
        404
    );
}
