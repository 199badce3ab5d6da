//! Failed-attempt limiting per source address and credential name: the challenge space must not
//! be walked through the SCEP or MDM endpoints, nor the admin token through the admin API.
//!
//! Only failures are limited. A request is always checked, and a valid credential or challenge
//! always accepted: the secrets carry 95 random bits and more, so an attacker past the limit gains
//! nothing, while refusing the right credential would let one attacker lock out every device
//! and MDM behind the same address. Past the limit a failure is answered 429 with Retry-After
//! instead of its usual answer.
//!
//! Attempts are counted when they arrive, not when they have failed: a burst sent at once is
//! over the limit from the first request past it, however long the checks take.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked keys the oldest windows are dropped, so a flood of sources (or names)
/// cannot grow the table without bound.
const MAX_TRACKED: usize = 100_000;

/// A source (see [`source`]) and the credential name tried (empty where there is none).
type Key = (IpAddr, String);

#[derive(Default)]
struct Window {
    failures: u32,
    /// Attempts that arrived and are still being checked.
    pending: u32,
    since: Option<Instant>,
}

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<Key, Window>>,
}

/// One attempt, counted from its arrival until it ends: as a failure ([`Attempt::failed`]) or,
/// when dropped, as nothing.
pub struct Attempt<'a> {
    limiter: &'a FailureLimiter,
    key: Key,
    /// Failures and attempts in flight had reached the limit when this one arrived.
    over: bool,
    ended: bool,
}

impl FailureLimiter {
    pub fn new(max_failures_per_minute: u32) -> FailureLimiter {
        FailureLimiter {
            max_failures: max_failures_per_minute,
            window: Duration::from_secs(60),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `ip` with credential `name` as it arrives.
    pub fn arrive(&self, ip: IpAddr, name: &str) -> Attempt<'_> {
        let key = (source(ip), name.to_string());
        let mut map = self.windows.lock().expect("limiter lock");
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, w| w.pending > 0 || w.since.is_some_and(|s| s.elapsed() < window));
            if map.len() >= MAX_TRACKED {
                // Still full of live windows: a flood of sources. Start over rather than grow.
                map.clear();
            }
        }
        let w = map.entry(key.clone()).or_default();
        if w.since.is_some_and(|s| s.elapsed() >= self.window) {
            w.failures = 0;
            w.since = None;
        }
        let over = w.failures.saturating_add(w.pending) >= self.max_failures;
        w.pending += 1;
        Attempt {
            limiter: self,
            key,
            over,
            ended: false,
        }
    }

    fn end(&self, key: &Key, failed: bool) -> u64 {
        let mut map = self.windows.lock().expect("limiter lock");
        let Some(w) = map.get_mut(key) else {
            return 1;
        };
        w.pending = w.pending.saturating_sub(1);
        if failed {
            w.failures = w.failures.saturating_add(1);
            w.since.get_or_insert_with(Instant::now);
        }
        let elapsed = w.since.map_or(Duration::ZERO, |s| s.elapsed());
        if w.pending == 0 && w.failures == 0 {
            map.remove(key);
        }
        self.window.saturating_sub(elapsed).as_secs().max(1)
    }
}

impl Attempt<'_> {
    /// Counts the attempt as failed. `Some(seconds)`: it was past the limit, answer 429 with
    /// this Retry-After.
    pub fn failed(mut self) -> Option<u64> {
        self.ended = true;
        let retry_after = self.limiter.end(&self.key, true);
        self.over.then_some(retry_after)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.limiter.end(&self.key, false);
        }
    }
}

/// The unit of limiting: an IPv4 address, or an IPv6 /64 (one host can hold a whole /64).
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(o))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(l: &FailureLimiter, ip: IpAddr, name: &str) -> Option<u64> {
        l.arrive(ip, name).failed()
    }

    #[test]
    fn engages_after_the_limit_per_source_and_name() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(fail(&l, a, "jamf").is_none());
        }
        assert!(fail(&l, a, "jamf").is_some_and(|s| (1..=60).contains(&s)));
        assert!(fail(&l, a, "fleet").is_none(), "another credential name");
        assert!(fail(&l, b, "jamf").is_none(), "another source");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..3 {
            fail(&l, v6a, "");
        }
        assert!(fail(&l, v6b, "").is_some(), "the same /64");
    }

    #[test]
    fn counts_at_arrival_and_successes_cost_nothing() {
        let l = FailureLimiter::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let burst: Vec<Attempt<'_>> = (0..5).map(|_| l.arrive(a, "")).collect();
        let answers: Vec<Option<u64>> = burst.into_iter().map(Attempt::failed).collect();
        assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 2, "{answers:?}");
        let l = FailureLimiter::new(2);
        for _ in 0..10 {
            drop(l.arrive(a, ""));
        }
        assert!(fail(&l, a, "").is_none(), "successes are not failures");
    }
}
