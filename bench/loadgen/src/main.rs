//! Pre-signs single-use client assertions for the token-endpoint load benchmark, in parallel on
//! every core, so the timed run measures the server and not RSA-4096 signing (~1.5 ms each).
//!
//! Writes one complete `application/x-www-form-urlencoded` token request body per line (the
//! wrk script posts each line once). Each assertion has a fresh `jti`, so every request makes
//! the replay store do a real insert.
//!
//! ```text
//! m2m-loadgen --key KEY.pem --kid KID --client-id ID --aud ISSUER --count N --out FILE
//!             [--threads T] [--lifetime SECS]
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;
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
    key: String,
    kid: String,
    client_id: String,
    aud: String,
    count: usize,
    out: String,
    threads: usize,
    lifetime: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut key = None;
    let mut kid = None;
    let mut client_id = None;
    let mut aud = None;
    let mut count = None;
    let mut out = None;
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut lifetime = 300;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--key" => key = Some(value),
            "--kid" => kid = Some(value),
            "--client-id" => client_id = Some(value),
            "--aud" => aud = Some(value),
            "--count" => count = Some(number(&value)?),
            "--out" => out = Some(value),
            "--threads" => threads = number(&value)?.max(1),
            "--lifetime" => lifetime = number(&value)? as u64,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    Ok(Args {
        key: need(key, "--key")?,
        kid: need(kid, "--kid")?,
        client_id: need(client_id, "--client-id")?,
        aud: need(aud, "--aud")?,
        count: count.ok_or("--count is required")?,
        out: need(out, "--out")?,
        threads,
        lifetime,
    })
}

/// Signs `count` bodies with one builder; the first error stops this worker.
fn sign_chunk(builder: &AssertionBuilder, count: usize) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(count * 1200);
    for _ in 0..count {
        let assertion = builder
            .build(SystemClock.now())
            .map_err(|e| format!("signing failed: {e}"))?;
        buf.extend_from_slice(BODY_PREFIX.as_bytes());
        buf.extend_from_slice(assertion.as_str().as_bytes());
        buf.push(b'\n');
    }
    Ok(buf)
}

fn run(args: &Args) -> Result<(), String> {
    let pem = std::fs::read(&args.key).map_err(|e| format!("cannot read {}: {e}", args.key))?;
    let key = PrivateKey::from_bytes(&pem, None, None)
        .map_err(|e| format!("cannot load {}: {e}", args.key))?;
    let signer = KeySigner::new(Arc::new(key), Algorithm::Rs512, Some(args.kid.clone()))
        .map_err(|e| format!("key does not fit RS512: {e}"))?;
    let builder = AssertionBuilder::new(
        Arc::new(signer),
        args.client_id.clone(),
        Audience::Issuer(args.aud.clone()),
    )
    .lifetime(Duration::from_secs(args.lifetime))
    .map_err(|e| e.to_string())?;

    let started = Instant::now();
    let per_thread = args.count.div_ceil(args.threads);
    let chunks: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|i| {
                let n = per_thread.min(args.count.saturating_sub(i * per_thread));
                let builder = builder.clone();
                scope.spawn(move || sign_chunk(&builder, n))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a signing thread panicked".to_owned()))
            })
            .collect()
    });
    let file = File::create(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out))?;
    let mut out = BufWriter::new(file);
    for chunk in chunks {
        out.write_all(&chunk?)
            .map_err(|e| format!("cannot write {}: {e}", args.out))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write {}: {e}", args.out))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "signed {} RS512 assertions in {secs:.1} s on {} threads ({:.0}/s)",
        args.count,
        args.threads,
        args.count as f64 / secs
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m2m-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
