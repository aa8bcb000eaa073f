//! The verify path per request: an uncached ES256 token (cache off: parse, checks, signature
//! every time), a cached one (SHA-256, map lookup, the scope rule), and a cached DPoP-bound token
//! with a fresh ES256 proof (the cached token plus the proof's checks, one ES256 verification and
//! the in-memory replay store; proofs are made outside the measured time). Numbers go in
//! docs/benchmarks.md; run with `cargo bench -p m2m-resource`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::ids::{KeyEntry, KeySet, Kid};
use m2m_core::jws::EncodedHeader;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_resource::{DpopMode, DpopSettings, TrustedIssuer, Verifier};
use serde_json::json;

const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://api.example.com";

fn setup(cache: usize) -> (Verifier, String) {
    setup_bound(cache, None)
}

/// The verifier and a token, bound to `jkt` when given.
fn setup_bound(cache: usize, jkt: Option<&str>) -> (Verifier, String) {
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
    let mut claims = json!({"iss": ISSUER, "sub": "svc", "client_id": "svc", "aud": AUDIENCE,
                            "iat": now, "exp": now + 3600, "jti": "j1", "scope": "read"});
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    let token = header.sign(&claims, &signer).unwrap();
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

fn verify_dpop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = ProofBuilder::new(std::sync::Arc::new(
        PrivateKey::generate(KeySpec::P256).unwrap(),
    ))
    .unwrap();
    let (verifier, token) = setup_bound(1000, Some(client.thumbprint()));
    let dpop = DpopSettings::new(DpopMode::Required);
    let url = "https://api.example.com/things";
    let now = || {
        UnixTime::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
    };
    let fresh_proof = || {
        client
            .build(&ProofInput::new("GET", url).access_token(&token), now())
            .unwrap()
            .into_string()
    };
    // Warm the verified-token cache.
    rt.block_on(dpop.verify_request(&verifier, &token, &fresh_proof(), "GET", url, &["read"]))
        .unwrap();
    c.bench_function("verify DPoP: cached ES256 token + fresh ES256 proof", |b| {
        b.iter_batched(
            fresh_proof,
            |proof| {
                rt.block_on(dpop.verify_request(&verifier, &token, &proof, "GET", url, &["read"]))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, verify, verify_dpop);
criterion_main!(benches);
