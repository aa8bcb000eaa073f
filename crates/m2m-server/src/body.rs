//! Reading a request body within the server's size and time limits, and letting ready responses
//! leave back to back ([`coalesce_writes`]).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use m2m_core::validate::{Reason, Rejection};

use crate::config::ServerConfig;
use crate::refusal::Refusal;

/// The request's body, at most `config.max_body_bytes` bytes within `config.body_read_timeout`;
/// `Err` is the 413 or the 408.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    config: &ServerConfig,
) -> Result<Bytes, Refusal> {
    let cap = config.max_body_bytes;
    let too_large = || {
        Refusal::from(Rejection::new(
            413,
            "invalid_request",
            format!("request body is larger than {cap} bytes"),
            Reason::BodyTooLarge,
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > cap as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(config.body_read_timeout, axum::body::to_bytes(body, cap)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(Refusal::from(Rejection::new(
            408,
            "invalid_request",
            format!(
                "the request body did not arrive within {} s",
                config.body_read_timeout.as_secs_f64()
            ),
            Reason::BodyTimeout,
        ))),
    }
}

/// Lets the other requests that are ready run their (CPU-bound) checks before this response is
/// written, so that under load the responses leave back to back.
///
/// Each write to a socket whose reader sleeps wakes that reader; on one host (a sidecar, a
/// loopback client, a VM whose idle vCPUs halt) the wake-up runs on the writer's core, and
/// inside a VM it is an inter-processor interrupt and a VM exit. Written one per ~150 µs of
/// RSA work, every response paid that wake-up; written in a burst, only the first does. One
/// yield costs a task poll (~1 µs) and delays a response by at most the CPU work already queued
/// ahead of it. On the token-endpoint benchmark (one server core) it cut the server's kernel time
/// per request from ~36 µs to ~18 µs and raised throughput by 7–26 % (docs/benchmarks.md).
pub(crate) async fn coalesce_writes() {
    tokio::task::yield_now().await;
}
