//! The last minute of one endpoint's probes, for incident snapshots: a small
//! ring per gateway and endpoint, bounded in entries and in bytes per body.
//!
//! Kept compact, since every gateway holds two for as long as it runs:
//! fixed-size records, and the bodies' bytes in one byte ring per history
//! rather than a string per probe (a 1 s poll would otherwise leave a
//! minute's worth of small long-lived allocations scattered over the heap).
//! [`Entry`], with its strings, is made only when a snapshot asks.

use std::collections::VecDeque;
use std::time::Duration;

use super::Reason;

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

/// One probe as the ring keeps it; its body is the next `body` bytes of
/// [`History::bodies`] after those of the records before it.
#[derive(Debug, Clone, Copy)]
struct Record {
    at: f64,
    duration_seconds: f64,
    status: u16,
    success: bool,
    reason: Option<Reason>,
    /// Length of the body excerpt; `None` when no body was kept.
    body: Option<u16>,
}

#[derive(Debug, Default)]
pub struct History {
    records: VecDeque<Record>,
    bodies: VecDeque<u8>,
}

impl History {
    /// Add one probe that finished at `at` (Unix time): its outcome, and the
    /// start of its body when there is one. Entries older than [`SPAN`]
    /// before it, and beyond [`MAX_ENTRIES`], are dropped.
    pub fn push(
        &mut self,
        at: f64,
        duration_seconds: f64,
        result: Result<u16, super::Failure>,
        body: Option<&[u8]>,
    ) {
        let oldest = at - SPAN.as_secs_f64();
        while self
            .records
            .front()
            .is_some_and(|f| f.at < oldest || self.records.len() >= MAX_ENTRIES)
        {
            if let Some(Record { body: Some(n), .. }) = self.records.pop_front() {
                self.bodies.drain(..usize::from(n));
            }
        }
        let body = body.map(|b| &b[..b.len().min(BODY_EXCERPT)]);
        if let Some(b) = body {
            self.bodies.extend(b);
        }
        self.records.push_back(Record {
            at,
            duration_seconds,
            status: match result {
                Ok(status) => status,
                Err(f) => f.status.unwrap_or(0),
            },
            success: result.is_ok(),
            reason: result.err().map(|f| f.reason),
            // BODY_EXCERPT fits in a u16.
            body: body.map(|b| b.len() as u16),
        });
    }

    /// The entries of the last [`SPAN`] before `now`, oldest first.
    pub fn recent(&self, now: f64) -> Vec<Entry> {
        let oldest = now - SPAN.as_secs_f64();
        let mut start = 0;
        let mut out = Vec::new();
        for r in &self.records {
            let body = r.body.map(|n| {
                let end = start + usize::from(n);
                let bytes: Vec<u8> = self.bodies.range(start..end).copied().collect();
                start = end;
                String::from_utf8_lossy(&bytes).into_owned()
            });
            if r.at >= oldest {
                out.push(Entry {
                    at: r.at,
                    duration_seconds: r.duration_seconds,
                    success: r.success,
                    status: r.status,
                    reason: r.reason.map(|r| r.as_str().to_string()),
                    body,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Failure;

    #[test]
    fn keeps_a_minute_and_a_bounded_count() {
        let mut h = History::default();
        for i in 0..200 {
            h.push(f64::from(i), 0.01, Ok(200), None);
        }
        let r = h.recent(199.0);
        assert_eq!(r.len(), MAX_ENTRIES.min(61));
        assert_eq!(r.last().map(|e| e.at), Some(199.0));
        assert!(r
            .iter()
            .all(|e| e.at >= 139.0 && e.success && e.status == 200));
        h.push(1000.0, 0.01, Ok(200), None);
        assert_eq!(h.recent(1000.0).len(), 1);
    }

    #[test]
    fn keeps_each_body_with_its_probe() {
        let mut h = History::default();
        let failure = Failure {
            reason: Reason::HttpStatus,
            status: Some(503),
        };
        for i in 0..100u16 {
            let body = format!("{{\"n\":{i}}}");
            let result = if i.is_multiple_of(3) {
                Err(failure)
            } else {
                Ok(200)
            };
            // Every other probe has no body, as a refused connection.
            let body = i.is_multiple_of(2).then_some(body.as_bytes());
            h.push(f64::from(i), 0.5, result, body);
        }
        let r = h.recent(99.0);
        assert_eq!(r.len(), 61);
        for e in &r {
            let i = e.at as u16;
            let body = i.is_multiple_of(2).then(|| format!("{{\"n\":{i}}}"));
            assert_eq!(e.body, body, "probe {i}");
            assert_eq!(e.success, !i.is_multiple_of(3));
            assert_eq!(e.status, if i.is_multiple_of(3) { 503 } else { 200 });
            assert_eq!(
                e.reason.as_deref(),
                i.is_multiple_of(3).then_some("http_status")
            );
        }
        // An old probe's body stays with it, not with the ones after.
        assert_eq!(h.recent(150.0).len(), 10);
        assert_eq!(
            h.bodies.len(),
            r.iter()
                .flat_map(|e| &e.body)
                .map(String::len)
                .sum::<usize>()
        );
        // Bodies are cut at BODY_EXCERPT bytes, then decoded lossily.
        let mut h = History::default();
        let mut long = vec![b'x'; 5000];
        long[0] = 0xff;
        h.push(0.0, 0.1, Ok(200), Some(&long));
        let body = h.recent(0.0).remove(0).body.unwrap_or_default();
        assert!(body.starts_with('\u{fffd}'));
        assert_eq!(body.len(), BODY_EXCERPT - 1 + '\u{fffd}'.len_utf8());
    }
}
