//! Open connections per source address (`max_connections_per_source`): one client holding
//! many idle sockets must not use up `max_connections` and shut out everyone else — the health
//! checks included. Trusted proxies are exempt (every client behind them shares their address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::ratelimit::source;

pub struct SourceConnections {
    max_per_source: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a source, given back when dropped.
pub struct SourceSlot {
    tracker: Arc<SourceConnections>,
    source: IpAddr,
}

impl SourceConnections {
    pub fn new(max_per_source: usize) -> SourceConnections {
        SourceConnections {
            max_per_source: max_per_source.max(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when its source has all it may hold.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let source = source(ip);
        let mut open = self.open.lock().expect("connection table");
        let count = open.entry(source).or_insert(0);
        if *count >= self.max_per_source {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            tracker: Arc::clone(self),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.tracker.open.lock().expect("connection table");
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_source_and_gives_slots_back() {
        let tracker = Arc::new(SourceConnections::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = tracker.open(a).unwrap();
        let _second = tracker.open(a).unwrap();
        assert!(tracker.open(a).is_none());
        assert!(tracker.open(b).is_some());
        drop(first);
        assert!(tracker.open(a).is_some());
    }
}
