//! Event-loop stall time as a counter, which no scrape interval can miss.
//!
//! The event-loop gauges hold a stall for one `--collect.event-loop.interval`
//! (5 s) only, and while the loop is blocked /readyz does not answer at all,
//! so a 15 s scrape can see nothing of a 240 s block. This counter adds the
//! seconds the loop was stalled, from two kinds of evidence:
//!
//! - inside: an answer's `eventLoop.delayMaxMs`, the longest single delay in
//!   the gateway's ~1 s monitor window, less the monitor's sampling floor;
//! - outside: readiness probes that timed out (the port still accepts, so
//!   the process is alive, stopped or blocked), then the first answer: the
//!   loop did not answer from the start of the first timed-out probe until
//!   that answer.
//!
//! Each answer evidences one stall, ending at the answer, as long as the
//! larger of the two (they are one block seen from both sides); an inside
//! stall longer than the time since the previous answer ended before that
//! answer, which proves the loop ran then (the gateway reports an earlier
//! window again). Only the part of a stall not already counted is added, so
//! one block reported by two answers counts once, to within the readiness
//! poll interval. An answer whose event-loop figures equal the previous
//! answer's reports the same monitor window again and adds nothing. Only
//! stalls longer than [`STALL_THRESHOLD`] count: the field report's danger
//! line for the event-loop delay.

use std::time::{Duration, Instant};

use super::readiness::EventLoop;
use crate::thresholds;

/// The shortest stall counted: the event-loop delay's danger line (50 ms).
pub const STALL_THRESHOLD: Duration =
    Duration::from_millis((thresholds::EVENT_LOOP_DELAY_SECONDS.critical * 1000.0) as u64);

/// How one readiness probe ended, as far as stalls go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The gateway answered, with these event-loop figures.
    Answered(EventLoop),
    /// No answer within the probe timeout.
    TimedOut,
    /// Anything else (refused: nothing listens; bad answers): no evidence
    /// either way, and the end of a run of timeouts.
    Other,
}

#[derive(Debug)]
pub struct Stalls {
    floor: Duration,
    seconds: f64,
    /// Start of the first probe that timed out since the last answer.
    unanswered_since: Option<Instant>,
    /// Where the counted stall time ends.
    counted_until: Option<Instant>,
    last_window: Option<EventLoop>,
    /// When the last answer arrived.
    last_answer: Option<Instant>,
}

impl Stalls {
    /// `floor` is the monitor's sampling floor (`--probe.event-loop-floor`).
    pub fn new(floor: Duration) -> Stalls {
        Stalls {
            floor,
            seconds: 0.0,
            unanswered_since: None,
            counted_until: None,
            last_window: None,
            last_answer: None,
        }
    }

    /// Stall seconds counted so far.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// Account one probe, sent at `started`, ended at `ended`.
    pub fn record(&mut self, started: Instant, ended: Instant, outcome: Outcome) {
        let el = match outcome {
            Outcome::TimedOut => {
                self.unanswered_since.get_or_insert(started);
                return;
            }
            Outcome::Other => {
                self.unanswered_since = None;
                return;
            }
            Outcome::Answered(el) => el,
        };
        let previous = self.last_answer.replace(ended);
        let outside = self
            .unanswered_since
            .take()
            .map(|s| ended.saturating_duration_since(s));
        let inside = match el.delay_max_ms {
            Some(ms) if self.last_window != Some(el) => {
                Duration::from_secs_f64(ms / 1000.0).saturating_sub(self.floor)
            }
            _ => Duration::ZERO,
        };
        self.last_window = Some(el);
        let (stall, end) = match outside {
            // One block, seen from both sides: the longer, up to this answer.
            Some(outside) => (outside.max(inside), ended),
            // A stall longer than the time since the previous answer ended
            // before that answer (which proves the loop ran): the gateway
            // reports an earlier window again.
            None => match previous {
                Some(p) if inside > ended.saturating_duration_since(p) => (inside, p),
                _ => (inside, ended),
            },
        };
        if stall > STALL_THRESHOLD {
            let before = self.seconds;
            self.add(end.checked_sub(stall).unwrap_or(end), end);
            tracing::debug!(
                outside_s = outside.map(|d| d.as_secs_f64()),
                inside_s = inside.as_secs_f64(),
                added_s = self.seconds - before,
                "event-loop stall"
            );
        }
    }

    /// Count `[start, end)` but what is already counted; ends never go back.
    fn add(&mut self, start: Instant, end: Instant) {
        let from = self.counted_until.map_or(start, |c| c.max(start));
        if end > from {
            self.seconds += (end - from).as_secs_f64();
            self.counted_until = Some(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(max_ms: f64) -> Outcome {
        Outcome::Answered(EventLoop {
            delay_max_ms: Some(max_ms),
            delay_p99_ms: Some(max_ms),
            ..EventLoop::default()
        })
    }

    #[test]
    fn counts_stalls_once() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let mut st = Stalls::new(Duration::from_millis(20));
        // Idle answers (the 20 ms floor) and a 60 ms one (40 ms above the
        // floor, below the 50 ms line): nothing.
        st.record(s(0.0), s(0.01), answer(20.5));
        st.record(s(1.0), s(1.01), answer(60.0));
        assert_eq!(st.seconds(), 0.0);
        // A 320 ms stall: 300 ms above the floor.
        st.record(s(2.0), s(2.01), answer(320.0));
        assert!((st.seconds() - 0.3).abs() < 1e-9, "{}", st.seconds());
        // The same window again (the gateway's window had not rolled): no more.
        st.record(s(2.5), s(2.51), answer(320.0));
        assert!((st.seconds() - 0.3).abs() < 1e-9, "{}", st.seconds());

        // A 30 s block: probes time out from 10 s (5 s timeout each), the
        // first answer arrives at 40.2 s and reports the block inside too.
        for start in [10.0, 16.0, 22.0, 28.0, 34.0] {
            st.record(s(start), s(start + 5.0), Outcome::TimedOut);
        }
        assert!((st.seconds() - 0.3).abs() < 1e-9, "nothing until an answer");
        st.record(s(39.9), s(40.2), answer(30_000.0));
        let got = st.seconds() - 0.3;
        assert!((got - 30.2).abs() < 1e-6, "counted once: {got}");
        // The next window reports the block again (its window rolled after
        // the answer): within what is counted, nothing more.
        st.record(s(41.0), s(41.2), answer(30_020.0));
        let again = st.seconds() - 0.3;
        assert!((again - got).abs() < 1e-6, "{got} then {again}");

        // Timeouts then a refusal (the gateway died): no stall.
        let before = st.seconds();
        st.record(s(50.0), s(55.0), Outcome::TimedOut);
        st.record(s(56.0), s(56.0), Outcome::Other);
        st.record(s(57.0), s(57.01), answer(20.5));
        assert_eq!(st.seconds(), before);
    }
}
