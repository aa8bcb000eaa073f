//! The Redis proof replay store: `SET key 1 NX PX ttl`, so several instances of an API (or of
//! `m2m gateway`) behind a load balancer share one record of used proofs — a proof used at
//! instance A is refused at instance B.
//!
//! Redis does the atomic check-and-set and the expiry. This file keeps one multiplexed
//! connection, replaces it when it breaks, and bounds every call by [`OPERATION_TIMEOUT`], so a
//! request fails fast (503) when Redis is down instead of hanging.

use std::fmt;
use std::time::Duration;

use m2m_core::clock::UnixTime;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use tokio::sync::Mutex;

use super::replay::{ProofReplayStore, ReplayError, ReplayFuture};

const BACKEND: &str = "redis";

/// The most one call may take, connecting included: far above a healthy round trip (< 1 ms on a
/// LAN), well below client timeouts.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// TCP connect deadline; below [`OPERATION_TIMEOUT`] so a failed connect is reported as such.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The key of a pair: `m2m:dpop:<len(jkt)>:<jkt>:<jti>` (the length keeps pairs apart whatever
/// they contain). Apart from the authorization server's `m2m:jti:` keys on a shared Redis.
pub fn key(jkt: &str, jti: &str) -> String {
    format!("m2m:dpop:{}:{jkt}:{jti}", jkt.len())
}

/// The Redis [`ProofReplayStore`].
pub struct RedisProofStore {
    client: Client,
    /// Tokio's mutex, held across the connect so that when Redis comes back one task reconnects
    /// while the others wait (each within its own timeout); held only for a clone once connected.
    conn: Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
    /// The URL with any password hidden, for `Debug` and logs.
    shown_url: String,
}

impl fmt::Debug for RedisProofStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisProofStore")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

impl RedisProofStore {
    /// A store at `url` (`redis://[:PASSWORD@]HOST:PORT[/DB]`). Does not connect: the first
    /// call does, so the API can start before Redis.
    pub fn open(url: &str) -> Result<Self, ReplayError> {
        let shown_url = hide_password(url);
        // The parse error is not shown: it could quote the URL, password included.
        let client = Client::open(url).map_err(|_| ReplayError::Backend {
            backend: BACKEND,
            detail: format!("{shown_url} is not a redis://[:PASSWORD@]HOST:PORT[/DB] URL"),
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT));
        Ok(RedisProofStore {
            client,
            conn: Mutex::new(None),
            config,
            shown_url,
        })
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    async fn set_nx(&self, key: String, ttl_ms: u64) -> Result<Value, ReplayError> {
        let attempt = async {
            let mut conn = {
                let mut slot = self.conn.lock().await;
                match &*slot {
                    Some(c) => c.clone(),
                    None => {
                        let c = self
                            .client
                            .get_multiplexed_async_connection_with_config(&self.config)
                            .await?;
                        *slot = Some(c.clone());
                        c
                    }
                }
            };
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(1).arg("NX").arg("PX").arg(ttl_ms);
            conn.send_packed_command(&cmd).await
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                // A server refusal (READONLY, OOM) leaves the connection fine; anything else
                // (I/O, dropped, refused) makes the next call reconnect.
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    *self.conn.lock().await = None;
                }
                Err(ReplayError::Backend {
                    backend: BACKEND,
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                *self.conn.lock().await = None;
                Err(ReplayError::Timeout {
                    backend: BACKEND,
                    after: OPERATION_TIMEOUT,
                })
            }
        }
    }
}

impl ProofReplayStore for RedisProofStore {
    fn insert_if_absent<'a>(
        &'a self,
        jkt: &'a str,
        jti: &'a str,
        until: UnixTime,
        now: UnixTime,
    ) -> ReplayFuture<'a, bool> {
        Box::pin(async move {
            // A relative TTL from our clock (not PXAT), so Redis's wall clock does not matter; at
            // least 1 ms (Redis refuses PX 0).
            let ttl_ms = u64::try_from(until.since(now).as_millis().max(1)).unwrap_or(u64::MAX);
            match self.set_nx(key(jkt, jti), ttl_ms).await? {
                Value::Okay => Ok(true),
                Value::SimpleString(s) if s == "OK" => Ok(true),
                Value::Nil => Ok(false),
                other => Err(ReplayError::Backend {
                    backend: BACKEND,
                    detail: format!("unexpected reply to SET NX: {other:?}"),
                }),
            }
        })
    }

    fn kind(&self) -> &'static str {
        BACKEND
    }
}

/// `url` with the user information replaced by `***`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide_and_passwords_are_hidden() {
        assert_ne!(key("a", "bc"), key("ab", "c"));
        assert_eq!(key("k", "j"), "m2m:dpop:1:k:j");
        let s = RedisProofStore::open("redis://:hunter2@127.0.0.1:1/0").unwrap();
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("127.0.0.1:1"),
            "{debug}"
        );
    }
}
