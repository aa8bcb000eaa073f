//! Core signing benchmarks: the cost of our framing around aws-lc-rs (`AssertionBuilder::build`
//! against a raw RSA-4096 RS512 signature of the same ~300-byte signing input), ES256 and EdDSA
//! assertion builds, and verification (parse + verify) of RS512-4096 and ES256 assertions.
//!
//! Run: `cargo bench -p m2m-core --bench sign -- --warm-up-time 1 --measurement-time 3`.
//! Figures and targets are in docs/benchmarks.md.
// criterion_group! generates undocumented items; the bench reports its input size on stderr.
#![allow(missing_docs, clippy::print_stderr)]

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::UnixTime;
use m2m_core::jws::UnverifiedJws;
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::nhs::Environment;
use m2m_core::signer::KeySigner;

const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

fn builder(key: &Arc<PrivateKey>, alg: Algorithm) -> AssertionBuilder {
    let signer = KeySigner::new(key.clone(), alg, Some("int-1".into())).expect("signer");
    AssertionBuilder::new(
        Arc::new(signer),
        "Ah0b1c2d3e4f5g6h7i8j9k0lMnOpQrSt",
        Audience::TokenUrl(Environment::Int.token_url().to_owned()),
    )
}

fn pkcs8_der(key: &PrivateKey) -> Vec<u8> {
    let pem = key.to_pkcs8_pem().expect("pkcs8");
    pem::parse(pem.as_bytes()).expect("pem").contents().to_vec()
}

fn rs512_4096(c: &mut Criterion) {
    let key = Arc::new(PrivateKey::generate(KeySpec::Rsa { bits: 4096 }).expect("rsa-4096"));
    let raw = RsaKeyPair::from_pkcs8(&pkcs8_der(&key)).expect("raw key");
    let builder = builder(&key, Algorithm::Rs512);
    let token = builder.build(NOW).expect("build").into_string();
    let jws = UnverifiedJws::parse(&token).expect("parse");
    // The same signing input the builder signs: a typical NHS assertion's header.payload.
    let input = jws.signing_input().as_bytes().to_vec();
    eprintln!(
        "RS512-4096 signing input: {} bytes, token: {} bytes",
        input.len(),
        token.len()
    );
    let rng = SystemRandom::new();
    let mut group = c.benchmark_group("rs512_4096");
    group.bench_function("raw_aws_lc_sign", |b| {
        let mut sig = vec![0; raw.public_modulus_len()];
        b.iter(|| {
            raw.sign(
                &signature::RSA_PKCS1_SHA512,
                &rng,
                black_box(&input),
                &mut sig,
            )
            .expect("sign");
            black_box(&sig);
        });
    });
    group.bench_function("assertion_build", |b| {
        b.iter(|| black_box(builder.build(black_box(NOW)).expect("build")));
    });
    let public = key.public_key().clone();
    group.bench_function("verify", |b| {
        b.iter(|| {
            black_box(&jws)
                .verify(&public, Algorithm::Rs512)
                .expect("verify")
        });
    });
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| {
            UnverifiedJws::parse(black_box(&token))
                .expect("parse")
                .verify(&public, Algorithm::Rs512)
                .expect("verify")
        });
    });
    group.finish();
}

fn es256(c: &mut Criterion) {
    let key = Arc::new(PrivateKey::generate(KeySpec::P256).expect("p-256"));
    let raw = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &pkcs8_der(&key),
    )
    .expect("raw key");
    let builder = builder(&key, Algorithm::Es256);
    let token = builder.build(NOW).expect("build").into_string();
    let jws = UnverifiedJws::parse(&token).expect("parse");
    let input = jws.signing_input().as_bytes().to_vec();
    let rng = SystemRandom::new();
    let mut group = c.benchmark_group("es256");
    group.bench_function("raw_aws_lc_sign", |b| {
        b.iter(|| black_box(raw.sign(&rng, black_box(&input)).expect("sign")));
    });
    group.bench_function("assertion_build", |b| {
        b.iter(|| black_box(builder.build(black_box(NOW)).expect("build")));
    });
    let public = key.public_key().clone();
    group.bench_function("verify", |b| {
        b.iter(|| {
            black_box(&jws)
                .verify(&public, Algorithm::Es256)
                .expect("verify")
        });
    });
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| {
            UnverifiedJws::parse(black_box(&token))
                .expect("parse")
                .verify(&public, Algorithm::Es256)
                .expect("verify")
        });
    });
    group.finish();
}

fn eddsa(c: &mut Criterion) {
    let key = Arc::new(PrivateKey::generate(KeySpec::Ed25519).expect("ed25519"));
    let builder = builder(&key, Algorithm::EdDsa);
    let mut group = c.benchmark_group("eddsa");
    group.bench_function("assertion_build", |b| {
        b.iter(|| black_box(builder.build(black_box(NOW)).expect("build")));
    });
    group.finish();
}

criterion_group!(benches, rs512_4096, es256, eddsa);
criterion_main!(benches);
