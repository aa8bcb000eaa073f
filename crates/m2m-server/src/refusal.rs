//! A refusal on its way out of an endpoint — the [`Refusal`] type, how it is logged, and the
//! refusals every endpoint shares (replay store down, rate limit exceeded).

use std::time::Duration;

use m2m_core::clock::UnixTime;
use m2m_core::validate::{Reason, Rejection};

use crate::log_limit::{REFUSAL_LOG_LINES_PER_SECOND, Verdict};
use crate::registry::Client;
use crate::state::AppState;

/// A refusal on its way out: the rejection, a `Retry-After` for 429, and the client when known
/// (for the log).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) rejection: Rejection,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) client: Option<String>,
    /// The request tried `Authorization: Basic`: a 401 carries `WWW-Authenticate: Basic`
    /// (RFC 6749 §5.2).
    pub(crate) basic_challenge: bool,
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal {
            rejection,
            retry_after: None,
            client: None,
            basic_challenge: false,
        }
    }
}

impl Refusal {
    /// The same refusal, naming the client it concerns in the log.
    pub(crate) fn for_client(mut self, client: &str) -> Self {
        self.client = Some(client.to_owned());
        self
    }

    /// The same refusal, answering with a Basic challenge when `basic` (the request used
    /// `Authorization: Basic`).
    pub(crate) fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

/// The 503 every replay-store failure becomes: no token is issued unchecked (fail closed).
pub(crate) fn store_unavailable(state: &AppState, error: &crate::replay::StoreError) -> Refusal {
    state.metrics.store_error();
    tracing::error!(store = state.replay.kind(), error = %error, "replay store failed: refusing (fail closed)");
    Refusal::from(Rejection::new(
        503,
        "temporarily_unavailable",
        "the replay store is unavailable, so the assertion cannot be checked; no token was issued — retry later",
        Reason::StoreUnavailable,
    ))
}

/// Logs a refusal with its precise reason (the request id comes from the request's span), at
/// most `REFUSAL_LOG_LINES_PER_SECOND` lines a second: past that, lines are only counted
/// (`m2m_refusal_log_lines_suppressed_total`) and the next line logged is preceded by a summary.
pub(crate) fn log_refusal(state: &AppState, refusal: &Refusal, endpoint: &'static str) {
    match state.refusal_log.admit(state.config.clock.now()) {
        Verdict::Suppress => {
            state.metrics.refusal_log_suppressed();
            return;
        }
        Verdict::Log { suppressed } if suppressed > 0 => {
            tracing::warn!(
                suppressed,
                "suppressed {suppressed} refusal log lines (more than {REFUSAL_LOG_LINES_PER_SECOND} a second)"
            );
        }
        Verdict::Log { .. } => {}
    }
    let r = &refusal.rejection;
    let client = refusal.client.as_deref().unwrap_or("");
    if r.status >= 500 {
        tracing::warn!(endpoint, status = r.status, reason = r.reason.as_str(), client, detail = %r.description, "refused");
    } else {
        tracing::info!(endpoint, status = r.status, reason = r.reason.as_str(), client, detail = %r.description, "refused");
    }
}

/// The client's requests per minute (client override, else server-wide; 0 = unlimited).
fn limit_of(state: &AppState, client: &Client) -> u32 {
    client
        .rate_limit
        .unwrap_or(state.config.rate_limit_per_minute)
}

/// Takes a token from the client's bucket for a request that has already been refused (a failed
/// authentication), so failures count against the rate limit too.
pub(crate) fn charge_rate_limit(state: &AppState, client: &Client, now: UnixTime) {
    let _ = state
        .limiter
        .check(&client.id, limit_of(state, client), now);
}

/// The per-client rate limit (client override, else server-wide).
pub(crate) fn rate_limit(state: &AppState, client: &Client, now: UnixTime) -> Result<(), Refusal> {
    let limit = limit_of(state, client);
    state.limiter.check(&client.id, limit, now).map_err(|retry_after| Refusal {
        rejection: Rejection::new(
            429,
            "temporarily_unavailable",
            format!(
                "rate limit exceeded: at most {limit} token requests per minute for this client; retry after {} s",
                retry_after.as_secs()
            ),
            Reason::RateLimited,
        ),
        retry_after: Some(retry_after),
        client: Some(client.id.clone()),
        basic_challenge: false,
    })
}
