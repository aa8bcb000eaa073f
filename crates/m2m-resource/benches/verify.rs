//! The verify path per request: an uncached ES256 token (cache off: parse, checks, signature
//! every time) and a cached one (SHA-256, map lookup, the scope rule). Numbers go in
//! docs/benchmarks.md; run with `cargo bench -p m2m-resource`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet, Kid};
use m2m_core::jws::EncodedHeader;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_resource::{TrustedIssuer, Verifier};
use serde_json::json;

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://api.example.com";

fn setup(cache: usize) -> (Verifier, String) {
    let key = std::sync::Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let keys = KeySet::new(vec![KeyEntry::new(
        Some(Kid::new("k1")),
        key.public_key().clone(),
    )]);
    let signer = KeySigner::new(key, Algorithm::Es256, Some("k1".into())).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = EncodedHeader::typed("at+jwt", &signer).unwrap();
    let token = header
        .sign(
            &json!({"iss": ISSUER, "sub": "svc", "client_id": "svc", "aud": AUDIENCE,
                    "iat": now, "exp": now + 3600, "jti": "j1", "scope": "read"}),
            &signer,
        )
        .unwrap();
    let verifier = Verifier::builder(AUDIENCE)
        .issuer(TrustedIssuer::with_keys(ISSUER, keys))
        .cache_capacity(cache)
        .build()
        .unwrap();
    (verifier, token)
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (uncached, token) = setup(0);
    c.bench_function("verify ES256 uncached", |b| {
        b.iter(|| rt.block_on(uncached.verify(&token, &["read"])).unwrap())
    });
    let (cached, token) = setup(1000);
    rt.block_on(cached.verify(&token, &["read"])).unwrap();
    c.bench_function("verify ES256 cached", |b| {
        b.iter(|| rt.block_on(cached.verify(&token, &["read"])).unwrap())
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
