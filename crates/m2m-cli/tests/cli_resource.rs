//! The third party end to end, against the real `m2m serve` binary: RFC 8707 `resource` →
//! token `aud` (`m2m clients add --resource`, 400 `invalid_target` otherwise), the refusing
//! `authorization_endpoint`, `m2m token --for URL` against an axum API behind m2m-resource's
//! layer (discovery from the 401 challenge, `resource=` sent, per-resource cache), `m2m verify`,
//! and RFC 7662 introspection against the server with the verifier's cache rules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::Arc;

use m2m_client::{ClientAuth, ReqwestTransport, TransportConfig};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::key::PrivateKey;
use m2m_core::signer::KeySigner;
use m2m_resource::{
    Caller, Introspection, Refusal, RequireBearerLayer, ResourceMetadata, TrustedIssuer, Verifier,
};
use support::{Sandbox, ServerProcess, closed_port, http, stderr, stdout, wait_until_listening};

fn serve(sb: &Sandbox) -> (ServerProcess, u16) {
    let port = closed_port();
    let child = sb
        .cmd()
        .args(["serve", "--clients", "clients.toml"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--replay-store", "memory", "--data-dir", "data"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m serve");
    let server = ServerProcess(child);
    wait_until_listening(port);
    (server, port)
}

/// The protected API on its own thread and runtime: `GET /api` behind the layer, trusting
/// `issuer` by discovery, with its RFC 9728 document.
fn start_api(port: u16, resource: &str, issuer: &str) {
    let (resource, issuer) = (resource.to_owned(), issuer.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let verifier = Verifier::builder(resource.as_str())
                .issuer(TrustedIssuer::discover(issuer.as_str()))
                .build()
                .unwrap();
            let meta = ResourceMetadata::from_identifier(&resource, vec![issuer]).unwrap();
            let app = axum::Router::new()
                .route(
                    "/api",
                    axum::routing::get(
                        |c: Caller| async move { format!("hello {}", c.client_id()) },
                    ),
                )
                .layer(RequireBearerLayer::new(verifier).challenge(meta.challenge()))
                .merge(meta.router());
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    wait_until_listening(port);
}

/// GET with an optional Bearer token: (status, WWW-Authenticate, body).
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let challenge = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("www-authenticate:")
                .then(|| l["www-authenticate:".len()..].trim().to_owned())
        })
        .unwrap_or_default();
    (status, challenge, body.to_owned())
}

fn claims_of(sb: &Sandbox, token: &str) -> serde_json::Value {
    let o = sb.run(&["decode", token]);
    serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["claims"].clone()
}

#[test]
fn token_for_a_protected_api_then_verify_and_introspect() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &["--alg", "ES256"]);
    let api_port = closed_port();
    let api = format!("http://127.0.0.1:{api_port}/api");
    sb.register_with("svc", &jwks, &["--scope", "read", "--resource", &api]);
    // The resource server, registered under its resource URI, for introspection.
    let (rs_pem, rs_jwks) = sb.keygen("rs", &["--alg", "ES256"]);
    sb.register(&api, &rs_jwks);
    let (server, port) = serve(&sb);
    let issuer = format!("http://127.0.0.1:{port}");
    start_api(api_port, &api, &issuer);

    // Without a token: 401 and the challenge naming the RFC 9728 document.
    let (status, challenge, _) = get(api_port, "/api", None);
    assert_eq!(status, 401);
    assert!(
        challenge.contains("resource_metadata=\"http://127.0.0.1:"),
        "{challenge}"
    );

    // m2m token --for: discovery from the challenge, resource= sent, aud = the API.
    let token_for = || {
        sb.run(&[
            "token",
            "--for",
            &api,
            "--client-id",
            "svc",
            "--key",
            pem.to_str().unwrap(),
            "--kid",
            "k1",
        ])
    };
    let o = token_for();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("authorization server {issuer}")),
        "{}",
        stderr(&o)
    );
    let token = stdout(&o).trim().to_owned();
    let claims = claims_of(&sb, &token);
    assert_eq!(claims["aud"], api.as_str());
    assert_eq!(claims["client_id"], "svc");
    let (status, _, body) = get(api_port, "/api", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "hello svc");
    // The second call is answered from the file cache, keyed by the resource.
    let again = token_for();
    assert_eq!(stdout(&again).trim(), token);
    // A token for the issuer's default audience is for another API: 401 invalid_token.
    let o = sb.run(&[
        "token",
        "--issuer",
        &issuer,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other = stdout(&o).trim().to_owned();
    assert_ne!(claims_of(&sb, &other)["aud"], api.as_str());
    let (status, challenge, _) = get(api_port, "/api", Some(&other));
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // m2m verify: the claims, or the reason and exit 1.
    let o = sb.run(&[
        "verify",
        &token,
        "--issuer",
        &issuer,
        "--audience",
        &api,
        "--scope",
        "read",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let verified: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(verified["client_id"], "svc");
    let o = sb.run(&[
        "verify",
        &token,
        "--issuer",
        &issuer,
        "--audience",
        "https://other.example",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("audience_mismatch"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&token), "the token is never echoed");
    let o = sb.run(&[
        "verify",
        &token,
        "--issuer",
        &issuer,
        "--audience",
        &api,
        "--scope",
        "admin",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("insufficient_scope"), "{}", stderr(&o));
    let jwks_uri = format!("{issuer}/.well-known/jwks.json");
    let o = sb.run(&[
        "verify",
        &token,
        "--issuer",
        &issuer,
        "--audience",
        &api,
        "--jwks",
        &jwks_uri,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Introspection against the real server, with the verifier's cache rules.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = PrivateKey::from_bytes(&std::fs::read(&rs_pem).unwrap(), None, None).unwrap();
    let signer =
        Arc::new(KeySigner::new(Arc::new(key), Algorithm::Es256, Some("rs".into())).unwrap());
    let auth = ClientAuth::PrivateKeyJwt(AssertionBuilder::new(
        signer,
        api.as_str(),
        Audience::Issuer(issuer.clone()),
    ));
    let transport = Arc::new(ReqwestTransport::new(&TransportConfig::default()).unwrap());
    let endpoint = url::Url::parse(&format!("{issuer}/oauth2/introspect")).unwrap();
    let verifier = Verifier::builder(api.as_str())
        .issuer(TrustedIssuer::discover(issuer.as_str()))
        .introspection(Introspection::new(endpoint, auth, transport))
        .introspect_jwts()
        .build()
        .unwrap();
    rt.block_on(async {
        let caller = verifier.verify(&token, &["read"]).await.unwrap();
        assert_eq!(caller.client_id(), "svc");
        let err = verifier
            .verify("opaque-and-unknown", &[])
            .await
            .unwrap_err();
        assert!(matches!(err, Refusal::Token(_)), "{err:?}");
    });
    drop(server);
    rt.block_on(async {
        // The positive answer is cached; so is the negative one (briefly); a new token needs the
        // endpoint, which is gone: refused, and the failure is not cached as success.
        assert!(verifier.verify(&token, &["read"]).await.is_ok());
        assert!(matches!(
            verifier.verify("opaque-and-unknown", &[]).await,
            Err(Refusal::Token(_))
        ));
        assert!(matches!(
            verifier.verify(&other, &[]).await,
            Err(Refusal::Unavailable(_))
        ));
        assert!(matches!(
            verifier.verify(&other, &[]).await,
            Err(Refusal::Unavailable(_))
        ));
    });
}

#[test]
fn serve_binds_resource_to_aud_and_refuses_unregistered_ones() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &["--alg", "ES256"]);
    sb.register_with(
        "svc",
        &jwks,
        &[
            "--resource",
            "https://api.example/a",
            "--resource",
            "https://api.example/b",
        ],
    );
    let (_server, port) = serve(&sb);
    let issuer = format!("http://127.0.0.1:{port}");
    let assertion = || {
        let o = sb.run(&[
            "assertion",
            "--issuer",
            &issuer,
            "--client-id",
            "svc",
            "--key",
            pem.to_str().unwrap(),
            "--kid",
            "k1",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_owned()
    };
    let form = |resources: &[&str]| {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        f.append_pair("grant_type", "client_credentials");
        f.append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        );
        f.append_pair("client_assertion", &assertion());
        for r in resources {
            f.append_pair("resource", r);
        }
        f.finish()
    };
    let (status, body) = http(
        port,
        "POST",
        "/oauth2/token",
        &form(&["https://api.example/b"]),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        claims_of(&sb, v["access_token"].as_str().unwrap())["aud"],
        "https://api.example/b"
    );
    let (status, body) = http(
        port,
        "POST",
        "/oauth2/token",
        &form(&["https://api.example/c"]),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_target"), "{body}");
    // Two resources: the form rule (no repeated parameter) refuses it before the resource rule.
    let (status, body) = http(
        port,
        "POST",
        "/oauth2/token",
        &form(&["https://api.example/a", "https://api.example/b"]),
    );
    assert_eq!(status, 400, "{body}");
    // The metadata names an authorization endpoint, which refuses every request.
    let (status, meta) = http(port, "GET", "/.well-known/oauth-authorization-server", "");
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize")
    );
    let (status, page) = http(
        port,
        "GET",
        "/oauth2/authorize?response_type=code&client_id=x",
        "",
    );
    assert_eq!(status, 400);
    assert!(page.contains("unsupported_response_type"), "{page}");
}

/// The access-token check order (SPEC §8) against a token the real `m2m serve` issued (ES256,
/// `typ` `at+jwt`, keys found by discovery), one row per check that such a token can be made to
/// fail: changed headers, a changed signature or payload, another issuer, audience or scope,
/// and the verifier's clock past `exp` or before `iat`. The independent-signer table for RS256,
/// ES256 and EdDSA is m2m-resource's `tests/verify_table.rs`.
#[test]
fn a_token_from_m2m_serve_meets_the_checks_in_order() {
    use m2m_core::clock::{ManualClock, UnixTime};
    use m2m_core::jws::{base64url_decode, base64url_encode};
    use m2m_core::validate::AccessTokenReason as R;

    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &["--alg", "ES256"]);
    sb.register_with("svc", &jwks, &["--scope", "read"]);
    let (_server, port) = serve(&sb);
    let issuer = format!("http://127.0.0.1:{port}");
    let o = sb.run(&[
        "token",
        "--issuer",
        &issuer,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--scope",
        "read",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();
    let claims = claims_of(&sb, &token);
    let audience = claims["aud"].as_str().unwrap().to_owned();
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );

    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&base64url_decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let with_header = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut h = header.clone();
        change(&mut h);
        format!(
            "{}.{}.{}",
            base64url_encode(h.to_string()),
            parts[1],
            parts[2]
        )
    };
    let mut other_claims = claims.clone();
    other_claims["scope"] = "read admin".into();
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        base64url_encode(other_claims.to_string()),
        parts[2]
    );
    let mut signature = base64url_decode(parts[2]).unwrap();
    signature[10] ^= 1;
    let tampered_signature = format!("{}.{}.{}", parts[0], parts[1], base64url_encode(signature));

    /// One check: `token` verified by a verifier trusting `issuer` for `audience`, its clock at
    /// `now`, with `scopes` required; `expect` is the refusal (`None`: accepted).
    struct Row<'a> {
        name: &'a str,
        token: String,
        issuer: &'a str,
        audience: &'a str,
        now: u64,
        scopes: &'a [&'a str],
        expect: Option<R>,
    }
    // The usual row: the server's issuer and the token's audience, at the token's `iat`.
    let row = |name, token, expect| Row {
        name,
        token,
        issuer: &issuer,
        audience: &audience,
        now: iat,
        scopes: &[],
        expect,
    };
    let rows = vec![
        row("too_large", "a".repeat(9000), Some(R::TooLarge)),
        row("malformed", "a.b".to_owned(), Some(R::Malformed)),
        row(
            "alg_none",
            with_header(&|h| h["alg"] = "none".into()),
            Some(R::AlgRefused),
        ),
        row(
            "alg_hs256",
            with_header(&|h| h["alg"] = "HS256".into()),
            Some(R::AlgRefused),
        ),
        row(
            "typ_jwt",
            with_header(&|h| h["typ"] = "JWT".into()),
            Some(R::TypInvalid),
        ),
        Row {
            issuer: "https://other-issuer.example",
            ..row("issuer_untrusted", token.clone(), Some(R::IssuerUntrusted))
        },
        row(
            "unknown_kid",
            with_header(&|h| h["kid"] = "not-a-kid-of-the-server".into()),
            Some(R::UnknownKid),
        ),
        row("bad_signature", tampered_signature, Some(R::BadSignature)),
        row("changed_payload", tampered_payload, Some(R::BadSignature)),
        Row {
            now: exp + 3_600,
            ..row("expired", token.clone(), Some(R::Expired))
        },
        Row {
            now: iat - 3_600,
            ..row("iat_future", token.clone(), Some(R::IatFuture))
        },
        Row {
            audience: "https://another-api.example",
            ..row(
                "audience_mismatch",
                token.clone(),
                Some(R::AudienceMismatch),
            )
        },
        Row {
            scopes: &["admin"],
            ..row(
                "insufficient_scope",
                token.clone(),
                Some(R::InsufficientScope),
            )
        },
        Row {
            scopes: &["read"],
            ..row("accepted", token.clone(), None)
        },
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    for Row {
        name,
        token: presented,
        issuer: trusted,
        audience: aud,
        now,
        scopes,
        expect,
    } in rows
    {
        // A verifier per row: no row is answered from another's cache.
        let verifier = Verifier::builder(aud)
            .issuer(TrustedIssuer::discover(trusted))
            .clock(Arc::new(ManualClock::new(UnixTime::from_secs(now))))
            .build()
            .unwrap();
        let got = rt.block_on(verifier.verify(&presented, scopes));
        match (expect, got) {
            (None, Ok(caller)) => assert_eq!(caller.client_id(), "svc", "{name}"),
            (Some(want), Err(Refusal::Token(r))) => {
                assert_eq!(r.reason, want, "{name}: {r}");
                assert!(
                    !r.description.contains(&presented),
                    "{name}: the token is never echoed"
                );
            }
            (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }
}
