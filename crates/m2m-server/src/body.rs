//! Reading a request body within the server's size and time limits, its one `Content-Type`
//! ([`content_type`]), and letting ready responses leave back to back ([`coalesce_writes`]).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use bytes::BytesMut;
use futures_util::StreamExt;
use m2m_core::validate::{Reason, Rejection};

use crate::config::ServerConfig;
use crate::refusal::Refusal;

/// The request's body, at most `config.max_body_bytes` bytes within `config.body_read_timeout`;
/// `Err` is the 413, the 408, or a 400 for a body hyper could not read.
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
    match tokio::time::timeout(config.body_read_timeout, collect(body, cap)).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(too_large()),
        // What hyper reports while reading: a malformed chunked encoding (bad chunk size, an
        // overflowing one), a connection cut mid-body. It is not a size problem.
        Ok(Err(_)) => Err(Refusal::from(Rejection::invalid_request(
            Reason::Other,
            "the request body could not be read (malformed chunked encoding, or the \
             connection was cut)",
        ))),
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

/// The body's bytes; `Ok(None)` once they exceed `cap`, `Err` when hyper cannot read them.
async fn collect(body: Body, cap: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if bytes.len() + chunk.len() > cap {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes.freeze()))
}

/// The request's `Content-Type` header, as [`content_type`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentType<'a> {
    /// No `Content-Type` header.
    Absent,
    /// One header, visible ASCII.
    Text(&'a str),
    /// One header with bytes outside visible ASCII (it cannot be the form media type).
    Unreadable,
}

impl<'a> ContentType<'a> {
    /// For the rfc profile and introspection: an unreadable header is a 400 that says so (it used
    /// to read "no Content-Type was sent").
    pub(crate) fn readable(self) -> Result<Option<&'a str>, Refusal> {
        match self {
            ContentType::Absent => Ok(None),
            ContentType::Text(text) => Ok(Some(text)),
            ContentType::Unreadable => Err(Refusal::from(Rejection::invalid_request(
                Reason::MediaType,
                "Content-Type must be application/x-www-form-urlencoded (the Content-Type sent \
                 is not readable: it has bytes outside visible ASCII)",
            ))),
        }
    }

    /// For the nhs profile, whose one answer to any other media type is its 415: unreadable is
    /// as good as absent.
    pub(crate) fn lenient(self) -> Option<&'a str> {
        match self {
            ContentType::Text(text) => Some(text),
            ContentType::Absent | ContentType::Unreadable => None,
        }
    }
}

/// The request's one `Content-Type`. `Content-Type` is a singleton field (RFC 9110 §8.3): with
/// two of them it is ambiguous which media type the body is, so more than one is a 400
/// `invalid_request` rather than "the first one wins".
pub(crate) fn content_type(headers: &HeaderMap) -> Result<ContentType<'_>, Refusal> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let Some(value) = values.next() else {
        return Ok(ContentType::Absent);
    };
    if values.next().is_some() {
        return Err(Refusal::from(Rejection::invalid_request(
            Reason::MediaType,
            "more than one Content-Type header was sent; send exactly one: \
             application/x-www-form-urlencoded",
        )));
    }
    Ok(value
        .to_str()
        .map_or(ContentType::Unreadable, ContentType::Text))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn content_type_is_one_readable_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_type(&headers).unwrap(), ContentType::Absent);
        headers.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            content_type(&headers).unwrap(),
            ContentType::Text("application/x-www-form-urlencoded")
        );
        headers.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let refusal = content_type(&headers).unwrap_err();
        assert_eq!(refusal.rejection.status, 400);
        assert!(refusal.rejection.description.contains("more than one"));

        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/x-www-form-urlencoded; a=\xff").unwrap(),
        );
        let ct = content_type(&headers).unwrap();
        assert_eq!(ct, ContentType::Unreadable);
        assert_eq!(ct.lenient(), None);
        let refusal = ct.readable().unwrap_err();
        assert!(refusal.rejection.description.contains("not readable"));
        assert!(!refusal.rejection.description.contains("no Content-Type"));
    }
}
