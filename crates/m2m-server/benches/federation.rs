//! The jwt-bearer grant (a Kubernetes-shaped workload token from a trusted issuer) against
//! `private_key_jwt` (a client's own assertion), both ES256, both driven against the real server
//! (`Server::start`, memory replay store, rate limit off) over loopback HTTP by N concurrent
//! tasks for a fixed time each, alternating A/B/A/B; prints a table with req/s and the ratio
//! (target: jwt-bearer ≥ 80 % of private_key_jwt). Every request is a fresh token (new `jti`)
//! signed in the loop the same way for both, so the difference is the server's work: trust
//! lookup, rule matching and the wider claim checks.
//!
//! `cargo bench -p m2m-server --bench federation` (release); `M2M_BENCH_SECS` (default 5) per
//! run, `M2M_BENCH_TASKS` (default 16), `M2M_BENCH_ROUNDS` (default 2).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use m2m_core::alg::Algorithm;
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::jwk::Jwks;
use m2m_core::jws::base64url_encode;
use m2m_core::key::PrivateKey;
use m2m_server::{Server, ServerConfig};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.bench.invalid";
const WORKLOAD_ISSUER: &str = "https://oidc.cluster.bench.invalid";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    PrivateKeyJwt,
    JwtBearer,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::PrivateKeyJwt => "private_key_jwt (ES256)",
            Mode::JwtBearer => "jwt-bearer grant (ES256)",
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn jwks_file(dir: &std::path::Path, name: &str, key: &PrivateKey, kid: &str) {
    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some(kid.to_owned());
    let jwks = Jwks { keys: vec![jwk] };
    std::fs::write(dir.join(name), serde_json::to_string(&jwks).unwrap()).unwrap();
}

fn sign(key: &PrivateKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        base64url_encode(header.to_string()),
        base64url_encode(claims.to_string())
    );
    let sig = key.sign(Algorithm::Es256, input.as_bytes()).unwrap();
    format!("{input}.{}", base64url_encode(sig))
}

/// One request body, freshly signed.
fn body(mode: Mode, key: &PrivateKey) -> String {
    let now = SystemClock.now().as_secs();
    let jti = m2m_core::assertion::new_jti();
    match mode {
        Mode::PrivateKeyJwt => {
            let claims = json!({"iss": "svc", "sub": "svc", "aud": ISSUER, "jti": jti,
                "iat": now, "exp": now + 60});
            format!(
                "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
                urlencode(ASSERTION_TYPE),
                sign(key, "c1", &claims)
            )
        }
        Mode::JwtBearer => {
            let claims = json!({
                "aud": [ISSUER], "exp": now + 600, "iat": now, "nbf": now,
                "iss": WORKLOAD_ISSUER, "jti": jti,
                "kubernetes.io": {"namespace": "prod",
                    "pod": {"name": "svc-7d9f8b6c5-x2x7q", "uid": "b0f3c2a1-3c2e-4c8f-9d6a-2b7e1c0d9f11"},
                    "serviceaccount": {"name": "svc", "uid": "c1d2e3f4-1111-4a2b-8c3d-4e5f6a7b8c9d"}},
                "sub": "system:serviceaccount:prod:svc",
            });
            format!(
                "grant_type={}&assertion={}",
                urlencode(JWT_BEARER),
                sign(key, "k8s-1", &claims)
            )
        }
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
}

async fn run(url: &str, mode: Mode, key: Arc<PrivateKey>, tasks: u64, secs: u64) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let http = reqwest::Client::new();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (ok, failed, http, key, url) = (
            Arc::clone(&ok),
            Arc::clone(&failed),
            http.clone(),
            Arc::clone(&key),
            url.to_owned(),
        );
        handles.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let response = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body(mode, &key))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

fn main() {
    let secs = env_u64("M2M_BENCH_SECS", 5);
    let tasks = env_u64("M2M_BENCH_TASKS", 16);
    let rounds = env_u64("M2M_BENCH_ROUNDS", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key = m2m_testkit::keys::p256();
        jwks_file(dir.path(), "svc.jwks.json", &key, "c1");
        jwks_file(dir.path(), "cluster.jwks.json", &key, "k8s-1");
        let registry = format!(
            r#"
[[client]]
id = "svc"
jwks_file = "svc.jwks.json"
algs = ["ES256"]
scopes = ["read"]

[[trust]]
issuer = "{WORKLOAD_ISSUER}"
jwks_file = "cluster.jwks.json"
subject_prefix = "system:serviceaccount:prod:"
claims = {{ "kubernetes.io/namespace" = "prod" }}
client_id = "svc"
"#
        );
        let clients = dir.path().join("clients.toml");
        std::fs::write(&clients, registry).unwrap();
        let mut config = ServerConfig::new(&clients);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.issuer = Some(ISSUER.to_owned());
        config.replay_store = "memory".into();
        config.rate_limit_per_minute = 0;
        config.data_dir = dir.path().join("data");
        let server = Server::start(config).await.unwrap();
        let url = format!("http://{}/oauth2/token", server.local_addr());
        // Warm-up: one of each must succeed.
        for mode in [Mode::PrivateKeyJwt, Mode::JwtBearer] {
            let (ok, failed) = run(&url, mode, Arc::clone(&key), 1, 1).await;
            assert!(ok > 0 && failed == 0, "{}: warm-up failed", mode.name());
        }
        let mut totals = [(0u64, 0u64); 2];
        println!("| run | mode | requests | failed | req/s |");
        println!("| ---: | --- | ---: | ---: | ---: |");
        for round in 1..=rounds {
            for (i, mode) in [Mode::PrivateKeyJwt, Mode::JwtBearer]
                .into_iter()
                .enumerate()
            {
                let (ok, failed) = run(&url, mode, Arc::clone(&key), tasks, secs).await;
                totals[i].0 += ok;
                totals[i].1 += failed;
                println!(
                    "| {round} | {} | {ok} | {failed} | {:.0} |",
                    mode.name(),
                    ok as f64 / secs as f64
                );
            }
        }
        let rate = |t: (u64, u64)| t.0 as f64 / (secs * rounds) as f64;
        let (a, b) = (rate(totals[0]), rate(totals[1]));
        println!();
        println!(
            "{tasks} tasks, {secs} s per run, {rounds} rounds: private_key_jwt {a:.0} req/s, \
             jwt-bearer {b:.0} req/s, ratio {:.1} % (target >= 80 %)",
            100.0 * b / a
        );
        server.shutdown().await.unwrap();
    });
}
