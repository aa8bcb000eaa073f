//! The SQLite replay store: one table in one file, the embedded default, because replay
//! protection must survive a restart (or a crash) of `m2m serve` — a jti recorded before the
//! restart is still refused after it.
//!
//! One `(client_id, jti)` primary key and one atomic upsert per request; expired rows are reused
//! in place and purged in bounded batches so the file stays bounded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use m2m_core::clock::{Clock, SystemClock, UnixTime};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;

use super::{ReplayStore, StoreError, StoreFuture};

const BACKEND: &str = "sqlite";

/// How long a write waits for another connection's lock (another process on the same file, or a
/// checkpoint) before failing. Short, so a request fails (503) rather than hangs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the background task purges expired rows. Rows live ~1–5 minutes, so purging twice
/// a minute keeps at most a few minutes of dead rows in the file.
const PURGE_INTERVAL: Duration = Duration::from_secs(30);

/// Rows deleted per purge statement, so one purge never holds the connection (and blocks
/// requests) for long.
const PURGE_BATCH: usize = 1_000;

/// Every this many inserts, the insert itself also purges one batch, so the file stays bounded
/// even where no background task runs (a store opened outside a Tokio runtime).
const LAZY_PURGE_EVERY: u64 = 1_024;

/// Bounds the `-wal` file after checkpoints (SQLite otherwise keeps it at its high-water mark).
const JOURNAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS m2m_replay (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL, -- Unix milliseconds; the row is live while now < expires_at
    PRIMARY KEY (client_id, jti)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS m2m_replay_expires_at ON m2m_replay (expires_at);
CREATE TABLE IF NOT EXISTS m2m_health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
";

/// One statement, so the check and the write are atomic: a new pair is inserted; an existing
/// pair is overwritten only if it has expired (`changes() == 1`); a live pair is left alone
/// (`changes() == 0`, a replay).
const INSERT_IF_ABSENT: &str = "
INSERT INTO m2m_replay (client_id, jti, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
WHERE m2m_replay.expires_at <= ?4";

const CONTAINS: &str = "
SELECT 1 FROM m2m_replay WHERE client_id = ?1 AND jti = ?2 AND expires_at > ?3";

/// Row values delete by primary key (a `WITHOUT ROWID` table has no rowid, and the bundled SQLite
/// lacks `DELETE … LIMIT`).
const PURGE: &str = "
DELETE FROM m2m_replay WHERE (client_id, jti) IN (
    SELECT client_id, jti FROM m2m_replay WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";

const HEALTH: &str = "
INSERT INTO m2m_health (id, checked_at) VALUES (1, ?1)
ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";

#[derive(Debug)]
struct Inner {
    /// One connection behind a mutex: SQLite serialises writers anyway, and every request
    /// writes, so a pool would only add lock contention inside SQLite. Used only from
    /// `spawn_blocking`, so waiting for it never blocks a Tokio worker.
    conn: Mutex<Connection>,
    path: PathBuf,
    inserts: AtomicU64,
}

/// The SQLite-file [`ReplayStore`]. See the [module docs](self).
#[derive(Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// Wakes the purge task so it stops when the store is dropped.
    shutdown: Arc<Notify>,
}

fn millis(t: UnixTime) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn err(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(BACKEND, operation, e)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, purging expired rows on the wall clock.
    ///
    /// Inside a Tokio runtime this also spawns the purge task.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Like [`SqliteStore::open`], with the purge task reading `clock`.
    pub fn open_with_clock(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(err("open the database file"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(err("set busy_timeout"))?;
        // WAL: readers never block the writer, and a commit is one append to the log.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(err("enable WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::UnexpectedReply {
                backend: BACKEND,
                operation: "enable WAL",
                reply: format!("journal_mode is {mode}"),
            });
        }
        // synchronous=NORMAL: in WAL mode a commit is durable once it is in the log, which the OS
        // keeps when the *process* crashes or is killed — the case replay protection needs (a
        // restarted server must still refuse a jti it saw). Only a power loss or kernel crash
        // can lose the last commits, and then the whole host restarts, well after those
        // assertions (≤ 5 minutes) expired. FULL would add an fsync to every request for that.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("set synchronous"))?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(err("set journal_size_limit"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("create the schema"))?;

        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            inserts: AtomicU64::new(0),
        });
        let shutdown = Arc::new(Notify::new());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(purge_task(
                Arc::downgrade(&inner),
                Arc::clone(&shutdown),
                clock,
            ));
        }
        Ok(SqliteStore { inner, shutdown })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Deletes every row expired at `now`, in batches of [`PURGE_BATCH`] (each its own
    /// transaction, so requests run in between); returns how many rows went. The purge task
    /// calls this; it is public for tools and tests.
    pub async fn purge_expired(&self, now: UnixTime) -> Result<usize, StoreError> {
        purge_all(Arc::clone(&self.inner), now).await
    }

    /// How many rows the file holds, expired ones included (for tests and diagnostics).
    pub async fn row_count(&self) -> Result<u64, StoreError> {
        self.blocking(|conn| {
            conn.query_row("SELECT count(*) FROM m2m_replay", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(err("count rows"))
        })
        .await
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run_blocking(Arc::clone(&self.inner), f).await
    }
}

async fn run_blocking<T, F>(inner: Arc<Inner>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // A panic inside rusqlite while holding the lock leaves the connection usable (SQLite
        // rolls back the open statement), so a poisoned lock is recovered.
        let conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    })
    .await
    .map_err(|e| StoreError::Worker {
        backend: BACKEND,
        reason: e.to_string(),
    })?
}

fn purge_batch(conn: &Connection, now: UnixTime) -> Result<usize, StoreError> {
    let limit = i64::try_from(PURGE_BATCH).unwrap_or(i64::MAX);
    conn.prepare_cached(PURGE)
        .and_then(|mut stmt| stmt.execute(params![millis(now), limit]))
        .map_err(err("purge expired rows"))
}

async fn purge_all(inner: Arc<Inner>, now: UnixTime) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = run_blocking(Arc::clone(&inner), move |conn| purge_batch(conn, now)).await?;
        total += n;
        if n < PURGE_BATCH {
            return Ok(total);
        }
    }
}

/// Purges every [`PURGE_INTERVAL`] until the store is dropped. Holds only a `Weak`, so it never
/// keeps the database open by itself.
async fn purge_task(inner: Weak<Inner>, shutdown: Arc<Notify>, clock: Arc<dyn Clock>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(PURGE_INTERVAL) => {}
            () = shutdown.notified() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Err(error) = purge_all(inner, clock.now()).await {
            tracing::warn!(%error, "sqlite replay store: purge of expired rows failed");
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // notify_one stores a permit if the task is between sleeps, so it cannot miss this.
        self.shutdown.notify_one();
    }
}

impl ReplayStore for SqliteStore {
    fn insert_if_absent<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        let lazy_purge = self.inner.inserts.fetch_add(1, Ordering::Relaxed) % LAZY_PURGE_EVERY
            == LAZY_PURGE_EVERY - 1;
        Box::pin(self.blocking(move |conn| {
            let changed = conn
                .prepare_cached(INSERT_IF_ABSENT)
                .and_then(|mut stmt| {
                    stmt.execute(params![client_id, jti, millis(expires_at), millis(now)])
                })
                .map_err(err("record a jti"))?;
            if lazy_purge {
                // The jti is recorded; a failed purge only delays cleanup, so it is not an
                // error for this request.
                if let Err(error) = purge_batch(conn, now) {
                    tracing::warn!(%error, "sqlite replay store: lazy purge failed");
                }
            }
            match changed {
                0 => Ok(false),
                1 => Ok(true),
                n => Err(StoreError::UnexpectedReply {
                    backend: BACKEND,
                    operation: "record a jti",
                    reply: format!("{n} rows changed"),
                }),
            }
        }))
    }

    fn contains<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        Box::pin(self.blocking(move |conn| {
            conn.prepare_cached(CONTAINS)
                .and_then(|mut stmt| {
                    stmt.query_row(params![client_id, jti, millis(now)], |_| Ok(()))
                        .optional()
                })
                .map(|row| row.is_some())
                .map_err(err("look up a jti"))
        }))
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.blocking(|conn| {
            let now = millis(SystemClock.now());
            conn.prepare_cached(HEALTH)
                .and_then(|mut stmt| stmt.execute(params![now]))
                .map(drop)
                .map_err(err("write the health row"))
        }))
    }

    fn kind(&self) -> &'static str {
        BACKEND
    }
}
