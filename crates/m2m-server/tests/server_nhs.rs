//! The nhs emulation profile over real HTTP: every row of docs/nhs-token-endpoint.md §2.2
//! marked T or P (plus row 46), checking status, `error`, exact `error_description` and that a
//! `message_id` is present.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use m2m_core::alg::Algorithm;
use m2m_core::validate::nhs::messages as msg;
use m2m_server::Profile;
use serde_json::{Map, Value, json};
use support::*;

const PUBLIC_KEY_ERROR: &str = "public_key error";

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_nhs() -> TestServer {
    let clients = format!(
        r#"
[[client]]
id = "nhs-app"
jwks_file = "nhs.jwks.json"
scopes = ["urn:nhsd:apim:app:level3:hello-world"]

[[client]]
id = "no-key-app"

[[client]]
id = "down-app"
jwks_uri = "http://127.0.0.1:{}/jwks.json"

[[client]]
id = "nopath-app"
jwks_uri = "https://example.invalid"

[[client]]
id = "level2-app"
jwks_file = "nhs.jwks.json"
scopes = ["urn:nhsd:apim:app:level2:hello-world"]
"#,
        closed_port()
    );
    let mut setup = Setup::new(clients);
    setup.profile = Profile::Nhs;
    start(setup, |dir| {
        write_jwks(dir, "nhs.jwks.json", &[(&key_a(), "test-1")]);
    })
    .await
}

fn header() -> Map<String, Value> {
    obj(json!({"alg": "RS512", "typ": "JWT", "kid": "test-1"}))
}

fn claims(sub: &str) -> Map<String, Value> {
    let n = now().as_secs();
    obj(
        json!({"iss": sub, "sub": sub, "jti": m2m_core::assertion::new_jti(), "aud": TOKEN_URL, "exp": n + 300}),
    )
}

fn sign(h: &Map<String, Value>, c: &Map<String, Value>) -> String {
    craft(h, c, &key_a(), Algorithm::Rs512)
}

fn check(row: &str, r: &Reply, status: u16, error: &str, description: &str) {
    assert_eq!(r.status, status, "row {row}: {}", r.text);
    let body = r.json();
    assert_eq!(body["error"], error, "row {row}: {}", r.text);
    assert_eq!(
        body["error_description"], description,
        "row {row}: {}",
        r.text
    );
    assert!(
        body["message_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("rrt-")),
        "row {row}: {}",
        r.text
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["error", "error_description", "message_id"],
        "row {row}"
    );
}

#[tokio::test]
async fn request_level_rows() {
    let t = start_nhs().await;
    let good = sign(&header(), &claims("nhs-app"));
    // Row 1: JSON body, no content type with params in the query string, charset suffix (I).
    let r = Reply::read(
        t.http
            .post(t.url("/oauth2/token"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    check("1 json", &r, 415, "invalid_request", msg::CONTENT_TYPE);
    let r = Reply::read(
        t.http
            .post(t.url("/oauth2/token?grant_type=client_credentials&client_assertion=x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check("1 query", &r, 415, "invalid_request", msg::CONTENT_TYPE);
    let r = Reply::read(
        t.http
            .post(t.url("/oauth2/token"))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap(),
    )
    .await;
    check("1 charset", &r, 415, "invalid_request", msg::CONTENT_TYPE);
    // Row 2.
    let r = t.get("/oauth2/token").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    assert!(r.text.is_empty());
    // Rows 3–8.
    let mut f = form(&good);
    f.remove(0);
    check(
        "3",
        &t.post_form("/oauth2/token", &f).await,
        400,
        "invalid_request",
        msg::GRANT_TYPE_MISSING,
    );
    let mut f = form(&good);
    f[0].1 = "invalid".into();
    check(
        "4",
        &t.post_form("/oauth2/token", &f).await,
        400,
        "unsupported_grant_type",
        msg::GRANT_TYPE_INVALID,
    );
    let mut f = form(&good);
    f.remove(1);
    check(
        "5",
        &t.post_form("/oauth2/token", &f).await,
        400,
        "invalid_request",
        msg::ASSERTION_TYPE,
    );
    let mut f = form(&good);
    f[1].1 = "invalid".into();
    check(
        "6",
        &t.post_form("/oauth2/token", &f).await,
        400,
        "invalid_request",
        msg::ASSERTION_TYPE,
    );
    let mut f = form(&good);
    f.remove(2);
    check(
        "7",
        &t.post_form("/oauth2/token", &f).await,
        400,
        "invalid_request",
        msg::ASSERTION_MISSING,
    );
    check(
        "8",
        &t.token("invalid").await,
        400,
        "invalid_request",
        msg::MALFORMED,
    );
    // Row 45.
    let r = t.get("/oauth2/does-not-exist").await;
    check("45", &r, 404, "invalid_request", "Not Found");
    // The good assertion was never consumed above.
    assert_eq!(t.token(&good).await.status, 200);
}

#[tokio::test]
async fn header_and_claim_rows() {
    let t = start_nhs().await;
    type Edit = Box<dyn Fn(&mut Map<String, Value>, &mut Map<String, Value>)>;
    let alg = |a: &'static str| -> Edit {
        Box::new(move |h, _| {
            h.insert("alg".into(), json!(a));
        })
    };
    let rows: Vec<(&str, Edit, u16, &str, &str)> = vec![
        ("9", alg("RS256"), 400, "invalid_request", msg::ALG),
        ("10", alg("RS384"), 400, "invalid_request", msg::ALG),
        ("11", alg("PS256"), 400, "invalid_request", msg::ALG),
        ("12", alg("PS384"), 400, "invalid_request", msg::ALG),
        ("13", alg("PS512"), 400, "invalid_request", msg::ALG),
        (
            "14",
            Box::new(|h, c| {
                h.insert("alg".into(), json!("HS256"));
                c.clear();
                c.insert("some".into(), json!("payload"));
            }),
            400,
            "invalid_request",
            msg::ALG,
        ),
        ("15", alg("HS384"), 400, "invalid_request", msg::ALG),
        ("16", alg("HS512"), 400, "invalid_request", msg::ALG),
        (
            "17",
            Box::new(|h, _| {
                h.remove("alg");
            }),
            400,
            "invalid_request",
            msg::ALG,
        ),
        (
            "18",
            Box::new(|h, _| {
                h.remove("kid");
            }),
            400,
            "invalid_request",
            msg::KID_MISSING,
        ),
        (
            "19",
            Box::new(|h, _| {
                h.insert("kid".into(), json!("unknown-kid"));
            }),
            401,
            "invalid_request",
            msg::KID_UNKNOWN,
        ),
        (
            "20",
            Box::new(|h, _| {
                h.insert("typ".into(), json!("invalid"));
            }),
            400,
            "invalid_request",
            msg::TYP,
        ),
        (
            "21",
            Box::new(|h, _| {
                h.remove("typ");
            }),
            400,
            "invalid_request",
            msg::TYP,
        ),
        (
            "23",
            Box::new(|_, c| {
                c.insert("iss".into(), json!("unknown-app"));
                c.insert("sub".into(), json!("unknown-app"));
            }),
            401,
            "invalid_request",
            msg::ISS_SUB_UNKNOWN,
        ),
        (
            "24",
            Box::new(|_, c| {
                c.insert("sub".into(), json!("invalid"));
            }),
            400,
            "invalid_request",
            msg::ISS_SUB,
        ),
        (
            "25",
            Box::new(|_, c| {
                c.remove("sub");
            }),
            400,
            "invalid_request",
            msg::ISS_SUB,
        ),
        (
            "26",
            Box::new(|_, c| {
                c.insert("iss".into(), json!("invalid"));
            }),
            400,
            "invalid_request",
            msg::ISS_SUB,
        ),
        (
            "27",
            Box::new(|_, c| {
                c.remove("iss");
            }),
            400,
            "invalid_request",
            msg::ISS_SUB,
        ),
        (
            "28",
            Box::new(|_, c| {
                c.insert("jti".into(), json!(1234567890));
            }),
            400,
            "invalid_request",
            msg::JTI_INVALID,
        ),
        (
            "29",
            Box::new(|_, c| {
                c.remove("jti");
            }),
            400,
            "invalid_request",
            msg::JTI_MISSING,
        ),
        (
            "30",
            Box::new(|_, c| {
                c.insert("jti".into(), json!(""));
            }),
            400,
            "invalid_request",
            msg::JTI_MISSING,
        ),
        (
            "32",
            Box::new(|_, c| {
                c.insert("aud".into(), json!("https://wrong.example/oauth2/token"));
            }),
            401,
            "invalid_request",
            msg::AUD,
        ),
        (
            "33",
            Box::new(|_, c| {
                c.remove("aud");
            }),
            401,
            "invalid_request",
            msg::AUD,
        ),
        (
            "34",
            Box::new(|_, c| {
                c.insert("exp".into(), json!((now().as_secs() + 300).to_string()));
            }),
            400,
            "invalid_request",
            msg::EXP_NOT_INTEGER,
        ),
        (
            "35",
            Box::new(|_, c| {
                c.insert("exp".into(), json!(now().as_secs() - 20));
            }),
            400,
            "invalid_request",
            msg::EXPIRED,
        ),
        (
            "36",
            Box::new(|_, c| {
                c.insert("exp".into(), json!(now().as_secs() + 360));
            }),
            400,
            "invalid_request",
            msg::EXP_TOO_FAR,
        ),
        (
            "38",
            Box::new(|_, c| {
                c.remove("exp");
            }),
            400,
            "invalid_request",
            msg::EXP_MISSING,
        ),
        (
            "39",
            Box::new(|_, c| {
                c.insert("iss".into(), json!("no-key-app"));
                c.insert("sub".into(), json!("no-key-app"));
            }),
            403,
            PUBLIC_KEY_ERROR,
            msg::NO_PUBLIC_KEY,
        ),
        (
            "40 unreachable",
            Box::new(|_, c| {
                c.insert("iss".into(), json!("down-app"));
                c.insert("sub".into(), json!("down-app"));
            }),
            403,
            PUBLIC_KEY_ERROR,
            msg::JWKS_UNREACHABLE,
        ),
        (
            "40 no path",
            Box::new(|_, c| {
                c.insert("iss".into(), json!("nopath-app"));
                c.insert("sub".into(), json!("nopath-app"));
            }),
            403,
            PUBLIC_KEY_ERROR,
            msg::JWKS_UNREACHABLE,
        ),
        (
            "42",
            Box::new(|_, c| {
                c.insert("iss".into(), json!("level2-app"));
                c.insert("sub".into(), json!("level2-app"));
            }),
            401,
            "unauthorized_client",
            msg::UNAUTHORIZED_CLIENT,
        ),
        (
            "46 nbf",
            Box::new(|_, c| {
                c.insert("nbf".into(), json!(now().as_secs() + 120));
            }),
            401,
            "unknown_error",
            msg::UNKNOWN_ERROR,
        ),
    ];
    for (row, edit, status, error, description) in rows {
        let (mut h, mut c) = (header(), claims("nhs-app"));
        edit(&mut h, &mut c);
        let r = t.token(&sign(&h, &c)).await;
        check(row, &r, status, error, description);
    }
    // Row 41: the kid is registered but the signature is from another key.
    let r = t
        .token(&craft(
            &header(),
            &claims("nhs-app"),
            &key_b(),
            Algorithm::Rs512,
        ))
        .await;
    check("41", &r, 401, PUBLIC_KEY_ERROR, msg::BAD_SIGNATURE);
    // Row 47: header says RS512, signed with RS256.
    let r = t
        .token(&craft(
            &header(),
            &claims("nhs-app"),
            &key_a(),
            Algorithm::Rs256,
        ))
        .await;
    check("47", &r, 401, PUBLIC_KEY_ERROR, msg::BAD_SIGNATURE);
}

#[tokio::test]
async fn success_and_replay_rows() {
    let t = start_nhs().await;
    // Row 43 (+ the §1.6 body: four members in order, strings).
    let a = sign(&header(), &claims("nhs-app"));
    let r = t.token(&a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "token_type", "issued_at"]
    );
    assert_eq!(body["expires_in"], "599");
    assert_eq!(body["token_type"], "Bearer");
    let issued_at: u64 = body["issued_at"].as_str().unwrap().parse().unwrap();
    assert!(issued_at > 1_600_000_000_000, "milliseconds");
    // Row 31: same assertion again.
    check(
        "31",
        &t.token(&a).await,
        400,
        "invalid_request",
        msg::JTI_REPLAYED,
    );
    // Row 22: typ "jwt" lower case is accepted.
    let mut h = header();
    h.insert("typ".into(), json!("jwt"));
    assert_eq!(
        t.token(&sign(&h, &claims("nhs-app"))).await.status,
        200,
        "row 22"
    );
    // Row 37: exp = now + 305 is accepted.
    let mut c = claims("nhs-app");
    c.insert("exp".into(), json!(now().as_secs() + 305));
    assert_eq!(t.token(&sign(&header(), &c)).await.status, 200, "row 37");
    // Row 44: `_access_token_expiry_ms` only shortens.
    for (ms, max) in [
        (100_000, 100),
        (500_000, 500),
        (700_000, 600),
        (1_000_000, 600),
    ] {
        let mut f = form(&sign(&header(), &claims("nhs-app")));
        f.push(("_access_token_expiry_ms".into(), ms.to_string()));
        let r = t.post_form("/oauth2/token", &f).await;
        assert_eq!(r.status, 200, "row 44 {ms}: {}", r.text);
        let expires_in: u64 = r.json()["expires_in"].as_str().unwrap().parse().unwrap();
        assert!(
            expires_in <= max && expires_in + 2 >= max,
            "row 44 {ms}: {expires_in}"
        );
    }
    // Far-future exp with a replayed jti gets the jti error (NHS checks replay first) …
    let mut c = claims("nhs-app");
    let used = sign(&header(), &c);
    assert_eq!(t.token(&used).await.status, 200);
    c.insert("exp".into(), json!(now().as_secs() + 1000));
    check(
        "6.10 before 6.11",
        &t.token(&sign(&header(), &c)).await,
        400,
        "invalid_request",
        msg::JTI_REPLAYED,
    );
    // … and a request failing after the header/claim checks still burns its jti (§1.7).
    let mut c = claims("nhs-app");
    c.insert("aud".into(), json!("https://wrong.example/oauth2/token"));
    let bad_aud = sign(&header(), &c);
    check(
        "32",
        &t.token(&bad_aud).await,
        401,
        "invalid_request",
        msg::AUD,
    );
    c.insert("aud".into(), json!(TOKEN_URL));
    check(
        "burnt jti",
        &t.token(&sign(&header(), &c)).await,
        400,
        "invalid_request",
        msg::JTI_REPLAYED,
    );
    // The same jti under another sub is not a replay.
    let mut c2 = claims("no-key-app");
    c2.insert("jti".into(), c["jti"].clone());
    check(
        "other sub",
        &t.token(&sign(&header(), &c2)).await,
        403,
        PUBLIC_KEY_ERROR,
        msg::NO_PUBLIC_KEY,
    );
}

/// Rows in the test server's SQLite replay store.
fn replay_rows(t: &TestServer) -> i64 {
    let path = t.dir.path().join("data").join("replay.sqlite3");
    let db = rusqlite::Connection::open(path).unwrap();
    db.query_row("SELECT COUNT(*) FROM m2m_replay", [], |row| row.get(0))
        .unwrap()
}

/// F2: a sender with no key used to create a 30-day replay entry per request (any `sub`, any
/// length). Now a flood of requests with distinct unknown subs and jtis writes nothing, each
/// still gets NHS's unknown-app answer, and a registered app is served afterwards.
#[tokio::test]
async fn an_unauthenticated_flood_does_not_fill_the_replay_store() {
    let t = start_nhs().await;
    for i in 0..300 {
        let mut c = claims(&format!("unknown-app-{i}"));
        c.insert("jti".into(), json!(format!("jti-{i}")));
        let r = t.token(&sign(&header(), &c)).await;
        check("23", &r, 401, "invalid_request", msg::ISS_SUB_UNKNOWN);
    }
    assert_eq!(replay_rows(&t), 0, "unknown subs are not recorded");
    let r = t.token(&sign(&header(), &claims("nhs-app"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(replay_rows(&t), 1);
}

/// F2: `sub` and `jti` are capped at 256 bytes, answered with NHS's texts for those claims, and
/// an over-long claim records nothing.
#[tokio::test]
async fn over_long_sub_and_jti_are_refused_without_recording() {
    let t = start_nhs().await;
    let long = "a".repeat(257);
    let mut c = claims(&long);
    c.insert("jti".into(), json!("jti-long-sub"));
    check(
        "sub > 256 bytes",
        &t.token(&sign(&header(), &c)).await,
        401,
        "invalid_request",
        msg::ISS_SUB_UNKNOWN,
    );
    let mut c = claims("nhs-app");
    c.insert("jti".into(), json!(long));
    check(
        "jti > 256 bytes",
        &t.token(&sign(&header(), &c)).await,
        400,
        "invalid_request",
        msg::JTI_INVALID,
    );
    assert_eq!(replay_rows(&t), 0);
    // 256 bytes is still fine.
    let mut c = claims("nhs-app");
    c.insert("jti".into(), json!("j".repeat(256)));
    let r = t.token(&sign(&header(), &c)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// NHS publishes no RFC 8414 metadata, and neither does its emulation: a client that found some
/// at the token URL's origin would sign `aud` = issuer, which NHS refuses. The keys stay published.
#[tokio::test]
async fn the_emulation_publishes_no_authorization_server_metadata() {
    let t = start_nhs().await;
    assert_eq!(
        t.get("/.well-known/oauth-authorization-server")
            .await
            .status,
        404
    );
    assert_eq!(t.get("/.well-known/jwks.json").await.status, 200);
}
