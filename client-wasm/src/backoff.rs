//! Reconnect policy: exponential backoff from 1 s to 15 s with jitter.

/// Delay before reconnect attempt `attempt` (0-based), given a random number in `[0, 1)`:
/// 1 s, 2 s, 4 s, 8 s, then 15 s, each scaled by 0.5–1.0 so many clients do not reconnect in step.
pub fn backoff_ms(attempt: u32, random: f64) -> u32 {
    let base = 1000u32.saturating_mul(1u32 << attempt.min(4)).min(15_000);
    let jitter = 0.5 + 0.5 * random.clamp(0.0, 1.0);
    (base as f64 * jitter) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_from_one_to_fifteen_seconds_with_jitter() {
        assert_eq!(backoff_ms(0, 0.999_999), 999);
        assert_eq!(backoff_ms(0, 0.0), 500);
        assert_eq!(backoff_ms(3, 0.999_999), 7_999);
        assert_eq!(backoff_ms(4, 0.999_999), 14_999);
        assert_eq!(backoff_ms(40, 0.999_999), 14_999);
        assert!((7_500..=15_000).contains(&backoff_ms(9, 0.5)));
    }
}
