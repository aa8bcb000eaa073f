//! Criterion bench of `ReplayStore::insert_if_absent` per backend (memory, SQLite, Redis): one
//! call at a time (latency) and 64 in flight (throughput a busy token endpoint sees).
//!
//! Every iteration inserts a fresh jti, so each call is a real write. Redis runs against a
//! private `redis-server` (skipped loudly when it is not installed).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use m2m_core::clock::{Clock, SystemClock};
use m2m_server::replay::{self, ReplayStore};

/// Entry lifetime: short, so the bench reaches the steady state where expiries (and their
/// purge) keep pace with inserts instead of filling the memory store's cap.
const TTL: Duration = Duration::from_millis(100);

/// Calls in flight for the throughput bench: roughly a loaded server's concurrent requests.
const IN_FLIGHT: u64 = 64;

fn stores(rt: &tokio::runtime::Runtime) -> Vec<(Arc<dyn ReplayStore>, Box<dyn std::any::Any>)> {
    let _enter = rt.enter();
    let mut out: Vec<(Arc<dyn ReplayStore>, Box<dyn std::any::Any>)> = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    out.push((replay::open("memory", dir.path()).unwrap(), Box::new(())));
    out.push((replay::open("sqlite", dir.path()).unwrap(), Box::new(dir)));
    if let Some(server) = m2m_testkit::redis::RedisServer::start() {
        let store = replay::open(&server.url(), std::path::Path::new(".")).unwrap();
        out.push((store, Box::new(server)));
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    for (store, _guard) in stores(&rt) {
        let kind = store.kind();

        let mut group = c.benchmark_group(format!("replay/{kind}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("insert_if_absent/sequential", |b| {
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let now = SystemClock.now();
                let jti = format!("jti-{n}");
                let new = rt
                    .block_on(store.insert_if_absent("bench-client", &jti, now.add(TTL), now))
                    .unwrap();
                assert!(new);
            });
        });

        group.throughput(Throughput::Elements(IN_FLIGHT));
        group.bench_function(format!("insert_if_absent/{IN_FLIGHT}_in_flight"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(async {
                        let handles: Vec<_> = (0..IN_FLIGHT)
                            .map(|_| {
                                let store = Arc::clone(&store);
                                let n = counter.fetch_add(1, Ordering::Relaxed);
                                tokio::spawn(async move {
                                    let now = SystemClock.now();
                                    let jti = format!("jti-{n}");
                                    store
                                        .insert_if_absent("bench-client", &jti, now.add(TTL), now)
                                        .await
                                        .unwrap()
                                })
                            })
                            .collect();
                        for h in handles {
                            assert!(h.await.unwrap());
                        }
                    });
                }
                start.elapsed()
            });
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
