//! [`PeerCap`]: how many connections each peer IP address holds, and the cap on that number.
//!
//! Every connection costs a task and a file descriptor, and the time limits only bound how long
//! each one lives: one address that opens hundreds at once can still use up the server's file
//! descriptors. A per-IP cap keeps one peer from taking them all (behind a proxy every client
//! shares the proxy's address, so the cap is configurable and `0` turns it off).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections per peer IP address, shared by the accept loop and the connection tasks.
#[derive(Debug, Clone)]
pub(crate) struct PeerCap {
    /// Most connections one address may hold; `0`: no cap.
    max: usize,
    /// A std mutex: held for one map operation, never across an await.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; dropping it (when the connection task ends) frees its slot.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    cap: PeerCap,
    ip: IpAddr,
}

impl PeerCap {
    /// A cap of `max` connections per address (`0`: unlimited).
    pub(crate) fn new(max: usize) -> Self {
        PeerCap {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when `ip` already holds `max`.
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<PeerSlot> {
        if self.max == 0 {
            return Some(PeerSlot {
                cap: self.clone(),
                ip,
            });
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            cap: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if self.cap.max == 0 {
            return;
        }
        let mut open = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                // Keep the map as small as the set of addresses connected right now.
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_per_address_and_frees_slots_on_drop() {
        let cap = PeerCap::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = cap.admit(a);
        let second = cap.admit(a);
        assert!(first.is_some() && second.is_some());
        assert!(cap.admit(a).is_none(), "third connection from one address");
        assert!(cap.admit(b).is_some(), "another address is not affected");
        drop(first);
        assert!(cap.admit(a).is_some(), "a freed slot is reused");
    }

    #[test]
    fn zero_means_no_cap() {
        let cap = PeerCap::new(0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let slots: Vec<_> = (0..1000).map(|_| cap.admit(ip)).collect();
        assert!(slots.iter().all(Option::is_some));
    }
}
