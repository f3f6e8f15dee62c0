//! Rules of the durable job table: when a failed job is tried again.

use crate::{HOUR_MS, Millis, SECOND_MS};

/// First retry after this; each further retry waits twice as long, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: Millis = 5 * SECOND_MS;
pub const MAX_RETRY_DELAY_MS: Millis = HOUR_MS;

/// How long to wait before attempt `attempts + 1`, after `attempts` failed ones (≥ 1): 5 s, 10 s, 20 s, ...
/// capped at an hour. Jitter (up to 10 %, stable per job) spreads retries of jobs that failed together.
pub fn retry_delay_ms(attempts: i64, job_id: i64) -> Millis {
    let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let base = FIRST_RETRY_DELAY_MS.saturating_mul(1 << exponent).min(MAX_RETRY_DELAY_MS);
    base + crate::jitter::stable_jitter_ms(job_id, "job-retry", base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cases = [(1, 5_000), (2, 10_000), (3, 20_000), (4, 40_000), (11, 3_600_000), (500, 3_600_000)];
        for (attempts, want) in cases {
            let delay = retry_delay_ms(attempts, 1);
            assert!((want..=want + want / 10).contains(&delay), "attempt {attempts}: {delay}");
        }
        assert_eq!(retry_delay_ms(0, 1), retry_delay_ms(1, 1), "no attempt yet counts as the first");
    }
}
