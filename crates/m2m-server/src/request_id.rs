//! Request ids: one per request, on every log line of that request (a tracing span) and in the
//! `X-Request-Id` response header.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The request id of the current request, set by the [`request_id`] middleware; also the NHS
/// `message_id` (prefixed `rrt-` like NHS's), so a user's bug report points at our log line.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

/// Request ids: a random per-process prefix and a counter. Unique across restarts and instances
/// (the prefix), and cheap: a CSPRNG UUID per request cost ~0.6% of the token endpoint's CPU
/// under load. They correlate log lines; they authorize nothing, so predictability is harmless.
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| m2m_core::assertion::new_jti()[..8].to_owned());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n:012}")
}

/// Gives every request an id, records it on a tracing span (so every log line of the request
/// carries it) and returns it in `X-Request-Id`.
pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = next_request_id();
    let header = HeaderValue::from_str(&id).ok();
    // Only the id: the span is live at info (m2m serve's default) and the fmt subscriber formats
    // its fields on every request; method and path are on the refusal lines that need them.
    let span = tracing::info_span!("request", request_id = %id);
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).instrument(span).await;
    if let Some(v) = header {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
