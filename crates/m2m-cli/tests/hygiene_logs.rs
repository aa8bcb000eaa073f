//! Secret hygiene of the library and server logs: with a subscriber capturing every event of
//! every crate at TRACE (including `log` records of dependencies, bridged by tracing-log), a full
//! token flow — m2m-client (`TokenClient::fetch`, `TokenSource`) against the in-process
//! m2m-server, rfc profile with discovery and nhs profile, plus refused requests (replay,
//! tampered signature, wrong audience) whose precise reasons the server logs — must leave no
//! private key (PEM lines, JWK `d`), no assertion signature and no access token in the output.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use m2m_client::{Profile, TokenClient, source::TokenSource};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_server::{Server, ServerConfig};
use support::hygiene::{RecordingSigner, assert_absent, jws_like, key_secrets, token_secrets};

/// Everything every subscriber writer wrote.
static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn install_capture() -> Arc<Mutex<Vec<u8>>> {
    Arc::clone(CAPTURED.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(Capture(Arc::clone(&buf)))
            .try_init()
            .expect("the only global subscriber in this test binary");
        buf
    }))
}

fn captured(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Starts a server whose registry has one client `id` with `key` as `kid` (algs pinned).
async fn server_with(
    dir: &std::path::Path,
    profile: m2m_server::Profile,
    id: &str,
    key: &PrivateKey,
    kid: &str,
    alg: &str,
) -> m2m_server::RunningServer {
    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some(kid.to_owned());
    let jwks = m2m_core::jwk::Jwks { keys: vec![jwk] };
    std::fs::write(dir.join("c.jwks.json"), serde_json::to_vec(&jwks).unwrap()).unwrap();
    let clients = dir.join("clients.toml");
    std::fs::write(
        &clients,
        format!("[[client]]\nid = \"{id}\"\njwks_file = \"c.jwks.json\"\nalgs = [\"{alg}\"]\n"),
    )
    .unwrap();
    let mut config = ServerConfig::new(&clients);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.profile = profile;
    config.replay_store = "sqlite".to_owned();
    config.data_dir = dir.join("data");
    Server::start(config).await.unwrap()
}

async fn post_assertion(http: &reqwest::Client, url: &str, assertion: &str) -> u16 {
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_assertion_type=\
             urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        ))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_flow_at_trace_leaks_no_key_signature_or_token() {
    let buf = install_capture();
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let server = server_with(
        dir.path(),
        m2m_server::Profile::Rfc,
        "svc",
        &key,
        "k1",
        "ES256",
    )
    .await;
    let issuer = server.issuer().to_owned();

    let signer = Arc::new(RecordingSigner::new(
        Arc::clone(&key),
        Algorithm::Es256,
        "k1",
    ));
    let signatures = Arc::clone(&signer.signatures);
    let metadata = m2m_client::discover(&issuer).await.unwrap();
    let client = TokenClient::builder()
        .discovered(metadata)
        .client_id("svc")
        .signer(signer.clone())
        .build()
        .unwrap();
    let mut tokens = vec![
        client
            .fetch()
            .await
            .unwrap()
            .access_token()
            .secret()
            .to_owned(),
    ];
    let source = TokenSource::new(client);
    tokens.push(source.token().await.unwrap().secret().to_owned());

    // Refusals: the server logs the precise reason of each.
    let http = reqwest::Client::new();
    let url = server.token_url();
    let builder = AssertionBuilder::new(signer.clone(), "svc", Audience::Issuer(issuer.clone()));
    let good = builder.build(SystemClock.now()).unwrap().into_string();
    assert_eq!(post_assertion(&http, &url, &good).await, 200);
    assert_eq!(post_assertion(&http, &url, &good).await, 401, "replay");
    // Flip the signature's first character: it carries six full bits, so the result is still
    // canonical base64url (the last character may carry padding bits, and changing it can make
    // the token malformed — a 400 — instead of badly signed).
    let mut tampered = builder.build(SystemClock.now()).unwrap().into_string();
    let at = tampered.rfind('.').unwrap() + 1;
    let first = tampered.as_bytes()[at];
    let flipped = if first == b'A' { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    assert_eq!(
        post_assertion(&http, &url, &tampered).await,
        401,
        "bad signature"
    );
    let wrong_aud = AssertionBuilder::new(
        signer.clone(),
        "svc",
        Audience::Explicit("https://elsewhere".into()),
    )
    .build(SystemClock.now())
    .unwrap()
    .into_string();
    assert_eq!(
        post_assertion(&http, &url, &wrong_aud).await,
        401,
        "wrong aud"
    );
    server.shutdown().await.unwrap();

    let log = captured(&buf);
    assert!(log.contains("TRACE"), "capture runs at trace level");
    assert!(
        log.contains("m2m authorization server listening"),
        "server events captured"
    );
    let sigs = signatures.lock().unwrap().clone();
    assert!(
        sigs.len() >= 5,
        "every assertion's signature recorded: {}",
        sigs.len()
    );
    let token_parts: Vec<String> = tokens.iter().flat_map(|t| token_secrets(t)).collect();
    assert_absent(
        &log,
        &[
            ("client private key", key_secrets(&key)),
            ("assertion signature", sigs),
            ("access token", token_parts),
        ],
    );
    assert!(
        !log.contains(tampered.rsplit('.').next().unwrap()),
        "tampered signature"
    );
    assert_eq!(
        jws_like(&log),
        Vec::<String>::new(),
        "no compact JWS in the log"
    );
    assert!(!log.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nhs_flow_at_trace_leaks_no_key_signature_or_token() {
    let buf = install_capture();
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap());
    let server = server_with(
        dir.path(),
        m2m_server::Profile::Nhs,
        "nhs-svc",
        &key,
        "n1",
        "RS512",
    )
    .await;
    let signer = Arc::new(RecordingSigner::new(
        Arc::clone(&key),
        Algorithm::Rs512,
        "n1",
    ));
    let signatures = Arc::clone(&signer.signatures);
    let client = TokenClient::builder()
        .token_url(server.token_url())
        .profile(Profile::Nhs)
        .client_id("nhs-svc")
        .signer(signer.clone())
        .build()
        .unwrap();
    let mut tokens = vec![
        client
            .fetch()
            .await
            .unwrap()
            .access_token()
            .secret()
            .to_owned(),
    ];
    let source = TokenSource::new(client);
    tokens.push(source.token().await.unwrap().secret().to_owned());
    let http = reqwest::Client::new();
    let url = server.token_url();
    let good = AssertionBuilder::new(signer.clone(), "nhs-svc", Audience::TokenUrl(url.clone()))
        .build(SystemClock.now())
        .unwrap()
        .into_string();
    assert_eq!(post_assertion(&http, &url, &good).await, 200);
    assert_ne!(post_assertion(&http, &url, &good).await, 200, "replay");
    server.shutdown().await.unwrap();

    let log = captured(&buf);
    assert!(
        log.contains("TRACE") && log.contains("nhs-svc"),
        "nhs flow captured"
    );
    let sigs = signatures.lock().unwrap().clone();
    let token_parts: Vec<String> = tokens.iter().flat_map(|t| token_secrets(t)).collect();
    assert_absent(
        &log,
        &[
            ("client private key", key_secrets(&key)),
            ("assertion signature", sigs),
            ("access token", token_parts),
        ],
    );
    assert_eq!(
        jws_like(&log),
        Vec::<String>::new(),
        "no compact JWS in the log"
    );
}
