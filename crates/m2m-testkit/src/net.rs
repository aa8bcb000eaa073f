//! Loopback ports for tests.

use std::net::{Ipv4Addr, TcpListener};

/// A 127.0.0.1 port that was free a moment ago: the OS picks it and the listener is closed at
/// once, so nothing listens on it (for "connection refused" tests, or a child server's port).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}
