//! Watchdog mode: restart a gateway that has been hung for a confirm period
//! (or, optionally, down for a grace period), within a budget.
//!
//! [`decide`] is the whole policy, a pure function of what the exporter
//! sees now, the gateway's [`Tracker`] (what it saw before) and the times of
//! its past restarts; [`super::runner`] feeds it once a second and carries
//! out what it decides.

use std::time::Duration;

use super::budget::{Budget, Time};

/// The policy of one gateway, from its `remediation:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Hung for this long before acting.
    pub confirm: Duration,
    /// Down (no process) for this long before acting; `None`: never act on
    /// a gateway that is down (its supervisor restarts it).
    pub down_grace: Option<Duration>,
    pub budget: Budget,
    /// Log and count what would be done; do nothing.
    pub dry_run: bool,
}

/// What the exporter sees of one gateway at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// The liveness verdict (`openclaw_gateway_hung`): its process is alive
    /// and its port listens, yet the last liveness probes went unanswered.
    /// A gateway that answers, however slowly, is not hung.
    pub hung: bool,
    /// When that verdict was reached (the liveness probe's end).
    pub sampled_at: Time,
    /// Its process is identified: same host and a shared pid namespace.
    pub found: bool,
    /// The exporter runs inside the gateway's process tree (upstream
    /// #41198: restarting it from there kills the restarter).
    pub inside: bool,
    /// A remediation of this gateway is running.
    pub running: bool,
}

/// Why the problem is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Hung,
    Down,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Hung => "hung",
            Cause::Down => "down",
        }
    }
}

/// Why a confirmed problem is not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A remediation of this gateway is already running.
    Running,
    /// The exporter runs inside the gateway's process tree.
    Inside,
    /// The exporter does not see the gateway's process.
    NotSeen,
    /// Waiting out the backoff after the last restart.
    Backoff { until: Time },
    /// The budget is spent. `count`: the first tick of this problem to meet
    /// a spent budget (counted as `skipped_budget` once per problem); `log`:
    /// the first of this budget window (logged as an error once per window).
    Budget { count: bool, log: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: the gateway is fine, or not wrong for long enough.
    Wait,
    /// Restart it now. `since`: when the problem was first seen, for the
    /// recovery duration. With `dry_run` only log and count it.
    Restart {
        cause: Cause,
        since: Time,
        dry_run: bool,
    },
    Hold(Hold),
}

/// What the watchdog remembers of one gateway between ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracker {
    /// First tick that saw it hung, in the current problem.
    hung_since: Option<Time>,
    /// First tick that saw its process gone, after having seen it.
    down_since: Option<Time>,
    /// Its process has been seen: a gateway never seen is another host's,
    /// or in a pid namespace the exporter does not share.
    seen: bool,
    /// The current problem was already counted (dry run, or spent budget).
    counted: bool,
    /// The window whose spent budget was logged: until it refills.
    logged_until: Option<Time>,
    /// Verdicts reached before this time predate the last restart.
    quiet_until: Time,
}

impl Tracker {
    /// A restart of this gateway ended at `now`: verdicts from before it
    /// describe the old process, and a new problem starts afresh.
    pub fn restarted(&mut self, now: Time) {
        self.hung_since = None;
        self.down_since = None;
        self.counted = false;
        self.quiet_until = now;
    }
}

/// The policy's answer for one tick. `attempts`: the times of the
/// gateway's past restarts (the budget's record).
pub fn decide(
    policy: &Policy,
    t: &mut Tracker,
    obs: Observation,
    attempts: &[Time],
    now: Time,
) -> Decision {
    // A verdict from before the last restart says nothing of the new process.
    let hung = obs.hung && obs.sampled_at >= t.quiet_until;
    if obs.found {
        t.seen = true;
        t.down_since = None;
    } else if t.seen && policy.down_grace.is_some() && !obs.running {
        t.down_since.get_or_insert(now);
    }
    if hung {
        t.hung_since.get_or_insert(now);
    } else {
        t.hung_since = None;
    }
    if t.hung_since.is_none() && t.down_since.is_none() {
        // It answers again (or never stopped): the problem is over.
        t.counted = false;
        return Decision::Wait;
    }

    let confirmed = |since: Option<Time>, period: Option<Duration>| match (since, period) {
        (Some(s), Some(p)) if now >= s + p => Some(s),
        _ => None,
    };
    let (cause, since) = if let Some(s) = confirmed(t.hung_since, Some(policy.confirm)) {
        (Cause::Hung, s)
    } else if let Some(s) = confirmed(t.down_since, policy.down_grace) {
        (Cause::Down, s)
    } else {
        return Decision::Wait;
    };

    if obs.running {
        return Decision::Hold(Hold::Running);
    }
    if obs.inside {
        return Decision::Hold(Hold::Inside);
    }
    if cause == Cause::Hung && !obs.found {
        return Decision::Hold(Hold::NotSeen);
    }
    if policy.dry_run {
        // Nothing is done, so nothing is spent: one count per problem.
        return match std::mem::replace(&mut t.counted, true) {
            false => Decision::Restart {
                cause,
                since,
                dry_run: true,
            },
            true => Decision::Wait,
        };
    }
    let budget = &policy.budget;
    if budget.remaining(attempts, now) == 0 {
        let count = !std::mem::replace(&mut t.counted, true);
        let log = t.logged_until.is_none_or(|until| now >= until);
        if log {
            t.logged_until = budget.refills_at(attempts, now);
        }
        return Decision::Hold(Hold::Budget { count, log });
    }
    if let Some(until) = budget.wait_until(attempts, now) {
        return Decision::Hold(Hold::Backoff { until });
    }
    Decision::Restart {
        cause,
        since,
        dry_run: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn at(n: u64) -> Time {
        Duration::from_secs(1_700_000_000 + n)
    }

    fn policy() -> Policy {
        Policy {
            confirm: 60 * S,
            down_grace: None,
            budget: Budget {
                max: 3,
                window: 3600 * S,
                backoff: 30 * S,
            },
            dry_run: false,
        }
    }

    fn hung(n: u64) -> Observation {
        Observation {
            hung: true,
            sampled_at: at(n),
            found: true,
            ..Default::default()
        }
    }

    fn fine(n: u64) -> Observation {
        Observation {
            sampled_at: at(n),
            found: true,
            ..Default::default()
        }
    }

    /// Runs one tick a second from `from` to `to` inclusive, with `obs(n)`,
    /// and returns the decisions that were not `Wait`, by second.
    fn run(
        p: &Policy,
        t: &mut Tracker,
        attempts: &[Time],
        from: u64,
        to: u64,
        obs: impl Fn(u64) -> Observation,
    ) -> Vec<(u64, Decision)> {
        (from..=to)
            .map(|n| (n, decide(p, t, obs(n), attempts, at(n))))
            .filter(|(_, d)| *d != Decision::Wait)
            .collect()
    }

    fn restart(since: u64) -> Decision {
        Decision::Restart {
            cause: Cause::Hung,
            since: at(since),
            dry_run: false,
        }
    }

    #[test]
    fn acts_once_hung_for_the_confirm_period() {
        let p = policy();
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[], 0, 70, |n| match n < 10 {
            true => fine(n),
            false => hung(n),
        });
        // Hung from second 10: confirmed at 70, not a second earlier.
        assert_eq!(got, vec![(70, restart(10))]);
    }

    #[test]
    fn a_gateway_that_answers_is_never_acted_on() {
        // Slow answers are answers: the verdict stays 0, whatever the latency.
        let p = policy();
        let mut t = Tracker::default();
        assert!(run(&p, &mut t, &[], 0, 7200, fine).is_empty());
    }

    #[test]
    fn recovering_inside_the_confirm_period_resets_it() {
        let p = policy();
        let mut t = Tracker::default();
        // Hung 0-59, answers at 60, hung again from 61: the new problem
        // starts at 61 and is confirmed at 121.
        let got = run(&p, &mut t, &[], 0, 121, |n| match n == 60 {
            true => fine(n),
            false => hung(n),
        });
        assert_eq!(got, vec![(121, restart(61))]);
        // Hangs of 59 s, again and again: never.
        let mut t = Tracker::default();
        assert!(run(&p, &mut t, &[], 0, 1000, |n| match n % 60 == 59 {
            true => fine(n),
            false => hung(n),
        })
        .is_empty());
    }

    #[test]
    fn never_when_the_process_is_not_seen_or_contains_the_exporter() {
        let p = policy();
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[], 0, 60, |n| Observation {
            inside: true,
            ..hung(n)
        });
        assert_eq!(got, vec![(60, Decision::Hold(Hold::Inside))]);
        // A verdict without the process (the process vanished between the
        // probe and the tick): no restart of what cannot be seen.
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[], 0, 60, |n| Observation {
            found: false,
            ..hung(n)
        });
        assert_eq!(got, vec![(60, Decision::Hold(Hold::NotSeen))]);
        // Down, never seen (another host, another pid namespace), with a
        // down grace: never.
        let p = Policy {
            down_grace: Some(10 * S),
            ..policy()
        };
        let mut t = Tracker::default();
        assert!(run(&p, &mut t, &[], 0, 600, |n| Observation {
            found: false,
            ..fine(n)
        })
        .is_empty());
    }

    #[test]
    fn never_while_a_remediation_runs() {
        let p = policy();
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[], 0, 61, |n| Observation {
            running: n >= 60,
            ..hung(n)
        });
        assert_eq!(
            got,
            vec![
                (60, Decision::Hold(Hold::Running)),
                (61, Decision::Hold(Hold::Running))
            ]
        );
    }

    #[test]
    fn down_only_with_a_grace_and_after_it() {
        let gone = |n: u64| match n < 5 {
            true => fine(n),
            false => Observation {
                found: false,
                ..fine(n)
            },
        };
        let mut t = Tracker::default();
        assert!(run(&policy(), &mut t, &[], 0, 600, gone).is_empty());
        let p = Policy {
            down_grace: Some(30 * S),
            ..policy()
        };
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[], 0, 35, gone);
        assert_eq!(
            got,
            vec![(
                35,
                Decision::Restart {
                    cause: Cause::Down,
                    since: at(5),
                    dry_run: false
                }
            )]
        );
        // Back before the grace ends: nothing.
        let mut t = Tracker::default();
        assert!(run(&p, &mut t, &[], 0, 100, |n| match n % 30 == 0 {
            true => fine(n),
            false => gone(n),
        })
        .is_empty());
    }

    #[test]
    fn a_restart_resets_the_problem_and_stale_verdicts_are_ignored() {
        let p = policy();
        let mut t = Tracker::default();
        assert_eq!(run(&p, &mut t, &[], 0, 60, hung), vec![(60, restart(0))]);
        t.restarted(at(80));
        // The verdict sampled before the restart ended (at 79) still says
        // hung: it describes the old process.
        let stale = |n: u64| Observation {
            sampled_at: at(79),
            ..hung(n)
        };
        assert!(run(&p, &mut t, &[at(60)], 81, 300, stale).is_empty());
        // The new process hangs too: a new confirm period, then backoff is
        // long over (30 s), so it acts.
        let got = run(&p, &mut t, &[at(60)], 301, 361, hung);
        assert_eq!(got, vec![(361, restart(301))]);
    }

    #[test]
    fn backoff_between_restarts() {
        let p = Policy {
            confirm: 5 * S,
            ..policy()
        };
        let mut t = Tracker::default();
        // The last restart was at 0; the first's backoff is 30 s.
        let got = run(&p, &mut t, &[at(0)], 10, 30, hung);
        let holds = got
            .iter()
            .filter(|(_, d)| *d == Decision::Hold(Hold::Backoff { until: at(30) }))
            .count();
        assert_eq!(holds, 15, "{got:?}");
        assert_eq!(got.last(), Some(&(30, restart(10))));
        // After two restarts it doubles.
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[at(0), at(40)], 41, 100, hung);
        assert_eq!(got.last(), Some(&(100, restart(41))));
        assert_eq!(got[0].1, Decision::Hold(Hold::Backoff { until: at(100) }));
    }

    #[test]
    fn a_spent_budget_stops_acting_and_says_so_once_per_window() {
        let p = policy();
        let spent = [at(0), at(100), at(200)];
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &spent, 300, 3599, hung);
        // Confirmed at 360: counted and logged once, then held quietly.
        assert_eq!(
            got[0],
            (
                360,
                Decision::Hold(Hold::Budget {
                    count: true,
                    log: true
                })
            )
        );
        assert!(got[1..].iter().all(|(_, d)| *d
            == Decision::Hold(Hold::Budget {
                count: false,
                log: false
            })));
        // A new problem in the same window: counted, not logged again.
        assert_eq!(
            decide(&p, &mut t, fine(3000), &spent, at(3000)),
            Decision::Wait
        );
        let got = run(&p, &mut t, &spent, 3001, 3061, hung);
        assert_eq!(
            got,
            vec![(
                3061,
                Decision::Hold(Hold::Budget {
                    count: true,
                    log: false
                })
            )]
        );
        // The first attempt leaves the window at 3600: it acts again.
        let got = run(&p, &mut t, &spent, 3062, 3600, hung);
        assert_eq!(got.last(), Some(&(3600, restart(3001))));
    }

    #[test]
    fn dry_run_counts_once_per_problem_and_spends_nothing() {
        let p = Policy {
            dry_run: true,
            ..policy()
        };
        let mut t = Tracker::default();
        let got = run(&p, &mut t, &[], 0, 7200, hung);
        assert_eq!(
            got,
            vec![(
                60,
                Decision::Restart {
                    cause: Cause::Hung,
                    since: at(0),
                    dry_run: true
                }
            )]
        );
        // Even with the budget spent, a dry run says what it would do.
        let mut t = Tracker::default();
        let spent = [at(0), at(1), at(2)];
        let got = run(&p, &mut t, &spent, 10, 70, hung);
        assert!(matches!(
            got[..],
            [(70, Decision::Restart { dry_run: true, .. })]
        ));
    }

    /// Every sequence of short observations (hung, fine, gone, inside,
    /// running) over a tiny policy: it never restarts unless hung (or gone,
    /// with a grace) for the whole confirm period just before, by an
    /// exporter outside the tree with no remediation running, within the
    /// budget and backoff.
    #[test]
    fn exhaustive_over_short_histories() {
        let p = Policy {
            confirm: 2 * S,
            down_grace: Some(3 * S),
            budget: Budget {
                max: 2,
                window: 100 * S,
                backoff: S,
            },
            dry_run: false,
        };
        let kinds = 5u32;
        let len = 7u32;
        for code in 0..kinds.pow(len) {
            let seq: Vec<u32> = (0..len).map(|i| code / kinds.pow(i) % kinds).collect();
            let obs = |i: usize| {
                let n = i as u64;
                match seq[i] {
                    0 => fine(n),
                    1 => hung(n),
                    2 => Observation {
                        found: false,
                        ..fine(n)
                    },
                    3 => Observation {
                        inside: true,
                        ..hung(n)
                    },
                    _ => Observation {
                        running: true,
                        ..hung(n)
                    },
                }
            };
            let mut t = Tracker::default();
            let mut attempts = Vec::new();
            for i in 0..seq.len() {
                let now = at(i as u64);
                if let Decision::Restart { cause, since, .. } =
                    decide(&p, &mut t, obs(i), &attempts, now)
                {
                    let o = obs(i);
                    assert!(!o.inside && !o.running, "{seq:?} at {i}");
                    let first = (since - at(0)).as_secs() as usize;
                    let wrong = |k: usize| match cause {
                        Cause::Hung => matches!(seq[k], 1 | 3 | 4),
                        Cause::Down => seq[k] == 2,
                    };
                    assert!((first..=i).all(wrong), "{seq:?} at {i}: {cause:?}");
                    let period = match cause {
                        Cause::Hung => p.confirm,
                        Cause::Down => p.down_grace.unwrap(),
                    };
                    assert!(now >= since + period, "{seq:?} at {i}");
                    if cause == Cause::Down {
                        assert!(seq[..first].iter().any(|&k| k != 2), "{seq:?}: never seen");
                    }
                    assert!(p.budget.remaining(&attempts, now) > 0, "{seq:?}");
                    assert_eq!(p.budget.wait_until(&attempts, now), None, "{seq:?}");
                    attempts.push(now);
                    t.restarted(now);
                }
            }
            assert!(attempts.len() <= 2);
        }
    }
}
