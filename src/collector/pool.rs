//! The blocking samplers of every gateway, on a few threads whatever the
//! number of gateways.
//!
//! [`WORKERS`] threads share one schedule. A worker sleeps until the earliest
//! job is due, runs every job that is due, and sleeps again: the collectors of
//! all gateways tick on the same grid, so a round of N gateways costs a
//! wake-up per worker, not one per collector, and N gateways cost no more
//! threads than one.
//!
//! One gateway's jobs never run at the same time: they share its discovery,
//! and a gateway whose process blocks a read (a process in D state, a hung
//! mount under its fds) holds at most one worker. A job still running after
//! [`STUCK_AFTER`] is stuck: its run counts as failed and is logged once, the
//! gateway's other jobs count a failure on each of their ticks instead of
//! running, and the watchdog starts another worker (up to [`MAX_WORKERS`]) so
//! that the other gateways go on. When the read returns, the gateway's jobs
//! run again and the extra worker ends.
//!
//! A sampler that watches a process for its exit ([`Sampler::exit_signal`],
//! the identity watch on Linux) is run when that process exits, and
//! otherwise at the longer interval it asks for: the watchdog sleeps in one
//! `poll` over every such process instead of a plain sleep, so an exit is
//! seen at once and a quiet gateway costs no wake-up a second.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{run_once, unix_now, Health, Run, Sampler};
use crate::platform::{wait_exits, ExitSignal};

/// Threads that run samples.
pub const WORKERS: usize = 2;
/// Threads that run samples while some are stuck.
pub const MAX_WORKERS: usize = 4;
/// A sample still running after this long is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(2);
/// How often the watchdog looks for stuck samples.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A blocking sampler, its run records and its interval.
pub type Task = (Box<dyn Sampler>, Arc<Health>, Duration);

struct Job {
    /// `None` while it runs, and for good after it panicked.
    sampler: Option<Box<dyn Sampler>>,
    health: Arc<Health>,
    interval: Duration,
    due: Instant,
    /// Index of its gateway in `State::gateways`.
    gateway: usize,
    /// When its current run started.
    running: Option<Instant>,
    /// The exit its sampler waits for ([`Sampler::exit_signal`]); taken
    /// when it fires.
    exit: Option<Arc<ExitSignal>>,
    stuck: bool,
    /// Whether its being stuck was logged (once).
    logged: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gateway {
    Free,
    Busy,
    /// One of its jobs is stuck.
    Stuck,
}

struct State {
    jobs: Vec<Job>,
    gateways: Vec<Gateway>,
    /// The gateway of each entry of `gateways`.
    names: Vec<String>,
    workers: usize,
    stuck: usize,
    /// Workers waiting on `Pool::wake`: a peer is woken only when one is.
    sleeping: usize,
}

struct Pool {
    state: Mutex<State>,
    wake: Condvar,
}

/// The one pool of the process, made by the first [`start`].
static POOL: std::sync::OnceLock<Arc<Pool>> = std::sync::OnceLock::new();

/// Run `tasks` in the background on the pool's [`WORKERS`] threads and
/// watchdog, until their health is retired (a discovered gateway that went
/// away). Tasks started later (discovered gateways) join the same pool.
pub fn start(tasks: Vec<Task>) {
    let pool = POOL.get_or_init(|| {
        let pool = Arc::new(Pool {
            state: Mutex::new(State {
                jobs: Vec::new(),
                gateways: Vec::new(),
                names: Vec::new(),
                workers: 0,
                stuck: 0,
                sleeping: 0,
            }),
            wake: Condvar::new(),
        });
        {
            let mut st = pool.lock();
            for _ in 0..WORKERS {
                pool.add_worker(&mut st);
            }
        }
        let watchdog = pool.clone();
        // A watchdog that cannot start leaves stuck samples undetected; every
        // other sample still runs.
        if let Err(e) = std::thread::Builder::new()
            .name("samplers-watch".into())
            .stack_size(64 * 1024)
            .spawn(move || watchdog.watch())
        {
            tracing::error!(error = %e, "cannot start the samplers' watchdog");
        }
        pool
    });
    pool.lock().add(tasks);
    pool.wake.notify_all();
}

/// The next tick on the grid; ticks missed by a slow sample are skipped, not
/// run back to back.
fn next_tick(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next <= now {
        now + interval
    } else {
        next
    }
}

fn failed(health: &Health, took: Duration) {
    health.last.set(Run {
        success: false,
        duration_seconds: took.as_secs_f64(),
        timestamp_seconds: unix_now(),
    });
}

/// What a worker does next.
enum Next {
    /// Run this job; `true` when another is due too (wake a peer).
    Run(usize, bool),
    /// Sleep until then (`None`: until woken).
    Wait(Option<Instant>),
}

impl State {
    /// Add `tasks`, due now, in the places of retired jobs first.
    fn add(&mut self, tasks: Vec<Task>) {
        let now = Instant::now();
        for (sampler, health, interval) in tasks {
            let gateway = match self.names.iter().position(|n| *n == health.gateway) {
                Some(i) => i,
                None => {
                    self.names.push(health.gateway.clone());
                    self.gateways.push(Gateway::Free);
                    self.names.len() - 1
                }
            };
            let job = Job {
                sampler: Some(sampler),
                health,
                interval,
                due: now,
                gateway,
                running: None,
                exit: None,
                stuck: false,
                logged: false,
            };
            let free = self
                .jobs
                .iter()
                .position(|j| j.health.is_retired() && j.running.is_none());
            match free {
                Some(i) => self.jobs[i] = job,
                None => self.jobs.push(job),
            }
        }
    }

    /// Mark the jobs that have run for [`STUCK_AFTER`] as stuck.
    fn mark_stuck(&mut self, now: Instant) {
        for job in &mut self.jobs {
            let Some(started) = job.running.filter(|_| !job.stuck) else {
                continue;
            };
            if now - started < STUCK_AFTER {
                continue;
            }
            job.stuck = true;
            self.stuck += 1;
            self.gateways[job.gateway] = Gateway::Stuck;
            failed(&job.health, now - started);
            if !job.logged {
                job.logged = true;
                tracing::warn!(gateway = %job.health.gateway, collector = job.health.collector, "a sample has been running for {}s; this gateway's other samples are counted as failed until it returns, the other gateways go on", STUCK_AFTER.as_secs());
            }
        }
    }

    /// The job to run now: the one due first of a gateway none of whose jobs
    /// runs. Due jobs of a gateway with a stuck job count a failure and wait
    /// for their next tick.
    ///
    /// A job whose gateway is no longer watched (its health retired) is
    /// dropped, with the slot it feeds, when it comes up to run, and never
    /// runs again; its place is taken by the next added. Retirement is looked
    /// at only then: the scan over every job of every gateway, once per job
    /// run, reads the jobs alone, not each one's health elsewhere in memory.
    fn next(&mut self, now: Instant) -> Next {
        loop {
            match self.scan(now) {
                Next::Run(i, _) if self.jobs[i].health.is_retired() => {
                    self.jobs[i].sampler = None;
                    self.jobs[i].exit = None;
                }
                next => return next,
            }
        }
    }

    fn scan(&mut self, now: Instant) -> Next {
        let mut run: Option<(usize, (Instant, usize))> = None;
        let mut more = false;
        let mut wait: Option<Instant> = None;
        for (i, job) in self.jobs.iter_mut().enumerate() {
            if job.sampler.is_none() {
                continue;
            }
            match self.gateways[job.gateway] {
                // Woken when its gateway's running job ends.
                Gateway::Busy => continue,
                Gateway::Stuck if job.due <= now => {
                    if !job.health.is_retired() {
                        failed(&job.health, Duration::ZERO);
                    }
                    job.due = next_tick(job.due, job.interval, now);
                }
                Gateway::Free if job.due <= now => {
                    more |= run.is_some();
                    // Ties by gateway: the jobs of one gateway due together
                    // run one after the other, sharing its discovery.
                    let key = (job.due, job.gateway);
                    if run.is_none_or(|(_, first)| key < first) {
                        run = Some((i, key));
                    }
                    continue;
                }
                _ => {}
            }
            wait = Some(wait.map_or(job.due, |w| w.min(job.due)));
        }
        match run {
            Some((i, _)) => Next::Run(i, more),
            None => Next::Wait(wait),
        }
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_worker(self: &Arc<Self>, st: &mut State) {
        let pool = self.clone();
        // Threads are named `samplers-N` (`top -H` shows them). A worker that
        // cannot start leaves fewer to share the jobs.
        match std::thread::Builder::new()
            .name(format!("samplers-{}", st.workers))
            .stack_size(256 * 1024)
            .spawn(move || pool.work())
        {
            Ok(_) => st.workers += 1,
            Err(e) => tracing::error!(error = %e, "cannot start a samplers' thread"),
        }
    }

    /// Every [`WATCH_EVERY`], mark stuck jobs and keep [`WORKERS`] threads
    /// free of them. Sleeps on the exits the jobs wait for meanwhile, and
    /// makes a job due at once when its process exits.
    fn watch(self: Arc<Self>) {
        loop {
            let signals: Vec<(usize, Arc<ExitSignal>)> = {
                let st = self.lock();
                st.jobs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, j)| Some((i, j.exit.clone()?)))
                    .collect()
            };
            let waits: Vec<&ExitSignal> = signals.iter().map(|(_, s)| &**s).collect();
            let fired = wait_exits(&waits, WATCH_EVERY);
            let mut st = self.lock();
            let now = Instant::now();
            let mut woke = false;
            for (i, signal) in fired.into_iter().filter_map(|f| signals.get(f)) {
                let job = &mut st.jobs[*i];
                // Still the signal it waits for (not a retired job's place,
                // nor a process it watched before).
                if job.exit.as_ref().is_some_and(|e| Arc::ptr_eq(e, signal)) {
                    job.exit = None;
                    job.due = now;
                    woke = true;
                }
            }
            if woke {
                self.wake.notify_all();
            }
            st.mark_stuck(now);
            while st.workers - st.stuck < WORKERS && st.workers < MAX_WORKERS {
                let before = st.workers;
                self.add_worker(&mut st);
                if st.workers == before {
                    break;
                }
            }
        }
    }

    fn work(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let i = match st.next(now) {
                Next::Run(i, more) => {
                    if more && st.sleeping > 0 {
                        // A peer asleep while jobs are due takes one.
                        self.wake.notify_one();
                    }
                    i
                }
                Next::Wait(until) => {
                    st.sleeping += 1;
                    st = match until {
                        None => self.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
                        Some(until) => {
                            self.wake
                                .wait_timeout(st, until.saturating_duration_since(now))
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                    };
                    st.sleeping -= 1;
                    continue;
                }
            };
            let job = &mut st.jobs[i];
            let (Some(mut sampler), health, gateway) =
                (job.sampler.take(), job.health.clone(), job.gateway)
            else {
                continue;
            };
            job.running = Some(now);
            st.gateways[gateway] = Gateway::Busy;
            drop(st);

            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_once(sampler.as_mut(), &health);
                sampler.exit_signal()
            }));

            st = self.lock();
            let done = Instant::now();
            let job = &mut st.jobs[i];
            job.running = None;
            let was_stuck = std::mem::take(&mut job.stuck);
            let mut interval = job.interval;
            job.exit = None;
            match ran {
                Ok(exit) => {
                    job.sampler = Some(sampler);
                    if let Some((signal, quiet)) = exit {
                        job.exit = Some(Arc::new(signal));
                        interval = quiet;
                    }
                }
                Err(_) => {
                    // The sampler panicked: record it and stop this one
                    // collector; every other collector keeps running.
                    tracing::error!(gateway = %health.gateway, collector = health.collector, "collector crashed");
                    failed(&health, Duration::ZERO);
                }
            }
            job.due = next_tick(job.due, interval, done);
            // The gateway's other jobs waited for this one: this worker
            // takes them next, and wakes a peer if more are due.
            st.gateways[gateway] = Gateway::Free;
            if was_stuck {
                st.stuck -= 1;
                tracing::info!(gateway = %health.gateway, collector = health.collector, "the stuck sample returned");
                if st.workers > WORKERS && st.workers - st.stuck > WORKERS {
                    st.workers -= 1;
                    return;
                }
            }
        }
    }
}

/// Reads the test's threads from `/proc`.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::collector::{SampleError, Skipped};
    use crate::metrics::Latest;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        runs: Arc<AtomicU32>,
        /// Block this long on the first run.
        hang: Duration,
    }

    impl Sampler for Counting {
        fn name(&self) -> &'static str {
            "test"
        }
        fn sample(&mut self) -> Result<(), SampleError> {
            if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(self.hang);
            }
            Ok(())
        }
    }

    /// Runs, and while the process it watches lives, hands the pool its
    /// exit to sleep on.
    struct Watching {
        runs: Arc<AtomicU32>,
        watch: Box<dyn crate::platform::ExitWatch>,
    }

    impl Sampler for Watching {
        fn name(&self) -> &'static str {
            "test"
        }
        fn sample(&mut self) -> Result<(), SampleError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn exit_signal(&mut self) -> Option<(ExitSignal, Duration)> {
            let signal = self.watch.alive().then(|| self.watch.signal())??;
            Some((signal, Duration::from_secs(600)))
        }
    }

    /// A job that sleeps on its process's exit is not run on its interval,
    /// and runs again at once when that process exits.
    #[test]
    fn an_exit_runs_its_job_at_once() {
        let p = crate::platform::select(crate::platform::Backend::default());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = p.identity(child.id() as i32).unwrap();
        let watch = p.watch(id).unwrap();
        if watch.signal().is_none() {
            // A kernel without pidfds: the job ticks on its interval.
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        let runs = Arc::new(AtomicU32::new(0));
        let job = Watching {
            runs: runs.clone(),
            watch,
        };
        let h = health("exits");
        start(vec![(Box::new(job), h.clone(), Duration::from_millis(100))]);
        // Its first run (the other test of this pool may hold its workers
        // for a few seconds), then no tick of its 100 ms interval while the
        // process lives (the watchdog takes its signal within a second).
        let started = Instant::now();
        while runs.load(Ordering::SeqCst) < 1 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(WATCH_EVERY * 2);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = Instant::now();
        while runs.load(Ordering::SeqCst) < 2 && killed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Within seconds (the other test of this pool may hold its workers
        // meanwhile), not the 600 s it may otherwise sleep.
        assert_eq!(runs.load(Ordering::SeqCst), 2, "run once on the exit");
        // Without a process to watch, it ticks on its interval again.
        while runs.load(Ordering::SeqCst) < 4 && killed.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(runs.load(Ordering::SeqCst) >= 4);
        h.retired.store(true, Ordering::Relaxed);
    }

    fn health(gateway: &str) -> Arc<Health> {
        Arc::new(Health {
            gateway: gateway.into(),
            collector: "test",
            last: Latest::new(),
            skipped: std::sync::Mutex::new(Skipped::default()),
            retired: Default::default(),
        })
    }

    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.flatten()
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.starts_with(prefix))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Two gateways whose first samples block for longer than
    /// [`STUCK_AFTER`] hold both workers: the watchdog starts more, the third
    /// gateway samples again within a few seconds, the stuck ones count
    /// failures (their other job too), and all come back when the reads
    /// return.
    #[test]
    fn stuck_gateways_do_not_stall_the_others() {
        let interval = Duration::from_millis(100);
        let hang = STUCK_AFTER * 3;
        let mut tasks: Vec<Task> = Vec::new();
        let mut runs = Vec::new();
        for (g, first) in [
            ("stuck-a", hang),
            ("stuck-b", hang),
            ("fine", Duration::ZERO),
        ] {
            for job in 0..2 {
                let n = Arc::new(AtomicU32::new(0));
                runs.push((g, n.clone()));
                let hang = if job == 0 { first } else { Duration::ZERO };
                tasks.push((Box::new(Counting { runs: n, hang }), health(g), interval));
            }
        }
        let healths: Vec<Arc<Health>> = tasks.iter().map(|t| t.1.clone()).collect();
        start(tasks);
        std::thread::sleep(STUCK_AFTER * 2 + WATCH_EVERY);
        let ran = |i: usize| runs[i].1.load(Ordering::SeqCst);
        // The blocked runs, and their gateways' other jobs never ran.
        assert_eq!([ran(0), ran(1), ran(2), ran(3)], [1, 0, 1, 0]);
        // Within STUCK_AFTER + WATCH_EVERY of the start, then every tick.
        let after = (STUCK_AFTER * 2 + WATCH_EVERY).as_millis() as u32;
        let expected = (after - (STUCK_AFTER + WATCH_EVERY * 2).as_millis() as u32) / 100;
        assert!(
            ran(4) >= expected && ran(5) >= expected,
            "fine: {} {}",
            ran(4),
            ran(5)
        );
        for h in &healths[..4] {
            let run = h.last.get().expect("a failure recorded");
            assert!(!run.success, "{}: {run:?}", h.gateway);
        }
        assert!(threads_named("samplers-") <= MAX_WORKERS + 1);
        std::thread::sleep(hang);
        for (g, n) in &runs {
            assert!(n.load(Ordering::SeqCst) >= 2, "{g} runs again");
        }
        assert!(healths.iter().all(|h| h.last.get().unwrap().success));
    }
}
