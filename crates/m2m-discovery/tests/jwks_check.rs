//! `m2m jwks check`'s analysis over a real host on 127.0.0.1: what a token endpoint would
//! dislike (redirects, statuses, size, keys) comes back as findings; what prevents an answer
//! (policy, timeout) as an error.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Host, Reply, ed_key, jwks_json};
use m2m_discovery::check::{Level, check_jwks_url};
use m2m_discovery::{Error, HttpClient, MAX_JWKS_BYTES, UrlPolicy};

fn http() -> HttpClient {
    HttpClient::new(Duration::from_secs(1)).unwrap()
}

fn messages(r: &m2m_discovery::check::Report) -> String {
    r.findings()
        .iter()
        .map(|f| format!("{:?} {}", f.level, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn findings_for_good_and_bad_hosts() {
    let host = Host::start().await;
    let key = ed_key();
    host.set("/good.json", Reply::json(jwks_json(&[(&key, "k1")])));
    let r = check_jwks_url(&http(), &host.url("/good.json"), &UrlPolicy::new())
        .await
        .unwrap();
    assert_eq!(r.errors(), 0, "{}", messages(&r));
    assert!(
        r.findings()
            .iter()
            .any(|f| f.level == Level::Ok && f.message == "HTTP 200")
    );

    host.set(
        "/moved.json",
        Reply::status(301).header("location", "/good.json"),
    );
    let r = check_jwks_url(&http(), &host.url("/moved.json"), &UrlPolicy::new())
        .await
        .unwrap();
    assert_eq!(r.errors(), 1);
    assert!(
        messages(&r).contains("redirect to /good.json"),
        "{}",
        messages(&r)
    );
    assert_eq!(host.hits("/good.json"), 1, "the redirect was not followed");

    let r = check_jwks_url(&http(), &host.url("/missing.json"), &UrlPolicy::new())
        .await
        .unwrap();
    assert!(messages(&r).contains("HTTP 404"), "{}", messages(&r));

    host.set(
        "/huge.json",
        Reply {
            status: 200,
            stream_bytes: Some(4 * MAX_JWKS_BYTES),
            headers: vec![("content-type", "application/json".into())],
            ..Default::default()
        },
    );
    let r = check_jwks_url(&http(), &host.url("/huge.json"), &UrlPolicy::new())
        .await
        .unwrap();
    assert!(
        messages(&r).contains("larger than 65536 bytes"),
        "{}",
        messages(&r)
    );
    assert!(
        messages(&r).contains("content-type application/json"),
        "{}",
        messages(&r)
    );
}

#[tokio::test]
async fn hanging_hosts_and_insecure_urls_are_errors() {
    let host = Host::start().await;
    host.set(
        "/slow.json",
        Reply::json("{}").delayed(Duration::from_secs(30)),
    );
    let err = check_jwks_url(&http(), &host.url("/slow.json"), &UrlPolicy::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let err = check_jwks_url(
        &http(),
        &url::Url::parse("http://example.com/jwks.json").unwrap(),
        &UrlPolicy::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InsecureHttp { .. }), "{err}");
}
