//! DPoP benchmarks: ES256 proof creation (target ≤ 30 µs, docs/benchmarks.md) and validation
//! (parse, checks and one ES256 verify, as a token endpoint or resource server runs it).
//!
//! Run: `cargo bench -p m2m-core --bench dpop -- --warm-up-time 1 --measurement-time 3`.
// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use m2m_core::clock::UnixTime;
use m2m_core::dpop::{ProofBuilder, ProofInput};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::validate::{DpopRequest, DpopValidator};

const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);
const URL: &str = "https://api.example/v1/patients";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.an-access-token.signature";

fn es256(c: &mut Criterion) {
    let key = Arc::new(PrivateKey::generate(KeySpec::P256).expect("key"));
    let builder = ProofBuilder::new(key).expect("builder");
    let input = ProofInput::new("GET", URL).access_token(TOKEN);
    c.bench_function("dpop_es256_proof_create", |b| {
        b.iter(|| builder.build(black_box(&input), NOW).expect("proof"))
    });

    let proof = builder.build(&input, NOW).expect("proof");
    let validator = DpopValidator::default();
    let request = DpopRequest::new("GET", URL)
        .access_token(TOKEN)
        .bound_to(builder.thumbprint());
    c.bench_function("dpop_es256_proof_validate", |b| {
        b.iter(|| {
            validator
                .validate(black_box(proof.as_str()), &request, NOW)
                .expect("valid")
        })
    });
}

criterion_group!(benches, es256);
criterion_main!(benches);
