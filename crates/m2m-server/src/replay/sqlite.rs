//! The SQLite replay store: one table in one file, the embedded default, because replay
//! protection must survive a restart (or a crash) of `m2m serve` — a jti recorded before the
//! restart is still refused after it.
//!
//! One `(client_id, jti)` primary key and one atomic upsert per request; expired rows are reused
//! in place and purged in bounded batches so the file stays bounded.
//!
//! # One writer thread, group commit
//!
//! The connection lives on one dedicated thread. Requests reach it through a bounded queue; it
//! takes everything queued (up to [`MAX_BATCH`]) and runs it as **one transaction**, and answers
//! each request only after that transaction has committed — so a `jti` is in the WAL before the
//! token it admits is issued, exactly as with one transaction per request, but under load one
//! commit and one thread wake-up serve many requests. (The first design ran each request as its
//! own transaction through `spawn_blocking` behind a mutex: under 32 concurrent requests Tokio's
//! blocking pool grew a thread per waiter, which cost ~140 µs of CPU per request in lock
//! hand-offs and context switches on a one-core server, and ~140 MiB of RSS in thread stacks.)
//!
//! Inside a batch the statements run in order, so two requests for the same pair in one batch
//! see each other: exactly one inserts. If any statement or the commit fails, the transaction
//! is rolled back and **every** request of the batch gets the error (fail closed: an insert whose
//! transaction was rolled back must not be reported as recorded). A full queue is an error too,
//! never a wait on a Tokio worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use m2m_core::clock::{Clock, SystemClock, UnixTime};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{ReplayStore, StoreError, StoreFuture};

const BACKEND: &str = "sqlite";

/// How long a write waits for another connection's lock (another process on the same file, or a
/// checkpoint) before failing. Short, so a request fails (503) rather than hangs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the writer thread purges expired rows. Rows live ~1–5 minutes, so purging twice
/// a minute keeps at most a few minutes of dead rows in the file.
const PURGE_INTERVAL: Duration = Duration::from_secs(30);

/// Rows deleted per purge statement. A purge runs one such statement between request batches,
/// so it never holds the writer (and the requests queued behind it) for long.
const PURGE_BATCH: usize = 1_000;

/// The most requests one transaction serves. Bounds how long the first request of a batch waits
/// for the last (each statement is a few µs).
pub const MAX_BATCH: usize = 256;

/// Requests queued for the writer before new ones are refused (503) instead of queued: a
/// bounded queue keeps an overloaded server's memory and latency bounded.
pub const QUEUE_CAPACITY: usize = 8_192;

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

/// What the writer thread is asked to do; each carries where to send its answer.
enum Op {
    /// Served inside the batch's transaction.
    Request(Request),
    /// Served after the batch's transaction, each on its own.
    Maintenance(Maintenance),
}

/// Tools' and tests' operations.
enum Maintenance {
    /// Purge everything expired at `now`.
    Purge {
        now: UnixTime,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// Count the rows.
    RowCount {
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// A request's statement and where its answer goes.
enum Request {
    Insert {
        client_id: String,
        jti: String,
        expires_at: i64,
        now: i64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Contains {
        client_id: String,
        jti: String,
        now: i64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Health {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Request {
    /// Sends the statement's result (`true`: inserted, or present) to whoever asked; one who
    /// stopped waiting (a cancelled request) is no error.
    fn answer(self, result: Result<bool, StoreError>) {
        match self {
            Request::Insert { reply, .. } | Request::Contains { reply, .. } => {
                let _ = reply.send(result);
            }
            Request::Health { reply } => {
                let _ = reply.send(result.map(drop));
            }
        }
    }
}

/// The SQLite-file [`ReplayStore`]. See the [module docs](self).
#[derive(Debug)]
pub struct SqliteStore {
    /// `None` only while dropping, so the writer sees the queue close before it is joined.
    queue: Option<SyncSender<Op>>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
}

fn millis(t: UnixTime) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn err(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(BACKEND, operation, e)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and starts its writer thread, which
    /// purges expired rows on the wall clock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Like [`SqliteStore::open`], with the periodic purge and the health probe reading `clock`.
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
        // assertions (≤ 5 minutes) expired. FULL would add an fsync to every commit for that.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("set synchronous"))?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(err("set journal_size_limit"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("create the schema"))?;

        let (queue, requests) = mpsc::sync_channel(QUEUE_CAPACITY);
        let writer = std::thread::Builder::new()
            .name("m2m-sqlite-writer".into())
            .spawn(move || Writer::new(conn, clock).run(&requests))
            .map_err(|e| StoreError::Worker {
                backend: BACKEND,
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(SqliteStore {
            queue: Some(queue),
            writer: Some(writer),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes every row expired at `now`, in batches of [`PURGE_BATCH`] (each its own
    /// transaction); returns how many rows went. The writer does this by itself every
    /// [`PURGE_INTERVAL`]; it is public for tools and tests.
    pub async fn purge_expired(&self, now: UnixTime) -> Result<usize, StoreError> {
        self.submit(|reply| Op::Maintenance(Maintenance::Purge { now, reply }))
            .await
    }

    /// How many rows the file holds, expired ones included (for tests and diagnostics).
    pub async fn row_count(&self) -> Result<u64, StoreError> {
        self.submit(|reply| Op::Maintenance(Maintenance::RowCount { reply }))
            .await
    }

    /// Queues an operation for the writer and returns its answer. The send never blocks: a full
    /// queue or a stopped writer is an error at once.
    fn submit<T: Send + 'static>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> StoreFuture<'static, T> {
        let (reply, answer) = oneshot::channel();
        let sent = match &self.queue {
            Some(queue) => queue.try_send(op(reply)),
            None => Err(TrySendError::Disconnected(op(reply))),
        };
        Box::pin(async move {
            match sent {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(StoreError::backend(
                        BACKEND,
                        "queue a request",
                        format!("{QUEUE_CAPACITY} requests are already waiting for the writer"),
                    ));
                }
                Err(TrySendError::Disconnected(_)) => return Err(writer_stopped()),
            }
            answer.await.map_err(|_| writer_stopped())?
        })
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Worker {
        backend: BACKEND,
        reason: "the writer thread stopped".into(),
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer after the batch it is running; joining means the
        // file is closed (and the WAL checkpointed) when drop returns, so a store reopened on
        // the same file right after sees everything this one committed.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    /// The store's clock: the periodic purge's `now` and the health row's timestamp.
    clock: Arc<dyn Clock>,
    /// When the last periodic purge was started.
    last_purge: Instant,
    /// A periodic purge in progress: the `now` it purges up to.
    purging: Option<UnixTime>,
}

impl Writer {
    fn new(conn: Connection, clock: Arc<dyn Clock>) -> Self {
        Writer {
            conn,
            clock,
            last_purge: Instant::now(),
            purging: None,
        }
    }

    /// Serves batches until the queue closes.
    fn run(mut self, queue: &Receiver<Op>) {
        let mut requests = Vec::with_capacity(MAX_BATCH);
        let mut maintenance = Vec::new();
        loop {
            // With a purge in progress, do not sleep: purge between batches until it is done.
            let wait = if self.purging.is_some() {
                Duration::ZERO
            } else {
                PURGE_INTERVAL.saturating_sub(self.last_purge.elapsed())
            };
            let mut next = match queue.recv_timeout(wait) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Woken by a batch's first request, give the core back before taking the batch.
            // Linux runs a thread it wakes ahead of the waker, so on a one-core server every
            // request used to preempt the Tokio worker, commit alone and switch back: 2.6 context
            // switches and one transaction per request. After the yield the worker runs the other
            // ready requests (their RSA checks), which queue up here, and the batch is taken when
            // the worker waits or its time slice ends: ~0.3 switches per request, 188 -> 143 µs of
            // CPU per request (docs/benchmarks.md). With nothing else runnable on this core (an
            // idle server, a core of its own) the yield returns at once.
            if next.is_some() {
                std::thread::yield_now();
            }
            while let Some(op) = next {
                match op {
                    Op::Request(request) => requests.push(request),
                    Op::Maintenance(op) => maintenance.push(op),
                }
                next = if requests.len() < MAX_BATCH {
                    queue.try_recv().ok()
                } else {
                    None
                };
            }
            if !requests.is_empty() {
                self.transaction(&mut requests);
            }
            for op in maintenance.drain(..) {
                match op {
                    Maintenance::Purge { now, reply } => {
                        let _ = reply.send(self.purge_all(now));
                    }
                    Maintenance::RowCount { reply } => {
                        let _ = reply.send(self.row_count());
                    }
                }
            }
            self.purge_step();
        }
    }

    /// Runs `requests` in one transaction and answers them all (emptying the vector): each with
    /// its result after the commit, or every one with the error if anything failed.
    fn transaction(&mut self, requests: &mut Vec<Request>) {
        let outcome = (|| {
            let writes = requests
                .iter()
                .any(|r| !matches!(r, Request::Contains { .. }));
            self.conn
                .execute_batch(if writes { "BEGIN IMMEDIATE" } else { "BEGIN" })
                .map_err(err("begin a transaction"))?;
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests.iter() {
                match self.execute(request) {
                    Ok(answer) => answers.push(answer),
                    Err(e) => {
                        let _ = self.conn.execute_batch("ROLLBACK");
                        return Err(e);
                    }
                }
            }
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(err("commit")(e));
            }
            Ok(answers)
        })();
        match outcome {
            Ok(answers) => {
                for (request, answer) in requests.drain(..).zip(answers) {
                    request.answer(Ok(answer));
                }
            }
            Err(error) => {
                // Everyone in the batch learns of the failure, with the failing step's name and
                // SQLite's message (StoreError is not Clone: its source is a boxed error).
                let operation = match &error {
                    StoreError::Backend { operation, .. }
                    | StoreError::UnexpectedReply { operation, .. } => *operation,
                    _ => "commit",
                };
                let cause = match &error {
                    StoreError::Backend { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                tracing::debug!(batch = requests.len(), %error, "sqlite replay store: batch rolled back");
                for request in requests.drain(..) {
                    request.answer(Err(StoreError::backend(BACKEND, operation, cause.clone())));
                }
            }
        }
    }

    /// One request's statement; `true` means inserted (Insert) or present (Contains).
    fn execute(&self, request: &Request) -> Result<bool, StoreError> {
        match request {
            Request::Insert {
                client_id,
                jti,
                expires_at,
                now,
                ..
            } => {
                let changed = self
                    .conn
                    .prepare_cached(INSERT_IF_ABSENT)
                    .and_then(|mut stmt| stmt.execute(params![client_id, jti, expires_at, now]))
                    .map_err(err("record a jti"))?;
                match changed {
                    0 => Ok(false),
                    1 => Ok(true),
                    n => Err(StoreError::UnexpectedReply {
                        backend: BACKEND,
                        operation: "record a jti",
                        reply: format!("{n} rows changed"),
                    }),
                }
            }
            Request::Contains {
                client_id,
                jti,
                now,
                ..
            } => self
                .conn
                .prepare_cached(CONTAINS)
                .and_then(|mut stmt| {
                    stmt.query_row(params![client_id, jti, now], |_| Ok(()))
                        .optional()
                })
                .map(|row| row.is_some())
                .map_err(err("look up a jti")),
            Request::Health { .. } => {
                let now = millis(self.clock.now());
                self.conn
                    .prepare_cached(HEALTH)
                    .and_then(|mut stmt| stmt.execute(params![now]))
                    .map(|_| true)
                    .map_err(err("write the health row"))
            }
        }
    }

    /// One step of the periodic purge: starts one when due, deletes one batch when one is in
    /// progress. A failed purge only delays cleanup; it is logged, not retried at once.
    fn purge_step(&mut self) {
        if self.purging.is_none() && self.last_purge.elapsed() >= PURGE_INTERVAL {
            self.purging = Some(self.clock.now());
            self.last_purge = Instant::now();
        }
        let Some(now) = self.purging else { return };
        match self.purge_batch(now) {
            Ok(n) if n == PURGE_BATCH => {}
            Ok(_) => self.purging = None,
            Err(error) => {
                tracing::warn!(%error, "sqlite replay store: purge of expired rows failed");
                self.purging = None;
            }
        }
    }

    fn purge_batch(&self, now: UnixTime) -> Result<usize, StoreError> {
        let limit = i64::try_from(PURGE_BATCH).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(PURGE)
            .and_then(|mut stmt| stmt.execute(params![millis(now), limit]))
            .map_err(err("purge expired rows"))
    }

    fn purge_all(&self, now: UnixTime) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.purge_batch(now)?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    fn row_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM m2m_replay", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(err("count rows"))
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
        self.submit(|reply| {
            Op::Request(Request::Insert {
                client_id: client_id.to_owned(),
                jti: jti.to_owned(),
                expires_at: millis(expires_at),
                now: millis(now),
                reply,
            })
        })
    }

    fn contains<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        now: UnixTime,
    ) -> StoreFuture<'a, bool> {
        self.submit(|reply| {
            Op::Request(Request::Contains {
                client_id: client_id.to_owned(),
                jti: jti.to_owned(),
                now: millis(now),
                reply,
            })
        })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        self.submit(|reply| Op::Request(Request::Health { reply }))
    }

    fn kind(&self) -> &'static str {
        BACKEND
    }
}
