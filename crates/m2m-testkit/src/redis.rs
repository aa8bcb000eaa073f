//! A real `redis-server` of the test's own, on a free 127.0.0.1 port with a temporary directory
//! and no persistence, killed when dropped.
//!
//! When `redis-server` is not installed the helper panics if `CI=true` (a CI run must not pass
//! by skipping) and otherwise returns `None` after a loud message, so a laptop without Redis can
//! still run the rest of the suite.
// The loud "skipping" banner is the point: a skipped Redis test must be seen.
#![allow(clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_port;

/// The binary; `REDIS_SERVER` overrides it.
fn binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// How long a freshly started server may take to answer PING before the test gives up. A
/// start-up deadline, not an assertion about speed: Redis answers in milliseconds.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running `redis-server` owned by the test.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// Whether `redis-server` can be run; panics under `CI=true` when it cannot.
fn available() -> bool {
    let ok = Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "redis-server not found (CI=true, so this fails instead of skipping): \
                 install it with `apt-get install -y redis-server` or set REDIS_SERVER"
            );
        }
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPING REDIS TEST: redis-server is not installed (apt-get install -y      !!\n\
             !! redis-server). Under CI=true this would fail.                               !!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    ok
}

impl RedisServer {
    /// Starts a server on a free port; `None` when redis-server is missing outside CI.
    pub fn start() -> Option<Self> {
        if !available() {
            return None;
        }
        // Another process could grab the port between free_port() and redis binding it; retry.
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::spawn(free_port()) {
                Ok(server) => return Some(server),
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// Starts a server on `port` (e.g. to bring Redis back on the port a store uses).
    pub fn start_on_port(port: u16) -> Option<Self> {
        if !available() {
            return None;
        }
        let mut last_error = String::new();
        // The previous server's socket may take a moment to be released.
        for _ in 0..50 {
            match Self::spawn(port) {
                Ok(server) => return Some(server),
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not start redis-server on port {port}: {last_error}");
    }

    fn spawn(port: u16) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let log = dir.path().join("redis.log");
        let mut child = Command::new(binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary().display()))?;
        let started = Instant::now();
        loop {
            if ping(port) {
                return Ok(RedisServer { child, port, dir });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited with {status}; log:\n{log}"));
            }
            if started.elapsed() > START_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server did not answer PING on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, like a crash) and waits until it is gone.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        // `dir` is removed after this, when the TempDir field drops.
        let _ = &self.dir;
    }
}

/// Whether something on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
