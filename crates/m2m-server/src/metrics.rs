//! `GET /metrics`: the server's counters and latency histogram, rendered as Prometheus text by
//! hand (a few atomics and one small map do not justify a metrics framework).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds (token requests are ~1 ms without a JWKS
/// fetch; the tail covers remote JWKS and Redis).
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The server's metrics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// `(outcome, reason)` → count. Labels come from fixed enums, so the map stays small.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    store_errors: AtomicU64,
    jwks_fetch_errors: AtomicU64,
    refusal_log_suppressed: AtomicU64,
}

impl Metrics {
    /// Empty metrics.
    pub(crate) fn new() -> Self {
        Metrics::default()
    }

    /// Counts one token request: `outcome` is `issued`, `rejected` or `error`; `reason` a
    /// `Reason::as_str()` or `ok`.
    pub(crate) fn token_request(
        &self,
        outcome: &'static str,
        reason: &'static str,
        latency: Duration,
    ) {
        *self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((outcome, reason))
            .or_insert(0) += 1;
        let secs = latency.as_secs_f64();
        for (bound, counter) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts a replay-store failure.
    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal log line that the per-second cap suppressed.
    pub(crate) fn refusal_log_suppressed(&self) {
        self.refusal_log_suppressed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed JWKS fetch.
    pub(crate) fn jwks_fetch_error(&self) {
        self.jwks_fetch_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4. `store` is the replay store's kind, the `store`
    /// label docs/server.md documents.
    pub(crate) fn render(&self, jwks_fetches: u64, store: &str) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP m2m_token_requests_total Token endpoint requests by outcome and reason.\n",
        );
        out.push_str("# TYPE m2m_token_requests_total counter\n");
        for ((outcome, reason), n) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "m2m_token_requests_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP m2m_token_request_duration_seconds Token endpoint latency.\n");
        out.push_str("# TYPE m2m_token_request_duration_seconds histogram\n");
        for (bound, counter) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "m2m_token_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "m2m_token_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "m2m_token_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "m2m_token_request_duration_seconds_count {count}");
        out.push_str(
            "# HELP m2m_replay_store_errors_total Replay store failures (each answered 503).\n",
        );
        out.push_str("# TYPE m2m_replay_store_errors_total counter\n");
        let _ = writeln!(
            out,
            "m2m_replay_store_errors_total{{store=\"{store}\"}} {}",
            self.store_errors.load(Ordering::Relaxed)
        );
        out.push_str("# HELP m2m_jwks_fetches_total HTTP fetches of clients' jwks_uri.\n");
        out.push_str("# TYPE m2m_jwks_fetches_total counter\n");
        let _ = writeln!(out, "m2m_jwks_fetches_total {jwks_fetches}");
        out.push_str("# HELP m2m_jwks_fetch_errors_total JWKS fetches that failed with no usable cached set.\n");
        out.push_str("# TYPE m2m_jwks_fetch_errors_total counter\n");
        let _ = writeln!(
            out,
            "m2m_jwks_fetch_errors_total {}",
            self.jwks_fetch_errors.load(Ordering::Relaxed)
        );
        out.push_str("# HELP m2m_refusal_log_lines_suppressed_total Refusal log lines not written because of the per-second cap (the refusals are counted above).\n");
        out.push_str("# TYPE m2m_refusal_log_lines_suppressed_total counter\n");
        let _ = writeln!(
            out,
            "m2m_refusal_log_lines_suppressed_total {}",
            self.refusal_log_suppressed.load(Ordering::Relaxed)
        );
        out
    }
}

/// The handler: everything counted so far, plus the JWKS fetcher's fetch count.
pub(crate) async fn handle(State(state): State<Arc<AppState>>) -> Response {
    let body = state
        .metrics
        .render(state.fetcher.fetch_count(), state.replay.kind());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
