//! TokenSource hot path: the latency of a cached `token()` on one thread, and the throughput of
//! cached `token()` calls on 1 and 2 threads (scaling shows whether the hot path contends).
//!
//! A shared `RwLock<Arc<str>>` read + clone is measured alongside as the baseline the design
//! was chosen against, and a control that shares nothing shows how much of a second core the
//! machine actually gave.
//!
//! Run: `cargo bench -p m2m-client --bench source -- --warm-up-time 1 --measurement-time 3`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use m2m_client::source::{FetchToken, TokenSource};
use m2m_client::{AccessToken, BoxFuture, Error, TokenResponse};

/// A fetcher that answers at once: the bench measures the cache, not HTTP.
#[derive(Debug)]
struct Instant1h;

impl FetchToken for Instant1h {
    fn fetch(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(async {
            Ok(TokenResponse::new(
                AccessToken::new("x".repeat(1200)),
                Some("Bearer".into()),
                Some(Duration::from_secs(3600)),
            ))
        })
    }
}

fn warm_source() -> TokenSource {
    let source = TokenSource::new(Instant1h);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(source.token()).unwrap();
    source
}

/// Runs `per_thread` calls of `f` on each of `threads` threads at once; returns the wall time.
fn parallel<F>(threads: usize, per_thread: u64, f: F) -> Duration
where
    F: Fn() + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let f = Arc::clone(&f);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                for _ in 0..per_thread {
                    f();
                }
                t.elapsed()
            })
        })
        .collect();
    start.wait();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap_or_default()
}

fn latency(c: &mut Criterion) {
    // The clock read is part of every call; shown separately to explain the total.
    c.bench_function("token_source/system_clock_now", |b| {
        b.iter(|| black_box(m2m_core::clock::Clock::now(&m2m_core::clock::SystemClock)))
    });
    let source = warm_source();
    c.bench_function("token_source/cached_token_1_thread", |b| {
        b.iter(|| black_box(source.token().now_or_never().unwrap().unwrap()))
    });
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_source/throughput");
    for threads in [1usize, 2] {
        // One "element" per call; each iteration is one call on every thread.
        group.throughput(Throughput::Elements(threads as u64));
        let source = warm_source();
        group.bench_function(format!("cached_token_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let s = source.clone();
                parallel(threads, iters, move || {
                    black_box(s.token().now_or_never().unwrap().unwrap());
                })
            })
        });
        // Control: work that shares nothing, at a similar cost per call. Its 2-thread/1-thread
        // ratio is how much parallelism the machine gives right now (other processes compete
        // for the cores); the token's ratio is only meaningful next to it.
        group.bench_function(format!("control_no_sharing_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, move || {
                    let mut x = black_box(0x9e37_79b9_7f4a_7c15_u64);
                    for _ in 0..24 {
                        x = x.rotate_left(5) ^ x.wrapping_mul(0x2545_f491_4f6c_dd1d);
                    }
                    black_box(x);
                })
            })
        });
        // Baseline: a std RwLock read and a shared Arc clone per call.
        let shared: Arc<RwLock<Arc<str>>> = Arc::new(RwLock::new(Arc::from("x".repeat(1200))));
        group.bench_function(format!("rwlock_arc_baseline_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let shared = Arc::clone(&shared);
                parallel(threads, iters, move || {
                    black_box(Arc::clone(&*shared.read().unwrap()));
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, latency, throughput);
criterion_main!(benches);
