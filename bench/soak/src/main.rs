//! Load generator for `bench/soak.sh`: signs each client assertion just before sending it (ES256
//! or EdDSA, fresh `jti`), so a 10-minute run needs no pre-signed pool (pre-signing RSA-4096
//! assertions for millions of requests would take longer than the run itself), and reports what
//! the soak must show per minute: status counts, p50/p99/max latency, deliberate replays sent and
//! how many were (wrongly) accepted.
//!
//! ```text
//! m2m-soak --base URL --client-id ID --key KEY.pem --kid KID --alg ES256|EdDSA
//!          (--peak --seconds S --concurrency C | --rate R --seconds S)
//!          [--replay-every N] [--lifetime SECS] [--max-in-flight M]
//! ```
//!
//! `--peak`: closed loop with C workers for S seconds; prints `peak_rps <accepted per second>`.
//! `--rate`: open loop at R requests per second (sent in 10 ms slices, so it does not slow
//! down when the server does; requests that find M already in flight are counted as `shed`,
//! not queued). Every Nth accepted assertion is sent again at once: the server must refuse it.
//! Prints one tab-separated row per minute, then a `total` row.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::key::PrivateKey;
use m2m_core::signer::KeySigner;

/// The fixed part of every body; the assertion (base64url and dots only) needs no escaping.
const BODY_PREFIX: &str = "grant_type=client_credentials\
    &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
    &client_assertion=";

struct Args {
    base: String,
    client_id: String,
    key: String,
    kid: String,
    alg: Algorithm,
    peak: bool,
    rate: f64,
    seconds: u64,
    concurrency: usize,
    replay_every: u64,
    lifetime: u64,
    max_in_flight: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        base: String::new(),
        client_id: String::new(),
        key: String::new(),
        kid: String::new(),
        alg: Algorithm::Es256,
        peak: false,
        rate: 0.0,
        seconds: 60,
        concurrency: 32,
        replay_every: 100,
        lifetime: 5,
        max_in_flight: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--peak" {
            a.peak = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--base" => a.base = v.trim_end_matches('/').to_owned(),
            "--client-id" => a.client_id = v,
            "--key" => a.key = v,
            "--kid" => a.kid = v,
            "--alg" => {
                a.alg = Algorithm::from_name(&v).ok_or_else(|| format!("unknown alg {v:?}"))?;
            }
            "--rate" => a.rate = v.parse().map_err(|e| format!("--rate {v:?}: {e}"))?,
            "--seconds" => a.seconds = num(&v)?,
            "--concurrency" => a.concurrency = num(&v)? as usize,
            "--replay-every" => a.replay_every = num(&v)?,
            "--lifetime" => a.lifetime = num(&v)?,
            "--max-in-flight" => a.max_in_flight = num(&v)? as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.base.is_empty() || a.client_id.is_empty() || a.key.is_empty() || a.kid.is_empty() {
        return Err("--base, --client-id, --key and --kid are required".to_owned());
    }
    if !a.peak && a.rate <= 0.0 {
        return Err("give --peak or --rate R".to_owned());
    }
    Ok(a)
}

/// Counts for one minute of the run.
#[derive(Default, Clone)]
struct Bucket {
    sent: u64,
    ok: u64,
    c4xx: u64,
    c5xx: u64,
    neterr: u64,
    shed: u64,
    replays: u64,
    replays_accepted: u64,
    /// Latency of every fresh (non-replay) request, microseconds.
    lat_us: Vec<u32>,
}

struct Shared {
    http: reqwest::Client,
    url: String,
    builder: AssertionBuilder,
    start: Instant,
    buckets: Mutex<Vec<Bucket>>,
    replay_every: u64,
    accepted: AtomicU64,
}

impl Shared {
    fn record(&self, at: Instant, f: impl FnOnce(&mut Bucket)) {
        let minute = at.duration_since(self.start).as_secs() as usize / 60;
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() <= minute {
            b.resize(minute + 1, Bucket::default());
        }
        f(&mut b[minute]);
    }

    /// Sends one request; `None` on a transport error.
    async fn post(&self, body: String) -> Option<u16> {
        let r = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        // Read the body so the connection goes back to the pool.
        r.bytes().await.ok()?;
        Some(status)
    }

    /// One fresh assertion, and (every Nth accepted one) its deliberate replay.
    async fn one(&self) {
        let assertion = match self.builder.build(SystemClock.now()) {
            Ok(a) => a.into_string(),
            Err(e) => {
                eprintln!("m2m-soak: signing failed: {e}");
                return;
            }
        };
        let body = format!("{BODY_PREFIX}{assertion}");
        let t0 = Instant::now();
        let status = self.post(body.clone()).await;
        let lat = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        self.record(t0, |b| {
            b.sent += 1;
            b.lat_us.push(lat);
            match status {
                Some(200) => b.ok += 1,
                Some(400..=499) => b.c4xx += 1,
                Some(500..=599) => b.c5xx += 1,
                _ => b.neterr += 1,
            }
        });
        if status == Some(200)
            && self.replay_every > 0
            && self.accepted.fetch_add(1, Ordering::Relaxed) % self.replay_every == 0
        {
            let t1 = Instant::now();
            let status = self.post(body).await;
            self.record(t1, |b| {
                b.replays += 1;
                match status {
                    Some(200) => b.replays_accepted += 1,
                    Some(500..=599) => b.c5xx += 1,
                    None => b.neterr += 1,
                    _ => {}
                }
            });
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn row(label: &str, b: &mut Bucket) -> String {
    b.lat_us.sort_unstable();
    format!(
        "{label}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{:.2}\t{}\t{}",
        b.sent,
        b.ok,
        b.c4xx,
        b.c5xx,
        b.neterr,
        b.shed,
        percentile(&b.lat_us, 0.50),
        percentile(&b.lat_us, 0.99),
        percentile(&b.lat_us, 1.0),
        b.replays,
        b.replays_accepted
    )
}

async fn run(args: Args) -> Result<(), String> {
    let pem = std::fs::read(&args.key).map_err(|e| format!("{}: {e}", args.key))?;
    let key = PrivateKey::from_bytes(&pem, None, None).map_err(|e| format!("key: {e}"))?;
    let signer = KeySigner::new(Arc::new(key), args.alg, Some(args.kid.clone()))
        .map_err(|e| format!("signer: {e}"))?;
    let builder = AssertionBuilder::new(
        Arc::new(signer),
        args.client_id.clone(),
        Audience::Issuer(args.base.clone()),
    )
    .lifetime(Duration::from_secs(args.lifetime))
    .map_err(|e| format!("lifetime: {e}"))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight.max(args.concurrency))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let shared = Arc::new(Shared {
        http,
        url: format!("{}/oauth2/token", args.base),
        builder,
        start: Instant::now(),
        buckets: Mutex::new(Vec::new()),
        replay_every: args.replay_every,
        accepted: AtomicU64::new(0),
    });
    let deadline = shared.start + Duration::from_secs(args.seconds);

    if args.peak {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let (s, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    s.one().await;
                }
            }));
        }
        tokio::time::sleep_until(deadline.into()).await;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.await;
        }
        let elapsed = shared.start.elapsed().as_secs_f64();
        let mut b = shared.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let ok: u64 = b.iter().map(|b| b.ok).sum();
        let c5xx: u64 = b.iter().map(|b| b.c5xx).sum();
        let mut all = Bucket::default();
        for m in b.iter_mut() {
            all.lat_us.append(&mut m.lat_us);
        }
        all.lat_us.sort_unstable();
        println!(
            "peak_rps\t{:.0}\tok\t{ok}\t5xx\t{c5xx}\tp99_ms\t{:.2}\tconcurrency\t{}",
            ok as f64 / elapsed,
            percentile(&all.lat_us, 0.99),
            args.concurrency
        );
        return Ok(());
    }

    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
    let slice = Duration::from_millis(10);
    let per_slice = args.rate * slice.as_secs_f64();
    let mut owed = 0.0_f64;
    let mut tick = tokio::time::interval(slice);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while Instant::now() < deadline {
        tick.tick().await;
        owed += per_slice;
        while owed >= 1.0 {
            owed -= 1.0;
            match Arc::clone(&in_flight).try_acquire_owned() {
                Ok(permit) => {
                    let s = Arc::clone(&shared);
                    tokio::spawn(async move {
                        s.one().await;
                        drop(permit);
                    });
                }
                Err(_) => shared.record(Instant::now(), |b| b.shed += 1),
            }
        }
    }
    // Let in-flight requests finish (each has a 10 s timeout).
    let _ = in_flight
        .acquire_many(u32::try_from(args.max_in_flight).unwrap_or(u32::MAX))
        .await;

    println!(
        "minute\tsent\tok\t4xx\t5xx\tneterr\tshed\tp50_ms\tp99_ms\tmax_ms\treplays\treplays_accepted"
    );
    let mut buckets = shared.buckets.lock().unwrap_or_else(|p| p.into_inner());
    let mut total = Bucket::default();
    for (i, b) in buckets.iter_mut().enumerate() {
        // A last partial bucket of a few stragglers (requests started after the last full minute)
        // is folded into the total only.
        if (i as u64) < args.seconds.div_ceil(60) {
            println!("{}", row(&(i + 1).to_string(), b));
        }
        total.sent += b.sent;
        total.ok += b.ok;
        total.c4xx += b.c4xx;
        total.c5xx += b.c5xx;
        total.neterr += b.neterr;
        total.shed += b.shed;
        total.replays += b.replays;
        total.replays_accepted += b.replays_accepted;
        total.lat_us.append(&mut b.lat_us);
    }
    println!("{}", row("total", &mut total));
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("m2m-soak: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("m2m-soak: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m2m-soak: {e}");
            ExitCode::FAILURE
        }
    }
}
