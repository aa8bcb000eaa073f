//! The forwarder's counters and their Prometheus text: requests, upstream answers by status
//! class, upstream failures, and per command: retries and token fetches (`m2m proxy`, metric
//! names `m2m_proxy_…`), verified, refused and public requests (`m2m gateway`, `m2m_gateway_…`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the listener, the token source and the admin listener. Relaxed atomics:
/// each counter stands alone, and a scrape needs no consistent snapshot across them.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: AtomicU64,
    /// Upstream answers by status class: 1xx … 5xx.
    upstream_status: [AtomicU64; 5],
    upstream_errors: AtomicU64,
    retries: AtomicU64,
    token_fetches: AtomicU64,
    token_fetch_errors: AtomicU64,
    /// The gateway's counters (and metric names) instead of the proxy's.
    gateway: bool,
    verified: AtomicU64,
    refused: AtomicU64,
    public: AtomicU64,
}

impl Metrics {
    /// The counters of `m2m gateway`.
    pub(crate) fn gateway() -> Self {
        Metrics {
            gateway: true,
            ..Metrics::default()
        }
    }

    /// A request whose token was verified (it goes on upstream).
    pub(crate) fn verified(&self) {
        self.verified.fetch_add(1, Ordering::Relaxed);
    }

    /// A request answered with a 400/401/403 challenge (nothing sent upstream).
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A request under a public prefix (no token needed).
    pub(crate) fn public(&self) {
        self.public.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upstream_status(&self, status: u16) {
        if let Some(class) = (usize::from(status / 100))
            .checked_sub(1)
            .and_then(|i| self.upstream_status.get(i))
        {
            class.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// One token request to the token endpoint, and whether it succeeded.
    pub(crate) fn token_fetch(&self, ok: bool) {
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.token_fetch_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters in the Prometheus text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let prefix = if self.gateway {
            "m2m_gateway"
        } else {
            "m2m_proxy"
        };
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let name = format!("{prefix}_{name}");
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "requests_total",
            "Requests received on the listener.",
            &[("", get(&self.requests))],
        );
        let classes: Vec<(String, u64)> = self
            .upstream_status
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{{class=\"{}xx\"}}", i + 1), get(c)))
            .collect();
        let rows: Vec<(&str, u64)> = classes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            "upstream_responses_total",
            "Upstream answers by status class.",
            &rows,
        );
        counter(
            "upstream_errors_total",
            "Requests the upstream did not answer (answered 502).",
            &[("", get(&self.upstream_errors))],
        );
        if self.gateway {
            counter(
                "requests_checked_total",
                "Requests by the gateway's decision: token verified, refused, or public path.",
                &[
                    ("{result=\"verified\"}", get(&self.verified)),
                    ("{result=\"refused\"}", get(&self.refused)),
                    ("{result=\"public\"}", get(&self.public)),
                ],
            );
            return out;
        }
        counter(
            "retries_total",
            "Requests sent again with a new token after 401 invalid_token.",
            &[("", get(&self.retries))],
        );
        counter(
            "token_fetches_total",
            "Token requests to the token endpoint (refreshes included).",
            &[
                (
                    "{result=\"ok\"}",
                    get(&self.token_fetches) - get(&self.token_fetch_errors),
                ),
                ("{result=\"error\"}", get(&self.token_fetch_errors)),
            ],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_counter_with_its_labels() {
        let m = Metrics::default();
        m.request();
        m.upstream_status(204);
        m.upstream_status(503);
        m.upstream_status(999);
        m.retry();
        m.token_fetch(true);
        m.token_fetch(false);
        let text = m.render();
        for line in [
            "m2m_proxy_requests_total 1",
            "m2m_proxy_upstream_responses_total{class=\"2xx\"} 1",
            "m2m_proxy_upstream_responses_total{class=\"5xx\"} 1",
            "m2m_proxy_upstream_responses_total{class=\"4xx\"} 0",
            "m2m_proxy_retries_total 1",
            "m2m_proxy_token_fetches_total{result=\"ok\"} 1",
            "m2m_proxy_token_fetches_total{result=\"error\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn the_gateway_counts_its_decisions_under_its_own_names() {
        let m = Metrics::gateway();
        m.request();
        m.verified();
        m.refused();
        m.refused();
        m.public();
        m.upstream_status(200);
        let text = m.render();
        for line in [
            "m2m_gateway_requests_total 1",
            "m2m_gateway_upstream_responses_total{class=\"2xx\"} 1",
            "m2m_gateway_requests_checked_total{result=\"verified\"} 1",
            "m2m_gateway_requests_checked_total{result=\"refused\"} 2",
            "m2m_gateway_requests_checked_total{result=\"public\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("m2m_proxy_"), "{text}");
        assert!(!text.contains("token_fetches"), "{text}");
    }
}
