//! The server tests' own fixtures: a real server started in-process on 127.0.0.1:0 with a temp
//! data dir, the standard registry, and helpers to sign assertions and post forms. Keys come from
//! `m2m_testkit::keys` (generated once per test binary).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock, UnixTime};
use m2m_core::jwk::Jwks;
use m2m_core::jws::base64url_encode;
use m2m_core::key::PrivateKey;
use m2m_core::signer::KeySigner;
use m2m_server::{Profile, RunningServer, Server, ServerConfig};
use serde_json::{Map, Value, json};

pub const ISSUER: &str = "https://issuer.m2m.test";
pub const TOKEN_URL: &str = "https://issuer.m2m.test/oauth2/token";
pub use m2m_core::wire::CLIENT_ASSERTION_TYPE as ASSERTION_TYPE;

/// A P-256 key.
pub use m2m_testkit::keys::p256 as key_ec;
/// RSA-2048 key A (kid "k1").
pub use m2m_testkit::keys::rsa2048 as key_a;
/// RSA-2048 key B (a different key, for "wrong key" and rotation cases).
pub fn key_b() -> Arc<PrivateKey> {
    m2m_testkit::keys::rsa2048_other()
}

/// A public JWKS with these keys and kids.
pub fn jwks(keys: &[(&PrivateKey, &str)]) -> Jwks {
    Jwks {
        keys: keys
            .iter()
            .map(|(k, kid)| {
                let mut jwk = k.public_key().to_jwk();
                jwk.kid = Some((*kid).to_owned());
                jwk
            })
            .collect(),
    }
}

/// Writes a JWKS file into `dir` and returns its file name.
pub fn write_jwks(dir: &Path, name: &str, keys: &[(&PrivateKey, &str)]) -> String {
    std::fs::write(dir.join(name), serde_json::to_vec(&jwks(keys)).unwrap()).unwrap();
    name.to_owned()
}

pub fn now() -> UnixTime {
    SystemClock.now()
}

/// A standard assertion for `client` signed with `key`/`kid`/`alg`, `aud` = issuer.
pub fn assertion(
    key: &Arc<PrivateKey>,
    kid: &str,
    alg: Algorithm,
    client: &str,
    aud: Audience,
    at: UnixTime,
) -> String {
    let signer = KeySigner::new(Arc::clone(key), alg, Some(kid.to_owned())).unwrap();
    AssertionBuilder::new(Arc::new(signer), client, aud)
        .build(at)
        .unwrap()
        .into_string()
}

/// Signs arbitrary header/claims with `key` using `sign_alg`, leaving the header exactly as
/// given (even a lying or missing `alg`).
pub fn craft(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &PrivateKey,
    sign_alg: Algorithm,
) -> String {
    let input = format!(
        "{}.{}",
        base64url_encode(serde_json::to_vec(header).unwrap()),
        base64url_encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = key.sign(sign_alg, input.as_bytes()).unwrap();
    format!("{input}.{}", base64url_encode(sig))
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

pub fn form(assertion: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), "client_credentials".into()),
        ("client_assertion_type".into(), ASSERTION_TYPE.into()),
        ("client_assertion".into(), assertion.into()),
    ]
}

/// A running server with its temp dirs and an HTTP client.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub base: String,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_form(&self, path: &str, pairs: &[(String, String)]) -> Reply {
        let r = self
            .http
            .post(self.url(path))
            .form(pairs)
            .send()
            .await
            .unwrap();
        Reply::read(r).await
    }

    pub async fn token(&self, assertion: &str) -> Reply {
        self.post_form("/oauth2/token", &form(assertion)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::read(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }
}

/// A response, read fully.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    pub fn description(&self) -> String {
        self.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// How to start a test server.
pub struct Setup {
    pub clients_toml: String,
    pub profile: Profile,
    pub replay_store: String,
    pub rate_limit: u32,
    pub clock: Option<Arc<dyn Clock>>,
    pub data_dir: Option<PathBuf>,
    pub opaque: bool,
    pub header_read_timeout: Option<Duration>,
    pub body_read_timeout: Option<Duration>,
    pub write_stall_timeout: Option<Duration>,
    pub max_connection_lifetime: Option<Duration>,
    pub shutdown_timeout: Option<Duration>,
    pub max_connections_per_ip: Option<usize>,
    /// `None`: [`ISSUER`].
    pub issuer: Option<String>,
    /// `None`: `127.0.0.1:0`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--dpop-nonce`.
    pub dpop_nonce: bool,
}

impl Setup {
    pub fn new(clients_toml: impl Into<String>) -> Self {
        Setup {
            clients_toml: clients_toml.into(),
            profile: Profile::Rfc,
            replay_store: "sqlite".into(),
            rate_limit: 0,
            clock: None,
            data_dir: None,
            opaque: false,
            header_read_timeout: None,
            body_read_timeout: None,
            write_stall_timeout: None,
            max_connection_lifetime: None,
            shutdown_timeout: None,
            max_connections_per_ip: None,
            issuer: None,
            listen: None,
            dpop_nonce: false,
        }
    }
}

/// Starts a server; `prepare` may write JWKS files into the temp dir before the registry loads.
pub async fn start(setup: Setup, prepare: impl FnOnce(&Path)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let clients = dir.path().join("clients.toml");
    std::fs::write(&clients, &setup.clients_toml).unwrap();
    let mut config = ServerConfig::new(&clients);
    config.listen = setup
        .listen
        .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    config.dpop_nonce = setup.dpop_nonce;
    config.issuer = Some(setup.issuer.unwrap_or_else(|| ISSUER.to_owned()));
    config.profile = setup.profile;
    config.replay_store = setup.replay_store;
    config.rate_limit_per_minute = setup.rate_limit;
    config.data_dir = setup.data_dir.unwrap_or_else(|| dir.path().join("data"));
    config.opaque_errors = setup.opaque;
    if let Some(clock) = setup.clock {
        config.clock = clock;
    }
    if let Some(t) = setup.header_read_timeout {
        config.header_read_timeout = t;
    }
    if let Some(t) = setup.body_read_timeout {
        config.body_read_timeout = t;
    }
    if let Some(t) = setup.write_stall_timeout {
        config.write_stall_timeout = t;
    }
    if let Some(t) = setup.max_connection_lifetime {
        config.max_connection_lifetime = t;
    }
    if let Some(t) = setup.shutdown_timeout {
        config.shutdown_timeout = t;
    }
    if let Some(n) = setup.max_connections_per_ip {
        config.max_connections_per_ip = n;
    }
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestServer {
        server: Some(server),
        dir,
        http,
        base,
    }
}

/// The standard rfc registry: client "svc" (key A as "k1", RS256/RS512/PS256, scopes read write),
/// "ec" (P-256), "keyless", "limited" (rate_limit 3).
pub const RFC_CLIENTS: &str = r#"
# test registry
[[client]]
id = "svc"
jwks_file = "svc.jwks.json"
algs = ["RS256", "RS512", "PS256"]
scopes = ["read", "write"]

[[client]]
id = "ec"
jwks_file = "ec.jwks.json"

[[client]]
id = "keyless"

[[client]]
id = "limited"
jwks_file = "svc.jwks.json"
rate_limit = 3

[[client]]
id = "rs-1"
jwks_file = "svc.jwks.json"

[[client]]
id = "aud-svc"
jwks_file = "svc.jwks.json"
audience = "rs-1"
token_lifetime = 120
"#;

pub fn rfc_prepare(dir: &Path) {
    write_jwks(dir, "svc.jwks.json", &[(&key_a(), "k1")]);
    write_jwks(dir, "ec.jwks.json", &[(&key_ec(), "e1")]);
}

pub async fn start_rfc(store: &str) -> TestServer {
    let mut setup = Setup::new(RFC_CLIENTS);
    setup.replay_store = store.to_owned();
    start(setup, rfc_prepare).await
}

/// A fresh valid assertion for `client` with key A / k1 / RS256, aud = issuer.
pub fn good(client: &str) -> String {
    assertion(
        &key_a(),
        "k1",
        Algorithm::Rs256,
        client,
        Audience::Issuer(ISSUER.into()),
        now(),
    )
}

pub fn default_claims(client: &str, aud: &str, now: UnixTime) -> Map<String, Value> {
    obj(json!({
        "iss": client, "sub": client, "aud": aud,
        "jti": m2m_core::assertion::new_jti(),
        "iat": now.as_secs(), "exp": now.as_secs() + 60,
    }))
}
