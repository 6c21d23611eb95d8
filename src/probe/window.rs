//! The sliding window behind the probe error ratio.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The failure ratio of the probes finished within a sliding window.
#[derive(Debug)]
pub struct ErrorWindow {
    span: Duration,
    /// When each probe finished, and how many probes had failed by then (it
    /// included); oldest first. A scrape finds the window's start by binary
    /// search and its failures by one subtraction.
    events: VecDeque<(Instant, u64)>,
    /// Failures by the newest probe, and by the probe before the oldest kept.
    failed: u64,
    failed_before: u64,
}

/// Most samples a window keeps, whatever its span and cadence: bounds memory.
pub const MAX_WINDOW_EVENTS: usize = 100_000;

impl ErrorWindow {
    pub fn new(span: Duration) -> ErrorWindow {
        ErrorWindow {
            span,
            events: VecDeque::new(),
            failed: 0,
            failed_before: 0,
        }
    }

    pub fn record(&mut self, at: Instant, failed: bool) {
        while self
            .events
            .front()
            .is_some_and(|(t, _)| !within(*t, at, self.span))
            || self.events.len() >= MAX_WINDOW_EVENTS
        {
            if let Some((_, f)) = self.events.pop_front() {
                self.failed_before = f;
            }
        }
        self.failed += u64::from(failed);
        self.events.push_back((at, self.failed));
    }

    /// Failed / all probes that finished in `(now - span, now]`; `None` when
    /// there were none.
    pub fn ratio(&self, now: Instant) -> Option<f64> {
        let first = self
            .events
            .partition_point(|(t, _)| !within(*t, now, self.span));
        let total = self.events.len() - first;
        if total == 0 {
            return None;
        }
        let before = match first {
            0 => self.failed_before,
            i => self.events[i - 1].1,
        };
        Some((self.failed - before) as f64 / total as f64)
    }
}

/// Whether `at` lies in the window of length `span` that ends at `now`.
pub fn within(at: Instant, now: Instant, span: Duration) -> bool {
    now.saturating_duration_since(at) < span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_window_slides() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = ErrorWindow::new(s(60));
        assert_eq!(w.ratio(t0), None);
        // One probe a second for a minute, one of them failed.
        for i in 0..60 {
            w.record(t0 + s(i), i == 30);
        }
        let r = w.ratio(t0 + s(59)).unwrap();
        assert!((r - 1.0 / 60.0).abs() < 1e-12, "{r}");
        assert!(
            r < 0.02,
            "one failure in 60 probes stays below the 2% danger line"
        );
        // 31 s later the failure has left the window; so have 31 good probes.
        assert_eq!(w.ratio(t0 + s(90)), Some(0.0));
        assert_eq!(w.ratio(t0 + s(89)).map(|r| r > 0.0), Some(true));
        // Much later, nothing is left in the window.
        assert_eq!(w.ratio(t0 + s(200)), None);
        w.record(t0 + s(200), true);
        assert_eq!(w.ratio(t0 + s(200)), Some(1.0));
        assert_eq!(w.events.len(), 1, "old probes are dropped on record");
    }

    #[test]
    fn error_window_is_bounded() {
        let t0 = Instant::now();
        let mut w = ErrorWindow::new(Duration::from_secs(3600));
        for i in 0..(MAX_WINDOW_EVENTS as u64 + 10) {
            w.record(t0 + Duration::from_micros(i), false);
        }
        assert_eq!(w.events.len(), MAX_WINDOW_EVENTS);
    }
}
