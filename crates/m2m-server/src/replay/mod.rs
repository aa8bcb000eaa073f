//! Replay protection: the [`ReplayStore`] trait every backend implements, its error type, and
//! [`open`], which turns a `--replay-store` spec into a store.
//!
//! A client assertion is a bearer credential for its short lifetime; the only thing that stops a
//! captured one from being used twice is remembering its `(client_id, jti)` until it expires
//! (RFC 7523 §3 item 7). So the token endpoint asks the store to *atomically insert if absent*
//! before it issues a token, and issues nothing when the store cannot answer (fail closed: the
//! server turns any [`StoreError`] into `503 temporarily_unavailable`).
//!
//! # Layout
//!
//! - [`memory`]: bounded in-process map with an expiry-ordered index and a purge task (one
//!   process only; forgets everything on restart).
//! - [`sqlite`]: one SQLite file (the embedded default: survives a restart or crash).
//! - [`redis`]: `SET NX PX` on a shared Redis, for several `m2m serve` instances behind a load
//!   balancer.
//!
//! # Semantics shared by every backend
//!
//! - An entry is *live* while `now < expires_at`; at `expires_at` it is gone and the same
//!   `(client_id, jti)` may be recorded again (the assertion it belonged to has expired anyway).
//! - `client_id` and `jti` are kept apart (never concatenated without a length), so `"a"`+`"bc"`
//!   and `"ab"`+`"c"` are different keys.
//! - An `expires_at` at or before `now` never masks a live entry, and what it records expires at
//!   once (the validator has already refused such an assertion; the store just stays consistent).
//! - Errors are never reported as "inserted": every failure is an `Err`.
//! - DPoP proof `jti`s ([`ReplayStore::insert_proof_if_absent`]) are kept per proof key
//!   (`jkt`), apart from client assertions' `(client_id, jti)`, with the same semantics.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use m2m_core::clock::UnixTime;

pub mod memory;
pub mod redis;
pub mod sqlite;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

/// The future every [`ReplayStore`] method returns. Boxed so the trait stays dyn-compatible
/// (the server holds an `Arc<dyn ReplayStore>` chosen at start-up) without the `async-trait`
/// crate.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store that remembers `(client_id, jti)` pairs until they expire.
pub trait ReplayStore: Send + Sync + fmt::Debug + 'static {
    /// Atomically records `(client_id, jti)` until `expires_at`.
    ///
    /// `Ok(true)` if it was new (or only an expired entry was there), `Ok(false)` if a live entry
    /// exists — a replay. Two concurrent calls for the same pair never both see `true`.
    fn insert_if_absent<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'a, bool>;

    /// Whether `(client_id, jti)` is recorded and live at `now`.
    ///
    /// The NHS profile checks for a replay before it checks other claims; this never inserts.
    fn contains<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        now: UnixTime,
    ) -> StoreFuture<'a, bool>;

    /// Atomically records a DPoP proof's `(jkt, jti)` until `expires_at` (the end of the proof's
    /// `iat` window), with [`Self::insert_if_absent`]'s answer.
    ///
    /// Proofs live in a key space of their own, so a proof `jti` never collides with a client
    /// assertion's. The provided implementation records the pair under [`proof_owner`]`(jkt)`,
    /// a name no client id can have (client ids have no control characters); a backend may keep
    /// proofs apart its own way (Redis uses its own key prefix).
    fn insert_proof_if_absent<'a>(
        &'a self,
        jkt: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let owner = proof_owner(jkt);
            self.insert_if_absent(&owner, jti, expires_at, now).await
        })
    }

    /// Readiness probe: `Ok` if the backend answers and can write.
    fn health(&self) -> StoreFuture<'_, ()>;

    /// `"memory"`, `"sqlite"` or `"redis"`, for logs and metrics labels.
    fn kind(&self) -> &'static str;
}

/// The owner under which [`ReplayStore::insert_proof_if_absent`]'s provided implementation
/// records a DPoP proof of the key with thumbprint `jkt`: it starts with a control character,
/// which the registry refuses in client ids, so it can never be a client's.
pub fn proof_owner(jkt: &str) -> String {
    format!("\u{1}dpop:{jkt}")
}

/// A boxed backend error, so `rusqlite`/`redis` versions do not leak into this crate's API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a replay store could not answer. The server answers `503` for every variant: without an
/// answer it cannot know whether the assertion is a replay.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The in-memory store holds `capacity` live entries. It refuses new ones rather than evict
    /// a live entry, because evicting would let that assertion be replayed.
    #[error(
        "in-memory replay store is full ({capacity} live entries); refusing rather than evicting"
    )]
    Full {
        /// The configured maximum number of entries.
        capacity: usize,
    },

    /// The backend did not answer in time (e.g. Redis is down or unreachable).
    #[error("{backend} replay store did not answer within {after:?}")]
    Timeout {
        /// Which backend (`"redis"`, `"sqlite"`).
        backend: &'static str,
        /// The deadline that passed.
        after: Duration,
    },

    /// The backend answered with an error, or the connection to it failed.
    #[error("{backend} replay store failed to {operation}")]
    Backend {
        /// Which backend (`"redis"`, `"sqlite"`).
        backend: &'static str,
        /// What was being done, e.g. `"record a jti"`.
        operation: &'static str,
        /// The backend's own error (holds no secrets: no keys, no passwords).
        #[source]
        source: BoxError,
    },

    /// The backend answered something this crate does not understand.
    #[error("{backend} replay store gave an unexpected reply to {operation}: {reply}")]
    UnexpectedReply {
        /// Which backend.
        backend: &'static str,
        /// What was being done.
        operation: &'static str,
        /// A short description of the reply.
        reply: String,
    },

    /// The SQLite store's writer thread stopped (it panicked) or could not be started.
    #[error("{backend} replay store worker did not finish: {reason}")]
    Worker {
        /// Which backend.
        backend: &'static str,
        /// The join error, as text.
        reason: String,
    },

    /// The store spec given on the command line or in the config is not understood.
    #[error("invalid replay store spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec, with any password replaced by `***`.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Creating the directory for the store's file failed.
    #[error("cannot create replay store directory {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Backend {
            backend,
            operation,
            source: source.into(),
        }
    }
}

/// The file name `open("sqlite", data_dir)` uses inside `data_dir`.
pub const DEFAULT_SQLITE_FILE: &str = "replay.sqlite3";

/// Opens the store a spec names:
///
/// | spec | store |
/// |---|---|
/// | `memory` | [`MemoryStore`] with [`memory::DEFAULT_CAPACITY`] |
/// | `sqlite` | [`SqliteStore`] at `data_dir/replay.sqlite3` |
/// | `sqlite:PATH` | [`SqliteStore`] at `PATH` |
/// | `redis://[:PASSWORD@]HOST:PORT[/DB]` | [`RedisStore`] (connects lazily, on first use) |
///
/// The memory store's background purge task starts when this is called inside a Tokio runtime
/// (without one it still purges lazily as it writes); the SQLite store purges on its own writer
/// thread.
pub fn open(spec: &str, data_dir: &Path) -> Result<Arc<dyn ReplayStore>, StoreError> {
    Ok(match Spec::parse(spec, data_dir)? {
        Spec::Memory => Arc::new(MemoryStore::new(memory::DEFAULT_CAPACITY)),
        Spec::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            Arc::new(SqliteStore::open(&path)?)
        }
        Spec::Redis => Arc::new(RedisStore::open(spec)?),
    })
}

/// Checks a store spec as [`open`] would read it, without opening, creating or connecting to
/// anything (`m2m serve --check`): the spec's form, and for Redis its URL.
pub fn check(spec: &str, data_dir: &Path) -> Result<(), StoreError> {
    match Spec::parse(spec, data_dir)? {
        Spec::Memory | Spec::Sqlite(_) => Ok(()),
        // Connects lazily: opening only parses the URL.
        Spec::Redis => RedisStore::open(spec).map(drop),
    }
}

/// A store spec, parsed: the one reading of the table above, shared by [`open`] and [`check`].
enum Spec {
    Memory,
    Sqlite(PathBuf),
    Redis,
}

impl Spec {
    fn parse(spec: &str, data_dir: &Path) -> Result<Spec, StoreError> {
        if spec == "memory" {
            return Ok(Spec::Memory);
        }
        if spec == "sqlite" {
            return Ok(Spec::Sqlite(data_dir.join(DEFAULT_SQLITE_FILE)));
        }
        if let Some(path) = spec.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(invalid(spec, "`sqlite:` needs a file path after the colon"));
            }
            return Ok(Spec::Sqlite(PathBuf::from(path)));
        }
        if spec.starts_with("redis://") {
            return Ok(Spec::Redis);
        }
        Err(invalid(
            spec,
            "expected `memory`, `sqlite`, `sqlite:PATH` or `redis://HOST:PORT[/DB]`",
        ))
    }
}

pub(crate) fn invalid(spec: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidSpec {
        spec: redact_url(spec),
        reason: reason.into(),
    }
}

/// Replaces the userinfo of a URL-like spec (`redis://user:pass@host`) with `***`, so a
/// password never reaches a log line or an error message (or `m2m serve`'s startup banner).
pub fn redact_url(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => spec.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords() {
        assert_eq!(
            redact_url("redis://:hunter2@10.0.0.1:6379/2"),
            "redis://***@10.0.0.1:6379/2"
        );
        assert_eq!(redact_url("redis://u:p@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("memory"), "memory");
    }

    #[test]
    fn open_rejects_unknown_specs_without_echoing_passwords() {
        let dir = std::env::temp_dir();
        for spec in ["", "mem", "sqlite:", "postgres://x", "redis+tls://:pw@h"] {
            let err = open(spec, &dir).expect_err(spec);
            assert!(
                matches!(err, StoreError::InvalidSpec { .. }),
                "{spec}: {err}"
            );
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }
}
