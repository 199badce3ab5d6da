//! Failed-attempt limiting per source address: the challenge space must not be brute-forceable
//! through the MDM endpoints, nor the admin token through the admin API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked addresses the oldest windows are dropped, so a flood of sources
/// cannot grow the table without bound.
const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max_failures_per_minute: u32) -> FailureLimiter {
        FailureLimiter {
            max_failures: max_failures_per_minute,
            window: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `ip` may try again, if it is over its limit.
    pub fn retry_after(&self, ip: IpAddr) -> Option<u64> {
        let ip = source(ip);
        let map = self.failures.lock().expect("limiter lock");
        let (count, since) = map.get(&ip)?;
        let elapsed = since.elapsed();
        (*count >= self.max_failures && elapsed < self.window).then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let ip = source(ip);
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() < window);
            if map.len() >= MAX_TRACKED {
                // Still full of live windows: a flood of sources. Start over rather than grow.
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// The unit of limiting: an IPv4 address, or an IPv6 /64 (one host can hold a whole /64).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engages_after_the_limit_per_address() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.retry_after(a).is_none());
            l.record_failure(a);
        }
        assert!(l.retry_after(a).is_some_and(|s| (1..=60).contains(&s)));
        assert!(l.retry_after(b).is_none());
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..3 {
            l.record_failure(v6a);
        }
        assert!(l.retry_after(v6b).is_some(), "the same /64");
    }
}
