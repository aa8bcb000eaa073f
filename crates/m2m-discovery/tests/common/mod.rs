//! A real document host on 127.0.0.1 for the tests: each path answers a configurable reply
//! (status, headers, body, delay, or a long streamed body), and the host counts requests per
//! path, so "exactly one fetch" is checked where the fetches arrive.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use m2m_core::jwk::Jwks;
use m2m_core::key::{KeySpec, PrivateKey};

/// What one path answers.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Stream this many bytes of spaces without a Content-Length instead of `body`.
    pub stream_bytes: Option<usize>,
}

impl Reply {
    pub fn json(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: body.into().into_bytes(),
            ..Reply::default()
        }
    }
    pub fn jwks(keys: &[(&PrivateKey, &str)]) -> Reply {
        Reply::json(jwks_json(keys)).header("cache-control", "max-age=120")
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::default()
        }
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
pub struct Host {
    routes: Mutex<HashMap<String, Reply>>,
    hits: Mutex<HashMap<String, usize>>,
    pub base: String,
}

impl Host {
    /// Starts a host on 127.0.0.1:0 (it lives as long as the test's runtime).
    pub async fn start() -> Arc<Host> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let host = Arc::new(Host {
            base,
            ..Host::default()
        });
        let app = Router::new().fallback(serve).with_state(Arc::clone(&host));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        host
    }
    pub fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
    }
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("{}{path}", self.base)).unwrap()
    }
}

async fn serve(State(host): State<Arc<Host>>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    *host.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = host.routes.lock().unwrap().get(&path).cloned();
    let Some(reply) = reply else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value);
    }
    let body = match reply.stream_bytes {
        Some(n) => {
            let chunks =
                (0..n.div_ceil(64 * 1024)).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
            Body::from_stream(futures_util::stream::iter(chunks))
        }
        None => Body::from(reply.body),
    };
    builder.body(body).unwrap()
}

/// A JWKS with these keys' public parts under these kids.
pub fn jwks_json(keys: &[(&PrivateKey, &str)]) -> String {
    let keys = keys
        .iter()
        .map(|(k, kid)| {
            let mut jwk = k.public_key().to_jwk();
            jwk.kid = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_string(&Jwks { keys }).unwrap()
}

pub fn ed_key() -> PrivateKey {
    PrivateKey::generate(KeySpec::Ed25519).unwrap()
}
