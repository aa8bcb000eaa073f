//! DPoP token requests against plain ones, on the real token endpoint over loopback: the server
//! runs in-process (its own Tokio runtime, one worker), a second runtime drives it with
//! `CONCURRENCY` connections. Both modes post `private_key_jwt` requests (ES256 assertion, each
//! `jti` once); the DPoP mode adds a fresh ES256 proof to every request, so the server also
//! validates the proof, records its `jti` and signs a token with `cnf`. Assertions and proofs
//! are signed before each timed round (not timed), the rounds alternate (plain, DPoP, plain, …).
//!
//! Per round: req/s, and the server worker thread's CPU time per request (`/proc/thread-self/stat`
//! read on that thread, so the load generator's share of the cores does not count). At the end:
//! the medians, the raw ratio DPoP / plain, and the target figure (docs/benchmarks.md): DPoP
//! against the bound "plain plus one ES256 verify" — the proof's signature is work no
//! implementation can skip, so the bound includes it: `bound = 1 / (1/plain + t_verify)`, with
//! `t_verify` one ES256 verification measured in this process right after the rounds. Target:
//! DPoP ≥ 80 % of that bound (the same with CPU per request: `(cpu_plain + t_verify) / cpu_dpop`).
//!
//! `cargo bench -p m2m-server --bench dpop_token` — knobs (environment): `COUNT` requests per
//! round (8000), `ROUNDS` per mode (3), `CONCURRENCY` (32), `STORE` (`memory`), `MODES`
//! (`plain,dpop`; one of them alone, e.g. to profile it).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_server::{RunningServer, Server, ServerConfig};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request's form body and, in DPoP mode, its proof.
struct Prepared {
    body: String,
    proof: Option<String>,
}

/// Signs `count` requests (and proofs when `dpop`) for the token URL, now.
fn prepare(
    assertions: &AssertionBuilder,
    proofs: &ProofBuilder,
    token_url: &str,
    count: usize,
    dpop: bool,
) -> Vec<Prepared> {
    let now = SystemClock.now();
    (0..count)
        .map(|_| {
            let assertion = assertions.build(now).unwrap().into_string();
            let body = format!(
                "grant_type=client_credentials&client_assertion_type=\
                 urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                 &client_assertion={assertion}"
            );
            let proof = dpop.then(|| {
                proofs
                    .build(&ProofInput::new("POST", token_url), now)
                    .unwrap()
                    .into_string()
            });
            Prepared { body, proof }
        })
        .collect()
}

/// Posts every prepared request once with `concurrency` workers; returns (req/s, non-200s).
async fn run(
    http: &reqwest::Client,
    token_url: &str,
    requests: Arc<Vec<Prepared>>,
    concurrency: usize,
    dpop: bool,
) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url) = (http.clone(), token_url.to_owned());
            let (requests, next, errors) = (
                Arc::clone(&requests),
                Arc::clone(&next),
                Arc::clone(&errors),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let mut post = http
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(request.body.clone());
                    if let Some(proof) = &request.proof {
                        post = post.header("DPoP", proof.as_str());
                    }
                    let ok = match post.send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let text = r.text().await.unwrap_or_default();
                            status == 200 && text.contains(if dpop { "DPoP" } else { "Bearer" })
                        }
                        Err(_) => false,
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        requests.len() as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    )
}

/// CPU time (user + system) of the calling thread, from `/proc/thread-self/stat` (clock ticks,
/// 100 a second on Linux).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The server worker's CPU time so far (read on that worker: the runtime has only one).
fn server_cpu(rt: &tokio::runtime::Runtime) -> Duration {
    rt.block_on(rt.spawn(async { thread_cpu() })).unwrap()
}

/// One ES256 verification (parsed key cached), in µs.
fn es256_verify_micros() -> f64 {
    let key = PrivateKey::generate(KeySpec::P256).unwrap();
    let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJiZW5jaCJ9";
    let sig = key.sign(Algorithm::Es256, msg).unwrap();
    let public = key.public_key().clone();
    public.verify(Algorithm::Es256, msg, &sig).unwrap();
    let n = 3000;
    let started = Instant::now();
    for _ in 0..n {
        public.verify(Algorithm::Es256, msg, &sig).unwrap();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The server, on its own one-worker runtime (returned: it must live as long as the bench).
fn start_server(
    dir: &std::path::Path,
    key: &PrivateKey,
    store: &str,
) -> (tokio::runtime::Runtime, RunningServer, String) {
    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some("bench-1".into());
    let jwks = m2m_core::jwk::Jwks { keys: vec![jwk] };
    std::fs::write(
        dir.join("bench.jwks.json"),
        serde_json::to_vec(&jwks).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("clients.toml"),
        "[[client]]\nid = \"bench\"\njwks_file = \"bench.jwks.json\"\n",
    )
    .unwrap();
    let mut config = ServerConfig::new(dir.join("clients.toml"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.replay_store = store.to_owned();
    config.data_dir = dir.join("data");
    config.rate_limit_per_minute = 0;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(Server::start(config)).unwrap();
    let token_url = server.token_url();
    (server_rt, server, token_url)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let count = env_or("COUNT", 8000);
    let rounds = env_or("ROUNDS", 3);
    let concurrency = env_or("CONCURRENCY", 32);
    let store = std::env::var("STORE").unwrap_or_else(|_| "memory".to_owned());
    let modes = std::env::var("MODES").unwrap_or_else(|_| "plain,dpop".to_owned());

    let dir = tempfile::tempdir().unwrap();
    let client_key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let (server_rt, _server, token_url) = start_server(dir.path(), &client_key, &store);
    let issuer = token_url
        .trim_end_matches(m2m_server::TOKEN_PATH)
        .to_owned();
    let signer = KeySigner::new(client_key, Algorithm::Es256, Some("bench-1".into())).unwrap();
    let assertions = AssertionBuilder::new(Arc::new(signer), "bench", Audience::Issuer(issuer));
    let proofs = ProofBuilder::new(Arc::new(PrivateKey::generate(KeySpec::P256).unwrap())).unwrap();

    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    println!(
        "DPoP vs plain token requests: {count} requests a round, {rounds} rounds a mode, \
         {concurrency} connections, store {store}, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!("| round | mode | req/s | server CPU/request | errors |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    let (mut plain, mut dpop) = (Vec::new(), Vec::new());
    let (mut plain_cpu, mut dpop_cpu) = (Vec::new(), Vec::new());
    let mut all_errors = 0;
    for round in 1..=rounds {
        for with_dpop in [false, true] {
            if !modes.contains(if with_dpop { "dpop" } else { "plain" }) {
                continue;
            }
            let requests = Arc::new(prepare(&assertions, &proofs, &token_url, count, with_dpop));
            let cpu_before = server_cpu(&server_rt);
            let (rate, errors) =
                load_rt.block_on(run(&http, &token_url, requests, concurrency, with_dpop));
            let cpu = (server_cpu(&server_rt) - cpu_before).as_secs_f64() * 1e6 / count as f64;
            all_errors += errors;
            let mode = if with_dpop { "DPoP" } else { "plain" };
            println!("| {round} | {mode} | {rate:.0} | {cpu:.0} µs | {errors} |");
            if with_dpop {
                dpop.push(rate);
                dpop_cpu.push(cpu);
            } else {
                plain.push(rate);
                plain_cpu.push(cpu);
            }
        }
    }
    if plain.is_empty() || dpop.is_empty() {
        return;
    }
    let (plain_median, dpop_median) = (median(&mut plain), median(&mut dpop));
    let (plain_cpu, dpop_cpu) = (median(&mut plain_cpu), median(&mut dpop_cpu));
    let verify = es256_verify_micros();
    let bound = 1.0 / (1.0 / plain_median + verify / 1e6);
    println!(
        "\nmedians: plain {plain_median:.0} req/s ({plain_cpu:.0} µs server CPU/request), \
         DPoP {dpop_median:.0} req/s ({dpop_cpu:.0} µs); DPoP / plain = {:.1} %",
        100.0 * dpop_median / plain_median
    );
    println!(
        "one ES256 verify: {verify:.1} µs; bound (plain + one verify): {bound:.0} req/s; \
         DPoP / bound = {:.1} % (target >= 80 %); by CPU/request: {:.1} %; errors {all_errors}",
        100.0 * dpop_median / bound,
        100.0 * (plain_cpu + verify) / dpop_cpu
    );
    if all_errors > 0 {
        eprintln!(
            "dpop_token: {all_errors} requests were not answered 200 with the right token_type"
        );
        std::process::exit(2);
    }
}
