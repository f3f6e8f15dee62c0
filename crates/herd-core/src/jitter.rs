//! Stable per-host jitter, so hosts enrolled together do not all come due in the same second.

use sha2::{Digest, Sha256};

/// Largest jitter, as a fraction of the interval (Fleet adds "up to 10 %").
pub const MAX_JITTER_PERCENT: i64 = 10;

/// A delay in `0..=interval_ms * 10 %` that depends only on the host and the purpose (`salt`), so it is the
/// same on every server and across restarts, and different purposes (vitals, policies) spread independently.
pub fn stable_jitter_ms(host_id: i64, salt: &str, interval_ms: i64) -> i64 {
    let span = interval_ms.max(0) * MAX_JITTER_PERCENT / 100;
    if span == 0 {
        return 0;
    }
    let mut hasher = Sha256::new();
    hasher.update(host_id.to_le_bytes());
    hasher.update(salt.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) % (span as u64 + 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_bounded_stable_and_spread() {
        let interval = 3_600_000;
        // 500 hosts over 360 one-second buckets: about 270 distinct buckets if spread uniformly.
        let mut distinct = std::collections::BTreeSet::new();
        for host in 0..500 {
            let j = stable_jitter_ms(host, "vitals", interval);
            assert!((0..=360_000).contains(&j), "host {host}: {j}");
            assert_eq!(j, stable_jitter_ms(host, "vitals", interval));
            distinct.insert(j / 1000);
        }
        assert!(distinct.len() > 200, "jitter should spread hosts, got {} distinct seconds", distinct.len());
        assert_eq!(stable_jitter_ms(7, "vitals", 0), 0);
        assert_eq!(stable_jitter_ms(7, "vitals", -5), 0);
        assert_ne!(
            (0..20).map(|h| stable_jitter_ms(h, "vitals", interval)).collect::<Vec<_>>(),
            (0..20).map(|h| stable_jitter_ms(h, "policies", interval)).collect::<Vec<_>>()
        );
    }
}
