//! Per-client-address limits on failed authentication. Successes are never counted, so a busy office behind
//! one address is not locked out by its own legitimate traffic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        FailureLimiter { max_failures, window, windows: Mutex::new(HashMap::new()) }
    }

    /// Err(seconds to wait) when `client` has used up its failures in the current window.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(&client) {
            Some((start, count)) if now.duration_since(*start) < self.window && *count >= self.max_failures => {
                let left = self.window - now.duration_since(*start);
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, client: IpAddr, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let entry = windows.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        // Forget stale windows now and then, so the map stays as small as the set of recent offenders.
        if windows.len() > 10_000 {
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_failures_per_address_and_window() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(a, t0).is_ok());
            limiter.record_failure(a, t0);
        }
        assert_eq!(limiter.check(a, t0 + Duration::from_secs(20)), Err(40));
        assert!(limiter.check(b, t0).is_ok(), "other addresses are unaffected");
        assert!(limiter.check(a, t0 + Duration::from_secs(61)).is_ok(), "the window ends");
        limiter.record_failure(a, t0 + Duration::from_secs(61));
        assert!(limiter.check(a, t0 + Duration::from_secs(62)).is_ok(), "a new window starts from zero");
    }
}
