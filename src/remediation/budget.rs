//! The restart budget: at most `max` restarts in any `window` (the field
//! report's MaxRestartAttempts, 3 per hour by default), with a backoff that
//! doubles after each restart in the window. Pure arithmetic over the times
//! of past attempts; [`super::state`] keeps those times across exporter
//! restarts.

use std::time::Duration;

/// A point in time: since the Unix epoch (wall clock, so that it means the
/// same after an exporter restart).
pub type Time = Duration;

/// The budget's settings, from the gateway's `remediation:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max: u32,
    pub window: Duration,
    /// The wait after the first restart in the window; doubled after each
    /// further one, never longer than the window.
    pub backoff: Duration,
}

impl Budget {
    /// The attempts of `attempts` inside the window that ends at `now`.
    fn in_window(&self, attempts: &[Time], now: Time) -> usize {
        let from = now.saturating_sub(self.window);
        attempts.iter().filter(|&&t| t > from && t <= now).count()
    }

    /// Restarts still allowed at `now`.
    pub fn remaining(&self, attempts: &[Time], now: Time) -> u32 {
        let used = u32::try_from(self.in_window(attempts, now)).unwrap_or(u32::MAX);
        self.max.saturating_sub(used)
    }

    /// The earliest time the next restart may start: after the backoff that
    /// follows the last attempt. `None` when it may start now.
    pub fn wait_until(&self, attempts: &[Time], now: Time) -> Option<Time> {
        let last = attempts.iter().copied().filter(|&t| t <= now).max()?;
        let n = self.in_window(attempts, now).max(1) as u32;
        let wait = self
            .backoff
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(self.window);
        let until = last + wait;
        (until > now).then_some(until)
    }

    /// When the oldest attempt in the window leaves it: the budget grows
    /// back by one then.
    pub fn refills_at(&self, attempts: &[Time], now: Time) -> Option<Time> {
        let from = now.saturating_sub(self.window);
        attempts
            .iter()
            .copied()
            .filter(|&t| t > from && t <= now)
            .min()
            .map(|t| t + self.window)
    }

    /// The attempts worth keeping at `now`: those inside the window.
    pub fn prune(&self, attempts: &mut Vec<Time>, now: Time) {
        let from = now.saturating_sub(self.window);
        attempts.retain(|&t| t > from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn s(n: u64) -> Time {
        Duration::from_secs(1_000_000 + n)
    }

    fn budget() -> Budget {
        Budget {
            max: 3,
            window: H,
            backoff: Duration::from_secs(30),
        }
    }

    #[test]
    fn three_per_hour() {
        let b = budget();
        assert_eq!(b.remaining(&[], s(0)), 3);
        let attempts = [s(0), s(100), s(400)];
        assert_eq!(b.remaining(&attempts[..1], s(1)), 2);
        assert_eq!(b.remaining(&attempts, s(500)), 0);
        // The first attempt leaves the window an hour after it was made.
        assert_eq!(b.refills_at(&attempts, s(500)), Some(s(3600)));
        assert_eq!(b.remaining(&attempts, s(3599)), 0);
        assert_eq!(b.remaining(&attempts, s(3600)), 1);
        assert_eq!(b.remaining(&attempts, s(3800)), 2);
        assert_eq!(b.remaining(&attempts, s(4000) + H), 3);
        // An attempt "in the future" (a clock set back) does not count yet.
        assert_eq!(b.remaining(&[s(900)], s(100)), 3);
    }

    #[test]
    fn backoff_doubles_within_the_window() {
        let b = budget();
        assert_eq!(b.wait_until(&[], s(0)), None);
        assert_eq!(b.wait_until(&[s(0)], s(10)), Some(s(30)));
        assert_eq!(b.wait_until(&[s(0)], s(30)), None);
        assert_eq!(b.wait_until(&[s(0), s(40)], s(50)), Some(s(100)));
        assert_eq!(b.wait_until(&[s(0), s(40), s(110)], s(111)), Some(s(230)));
        // Never longer than the window, whatever the settings.
        let long = Budget {
            max: 100,
            window: Duration::from_secs(60),
            backoff: Duration::from_secs(3600),
        };
        assert_eq!(long.wait_until(&[s(0)], s(1)), Some(s(60)));
        let zero = Budget {
            backoff: Duration::ZERO,
            ..b
        };
        assert_eq!(zero.wait_until(&[s(0), s(1), s(2)], s(2)), None);
    }

    #[test]
    fn prune_keeps_the_window() {
        let b = budget();
        let mut a = vec![s(0), s(10), s(4000)];
        b.prune(&mut a, s(3605));
        assert_eq!(a, vec![s(10), s(4000)]);
    }
}
