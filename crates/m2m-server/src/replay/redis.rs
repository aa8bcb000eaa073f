//! The Redis replay store: `SET key 1 NX PX ttl`, so several `m2m serve` instances behind a load
//! balancer share one replay window (a jti used at instance A is refused at instance B).
//!
//! Redis does the atomic check-and-set and the expiry; this file only keeps one multiplexed
//! connection, replaces it when it breaks (Redis restarted, network cut), and bounds every call
//! by [`OPERATION_TIMEOUT`] so a request fails fast (503) instead of hanging when Redis is down.

use std::fmt;
use std::time::Duration;

use m2m_core::clock::UnixTime;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Value};
use tokio::sync::Mutex;

use super::{ReplayStore, StoreError, StoreFuture, invalid, redact_url};

const BACKEND: &str = "redis";

/// The most one store call may take, connecting included. A token request waits for this at
/// worst when Redis is unreachable; one second is far above a healthy round trip (< 1 ms on a
/// LAN) and well below client HTTP timeouts.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// TCP connect deadline; below [`OPERATION_TIMEOUT`] so a failed connect is reported as such.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Key namespace, shared by every m2m instance on the same Redis.
const KEY_PREFIX: &str = "m2m:jti:";

/// Key namespace of DPoP proofs, apart from assertions' (a proof `jti` never meets an
/// assertion `jti`).
const PROOF_KEY_PREFIX: &str = "m2m:dpop:";

/// Key written by the health probe; expires by itself.
const HEALTH_KEY: &str = "m2m:health";

/// The key for a pair: `m2m:jti:<len(client_id)>:<client_id>:<jti>`. The length makes it
/// unambiguous even when `client_id` contains `:`.
pub fn key(client_id: &str, jti: &str) -> String {
    format!("{KEY_PREFIX}{}:{client_id}:{jti}", client_id.len())
}

/// The key for a DPoP proof: `m2m:dpop:<len(jkt)>:<jkt>:<jti>`.
pub fn proof_key(jkt: &str, jti: &str) -> String {
    format!("{PROOF_KEY_PREFIX}{}:{jkt}:{jti}", jkt.len())
}

/// The current connection and a generation number, so a failed call only discards the
/// connection it used (not a fresh one another call has just made).
#[derive(Default)]
struct Slot {
    conn: Option<MultiplexedConnection>,
    generation: u64,
}

/// The Redis [`ReplayStore`]. See the [module docs](self).
pub struct RedisStore {
    client: Client,
    /// Tokio's mutex, held across the connect `await`, so when Redis comes back only one task
    /// reconnects while the others wait (bounded by their own timeout) instead of each opening a
    /// connection. Held only for a clone once connected.
    slot: Mutex<Slot>,
    config: AsyncConnectionConfig,
    /// The URL with any password replaced, for Debug and logs.
    display_url: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.display_url)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `url` (`redis://[:PASSWORD@]HOST:PORT[/DB]`). Does not connect: the first
    /// call does, and later calls reconnect whenever the connection breaks, so `m2m serve` can
    /// start before Redis (its readiness probe says when Redis answers).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|e| invalid(url, e.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT));
        Ok(RedisStore {
            client,
            slot: Mutex::new(Slot::default()),
            config,
            display_url: redact_url(url),
        })
    }

    /// The URL, password redacted.
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// The current connection, connecting if there is none.
    async fn connection(&self) -> Result<(MultiplexedConnection, u64), RedisError> {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = &slot.conn {
            return Ok((conn.clone(), slot.generation));
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        slot.generation += 1;
        slot.conn = Some(conn.clone());
        Ok((conn, slot.generation))
    }

    /// Forgets the connection of `generation` so the next call reconnects.
    async fn discard(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        if slot.generation == generation {
            slot.conn = None;
        }
    }

    /// Sends `cmd`, bounded by [`OPERATION_TIMEOUT`]; on a connection-level failure the
    /// connection is dropped so the next call reconnects.
    async fn query(&self, operation: &'static str, cmd: redis::Cmd) -> Result<Value, StoreError> {
        let mut used_generation = None;
        let attempt = async {
            let (mut conn, generation) = self.connection().await?;
            used_generation = Some(generation);
            conn.send_packed_command(&cmd).await
        };
        // Bound to a local so the attempt (and its borrow of `used_generation`) is dropped here.
        let result = tokio::time::timeout(OPERATION_TIMEOUT, attempt).await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if let (Some(generation), true) = (used_generation, is_connection_error(&error)) {
                    self.discard(generation).await;
                }
                Err(StoreError::backend(BACKEND, operation, error))
            }
            Err(_elapsed) => {
                // A connection that let a call hang is suspect; a fresh one costs little.
                if let Some(generation) = used_generation {
                    self.discard(generation).await;
                }
                Err(StoreError::Timeout {
                    backend: BACKEND,
                    after: OPERATION_TIMEOUT,
                })
            }
        }
    }
}

/// Errors after which the connection cannot be trusted any more. Server replies such as
/// `READONLY` or `OOM` are not among them: the connection is fine, Redis refused.
fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

fn unexpected(operation: &'static str, value: &Value) -> StoreError {
    StoreError::UnexpectedReply {
        backend: BACKEND,
        operation,
        reply: format!("{value:?}"),
    }
}

impl RedisStore {
    /// `SET key 1 NX PX ttl`: `true` if it was set (new), `false` if a live key was there.
    async fn set_nx(
        &self,
        operation: &'static str,
        key: String,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // A relative TTL from the caller's clock, not PXAT: the expiry then does not depend on
        // Redis's wall clock agreeing with ours. At least 1 ms (Redis refuses PX 0).
        let ttl_ms = expires_at.since(now).as_millis().max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl_ms).unwrap_or(u64::MAX));
        match self.query(operation, cmd).await? {
            Value::Okay => Ok(true),
            Value::Nil => Ok(false),
            Value::SimpleString(s) if s == "OK" => Ok(true),
            other => Err(unexpected(operation, &other)),
        }
    }
}

impl ReplayStore for RedisStore {
    fn insert_if_absent<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.set_nx("record a jti", key(client_id, jti), expires_at, now))
    }

    fn insert_proof_if_absent<'a>(
        &'a self,
        jkt: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.set_nx(
            "record a DPoP proof jti",
            proof_key(jkt, jti),
            expires_at,
            now,
        ))
    }

    fn contains<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        _now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            const OPERATION: &str = "look up a jti";
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(key(client_id, jti));
            match self.query(OPERATION, cmd).await? {
                Value::Int(n) => Ok(n > 0),
                other => Err(unexpected(OPERATION, &other)),
            }
        })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            const OPERATION: &str = "write the health key";
            // A write, not PING: a read-only replica or a full Redis answers PING but would
            // refuse every jti.
            let mut cmd = redis::cmd("SET");
            cmd.arg(HEALTH_KEY).arg(1).arg("PX").arg(10_000);
            match self.query(OPERATION, cmd).await? {
                Value::Okay => Ok(()),
                Value::SimpleString(s) if s == "OK" => Ok(()),
                other => Err(unexpected(OPERATION, &other)),
            }
        })
    }

    fn kind(&self) -> &'static str {
        BACKEND
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide() {
        assert_ne!(key("a", "bc"), key("ab", "c"));
        assert_ne!(key("a:1", "x"), key("a", "1:x"));
        assert_eq!(key("client", "j-1"), "m2m:jti:6:client:j-1");
        assert_eq!(proof_key("jkt", "j-1"), "m2m:dpop:3:jkt:j-1");
        assert_ne!(proof_key("client", "j-1"), key("client", "j-1"));
    }

    #[test]
    fn debug_hides_the_password() {
        let store = RedisStore::open("redis://:hunter2@127.0.0.1:1/0").unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("127.0.0.1:1"), "{debug}");
    }
}
