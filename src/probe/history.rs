//! The last minute of one endpoint's probes, for incident snapshots: a small
//! ring per gateway and endpoint, bounded in entries and in bytes per body.

use std::collections::VecDeque;
use std::time::Duration;

/// How far back the history reaches.
pub const SPAN: Duration = Duration::from_secs(60);
/// Entries kept at most (a 1 s readiness poll fills a minute with 60).
pub const MAX_ENTRIES: usize = 64;
/// Bytes of an answer's body kept at most.
pub const BODY_EXCERPT: usize = 1024;

/// One probe, as a snapshot shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Unix time the probe finished.
    pub at: f64,
    pub duration_seconds: f64,
    pub success: bool,
    /// The HTTP status; 0 when no answer arrived.
    pub status: u16,
    /// Why it failed ([`super::Reason`]), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The start of the body (readiness only), lossily decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

#[derive(Debug, Default)]
pub struct History(VecDeque<Entry>);

impl History {
    /// Add one probe; entries older than [`SPAN`] before it, and beyond
    /// [`MAX_ENTRIES`], are dropped.
    pub fn push(&mut self, e: Entry) {
        let oldest = e.at - SPAN.as_secs_f64();
        while self
            .0
            .front()
            .is_some_and(|f| f.at < oldest || self.0.len() >= MAX_ENTRIES)
        {
            self.0.pop_front();
        }
        self.0.push_back(e);
    }

    /// The entries of the last [`SPAN`] before `now`, oldest first.
    pub fn recent(&self, now: f64) -> Vec<Entry> {
        let oldest = now - SPAN.as_secs_f64();
        self.0.iter().filter(|e| e.at >= oldest).cloned().collect()
    }
}

/// The first [`BODY_EXCERPT`] bytes of `body`, lossily decoded.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Entry {
        Entry {
            at: t,
            duration_seconds: 0.01,
            success: true,
            status: 200,
            reason: None,
            body: None,
        }
    }

    #[test]
    fn keeps_a_minute_and_a_bounded_count() {
        let mut h = History::default();
        for i in 0..200 {
            h.push(at(f64::from(i)));
        }
        let r = h.recent(199.0);
        assert_eq!(r.len(), MAX_ENTRIES.min(61));
        assert_eq!(r.last().map(|e| e.at), Some(199.0));
        assert!(r.iter().all(|e| e.at >= 139.0));
        h.push(at(1000.0));
        assert_eq!(h.recent(1000.0).len(), 1);
        assert_eq!(excerpt(&[b'x'; 5000]).len(), BODY_EXCERPT);
    }
}
