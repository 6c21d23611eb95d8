//! Readiness: `GET <gateway url>/readyz`, turned into metrics: ready, the
//! failing checks, uptime and the gateway's own event-loop figures.
//!
//! The gateway's event-loop figures cover a window of only about 1 s
//! (`intervalMs`), so /readyz is polled every `--probe.readiness-interval`
//! (default 1s, never less often than `--collect.event-loop.interval`), and
//! every figure is exported twice over the last `--collect.event-loop.interval`
//! (default 5s): `stat="last"`, the latest answer, and `stat="peak"`, the
//! highest value of any answer in that sliding window. A stall between two
//! scrapes thus stays visible in `peak` for a whole window.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde_json::{Map, Value};

use super::stall::{Outcome, Stalls};
use super::{AsyncSampler, BoxFuture, SampleError};
use crate::config::TokenSource;
use crate::discovery::Target;
use crate::metrics;
use crate::names;
use crate::probe::{self, Answer, Failure, Probe, ProbeStats, Prober, Reason};

/// The most body a /readyz answer may have (the real one has about 300 bytes).
pub const BODY_CAP: usize = 1024 * 1024;
/// The most distinct failing-check names kept per gateway; later ones are
/// reported as `check="_other"`.
pub const MAX_CHECKS: usize = 16;
/// The longest check name kept; longer ones are cut.
pub const MAX_CHECK_LEN: usize = 64;
pub const OTHER_CHECK: &str = "_other";

/// A field of the /readyz body that can be missing or invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Failing,
    UptimeMs,
    EventLoop,
    Degraded,
    DelayP99Ms,
    DelayMaxMs,
    Utilization,
    CpuCoreRatio,
    IntervalMs,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Failing,
        Field::UptimeMs,
        Field::EventLoop,
        Field::Degraded,
        Field::DelayP99Ms,
        Field::DelayMaxMs,
        Field::Utilization,
        Field::CpuCoreRatio,
        Field::IntervalMs,
    ];

    /// The field's path in the body: the `field` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Failing => "failing",
            Field::UptimeMs => "uptimeMs",
            Field::EventLoop => "eventLoop",
            Field::Degraded => "eventLoop.degraded",
            Field::DelayP99Ms => "eventLoop.delayP99Ms",
            Field::DelayMaxMs => "eventLoop.delayMaxMs",
            Field::Utilization => "eventLoop.utilization",
            Field::CpuCoreRatio => "eventLoop.cpuCoreRatio",
            Field::IntervalMs => "eventLoop.intervalMs",
        }
    }

    fn index(self) -> usize {
        Field::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// The gateway's event-loop figures of one answer, as it reports them (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EventLoop {
    pub degraded: Option<bool>,
    pub delay_p99_ms: Option<f64>,
    pub delay_max_ms: Option<f64>,
    pub utilization: Option<f64>,
    pub cpu_core_ratio: Option<f64>,
    pub interval_ms: Option<f64>,
}

/// One parsed /readyz body.
#[derive(Debug, Clone, PartialEq)]
pub struct Readyz {
    pub ready: bool,
    /// Check names as the gateway wrote them (not yet sanitized).
    pub failing: Vec<String>,
    pub uptime_ms: Option<f64>,
    pub event_loop: EventLoop,
    /// Fields that were missing or invalid; their series stay absent.
    pub errors: Vec<Field>,
}

/// Parse a /readyz body. Only a body that is not a JSON object with a boolean
/// `ready` is rejected; any other field that is missing, of the wrong type,
/// negative or out of range is left out and listed in `errors`.
pub fn parse(body: &[u8]) -> Option<Readyz> {
    let Value::Object(obj) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let ready = obj.get("ready")?.as_bool()?;
    let mut errors = Vec::new();
    let mut check = |field: Field, v: Option<Option<f64>>| -> Option<f64> {
        match v {
            Some(Some(x)) => Some(x),
            _ => {
                errors.push(field);
                None
            }
        }
    };
    let failing = parse_failing(obj.get("failing"));
    let failing = match failing {
        Some((names, clean)) => {
            if !clean {
                check(Field::Failing, None);
            }
            names
        }
        None => {
            check(Field::Failing, None);
            Vec::new()
        }
    };
    let uptime_ms = check(Field::UptimeMs, number(&obj, "uptimeMs", f64::MAX));
    let event_loop = match obj.get("eventLoop") {
        Some(Value::Object(el)) => {
            let degraded = match el.get("degraded").map(Value::as_bool) {
                Some(Some(b)) => Some(b),
                _ => {
                    check(Field::Degraded, None);
                    None
                }
            };
            EventLoop {
                degraded,
                delay_p99_ms: check(Field::DelayP99Ms, number(el, "delayP99Ms", f64::MAX)),
                delay_max_ms: check(Field::DelayMaxMs, number(el, "delayMaxMs", f64::MAX)),
                utilization: check(Field::Utilization, number(el, "utilization", 1.0)),
                cpu_core_ratio: check(Field::CpuCoreRatio, number(el, "cpuCoreRatio", f64::MAX)),
                interval_ms: check(Field::IntervalMs, number(el, "intervalMs", f64::MAX)),
            }
        }
        // The gateway leaves eventLoop out of its full answer until its
        // monitor has finished a first window (its schema marks it optional):
        // no event-loop series then, and no error. Only the short answer an
        // untrusted caller gets, without uptimeMs either, counts it missing.
        None if obj.contains_key("uptimeMs") => EventLoop::default(),
        _ => {
            check(Field::EventLoop, None);
            EventLoop::default()
        }
    };
    Some(Readyz {
        ready,
        failing,
        uptime_ms,
        event_loop,
        errors,
    })
}

/// `None` when missing; `Some(None)` when not a finite number in `[0, max]`.
fn number(obj: &Map<String, Value>, key: &str, max: f64) -> Option<Option<f64>> {
    let v = obj.get(key)?;
    Some(
        v.as_f64()
            .filter(|x| x.is_finite() && (0.0..=max).contains(x)),
    )
}

/// The string names of `failing`, and whether every element was a string.
fn parse_failing(v: Option<&Value>) -> Option<(Vec<String>, bool)> {
    let items = v?.as_array()?;
    let names: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    let clean = names.len() == items.len();
    Some((names, clean))
}

/// A check name fit for a label value: at most [`MAX_CHECK_LEN`] characters of
/// `[A-Za-z0-9_.:-]`, anything else replaced by `_`; `None` when blank.
pub fn sanitize_check(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    Some(
        name.chars()
            .take(MAX_CHECK_LEN)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    )
}

/// The check names a gateway has reported failing, at most [`MAX_CHECKS`]
/// plus [`OTHER_CHECK`]; each keeps its series (0 once it passes again).
#[derive(Debug, Default)]
pub struct Checks {
    known: Vec<String>,
    other: bool,
}

impl Checks {
    /// Learn the names of one answer; returns the label values failing now.
    pub fn failing_now(&mut self, names: &[String]) -> HashSet<String> {
        let mut now = HashSet::new();
        for name in names.iter().filter_map(|n| sanitize_check(n)) {
            if self.known.contains(&name) {
                now.insert(name);
            } else if self.known.len() < MAX_CHECKS {
                self.known.push(name.clone());
                now.insert(name);
            } else {
                self.other = true;
                now.insert(OTHER_CHECK.to_string());
            }
        }
        now
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.known
            .iter()
            .map(String::as_str)
            .chain(self.other.then_some(OTHER_CHECK))
    }
}

/// Event-loop figures of the answers within a sliding window.
#[derive(Debug)]
pub struct PeakWindow {
    span: Duration,
    samples: VecDeque<(Instant, EventLoop)>,
}

impl PeakWindow {
    pub fn new(span: Duration) -> PeakWindow {
        PeakWindow {
            span,
            samples: VecDeque::new(),
        }
    }

    pub fn push(&mut self, at: Instant, el: EventLoop) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| !probe::within(*t, at, self.span))
        {
            self.samples.pop_front();
        }
        if self.samples.len() >= probe::MAX_WINDOW_EVENTS {
            self.samples.pop_front();
        }
        self.samples.push_back((at, el));
    }

    /// The highest of each figure over the answers in `(now - span, now]`;
    /// `degraded` is true if any answer said so.
    pub fn peak(&self, now: Instant) -> EventLoop {
        let mut peak = EventLoop::default();
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        for (_, el) in self
            .samples
            .iter()
            .filter(|(t, _)| probe::within(*t, now, self.span))
        {
            peak.degraded = match (peak.degraded, el.degraded) {
                (Some(a), Some(b)) => Some(a || b),
                (a, b) => a.or(b),
            };
            peak.delay_p99_ms = max(peak.delay_p99_ms, el.delay_p99_ms);
            peak.delay_max_ms = max(peak.delay_max_ms, el.delay_max_ms);
            peak.utilization = max(peak.utilization, el.utilization);
            peak.cpu_core_ratio = max(peak.cpu_core_ratio, el.cpu_core_ratio);
            peak.interval_ms = max(peak.interval_ms, el.interval_ms);
        }
        peak
    }
}

/// What the readiness probes of one gateway found.
#[derive(Debug)]
struct State {
    /// The last answer; `None` when the last probe failed.
    last: Option<Readyz>,
    /// The label values failing in the last answer.
    failing: HashSet<String>,
    probed: bool,
    window: PeakWindow,
    checks: Checks,
    field_errors: [u64; Field::ALL.len()],
    stalls: Stalls,
}

/// One gateway's readiness slot, shared by its sampler and the exposition.
#[derive(Debug)]
pub struct ReadinessSlot {
    pub target: Arc<Target>,
    /// The probe metrics with `endpoint="ready"`.
    pub stats: Arc<ProbeStats>,
    /// The event-loop sampling floor in force (`--probe.event-loop-floor`).
    pub floor: Duration,
    state: Mutex<State>,
}

impl ReadinessSlot {
    /// `window` is the peak window, `--collect.event-loop.interval`.
    pub fn new(
        target: Arc<Target>,
        stats: Arc<ProbeStats>,
        window: Duration,
        floor: Duration,
    ) -> ReadinessSlot {
        ReadinessSlot {
            target,
            stats,
            floor,
            state: Mutex::new(State {
                last: None,
                failing: HashSet::new(),
                probed: false,
                window: PeakWindow::new(window),
                checks: Checks::default(),
                field_errors: [0; Field::ALL.len()],
                stalls: Stalls::new(floor),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Account one probe, sent at `started` and ended at `ended`, in the
    /// event-loop stall time (see [`super::stall`]).
    pub fn record_stall(&self, started: Instant, ended: Instant, outcome: Outcome) {
        self.with(|st| st.stalls.record(started, ended, outcome))
    }

    /// Record the outcome of one probe finished at `at`.
    pub fn record(&self, at: Instant, answer: Option<Readyz>) {
        self.with(|st| {
            st.probed = true;
            match answer {
                Some(r) => {
                    for f in &r.errors {
                        st.field_errors[f.index()] += 1;
                    }
                    st.failing = st.checks.failing_now(&r.failing);
                    st.window.push(at, r.event_loop);
                    st.last = Some(r);
                }
                None => {
                    st.failing.clear();
                    st.last = None;
                }
            }
        })
    }
}

pub struct ReadinessSampler {
    slot: Arc<ReadinessSlot>,
    /// Or why the gateway cannot be probed (its HTTP client failed to build).
    prober: Result<Probe, String>,
    token: TokenSource,
    poll: Duration,
    warned_interval: bool,
}

impl ReadinessSampler {
    /// `poll` is the interval this sampler runs at, to compare with the
    /// gateway's event-loop window.
    pub fn new(slot: Arc<ReadinessSlot>, prober: Result<Prober, String>, poll: Duration) -> Self {
        let url = format!("{}/readyz", slot.target.spec.url);
        let token = TokenSource::new(&slot.target.spec);
        ReadinessSampler {
            prober: prober.map(|p| p.target(url)),
            slot,
            token,
            poll,
            warned_interval: false,
        }
    }

    async fn probe(&mut self) -> Result<(), SampleError> {
        let prober = self
            .prober
            .as_mut()
            .map_err(|e| SampleError::Failed(e.clone()))?;
        let token = self.token.current(&self.slot.target.spec.name);
        let started = Instant::now();
        let answer = prober.get(token, BODY_CAP).await;
        let result = answer.as_ref().map_err(|f| *f).and_then(interpret);
        self.slot.stats.record_answer(
            started.elapsed(),
            result.as_ref().map(|(s, _)| *s).map_err(|f| *f),
            // The start of every answer, for incident snapshots' last minute.
            answer.as_ref().ok().map(|a| &a.body[..]),
        );
        let outcome = match &result {
            Ok((_, readyz)) => Outcome::Answered(readyz.event_loop),
            Err(f) => match f.reason {
                Reason::Timeout => Outcome::TimedOut,
                Reason::ConnectRefused | Reason::ConnectError => Outcome::Other,
                // An answer, however bad: the loop ran.
                _ => Outcome::Answered(EventLoop::default()),
            },
        };
        self.slot.record_stall(started, Instant::now(), outcome);
        match result {
            Ok((_, readyz)) => {
                self.warn_if_polling_too_slowly(&readyz);
                self.slot.record(Instant::now(), Some(readyz));
            }
            Err(f) => {
                tracing::debug!(gateway = %self.slot.target.spec.name, reason = f.reason.as_str(), "readiness probe failed");
                self.slot.record(Instant::now(), None);
            }
        }
        Ok(())
    }

    fn warn_if_polling_too_slowly(&mut self, readyz: &Readyz) {
        let Some(window_ms) = readyz.event_loop.interval_ms else {
            return;
        };
        if !self.warned_interval && self.poll.as_secs_f64() * 1000.0 > window_ms * 1.05 {
            self.warned_interval = true;
            tracing::warn!(gateway = %self.slot.target.spec.name, gateway_window_ms = window_ms, poll_ms = self.poll.as_millis() as u64, "/readyz is polled less often than the gateway's event-loop window: short stalls can be missed; lower --probe.readiness-interval");
        }
    }
}

/// A working gateway answers 200 when ready and 503 when not, both with a
/// JSON body; anything else is a failed probe.
pub fn interpret(answer: &Answer) -> Result<(u16, Readyz), Failure> {
    let status = answer.status;
    if status != 200 && status != 503 {
        return Err(Failure::new(Reason::HttpStatus, Some(status)));
    }
    parse(&answer.body)
        .map(|r| (status, r))
        .ok_or(Failure::new(Reason::BadBody, Some(status)))
}

impl AsyncSampler for ReadinessSampler {
    fn name(&self) -> &'static str {
        "readiness"
    }

    /// A failed probe is a successful sample: the failure is the measurement.
    fn sample(&mut self) -> BoxFuture<'_, Result<(), SampleError>> {
        Box::pin(self.probe())
    }
}

/// What one scrape shows of one gateway, read under its lock once.
struct View<'a> {
    gateway: &'a str,
    ready: Option<f64>,
    /// (check label, value).
    failing: Vec<(String, f64)>,
    uptime_seconds: Option<f64>,
    last: Option<EventLoop>,
    peak: EventLoop,
    floor_seconds: f64,
    field_errors: [u64; Field::ALL.len()],
    stall_seconds: Option<f64>,
}

impl ReadinessSlot {
    fn view(&self, now: Instant) -> View<'_> {
        self.with(|st| View {
            gateway: self.target.spec.name.as_str(),
            ready: st
                .probed
                .then(|| flag(st.last.as_ref().is_some_and(|r| r.ready))),
            failing: match st.last {
                Some(_) => st
                    .checks
                    .names()
                    .map(|c| (c.to_string(), flag(st.failing.contains(c))))
                    .collect(),
                None => Vec::new(),
            },
            uptime_seconds: st
                .last
                .as_ref()
                .and_then(|r| r.uptime_ms)
                .map(|ms| ms / 1000.0),
            last: st.last.as_ref().map(|r| r.event_loop),
            peak: st.window.peak(now),
            floor_seconds: self.floor.as_secs_f64(),
            field_errors: st.field_errors,
            stall_seconds: st.probed.then(|| st.stalls.seconds()),
        })
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Exposes the readiness slots of every gateway.
#[derive(Debug)]
pub struct ReadinessMetrics(pub Vec<Arc<ReadinessSlot>>);

const EVERY: &str = "Polled every --probe.readiness-interval (default 1s) from GET /readyz";
const STAT: &str = "stat=\"last\" is the latest answer, stat=\"peak\" the highest value of any answer within the last --collect.event-loop.interval (sliding window), so a stall between two scrapes stays visible for a whole window";

fn rows<'a>(
    views: &'a [View<'a>],
    f: impl Fn(&View) -> Option<f64> + 'a,
) -> impl Iterator<Item = (metrics::Labels<'a, 1>, f64)> + 'a {
    views
        .iter()
        .filter_map(move |v| Some(([("gateway", v.gateway)], f(v)?)))
}

/// Last and peak rows of one event-loop figure.
fn stat_rows<'a>(
    views: &'a [View<'a>],
    f: impl Fn(&EventLoop) -> Option<f64> + Copy + 'a,
) -> impl Iterator<Item = (metrics::Labels<'a, 2>, f64)> + 'a {
    views.iter().flat_map(move |v| {
        [("last", v.last.as_ref().and_then(f)), ("peak", f(&v.peak))]
            .into_iter()
            .filter_map(move |(stat, x)| Some(([("gateway", v.gateway), ("stat", stat)], x?)))
    })
}

impl Collector for ReadinessMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let views: Vec<View> = self.0.iter().map(|slot| slot.view(now)).collect();
        let views = views.as_slice();
        metrics::gauge(
            &mut enc,
            &names::READY,
            &format!("Whether the gateway's last /readyz answer said ready (1) or not (0); 0 too when the probe failed. {EVERY}."),
            rows(views, |v| v.ready),
        )?;
        let failing = views.iter().flat_map(|v| {
            v.failing
                .iter()
                .map(|(check, x)| ([("gateway", v.gateway), ("check", check.as_str())], *x))
        });
        metrics::gauge(
            &mut enc,
            &names::READINESS_FAILING,
            &format!("1 for each check the last /readyz answer lists in failing[], 0 for checks listed before that pass now; names sanitized, at most {MAX_CHECKS} per gateway, then check=\"{OTHER_CHECK}\". Absent while the probe fails. {EVERY}."),
            failing,
        )?;
        metrics::gauge(
            &mut enc,
            &names::UPTIME_SECONDS,
            &format!("Uptime the gateway reports (uptimeMs). {EVERY}."),
            rows(views, |v| v.uptime_seconds),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EVENTLOOP_DELAY_P99_SECONDS,
            &format!("99th percentile of the event-loop delay over the gateway's ~1 s monitor window (eventLoop.delayP99Ms), as reported: it includes the monitor's sampling period, so an idle gateway shows about openclaw_gateway_eventloop_delay_floor_seconds. {STAT}. {EVERY}."),
            stat_rows(views, |el| el.delay_p99_ms.map(|ms| ms / 1000.0)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EVENTLOOP_DELAY_MAX_SECONDS,
            &format!("Longest event-loop delay in the gateway's ~1 s monitor window (eventLoop.delayMaxMs), as reported, sampling floor included. {STAT}. {EVERY}."),
            stat_rows(views, |el| el.delay_max_ms.map(|ms| ms / 1000.0)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EVENTLOOP_UTILIZATION_RATIO,
            &format!("Share of the gateway's ~1 s monitor window its event loop was busy (eventLoop.utilization). {STAT}. {EVERY}."),
            stat_rows(views, |el| el.utilization),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EVENTLOOP_DEGRADED,
            &format!("Whether the gateway calls its event loop degraded (eventLoop.degraded); peak is 1 if any answer in the window said so. {STAT}. {EVERY}."),
            stat_rows(views, |el| el.degraded.map(flag)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::CPU_CORE_RATIO,
            &format!("CPU time of the gateway process over its ~1 s monitor window, in cores (eventLoop.cpuCoreRatio). {STAT}. {EVERY}."),
            stat_rows(views, |el| el.cpu_core_ratio),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EVENTLOOP_DELAY_FLOOR_SECONDS,
            "The event-loop delay an idle gateway reports because its monitor samples every 20 ms (--probe.event-loop-floor). Subtract it from openclaw_gateway_eventloop_delay_*_seconds to get the delay the field report's thresholds (20 ms normal, 50 ms danger) mean. Constant.",
            rows(views, |v| Some(v.floor_seconds)),
        )?;
        metrics::counter(
            &mut enc,
            &names::EVENTLOOP_STALL_SECONDS_TOTAL,
            &format!("Seconds the gateway's event loop was stalled in stalls longer than 50 ms (the delay's danger line): from each answer's eventLoop.delayMaxMs less the sampling floor, and, while /readyz probes time out (the loop blocked or the process stopped), from the start of the first timed-out probe to the next answer; each stalled second counted once. Added when the gateway answers again, so it survives any scrape interval: use increase(). {EVERY}."),
            rows(views, |v| v.stall_seconds),
        )?;
        let errors = views.iter().flat_map(|v| {
            Field::ALL.into_iter().map(move |f| {
                (
                    [("gateway", v.gateway), ("field", f.as_str())],
                    v.field_errors[f.index()] as f64,
                )
            })
        });
        metrics::counter(
            &mut enc,
            &names::READINESS_PARSE_ERRORS_TOTAL,
            &format!("/readyz answers in which the field was missing, of the wrong type, not finite or out of range; its series are left out. A gateway sends only {{ready}} to a caller it does not trust (remote, no token), so failing, uptimeMs and eventLoop count up then; a full answer without eventLoop (before the gateway's event-loop monitor's first window) is not counted. {EVERY}."),
            errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"ready":true,"failing":[],"uptimeMs":14177,"eventLoop":{"degraded":false,"degradedSinceMs":null,"reasons":[],"intervalMs":1009.63,"delayP99Ms":21.7,"delayMaxMs":21.7,"utilization":0.01,"cpuCoreRatio":0.015,"cpuBreakdown":{"user":1}}}"#;

    fn p(body: &str) -> Option<Readyz> {
        parse(body.as_bytes())
    }

    #[test]
    fn parses_the_real_gateway_answer() {
        let r = p(REAL).unwrap();
        assert_eq!(
            r,
            Readyz {
                ready: true,
                failing: vec![],
                uptime_ms: Some(14177.0),
                event_loop: EventLoop {
                    degraded: Some(false),
                    delay_p99_ms: Some(21.7),
                    delay_max_ms: Some(21.7),
                    utilization: Some(0.01),
                    cpu_core_ratio: Some(0.015),
                    interval_ms: Some(1009.63),
                },
                errors: vec![],
            }
        );
        let starting = p(r#"{"ready":false,"failing":["startup-sidecars"],"uptimeMs":3,"eventLoop":{"degraded":false,"intervalMs":1000,"delayP99Ms":20.2,"delayMaxMs":20.4,"utilization":0.5,"cpuCoreRatio":1.2}}"#).unwrap();
        assert!(!starting.ready);
        assert_eq!(starting.failing, vec!["startup-sidecars".to_string()]);
        assert_eq!(
            starting.event_loop.cpu_core_ratio,
            Some(1.2),
            "more than one core is fine"
        );
    }

    #[test]
    fn rejects_bodies_without_a_boolean_ready() {
        for bad in [
            "",
            "not json{",
            "[]",
            "null",
            r#"{"ok":"yes","status":5}"#,
            r#"{"ok":NaN}"#,
            r#"{"ready":NaN}"#,
            r#"{"ready":"true"}"#,
            r#"{"ready":1}"#,
            r#"{"ready":null}"#,
            r#"{"ready":true,"uptimeMs":1e400}"#,
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn missing_fields_are_absent_and_listed() {
        let r = p(r#"{"ready":true}"#).unwrap();
        assert!(r.ready);
        assert_eq!(r.uptime_ms, None);
        assert_eq!(r.event_loop, EventLoop::default());
        assert_eq!(
            r.errors,
            vec![Field::Failing, Field::UptimeMs, Field::EventLoop]
        );
        let r = p(r#"{"ready":true,"failing":[],"uptimeMs":5,"eventLoop":{}}"#).unwrap();
        assert_eq!(
            r.errors,
            vec![
                Field::Degraded,
                Field::DelayP99Ms,
                Field::DelayMaxMs,
                Field::Utilization,
                Field::CpuCoreRatio,
                Field::IntervalMs
            ]
        );
    }

    #[test]
    fn wrong_types_and_bad_numbers_are_absent_and_listed() {
        let r = p(r#"{"ready":false,"failing":["a",7,null,"b"],"uptimeMs":"14177","eventLoop":{"degraded":"no","intervalMs":-1,"delayP99Ms":1e308,"delayMaxMs":null,"utilization":1.5,"cpuCoreRatio":[0.1]}}"#).unwrap();
        assert!(!r.ready);
        assert_eq!(r.failing, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r.uptime_ms, None);
        assert_eq!(
            r.event_loop,
            EventLoop {
                delay_p99_ms: Some(1e308),
                ..EventLoop::default()
            },
            "a huge but finite delay is still a number"
        );
        assert_eq!(
            r.errors,
            vec![
                Field::Failing,
                Field::UptimeMs,
                Field::Degraded,
                Field::DelayMaxMs,
                Field::Utilization,
                Field::CpuCoreRatio,
                Field::IntervalMs
            ]
        );
        let r = p(r#"{"ready":true,"failing":"startup","eventLoop":[1]}"#).unwrap();
        assert_eq!(r.failing, Vec::<String>::new());
        assert_eq!(
            r.errors,
            vec![Field::Failing, Field::UptimeMs, Field::EventLoop]
        );
        // The real gateway's answer before its event-loop monitor's first
        // window: complete, without eventLoop.
        let r = p(r#"{"ready":false,"failing":["startup-sidecars"],"uptimeMs":412}"#).unwrap();
        assert_eq!(r.event_loop, EventLoop::default());
        assert_eq!(r.errors, vec![]);
        let r = p(r#"{"ready":true,"failing":[],"uptimeMs":"412"}"#).unwrap();
        assert_eq!(r.errors, vec![Field::UptimeMs]);
        // Integers beyond u64 still parse as numbers.
        let r = p(r#"{"ready":true,"uptimeMs":184467440737095516160000}"#).unwrap();
        assert_eq!(r.uptime_ms, Some(184_467_440_737_095_516_160_000.0));
    }

    #[test]
    fn interprets_status() {
        let a = |status, body: &str| Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        assert!(interpret(&a(200, REAL)).is_ok());
        let (status, r) = interpret(&a(503, r#"{"ready":false,"failing":["x"]}"#)).unwrap();
        assert_eq!((status, r.ready), (503, false));
        assert_eq!(
            interpret(&a(500, REAL)).unwrap_err(),
            Failure::new(Reason::HttpStatus, Some(500))
        );
        assert_eq!(
            interpret(&a(503, "<html>busy</html>")).unwrap_err(),
            Failure::new(Reason::BadBody, Some(503))
        );
    }

    #[test]
    fn check_names_are_bounded_and_sanitized() {
        assert_eq!(
            sanitize_check("startup-sidecars").as_deref(),
            Some("startup-sidecars")
        );
        assert_eq!(sanitize_check("a b\"c\n").as_deref(), Some("a_b_c"));
        assert_eq!(sanitize_check("  "), None);
        assert_eq!(
            sanitize_check(&"x".repeat(1000)).unwrap().len(),
            MAX_CHECK_LEN
        );
        assert_eq!(sanitize_check("é").as_deref(), Some("_"));

        let mut checks = Checks::default();
        let names: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        let now = checks.failing_now(&names);
        assert_eq!(checks.names().count(), MAX_CHECKS + 1);
        assert!(now.contains("c0") && now.contains(OTHER_CHECK) && !now.contains("c39"));
        let now = checks.failing_now(&["c3".to_string()]);
        assert_eq!(now.len(), 1);
        assert_eq!(
            checks.names().count(),
            MAX_CHECKS + 1,
            "known names keep their series"
        );
    }

    #[test]
    fn peak_window_keeps_a_stall_for_one_window() {
        let t0 = Instant::now();
        let s = |ms| Duration::from_millis(ms);
        let el = |p99: f64, max: f64, degraded: bool| EventLoop {
            degraded: Some(degraded),
            delay_p99_ms: Some(p99),
            delay_max_ms: Some(max),
            utilization: Some(0.01),
            cpu_core_ratio: None,
            interval_ms: Some(1000.0),
        };
        let mut w = PeakWindow::new(s(5000));
        assert_eq!(w.peak(t0), EventLoop::default());
        w.push(t0, el(20.2, 20.5, false));
        w.push(t0 + s(1000), el(1500.0, 1507.9, true));
        for i in 2..5 {
            w.push(t0 + s(1000 * i), el(20.3, 21.0, false));
        }
        let peak = w.peak(t0 + s(4000));
        assert_eq!(peak.delay_max_ms, Some(1507.9));
        assert_eq!(peak.delay_p99_ms, Some(1500.0));
        assert_eq!(peak.degraded, Some(true));
        assert_eq!(peak.cpu_core_ratio, None);
        // Just under a window after the stall it is still the peak; then gone.
        assert_eq!(w.peak(t0 + s(5999)).delay_max_ms, Some(1507.9));
        assert_eq!(w.peak(t0 + s(6000)).delay_max_ms, Some(21.0));
        assert_eq!(w.peak(t0 + s(6000)).degraded, Some(false));
        assert_eq!(w.peak(t0 + s(60_000)), EventLoop::default());
    }

    #[test]
    fn slot_keeps_peak_through_failed_probes() {
        let spec = crate::config::build(crate::config::Intervals::default(), vec![])
            .unwrap()
            .gateways
            .remove(0);
        let target = Arc::new(Target::new(spec));
        let stats = Arc::new(ProbeStats::new(
            "g",
            probe::Endpoint::Ready,
            Duration::from_secs(60),
        ));
        let slot = ReadinessSlot::new(
            target,
            stats,
            Duration::from_secs(5),
            Duration::from_millis(20),
        );
        let t0 = Instant::now();
        slot.record(
            t0,
            p(r#"{"ready":false,"failing":["db"],"eventLoop":{"delayMaxMs":1500}}"#),
        );
        slot.record(t0, None);
        slot.with(|st| {
            assert!(st.last.is_none() && st.failing.is_empty());
            assert_eq!(st.window.peak(t0).delay_max_ms, Some(1500.0));
            assert_eq!(st.field_errors[Field::UptimeMs.index()], 1);
            assert_eq!(st.field_errors[Field::Degraded.index()], 1);
            assert_eq!(st.checks.names().collect::<Vec<_>>(), vec!["db"]);
        });
    }
}
